"""The issues' targets, checked against one run's figures, and what the figures say.

Why separate: the targets are policy (pure functions over Results); the explanations of a
miss come from profiling the core (see BENCHMARKS.md "What the figures say").
"""

from __future__ import annotations

from bench.stats import Results

WHY_WARM = ("")


def _m(res: Results, key: str) -> float | None:
    fig = res.figures.get(key)
    return fig.median if fig else None


def check_targets(res: Results) -> None:
    floor, mgmt, raw = _m(res, "floor.p50"), _m(res, "mgmt.p50"), _m(res, "raw.p50")
    ll_node, ll_py = _m(res, "ll_node.p50"), _m(res, "ll_py.p50")
    if floor and mgmt:
        res.check("Warm Python p50 ≤ 4\u00d7 the floor (core path)", mgmt / floor, 4.0, "\u00d7",
                  why=WHY_WARM)
    if floor and raw:
        res.check("Warm Python p50 ≤ 4\u00d7 the floor (invoke API, raw SigV4 client)",
                  raw / floor, 4.0, "\u00d7", why=WHY_WARM)
    if mgmt and ll_node:
        res.check("Warm Python p50 below lambda-local (npm) in-process p50", mgmt, ll_node,
                  "µs", why=WHY_WARM)
    if mgmt and ll_py:
        res.check("Warm Python p50 below python-lambda-local call() p50", mgmt, ll_py, "µs")
    od2, ftput = _m(res, "od2.tput"), _m(res, "floor.tput")
    if od2 and ftput:
        res.check("2 workers ≥ half the floor's throughput", od2 / ftput, 0.5, "\u00d7",
                  at_most=False)
    bare, cpy, cpc = _m(res, "bare_py"), _m(res, "cold_py"), _m(res, "cold_py_c")
    if bare and cpy:
        res.check("Cold start NoContainer ≤ 1.5\u00d7 a bare interpreter", cpy / bare, 1.5, "\u00d7")
    if cpy and cpc:
        res.check("Cold start GreengrassContainer ≤ 1.3\u00d7 NoContainer", cpc / cpy, 1.3, "\u00d7")
    rss20, per = _m(res, "rss20"), _m(res, "rss_per_fn")
    if rss20:
        res.check("Core RSS ≤ 40 MB idle with 20 functions", rss20, 40.0, "MB")
    if per is not None:
        res.check("≤ 100 KB per further idle on-demand function", per, 100.0, "KB")
    hello = _m(res, "report_mem_HelloC") or _m(res, "hwm_HelloC")
    if hello:
        res.check("Python hello world within 16 MB (REPORT Max Memory Used, container)",
                  hello, 16.0, "MB")


def analysis(res: Results) -> list[str]:
    return []
