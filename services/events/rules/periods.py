"""Rules for approved periods (数据审定): an approval names one scope and a period that has
begun."""

from __future__ import annotations

from datetime import date

from services.events.rules.base import Verdict, accept, refuse
from services.events.rules.limits import day_not_ahead
from services.events.state import Facts
from shared.envelope import Envelope
from shared.events import PeriodApproved


def first_day(period: str) -> date:
    """The first day of `2026-11`, `2026-Q4` or `2026` (the data model checked the form)."""
    year, _, rest = period.partition("-")
    if not rest:
        return date(int(year), 1, 1)
    if rest.startswith("Q"):
        return date(int(year), 3 * int(rest[1]) - 2, 1)
    return date(int(year), int(rest), 1)


def approved(d: PeriodApproved, env: Envelope, facts: Facts) -> Verdict:
    if d.organization_id and d.region:
        return refuse("data.region", "an approval's scope is a unit or a region, not both",
                      invalid=True)
    if ahead := day_not_ahead("data.period", first_day(d.period), facts):
        return ahead
    return accept()
