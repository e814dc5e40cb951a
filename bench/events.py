"""``python -m bench.events [--quick]``: what durable Event invocations cost at accept time.

Two cores side by side on the same disk (ext4 here; not a tmpfs, where an fsync is free): one
as shipped (an acknowledged ``Event`` is committed to ``state.db`` before its 202), one with
``SPRIG_DURABLE_EVENTS=0`` (in memory only, as Greengrass queues them): the baseline of the same
run. Each runs a pinned echo function with room for every event (``maxQueueSize`` 100000, so
nothing is throttled). Runs alternate between the two cores; after each, a synchronous
invocation waits until the function has worked off the backlog, so one run's events never
compete with the next run's accepts.

Figures: accepted events per second for one client (each accept waits for its own commit: the
fsync latency) and for ``plan.clients`` clients (commits are shared: group commit), through the
invoke API (SigV4, raw HTTP) and through the management socket (``sprig invoke``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.functions import Fn, write_code
from bench.harness import PYTHON, REPO, deploy, leftovers, public_dir, run_module
from bench.plan import FULL, QUICK, Plan
from bench.report import line
from bench.stats import Figure, Results, percentile
from sprig.testing import CoreProcess

SECTION = "Event invocations: accept rate, durable vs in memory"
MODES = (("durable", "1"), ("memory", "0"))


@contextlib.contextmanager
def event_core(root: Path, durable: str) -> Iterator[CoreProcess]:
    """A core with ``SPRIG_DURABLE_EVENTS=durable``; stopped (or killed) and cleaned up."""
    core = CoreProcess(root, env={**os.environ, "SPRIG_DURABLE_EVENTS": durable}).start(60)
    try:
        yield core
    finally:
        try:
            core.stop(60)
        except subprocess.TimeoutExpired:
            core.kill()
        for pid in leftovers(root):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)


def drained(core: CoreProcess) -> None:
    """Return once the pinned echo has run every queued event (FIFO: this call is last)."""
    result = core.call("invoke", {"function": "Echo", "payload": "e30="})     # {}
    if result.get("functionError"):
        raise RuntimeError(f"echo failed: {result}")


def measure(res: Results, plan: Plan, cores: dict[str, CoreProcess]) -> None:
    shapes: list[tuple[str, str, int, str]] = [
        ("raw", "1 client", 1, "invoke API (SigV4)"),
        ("raw", f"{plan.clients} clients", plan.clients, "invoke API (SigV4)"),
        ("management", "1 client", 1, "management socket"),
    ]
    for kind, who, clients, path in shapes:
        runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode, _ in MODES}
        for _ in range(plan.runs):
            for mode, _flag in MODES:                       # by turns
                core = cores[mode]
                out = run_module("bench.event_loops", kind, {
                    "root": str(core.root), "function": "Echo", "clients": clients,
                    "count": plan.count})
                if out["throttled"]:
                    raise RuntimeError(f"{mode}: {out['throttled']} events throttled")
                runs[mode].append(out)
                drained(core)
        key = f"ev.{kind}.{clients}"
        for mode, _flag in MODES:
            rate = tuple(len(r["samples_us"]) / r["elapsed_s"] for r in runs[mode])
            res.add(SECTION, Figure(
                f"{key}.{mode}", f"Event accepts, {path}, {who}, {mode}", "ev/s", rate,
                None if mode == "memory" else f"{key}.memory", higher_is_better=True))
        for mode, _flag in MODES:
            p50 = tuple(percentile(r["samples_us"], 0.5) for r in runs[mode])
            res.add(SECTION, Figure(
                f"{key}.{mode}.p50", f"Event accept latency p50, {path}, {who}, {mode}", "µs",
                p50, None if mode == "memory" else f"{key}.memory.p50"))


def run(plan: Plan, res: Results, work: Path) -> None:
    code = write_code(work / "code")
    with contextlib.ExitStack() as stack:
        cores: dict[str, CoreProcess] = {}
        for mode, flag in MODES:
            core = stack.enter_context(event_core(work / f"root-events-{mode}", flag))
            deploy(core, code, [Fn("Echo", "python", True)], work / f"events-{mode}",
                   config={"Echo": {"maxQueueSize": 100000}})
            cores[mode] = core
        measure(res, plan, cores)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.events", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small samples (< 1 minute)")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    res = Results()
    with public_dir("sprig-bench-events-") as work:
        run(plan, res, work)
    print(f"\n{SECTION}  ({PYTHON}, {REPO})")
    for key in res.sections[SECTION]:
        print(line(res, res.figures[key]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
