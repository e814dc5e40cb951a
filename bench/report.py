"""BENCHMARKS.md and the PNG plots, from one run's Results.

Why generated: the report must carry exactly the figures of the run it describes (and the
command that produced them), so it is never edited by hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.stats import Figure, Results, Target, fmt

PLOTS = "bench/results"


def ratio_text(res: Results, fig: Figure) -> str:
    r = res.ratio(fig.key)
    if r is None or fig.baseline is None:
        return "baseline"
    base = res.figures[fig.baseline]
    name = base.label.split(":")[0] if base.key.startswith("floor.") else base.label
    if fig.higher_is_better:
        return f"{r:.2f}\u00d7 of {name}"
    return f"{r:.2f}\u00d7 {name}"


def line(res: Results, fig: Figure) -> str:
    """One console line: median [min-max] and the ratio."""
    return (f"  {fig.label:<72} {fmt(fig.median, fig.unit):>12}  "
            f"[{fmt(fig.low, fig.unit)} \u2013 {fmt(fig.high, fig.unit)}]  n={len(fig.runs)}  "
            f"{ratio_text(res, fig)}")


def table(res: Results, keys: Sequence[str]) -> list[str]:
    out = ["| figure | median | min | max | runs | vs baseline (median ratio) |",
           "|---|---:|---:|---:|---:|---|"]
    for key in keys:
        f = res.figures[key]
        note = f" — {f.note}" if f.note else ""
        out.append(f"| {f.label}{note} | **{fmt(f.median, f.unit)}** | {fmt(f.low, f.unit)} | "
                   f"{fmt(f.high, f.unit)} | {len(f.runs)} | {ratio_text(res, f)} |")
    return out


# -- plots ------------------------------------------------------------------------------------

def _bars(res: Results, keys: list[str], title: str, xlabel: str, path: Path,
          log: bool = False, highlight: tuple[str, ...] = ()) -> bool:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in keys if k in res.figures]
    if not keys:
        return False
    figs = [res.figures[k] for k in keys]
    med = [f.median for f in figs]
    err = [[f.median - f.low for f in figs], [f.high - f.median for f in figs]]
    colors = ["#d95f02" if any(k.startswith(h) for h in highlight) else "#7570b3"
              for k in keys]
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(keys) + 1.4))
    y = range(len(keys))
    ax.barh(list(y), med, xerr=err, color=colors, capsize=3)
    ax.set_yticks(list(y), [f.label for f in figs], fontsize=8)
    ax.invert_yaxis()
    if log:
        ax.set_xscale("log")
    for i, v in enumerate(med):
        ax.text(figs[i].high, i, f"  {fmt(v, figs[i].unit)}", va="center", fontsize=7)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _lines(series: dict[str, tuple[list[float], list[float]]], title: str, xlabel: str,
           ylabel: str, path: Path, logx: bool = False, logy: bool = False,
           xticks: tuple[list[float], list[str]] | None = None) -> bool:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not series:
        return False
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, (xs, ys) in series.items():
        ax.plot(xs, ys, marker="o", label=name)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    if xticks:
        ax.set_xticks(xticks[0], xticks[1])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plots(res: Results, report: Path, repo: Path) -> list[tuple[str, str]]:
    """Write every plot; return (title, path relative to the report) of those written.

    The repository's BENCHMARKS.md gets bench/results/; a report written elsewhere (``--out``)
    gets its plots beside it, so a trial run never overwrites the committed ones."""
    default = report.resolve() == (repo / "BENCHMARKS.md").resolve()
    rel = PLOTS if default else f"{report.stem}-plots"
    out_dir = repo / PLOTS if default else report.parent / rel
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[tuple[str, str]] = []

    def keep(ok: bool, title: str, name: str) -> None:
        if ok:
            written.append((title, f"{rel}/{name}"))

    warm = ["floor.p50", "ll_node.p50", "mgmt.p50", "mgmt_c.p50", "raw.p50", "boto3.p50",
            "node.p50", "java.p50", "ll_py.p50"]
    keep(_bars(res, warm, "Warm invoke p50, echo handler (log scale; bars: min\u2013max)",
               "µs per round trip", out_dir / "warm_latency.png", log=True,
               highlight=("mgmt", "raw", "boto3", "node.", "java.")),
         "Warm invoke latency", "warm_latency.png")
    cold = ["bare_py", "cold_py", "init_py", "cold_py_c", "init_py_c", "bare_node", "cold_node",
            "init_node", "bare_java", "cold_java", "init_java"]
    keep(_bars(res, cold, "Cold start: bare interpreter vs Sprig's first invocation",
               "ms", out_dir / "cold_start.png", highlight=("cold_", "init_")),
         "Cold start", "cold_start.png")
    counts: list[float] = [0.0] + [float(k[3:]) for k in res.figures
                                   if k.startswith("rss") and k[3:].isdigit() and k != "rss0"]
    if "rss0" in res.figures:
        ys = [res.figures[f"rss{n:.0f}"].median for n in counts]
        keep(_lines({"core RSS (median)": (counts, ys),
                     "target: 40 MB at 20 functions": ([20], [40.0])},
                    "Core resident memory vs deployed idle on-demand functions",
                    "deployed functions", "MB", out_dir / "core_memory.png"),
             "Core memory", "core_memory.png")
    mem = [k for k in res.figures if k.startswith(("report_mem_", "cg_peak_", "hwm_"))]
    keep(_bars(res, mem, "Python hello world worker memory (memorySize default 16 MB)", "MB",
               out_dir / "worker_memory.png"), "Worker memory", "worker_memory.png")
    conc: dict[str, tuple[list[float], list[float]]] = {}
    for suffix, name in ((".tput", "echo"), (".sleep", "10 ms handler")):
        pts = [(n, res.figures[f"od{n}{suffix}"].median) for n in (1, 2, 4)
               if f"od{n}{suffix}" in res.figures]
        if pts:
            conc[name] = ([float(p[0]) for p in pts], [p[1] for p in pts])
    if "floor.tput" in res.figures and conc:
        conc["floor (1 client, sequential)"] = ([1.0, 4.0], [res.figures["floor.tput"].median] * 2)
    keep(_lines(conc, "On-demand throughput vs maxInstancesCount (concurrent callers)",
                "maxInstancesCount", "invocations / s", out_dir / "concurrency.png", logy=True,
                xticks=([1.0, 2.0, 4.0], ["1", "2", "4"])), "Concurrency", "concurrency.png")
    sizes = sorted({float(k.split("_")[-1].split(".")[0]) for k in res.figures
                    if k.startswith("floor_")})
    pay: dict[str, tuple[list[float], list[float]]] = {}
    for prefix, name in (("floor", "floor"), ("management", "Sprig core path"),
                         ("raw", "Sprig invoke API (raw)"), ("ll_node", "lambda-local (npm)")):
        sp = [(s, res.figures[f"{prefix}_{s:.0f}.p50"].median) for s in sizes
              if f"{prefix}_{s:.0f}.p50" in res.figures]
        if sp:
            pay[name] = ([p[0] for p in sp], [p[1] / 1000 for p in sp])
    keep(_lines(pay, "Round trip p50 vs payload size", "payload bytes", "ms",
                out_dir / "payload.png", logx=True, logy=True,
                xticks=(sizes, [f"{s / 1024:.0f} KB" for s in sizes])),
         "Payload scaling", "payload.png")
    return written


# -- BENCHMARKS.md ----------------------------------------------------------------------------

def target_rows(targets: Sequence[Target]) -> list[str]:
    """The targets table: median with its spread, the verdict (``yes``, ``within noise``
    when only the median meets the bound, ``no``)."""
    out = ["| target | measured (median) | spread (min \u2013 max) | bound | met? | "
           "why / what would close the gap |", "|---|---:|---|---:|:---:|---|"]
    for t in targets:
        verdict = {"yes": "yes", "within noise": "**within noise**", "no": "**no**"}[t.verdict]
        spread = (f"{fmt(t.low, t.unit)} \u2013 {fmt(t.high, t.unit)}"
                  if t.low is not None and t.high is not None else "")
        runs = f" ({t.runs} runs)" if t.runs > 1 else ""
        out.append(f"| {t.text} | {fmt(t.value, t.unit)} | {spread}{runs} | "
                   f"{fmt(t.bound, t.unit)} | {verdict} | {t.why} |")
    return out


def markdown(res: Results, machine: dict[str, str], command: str, started: str,
             duration_s: float, written: list[tuple[str, str]], analysis: list[str],
             quick: bool, commit: str = "", targets: Sequence[Target] | None = None,
             series: int = 1, fleet: dict[str, Any] | None = None) -> str:
    """The report; ``targets`` (a series' targets, median over the suite runs) replace the
    last run's own when given."""
    shown = list(res.targets if targets is None else targets)
    spread_text = (f"The targets are the median over {series} whole suite runs with their "
                   f"min-max over those runs; the tables below are the last run's."
                   if series > 1 else
                   "A target's spread pairs each run of a figure with its baseline's run of "
                   "the same turn.")
    out = [
        "# Sprig benchmarks",
        "",
        "Generated by the benchmark suite; do not edit by hand. Reproduce with:",
        "",
        "```sh",
        command,
        "```",
        "",
        f"Commit {commit or 'unknown'}. Run started {started}, took {duration_s / 60:.1f} min"
        + (" (`--quick`: small samples; run without it for the full figures)." if quick
           else "."),
        "Every figure is measured in this one run on this one machine, as **median** with "
        "min and max over repeated runs (for latency: the per-run p50 or p99), and as a ratio to "
        "its baseline from the same run. Lower is better except where the unit is a rate. "
        "The machine is shared: the load averages below say how busy it was, and wide "
        "min-max ranges mark the figures that noise touched. " + spread_text + " A target "
        "met only at the median, not at the worst end of its spread, is **within noise**.",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in machine.items()],
        "",
        "## Targets",
        "",
        *target_rows(shown),
        "",
    ]
    if analysis:
        out += ["## What the figures say", "", *analysis, ""]
    if written:
        out += ["## Plots", ""]
        for title, path in written:
            out += [f"![{title}]({path})", ""]
    for section, keys in res.sections.items():
        out += [f"## {section}", "", *table(res, keys), ""]
    if res.profile:
        out += ["## Where the core's time goes during warm invocations (py-spy, this run)", "",
                "Share of the core's busy (non-idle) samples in which each frame was on the "
                "stack, while one client invoked the pinned echo back to back through the "
                "management socket. Reproduce with `python -m bench.profile warm` "
                "(`cold` and `container` profile cold starts).", "",
                "| share | frame |", "|---:|---|",
                *[f"| {share:.1f}% | `{frame}` |" for share, frame in res.profile], ""]
    if res.notes:
        out += ["## Notes", "", *[f"- {n}" for n in res.notes], ""]
    out += fleet_section(fleet)
    return "\n".join(out) + "\n"


