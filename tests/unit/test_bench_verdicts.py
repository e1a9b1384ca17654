"""How `make bench` judges a figure against its target (bench.verdicts): pure logic, no timing."""

from bench.reporting import REPORTS, span_days
from bench.verdicts import (
    ceiling_line,
    is_flat,
    markdown,
    percentile,
    ratio_line,
    rss_line,
)


def test_a_ratio_at_or_above_the_target_is_met():
    line = ratio_line("end to end", 5_000, 10_000, "(a)", 0.5, "two hops")
    assert (line.ratio, line.verdict) == ("0.50×", "met")
    assert line.reference == "10,000 /s ((a))"
    assert line.measured == "5,000 /s"


def test_a_ratio_below_the_target_states_the_gap_and_the_reason():
    line = ratio_line("rebuild", 1_000, 10_000, "raw", 0.7, "every model replays")
    assert line.ratio == "0.10×"
    assert line.verdict == "gap: 0.10× < 0.7×; every model replays"


def test_no_reference_is_a_gap_not_a_division_by_zero():
    assert ratio_line("x", 10, 0, "(a)", 0.5, "why").verdict == "gap: no reference measured"


def test_a_p99_within_the_ceiling_is_met_and_over_it_says_by_how_much():
    assert ceiling_line("summary", 50, 50, 0, "queue").verdict == "met"
    over = ceiling_line("summary", 180.4, 50, 0, "queue", p50_ms=20)
    assert over.verdict == "gap: 130 ms over; queue"
    assert over.measured == "p99 180 ms (p50 20 ms)"


def test_failed_requests_are_a_gap_even_when_the_answers_were_fast():
    assert ceiling_line("needs", 10, 50, 3, "503s").verdict.startswith(
        "gap: 3 requests failed")
    assert ceiling_line("needs", None, 50, 7, "down").verdict == "gap: 7 requests failed; down"


def test_memory_is_flat_unless_it_grows_more_than_a_quarter_after_the_first_quarter():
    assert is_flat(200, 250)
    assert not is_flat(200, 251)
    assert rss_line("rebuild", 200, 240, "grows").verdict == "met"
    grew = rss_line("bulk", 100, 400, "grows with the file")
    assert (grew.ratio, grew.verdict) == ("+300%", "gap: grew 300%; grows with the file")


def test_memory_not_read_is_a_gap_not_a_verdict_on_nan():
    line = rss_line("rebuild", 200, float("nan"), "grows")
    assert (line.measured, line.verdict) == (
        "not read", "gap: not measured (the process's memory could not be read)")


def test_a_slow_report_is_blamed_on_the_query_or_on_the_queue():
    from bench.verdicts import report_reason

    assert report_reason(None, 50, 50) == "not measured alone"
    assert report_reason(120, 50, 50).startswith("the query alone takes 120 ms")
    assert report_reason(12, 50, 50).startswith("alone it takes 12 ms (p50, one client); 50 "
                                                "clients share the pool")


def test_percentile_is_the_upper_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.99) == 100
    assert percentile(values, 0.5) == 51
    assert percentile([7.0], 0.99) == 7


def test_the_markdown_table_has_one_row_per_line_and_escapes_pipes():
    out = markdown([ratio_line("a | b", 1, 1, "(a)", 0.5, "")])
    assert out[0].startswith("| figure | measured |")
    assert len(out) == 3 and "a \\| b" in out[2]


def test_no_report_query_is_asked_twice():
    import random

    from bench.reporting import draw

    rnd = random.Random(1)
    names = [name for name, _, _ in REPORTS]
    assert names[:4] == ["summary, whole programme", "summary by unit", "summary by month",
                         "summary, one unit's subtree"]
    for name, _, params in REPORTS:
        asked: set = set()
        drawn = [tuple(sorted(draw(params, rnd, span_days(20_000), asked).items()))
                 for _ in range(500)]
        assert len(set(drawn)) == 500, name


def test_drawing_gives_up_rather_than_repeat_a_query():
    import random

    import pytest

    from bench.reporting import draw

    asked: set = set()
    draw(lambda r, d: {"year": 2013}, random.Random(1), 1, asked)
    with pytest.raises(RuntimeError):
        draw(lambda r, d: {"year": 2013}, random.Random(1), 1, asked)


def test_span_days_covers_one_event_a_minute():
    assert span_days(1) == 1
    assert span_days(1_000_000) == 695
