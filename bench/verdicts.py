"""The speed targets (issue 13, item 5) and how a measured figure is judged against them: the
ratio to a reference measured in the same run, or a ceiling; "met", or the gap with its reason.
Pure: no clock, no I/O; `bench.speed` measures, this judges and lays out the table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# How much peak RSS may grow from a quarter of the stream to its end and still count as flat.
FLAT_GROWTH = 0.25


@dataclass(frozen=True)
class Line:
    """One row of the final table."""

    figure: str       # what was measured
    measured: str     # the figure, with its unit
    reference: str    # the reference measured in the same run ("—" for a ceiling)
    ratio: str        # measured ÷ reference ("—" for a ceiling)
    target: str
    verdict: str      # "met", or "gap: …" with the reason


def fmt_rate(per_second: float) -> str:
    return f"{per_second:,.0f} /s"


def ratio_line(figure: str, measured: float, reference: float, reference_name: str,
               at_least: float, why: str) -> Line:
    """A rate that must reach `at_least` × the reference's. `why` is said when it does not."""
    ratio = measured / reference if reference > 0 else 0.0
    met = reference > 0 and ratio >= at_least
    gap = f"gap: {ratio:.2f}× < {at_least:g}×; {why}" if reference > 0 else \
        "gap: no reference measured"
    return Line(figure, fmt_rate(measured), f"{fmt_rate(reference)} ({reference_name})",
                f"{ratio:.2f}×", f"≥ {at_least:g}× {reference_name}", "met" if met else gap)


def ceiling_line(figure: str, p99_ms: float | None, limit_ms: float, failures: int,
                 why: str, p50_ms: float | None = None) -> Line:
    """A p99 that must not exceed `limit_ms`; every failed request is a gap of its own."""
    if p99_ms is None:
        return Line(figure, "no answers", "—", "—", f"p99 ≤ {limit_ms:g} ms",
                    f"gap: {failures:,} requests failed; {why}")
    measured = f"p99 {p99_ms:,.0f} ms" + (f" (p50 {p50_ms:,.0f} ms)" if p50_ms is not None
                                         else "")
    if failures:
        return Line(figure, measured, "—", "—", f"p99 ≤ {limit_ms:g} ms",
                    f"gap: {failures:,} requests failed or timed out; {why}")
    if p99_ms <= limit_ms:
        return Line(figure, measured, "—", "—", f"p99 ≤ {limit_ms:g} ms", "met")
    return Line(figure, measured, "—", "—", f"p99 ≤ {limit_ms:g} ms",
                f"gap: {p99_ms - limit_ms:,.0f} ms over; {why}")


def report_reason(alone_p50_ms: float | None, limit_ms: float, clients: int) -> str:
    """Why a report misses its p99 under load, from the same report asked by one client alone
    in the same run: the query itself, or the queue in front of it."""
    if alone_p50_ms is None:
        return "not measured alone"
    if alone_p50_ms > limit_ms:
        return (f"the query alone takes {alone_p50_ms:,.0f} ms (p50, one client): over the "
                "target before any queue")
    return (f"alone it takes {alone_p50_ms:,.0f} ms (p50, one client); {clients} clients "
            "share the pool's database connections (TONGXIN_DB_POOL_SIZE) and the 2 cores")


def is_flat(at_quarter_mb: float, at_end_mb: float, growth: float = FLAT_GROWTH) -> bool:
    """Peak RSS at the end no more than `growth` above its value a quarter of the way in."""
    return at_end_mb <= at_quarter_mb * (1 + growth)


def rss_line(figure: str, at_quarter_mb: float, at_end_mb: float, why: str) -> Line:
    target = f"flat (≤ +{FLAT_GROWTH:.0%} from ¼ to end)"
    if math.isnan(at_quarter_mb) or math.isnan(at_end_mb):
        return Line(figure, "not read", "—", "—", target,
                    "gap: not measured (the process's memory could not be read)")
    flat = is_flat(at_quarter_mb, at_end_mb)
    grew = (at_end_mb / at_quarter_mb - 1) * 100 if at_quarter_mb > 0 else float("inf")
    return Line(figure, f"{at_quarter_mb:,.0f} MB at ¼ → {at_end_mb:,.0f} MB at the end",
                "—", f"{grew:+.0f}%", target, "met" if flat else f"gap: grew {grew:.0f}%; {why}")


def percentile(values: list[float], p: float) -> float:
    """The value below which a fraction `p` of `values` lies (nearest rank, upper)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


COLUMNS = ("figure", "measured", "reference (same run)", "ratio", "target", "verdict")


def markdown(lines: list[Line]) -> list[str]:
    out = ["| " + " | ".join(COLUMNS) + " |", "| " + " | ".join("---" for _ in COLUMNS) + " |"]
    for line in lines:
        cells = (line.figure, line.measured, line.reference, line.ratio, line.target,
                 line.verdict)
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return out