X = "\u00d7"


def _verdict(ok: bool) -> str:
    return "yes" if ok else "**no**"


def fleet_section(fleet: dict[str, Any] | None) -> list[str]:
    """The fleet figures, from their own run (``python -m bench.fleet``: 50 cores, a broker, an
    S3 endpoint, 2,000 simulated devices — too long for every suite run), with the commit and
    the time they were measured, so a reader sees they are not from this run."""
    if not fleet:
        return []
    mem, conv = fleet.get("memory", {}), fleet.get("convergence", {})
    sim, abort = fleet.get("simulation", {}), fleet.get("abort", {})
    rows = ["| figure | measured | bound | met? |", "|---|---:|---:|:---:|"]
    if mem:
        rows.append(f"| idle core with `fleet:` minus the same core without | "
                    f"{mem['idle_delta_mb']:+.2f} MB ({mem['idle_fleet_mb']:.1f} vs "
                    f"{mem['idle_plain_mb']:.1f}) | 2 MB | {_verdict(mem['idle_delta_mb'] <= 2)} |")
        rows.append(f"| the same just after a deployment | "
                    f"{mem['after_deployment_delta_mb']:+.2f} MB | 2 MB | "
                    f"{_verdict(mem['after_deployment_delta_mb'] <= 2)} |")
        rows.append(f"| fleet core with 21 functions | {mem['with_21_functions_fleet_mb']:.1f} MB"
                    f" | 40 MB | {_verdict(mem['with_21_functions_fleet_mb'] <= 40)} |")
    if conv:
        fleet_s, local_s = conv["fleet_deploy_s"], conv["local_deploy_s"]
        rows.append(f"| {conv['devices']} cores converging ÷ one local deployment (median of "
                    f"{len(fleet_s)} rounds: {sorted(fleet_s)[len(fleet_s) // 2]:.2f} s ÷ "
                    f"{sorted(local_s)[len(local_s) // 2]:.2f} s) | {conv['ratio']:.2f}{X} | "
                    f"{conv['target_ratio']:g}{X} | "
                    f"{_verdict(conv['ratio'] <= conv['target_ratio'])} |")
        msgs = conv["messages_per_device"]["max"]
        rows.append(f"| broker messages per device per deployment (max) | {msgs} | "
                    f"{conv['target_messages']} | {_verdict(msgs <= conv['target_messages'])} |")
    if sim:
        rows.append(f"| {sim['devices']} simulated devices at {sim['rate_per_min']}/min: rollout "
                    f"÷ the time the rate implies ({sim['rollout_s']:.1f} s ÷ "
                    f"{sim['implied_s']:.1f} s) | {sim['ratio']:.2f}{X} | "
                    f"{sim['target_ratio']:g}{X} | "
                    f"{_verdict(sim['ratio'] <= sim['target_ratio'])} |")
        rows.append(f"| broker at that scale | {sim['broker_cpu_percent']:.1f} % CPU, "
                    f"{sim['broker_peak_rss_mb']:.1f} MB peak RSS | | |")
    if abort:
        in_time = abort["threshold_crossed_to_abort_s"] <= abort["rate_interval_s"]
        rows.append(f"| abort after the threshold was crossed | "
                    f"{abort['threshold_crossed_to_abort_s']:.3f} s | one rate interval "
                    f"({abort['rate_interval_s']:.2f} s) | {_verdict(in_time)} |")
    return ["## Fleet (a separate run)", "",
            f"Measured by `python -m bench.fleet` (≈ 5 min; results in `bench/results/fleet.json`) "
            f"at commit {fleet.get('commit', 'unknown')}, {fleet.get('when', '')} UTC, load "
            f"average {fleet.get('load_average', 'not recorded')}"
            + (" (`--quick`)" if fleet.get("quick") else "") + ": real cores on their own roots, "
            "Mosquitto and moto's S3 server on this machine; the simulated devices speak the "
            "device protocol only.", "", *rows, ""]
