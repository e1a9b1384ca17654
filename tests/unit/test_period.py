"""Reporting periods: a month, a quarter or a year, its days, names and the one before."""

from __future__ import annotations

from datetime import date

import pytest

from services.reporting.period import Period, describe, slug


def test_a_month_a_quarter_and_a_year_with_their_days_and_the_period_before():
    march = Period.parse("2024-03")
    assert (march.first, march.last, march.label(), march.label("en")) == (
        date(2024, 3, 1), date(2024, 3, 31), "2024年3月", "March 2024")
    assert Period.parse("2024-02").last == date(2024, 2, 29)
    assert Period.parse("2024-01").previous().code() == "2023-12"
    q1 = Period.parse("2024-q1")
    assert (q1.first, q1.last, q1.label(), q1.previous().code()) == (
        date(2024, 1, 1), date(2024, 3, 31), "2024年第一季度", "2023-Q4")
    year = Period.parse("2024")
    assert (year.first, year.last, year.noun(), year.previous().code()) == (
        date(2024, 1, 1), date(2024, 12, 31), "年度", "2023")


def test_the_last_months_of_a_year_have_names_too():
    """Months 10 to 12 are named, in both languages (there is no quarter 10 to trip on)."""
    assert [Period.parse(f"2026-{m}").label() for m in (10, 11, 12)] == [
        "2026年10月", "2026年11月", "2026年12月"]
    assert Period.parse("2026-11").label("en") == "November 2026"
    assert describe(date(2026, 12, 1), date(2026, 12, 31)) == "2026年12月"


@pytest.mark.parametrize("text", ["2024-13", "2024-Q5", "24", "2024/03", "3000", ""])
def test_anything_else_is_refused(text):
    with pytest.raises(ValueError):
        Period.parse(text)


def test_a_range_is_named_as_the_period_it_is_or_by_its_days():
    assert describe(date(2024, 4, 1), date(2024, 6, 30)) == "2024年第二季度"
    assert describe(date(2024, 3, 5), date(2024, 3, 20)) == "2024-03-05 至 2024-03-20"
    assert describe(None, None, "en") == "all time"
    assert describe(date(2024, 3, 5), None) == "2024-03-05 起"
    assert slug(date(2024, 1, 1), date(2024, 12, 31)) == "2024"
    assert slug(date(2024, 3, 5), None) == "2024-03-05_now"
