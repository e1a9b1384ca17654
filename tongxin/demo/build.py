"""Envelopes for the demo programmes, written the way the articles tell them.

A programme names its records by their registry `code` (``"zb-tzb"``), as its spreadsheets do;
`tongxin.demo.load` puts the registry's ids in their place before sending. Every id made here is
a uuid5 of a key the programme chose, so the same programme gives the same events every time
and a second load is all duplicates.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from importlib import resources
from typing import Any

NAMESPACE = uuid.UUID("0b3f6a52-9d0e-4f6b-8a43-5c2d1e7f9a10")
SOURCE = "tongxin-demo"
TZ = "+08:00"  # every programme is in China; local times as the programmes wrote them


def activity_id(key: str) -> str:
    return str(uuid.uuid5(NAMESPACE, key))


def envelope(event_type: str, key: str, occurred_at: str, data: dict[str, Any]) -> dict:
    return {"event_id": str(uuid.uuid5(NAMESPACE, f"{event_type}/{key}")), "type": event_type,
            "version": 1, "occurred_at": occurred_at, "source": SOURCE, "data": data}


def at(day: date | str, clock: str = "09:00") -> str:
    """A local moment: at("2013-10-13", "08:30") -> 2013-10-13T08:30:00+08:00."""
    return f"{day}T{clock}:00{TZ}"


def days_after(moment: str, days: float, clock: str = "10:00") -> str:
    day = datetime.fromisoformat(moment).date() + timedelta(days=days)
    return at(day, clock)


def spread(total: int, parts: int, seed: int = 0) -> list[int]:
    """`total` in `parts` whole numbers, uneven as real records are (±30% around the mean,
    the same every time), adding up exactly. For totals an article gives without the detail."""
    if parts <= 0:
        return []
    weights = [7 + (i * 37 + seed * 11) % 7 for i in range(parts)]  # 7..13: ±30% of 10
    shares = [total * w // sum(weights) for w in weights]
    for i in range(total - sum(shares)):  # what rounding left over, one each from the first
        shares[i % parts] += 1
    return shares


def activity(key: str, *, organization: str, base: str, title: str, theme: str,
             start: str, end: str, volunteers: int, volunteer_hours: float,
             service_types: Sequence[str] = (), served: int | None = None, trainees: int = 0,
             donations: Iterable[dict] = (), outputs: dict[str, float] | None = None,
             stalls: Iterable[dict] = (), team: str | None = None, pairing: str | None = None,
             project: str | None = None, summary: str | None = None,
             logged_at: str | None = None) -> dict:
    """`activity.logged`, logged the evening it ended unless `logged_at` says otherwise."""
    data: dict[str, Any] = {
        "activity_id": activity_id(key), "organization_id": organization, "base_id": base,
        "title": title, "theme": theme, "started_at": start, "ended_at": end,
        "volunteers": volunteers, "volunteer_hours": volunteer_hours, "trainees": trainees,
        "donations": list(donations)}
    if stalls:
        data["stalls"] = list(stalls)  # service types and served are then the stalls'
    else:
        data |= {"service_types": list(service_types), "served": served}
    if outputs:
        data["outputs"] = [{"indicator": k, "quantity": v} for k, v in outputs.items()]
    optional = {"team_id": team, "pairing_id": pairing, "project_id": project,
                "summary": summary}
    data |= {k: v for k, v in optional.items() if v is not None}
    return envelope("activity.logged", key, logged_at or days_after(end, 0, "20:00"), data)


def report(logged: dict, summary: str, after_days: float = 3) -> dict:
    """The unit's summary (服务旗帜接传), `after_days` after the activity ended."""
    d = logged["data"]
    return envelope("report.submitted", d["activity_id"], days_after(d["ended_at"], after_days),
                    {"activity_id": d["activity_id"], "organization_id": d["organization_id"],
                     "summary": summary, "photos": []})


