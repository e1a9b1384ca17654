"""Times and dates a programme can mean: 1900 to 2100.

Python's datetime stops at years 1 and 9999; a time near either end cannot even be moved into
the programme's time zone (OverflowError), and no service record is dated there. Refusing such
values at the door, naming the field, keeps every later step (months, deadlines) total.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime

EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2101, 1, 1, tzinfo=UTC)  # exclusive


def _moment_in_range(value: datetime) -> datetime:
    if 1900 < value.year < 2100:  # no offset moves these out of range: skip the comparisons
        return value
    if not EARLIEST <= value < LATEST:
        raise ValueError("must be between 1900-01-01 and 2100-12-31")
    return value


def _day_in_range(value: date) -> date:
    if not EARLIEST.date() <= value < LATEST.date():
        raise ValueError("must be between 1900-01-01 and 2100-12-31")
    return value


# A time with its UTC offset, within the years a programme can mean.
Moment = Annotated[AwareDatetime, AfterValidator(_moment_in_range)]
def _year_in_range(value: datetime) -> datetime:
    if not 1900 <= value.year <= 2100:
        raise ValueError("must be between 1900-01-01 and 2100-12-31")
    return value


# A calendar date (a rota day, a due date, a report's from/to), within the same years.
Day = Annotated[date, AfterValidator(_day_in_range)]
# A time with or without an offset (a query's `at`: without one, the programme's local time).
Instant = Annotated[datetime, AfterValidator(_year_in_range)]


_MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def written(value: date | datetime, lang: str = "zh") -> str:
    """A day, or a moment to the minute (already in the zone meant), as people write it:
    2026年12月7日 18:30 / 7 Dec 2026 18:30 (the dashboard's dayText and momentText)."""
    day = (f"{value.year}年{value.month}月{value.day}日" if lang == "zh"
           else f"{value.day} {_MONTHS_EN[value.month - 1]} {value.year}")
    return f"{day} {value:%H:%M}" if isinstance(value, datetime) else day
