"""Figures: repeated measurements, their spread, and ratios to a baseline from the same run.

Why a separate module: every benchmark reports the same way (min/median/max over runs, a ratio
to a named baseline), so the arithmetic lives once, in pure functions.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) by nearest rank: an actual observed sample, never an
    interpolation, so p99 of 200 samples is the 198th smallest."""
    if not samples:
        raise ValueError("percentile of no samples")
    ordered = sorted(samples)
    rank = max(0, min(len(ordered) - 1, round(q * len(ordered) + 0.5) - 1))
    return ordered[rank]


@dataclass(frozen=True)
class Figure:
    """One measured quantity over repeated runs (one value per run).

    ``baseline`` names another figure's key; the ratio is median / baseline median.
    ``higher_is_better`` flips the reading of the ratio (throughput) but not its arithmetic.
    """

    key: str
    label: str
    unit: str
    runs: tuple[float, ...]
    baseline: str | None = None
    higher_is_better: bool = False
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def low(self) -> float:
        return min(self.runs)

    @property
    def high(self) -> float:
        return max(self.runs)


def paired_ratios(num: Sequence[float], base: Sequence[float]) -> tuple[float, ...]:
    """Per-run ratios of two figures measured by turns: run ``i`` of ``num`` against run
    ``i`` of ``base`` (or, when ``base`` ran ``k`` times per turn, against the median of its
    ``k`` runs of that turn). Empty when the runs do not pair up.

    Why paired: the spread of a ratio is what a target's "upper end" means; dividing the
    worst numerator by the best baseline would mix runs made under different load."""
    if not num or not base or len(base) % len(num):
        return ()
    k = len(base) // len(num)
    out = []
    for i, x in enumerate(num):
        b = statistics.median(base[i * k:(i + 1) * k])
        if b:
            out.append(x / b)
    return tuple(out)


@dataclass(frozen=True)
class Target:
    """A target from the issues, checked against the figures: ``value <op> bound``.

    ``low``/``high`` is the spread of the value (paired runs in one suite run, or the suite
    runs of a series). A target whose median meets the bound but whose worst end does not
    is "within noise", never "met": a verdict that noise could flip is not a result."""

    text: str
    value: float
    bound: float
    unit: str
    met: bool
    why: str = ""
    low: float | None = None
    high: float | None = None
    at_most: bool = True
    runs: int = 1

    @property
    def worst(self) -> float:
        """The end of the spread farthest from meeting the bound."""
        ends = [v for v in (self.low, self.high) if v is not None] or [self.value]
        return max(ends) if self.at_most else min(ends)

    @property
    def worst_met(self) -> bool:
        return self.worst <= self.bound if self.at_most else self.worst >= self.bound

    @property
    def verdict(self) -> str:
        """``yes`` (even the worst end meets), ``within noise`` (only the median) or ``no``."""
        if not self.met:
            return "no"
        return "yes" if self.worst_met else "within noise"


@dataclass
class Results:
    """Every figure and target of one run, in the order they were measured."""

    figures: dict[str, Figure] = field(default_factory=dict)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    sections: dict[str, list[str]] = field(default_factory=dict)
    profile: list[tuple[float, str]] = field(default_factory=list)

    def add(self, section: str, fig: Figure) -> Figure:
        self.figures[fig.key] = fig
        self.sections.setdefault(section, []).append(fig.key)
        return fig

    def ratio(self, key: str) -> float | None:
        fig = self.figures.get(key)
        if fig is None or fig.baseline is None or fig.baseline not in self.figures:
            return None
        base = self.figures[fig.baseline].median
        return fig.median / base if base else None

    def check(self, text: str, value: float, bound: float, unit: str, *,
              at_most: bool = True, why: str = "",
              spread: Sequence[float] = ()) -> Target:
        """Record a target; ``spread`` is the value per run (its min and max become the
        target's spread)."""
        met = value <= bound if at_most else value >= bound
        lo, hi = (min(spread), max(spread)) if spread else (value, value)
        target = Target(text, value, bound, unit, met, why, min(lo, value), max(hi, value),
                        at_most)
        if target.verdict == "yes":
            target = Target(text, value, bound, unit, met, "", target.low, target.high, at_most)
        self.targets.append(target)
        return target


def series_targets(runs: Sequence[Sequence[Target]]) -> list[Target]:
    """The targets of several suite runs: each target's median over the runs, min and max
    as its spread, and the explanation of the run nearest the median that has one (a run
    that met the bound explains nothing)."""
    by_text: dict[str, list[Target]] = {}
    for targets in runs:
        for t in targets:
            by_text.setdefault(t.text, []).append(t)
    out = []
    for text, ts in by_text.items():
        values = [t.value for t in ts]
        med = statistics.median(values)
        first = ts[0]
        met = med <= first.bound if first.at_most else med >= first.bound
        nearest = min([t for t in ts if t.why] or ts, key=lambda t: abs(t.value - med))
        t = Target(text, med, first.bound, first.unit, met, nearest.why, min(values),
                   max(values), first.at_most, len(ts))
        out.append(t if t.verdict != "yes" else Target(
            text, med, first.bound, first.unit, met, "", t.low, t.high, first.at_most, len(ts)))
    return out


def fmt(value: float, unit: str) -> str:
    """A value with a sensible number of digits for its size."""
    if unit in ("µs", "ms", "MB", "KB") or unit.endswith("/s"):
        if abs(value) >= 100:
            return f"{value:,.0f} {unit}"
        if abs(value) >= 10:
            return f"{value:.1f} {unit}"
        return f"{value:.2f} {unit}"
    return f"{value:.3g} {unit}"
