"""Reporting periods: a month (`2024-03`), a quarter (`2024-Q1`) or a year (`2024`), each with
its days, its name in either language and the period before it; and any from/to range named
the way a ledger's title names it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

Lang = Literal["zh", "en"]
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_QUARTER = re.compile(r"^(\d{4})-Q([1-4])$")
_YEAR = re.compile(r"^(\d{4})$")
_MONTHS_EN = ("January", "February", "March", "April", "May", "June", "July", "August",
              "September", "October", "November", "December")


@dataclass(frozen=True)
class Period:
    kind: Literal["month", "quarter", "year"]
    year: int
    number: int = 1  # the month (1-12) or the quarter (1-4); 1 for a year

    @classmethod
    def parse(cls, text: str) -> Period:
        """`2024-03`, `2024-Q1` or `2024`; ValueError saying which forms are meant."""
        text = text.strip().upper()
        if m := _MONTH.match(text):
            period = cls("month", int(m[1]), int(m[2]))
            if not 1 <= period.number <= 12:
                raise ValueError("the month must be 01 to 12")
        elif m := _QUARTER.match(text):
            period = cls("quarter", int(m[1]), int(m[2]))
        elif m := _YEAR.match(text):
            period = cls("year", int(m[1]))
        else:
            raise ValueError("a month (2024-03), a quarter (2024-Q1) or a year (2024)")
        if not 1900 <= period.year <= 2100:
            raise ValueError("the year must be between 1900 and 2100")
        return period

    @property
    def first(self) -> date:
        if self.kind == "month":
            return date(self.year, self.number, 1)
        if self.kind == "quarter":
            return date(self.year, 3 * self.number - 2, 1)
        return date(self.year, 1, 1)

    @property
    def last(self) -> date:
        return self.next().first - timedelta(days=1)

    def next(self) -> Period:
        if self.kind == "month":
            return (Period("month", self.year + 1, 1) if self.number == 12
                    else Period("month", self.year, self.number + 1))
        if self.kind == "quarter":
            return (Period("quarter", self.year + 1, 1) if self.number == 4
                    else Period("quarter", self.year, self.number + 1))
        return Period("year", self.year + 1)

    def previous(self) -> Period:
        if self.kind == "month":
            return (Period("month", self.year - 1, 12) if self.number == 1
                    else Period("month", self.year, self.number - 1))
        if self.kind == "quarter":
            return (Period("quarter", self.year - 1, 4) if self.number == 1
                    else Period("quarter", self.year, self.number - 1))
        return Period("year", self.year - 1)

    def code(self) -> str:
        return {"month": f"{self.year}-{self.number:02d}", "quarter": f"{self.year}-Q{self.number}",
                "year": f"{self.year}"}[self.kind]

    def label(self, lang: Lang = "zh") -> str:
        if lang == "zh":
            if self.kind == "quarter":  # (not in a dict: month 10 to 12 has no such quarter)
                return f"{self.year}年第{'一二三四'[self.number - 1]}季度"
            return {"month": f"{self.year}年{self.number}月",
                    "year": f"{self.year}年"}[self.kind]
        return {"month": f"{_MONTHS_EN[self.number - 1]} {self.year}",
                "quarter": f"Q{self.number} {self.year}", "year": f"{self.year}"}[self.kind]

    def noun(self, lang: Lang = "zh") -> str:
        """月度 / 季度 / 年度 (monthly, quarterly, yearly)."""
        if lang == "zh":
            return {"month": "月度", "quarter": "季度", "year": "年度"}[self.kind]
        return {"month": "Monthly", "quarter": "Quarterly", "year": "Annual"}[self.kind]


def exact(date_from: date | None, date_to: date | None) -> Period | None:
    """The month, quarter or year these days are exactly, if they are one."""
    if date_from is None or date_to is None:
        return None
    for kind in ("month", "quarter", "year"):
        number = {"month": date_from.month, "quarter": (date_from.month - 1) // 3 + 1,
                  "year": 1}[kind]
        period = Period(kind, date_from.year, number)  # type: ignore[arg-type]
        if (period.first, period.last) == (date_from, date_to):
            return period
    return None


def describe(date_from: date | None, date_to: date | None, lang: Lang = "zh") -> str:
    """A range as a ledger's title names it: 2024年3月, 2024-03-05 至 2024-03-20, 2024-03-05 起,
    全部时间."""
    if period := exact(date_from, date_to):
        return period.label(lang)
    if date_from is None and date_to is None:
        return "全部时间" if lang == "zh" else "all time"
    if date_to is None:
        return f"{date_from} 起" if lang == "zh" else f"from {date_from}"
    if date_from is None:
        return f"截至 {date_to}" if lang == "zh" else f"up to {date_to}"
    return f"{date_from} 至 {date_to}" if lang == "zh" else f"{date_from} to {date_to}"


def slug(date_from: date | None, date_to: date | None) -> str:
    """The range in a file name: 2024-03, 2024-Q1, 2024, 2024-03-05_2024-03-20, all."""
    if period := exact(date_from, date_to):
        return period.code()
    if date_from is None and date_to is None:
        return "all"
    return f"{date_from.isoformat() if date_from else 'start'}_" \
           f"{date_to.isoformat() if date_to else 'now'}"
