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


@dataclass(frozen=True)
class Target:
    """A target from the issues, checked against the figures: ``value <op> bound``."""

    text: str
    value: float
    bound: float
    unit: str
    met: bool
    why: str = ""


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
              at_most: bool = True, why: str = "") -> Target:
        met = value <= bound if at_most else value >= bound
        target = Target(text, value, bound, unit, met, "" if met else why)
        self.targets.append(target)
        return target


def fmt(value: float, unit: str) -> str:
    """A value with a sensible number of digits for its size."""
    if unit in ("µs", "ms", "MB", "KB") or unit.endswith("/s"):
        if abs(value) >= 100:
            return f"{value:,.0f} {unit}"
        if abs(value) >= 10:
            return f"{value:.1f} {unit}"
        return f"{value:.2f} {unit}"
    return f"{value:.3g} {unit}"
