"""Limits several rules share: how many hours fit in an activity, and how far past the clock
a record may be dated (`TONGXIN_FUTURE_GRACE_HOURS`). One wording each, so one translation."""

from __future__ import annotations

from datetime import date, datetime, time

from services.events.rules.base import Refuse, refuse
from services.events.state import Facts

SLACK_HOURS = 1 / 60  # a minute of rounding per person in a sign-in kiosk's hours


def hours_fit(hours: float, hours_long: float, people: int = 1) -> bool:
    """Whether `hours` fit in `people` turn-outs at an activity `hours_long` hours long: the
    same rule for one volunteer's attendance and for an activity's volunteer_hours."""
    return hours <= hours_long * people + SLACK_HOURS * max(people, 1)


def not_ahead(field: str, moment: datetime, facts: Facts) -> Refuse | None:
    """A record ends now or before; the grace absorbs a device's clock and a late typo's
    minutes, never a year (an activity dated 2099 would be "the latest" for everyone)."""
    if moment <= facts.now + facts.future_grace:
        return None
    return _ahead(field, facts)


def day_not_ahead(field: str, day: date, facts: Facts) -> Refuse | None:
    """A day, by its start in the programme's time zone: refused only if all of it is ahead."""
    return not_ahead(field, datetime.combine(day, time(), tzinfo=facts.zone), facts)


def _ahead(field: str, facts: Facts) -> Refuse:
    grace = facts.future_grace.total_seconds() / 3600
    now = facts.now.astimezone(facts.zone)
    return refuse(field, f"is more than {grace:g} h in the future (now: "
                         f"{now:%Y-%m-%d %H:%M %z}); a record cannot be dated ahead",
                  invalid=True)
