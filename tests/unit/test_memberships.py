"""A volunteer's units by day (转移接续), worked out from the registry's versions in order."""

from __future__ import annotations

from datetime import date

from services.reporting.models.memberships import EVER, spans

D = date.fromisoformat
TODAY = D("2026-12-07")


def test_the_first_unit_reaches_back_and_a_move_starts_on_its_day():
    assert spans([("A", None, TODAY)]) == [(EVER, "A")]
    assert spans([("A", None, D("2024-01-02")), ("B", D("2024-05-01"), TODAY)]) == [
        (EVER, "A"), (D("2024-05-01"), "B")]
    # Without its day, a move counts from the day it was made.
    assert spans([("A", D("2020-01-01"), D("2020-01-01")), ("B", None, TODAY)]) == [
        (EVER, "A"), (TODAY, "B")]


def test_other_changes_change_nothing_and_a_day_can_be_corrected():
    history = [("A", None, D("2024-01-02")), ("A", None, D("2024-02-01")),  # a new name
               ("B", D("2024-05-01"), D("2024-05-02")), ("B", None, D("2024-09-01")),
               ("B", D("2024-04-15"), D("2024-09-02"))]  # the move was earlier than said
    assert spans(history) == [(EVER, "A"), (D("2024-04-15"), "B")]


def test_a_move_back_and_a_move_dated_before_the_current_unit_s_start():
    history = [("A", None, D("2024-01-02")), ("B", D("2024-05-01"), D("2024-05-01")),
               ("A", D("2024-09-01"), D("2024-09-01"))]
    assert spans(history) == [(EVER, "A"), (D("2024-05-01"), "B"), (D("2024-09-01"), "A")]
    # Moved to C on a day before B's start: C replaces B from that day.
    assert spans([*history[:2], ("C", D("2024-03-01"), D("2024-10-01"))]) == [
        (EVER, "A"), (D("2024-03-01"), "C")]
