"""Figures the fault, fuzz and permission suites measure: printed as they come (with -s) and
again at the end of every run's summary, so CI's log carries them without -s."""

from __future__ import annotations

FIGURES: list[str] = []


def say(line: str) -> None:
    FIGURES.append(line.strip("\n"))
    print(line)
