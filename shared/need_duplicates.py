"""Possible duplicates (重复件): a need submitted at the same base, of the same category, within
TONGXIN_NEED_DUPLICATE_HOURS of one still open or claimed there may repeat it. One rule, used
where a need's possible original is decided: reporting's needs read model (when the need is
applied, from the needs applied before it) and the events service's forms choices (from the
needs accepted before it, as they stand), so the two never disagree on what is alike."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

LIVE = ("open", "claimed")  # a need that may still be repeated (and linked to)


def utc(moment: datetime) -> datetime:
    """A naive value (SQLite keeps no offset) is UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def possible_original(new: Mapping[str, Any], earlier: Iterable[Mapping[str, Any]],
                      window: timedelta) -> str | None:
    """The earliest need still open or claimed at the new one's base, of its category,
    submitted within the window of it, among those submitted before it (`earlier`: rows with
    `need_id`, `base_id`, `category`, `state`, `submitted_at`): the need it may repeat."""
    if window <= timedelta(0):
        return None
    at = utc(new["submitted_at"])
    found = sorted((utc(r["submitted_at"]), r["need_id"]) for r in earlier
                   if r["need_id"] != new["need_id"] and r["state"] in LIVE
                   and r["base_id"] == new["base_id"] and r["category"] == new["category"]
                   and abs(utc(r["submitted_at"]) - at) <= window)
    return found[0][1] if found else None