def scheduled(key: str, *, organization: str, base: str, title: str, theme: str,
              service_types: Sequence[str], planned_on: date, published_on: date) -> dict:
    """A rota entry (`activity.scheduled`); logging the same key later fulfils it."""
    return envelope("activity.scheduled", key, at(published_on), {
        "activity_id": activity_id(key), "organization_id": organization, "base_id": base,
        "title": title, "service_types": list(service_types), "theme": theme,
        "planned_on": planned_on.isoformat()})


def need(need_id: str, *, base: str, title: str, category: str, submitted: str,
         channel: str = "community", urgency: str = "normal", pairing: str | None = None,
         claimed_by: str | None = None, claimed: str | None = None,
         resolved: str | None = None, by_activity: dict | None = None,
         closed: str | None = None, followup: tuple[str, date, str] | None = None,
         followup_on: str | None = None) -> list[dict]:
    """A need's life as far as it got: submitted, then claimed, resolved and closed (confirmed)
    when those moments are given. `followup`: (volunteer, due_on, note) assigned when claimed
    (跟踪落实, 落实专人). Needs are described without residents' names."""
    data: dict[str, Any] = {"need_id": need_id, "base_id": base, "title": title,
                            "category": category, "urgency": urgency, "channel": channel}
    if pairing:
        data["pairing_id"] = pairing
    out = [envelope("need.submitted", need_id, submitted, data)]
    if claimed_by and claimed:
        out.append(envelope("need.claimed", need_id, claimed,
                            {"need_id": need_id, "organization_id": claimed_by}))
    if followup and claimed:
        volunteer, due_on, note = followup
        out.append(envelope("need.followup_assigned", need_id, followup_on or claimed, {
            "need_id": need_id, "assignee_id": volunteer, "due_on": due_on.isoformat(),
            "note": note}))
    if claimed_by and claimed and resolved:
        done: dict[str, Any] = {"need_id": need_id, "organization_id": claimed_by}
        if by_activity:
            # History goes in the order it happened: the activity must be logged by then.
            assert resolved >= by_activity["occurred_at"], (need_id, resolved)
            done["activity_id"] = by_activity["data"]["activity_id"]
        out.append(envelope("need.resolved", need_id, resolved, done))
        if closed:
            out.append(envelope("need.closed", need_id, closed,
                                {"need_id": need_id, "outcome": "confirmed"}))
    return out


def attendance(logged: dict, volunteer: str, hours: float | None = None) -> dict:
    """A volunteer signed in at an activity (confirmed as recorded); hours: its length."""
    d = logged["data"]
    length = (datetime.fromisoformat(d["ended_at"])
              - datetime.fromisoformat(d["started_at"])).total_seconds() / 3600
    return envelope("attendance.recorded", f"{d['activity_id']}/{volunteer}", logged["occurred_at"],
                    {"activity_id": d["activity_id"], "volunteer_id": volunteer,
                     "hours": hours or length, "method": "sign_in"})


def visit(campaign: str, base: str, visited_on: date, households: int,
          volunteers: int | None = None) -> dict:
    """`campaign.visit_recorded`: households visited at a base on a day."""
    data: dict[str, Any] = {"campaign_id": campaign, "base_id": base,
                            "visited_on": visited_on.isoformat(), "households_visited": households}
    if volunteers is not None:
        data["volunteers"] = volunteers
    return envelope("campaign.visit_recorded", f"{campaign}/{base}/{visited_on}",
                    at(visited_on, "18:00"), data)


def register(package: str, collection: str) -> list[dict[str, str]]:
    """The rows of one of a programme's registers (`package`: its module's __name__), keyed by
    the file's Chinese headers: a programme spreads its totals over the records it registers."""
    from services.registry.imports import collection_for

    for f in resources.files(package).iterdir():
        if f.name.endswith(".csv") and collection_for(f.name) == collection:
            return list(csv.DictReader(io.StringIO(f.read_text("utf-8"))))
    raise LookupError(f"{package} has no {collection} register")
