"""The report's verdicts: a target met only at the median is "within noise", never "met"."""

from __future__ import annotations

from bench.stats import Results, paired_ratios, series_targets


def test_paired_ratios_pair_by_turn() -> None:
    assert paired_ratios([2.0, 4.0], [1.0, 2.0]) == (2.0, 2.0)
    # two baseline runs per turn: each numerator run against the median of its turn's
    assert paired_ratios([3.0, 8.0], [1.0, 2.0, 3.0, 5.0]) == (2.0, 2.0)
    assert paired_ratios([1.0, 2.0, 3.0], [1.0, 2.0]) == ()


def test_verdicts() -> None:
    res = Results()
    met = res.check("a", 1.0, 2.0, "x", spread=[0.9, 1.5], why="w")
    noisy = res.check("b", 1.9, 2.0, "x", spread=[1.8, 2.4], why="w")
    missed = res.check("c", 2.5, 2.0, "x", spread=[2.1, 2.6], why="w")
    rate = res.check("d", 0.6, 0.5, "x", at_most=False, spread=[0.45, 0.7], why="w")
    assert [t.verdict for t in (met, noisy, missed, rate)] == [
        "yes", "within noise", "no", "within noise"]
    assert met.why == "" and noisy.why == "w"


def test_series_median_and_spread() -> None:
    runs = []
    for v in (1.0, 1.2, 2.5, 1.1, 1.3):
        r = Results()
        r.check("t", v, 2.0, "x", why=f"run {v}")
        runs.append(r.targets)
    (t,) = series_targets(runs)
    assert (t.value, t.low, t.high, t.runs) == (1.2, 1.0, 2.5, 5)
    assert t.verdict == "within noise" and t.why == "run 2.5"
