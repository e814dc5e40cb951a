"""The levers on the hot path, each measured in the run against the core without it.

Why in the run: a lever's effect measured once, on another day, is a claim; measured by turns
with the core without it, on the same machine in the same minutes, it is a figure. Each lever
that can be switched off at run time is measured here:

* uvloop (opt-in, ``SPRIG_EVENT_LOOP=uvloop``): a second core on uvloop, the same pinned echo,
  the same client loop, by turns with the main core (asyncio's loop, the default): p50 and the
  core's CPU per invocation. Its RSS cost is not measured here: the main core holds other
  functions, so the two cores' RSS would not compare (an earlier reading did just that).
* The Runtime API's framed lane (Sprig's Python runtime) against HTTP on the same Unix socket:
  two sessions in one process, the real bootstrap behind each, batches by turns
  (:mod:`bench.lanes`): the round trip core → worker → core and the session side's CPU.
"""

from __future__ import annotations

from pathlib import Path

from bench.functions import Code, Fn
from bench.harness import deploy, run_module, running_core
from bench.plan import Plan
from bench.stats import Figure, Results, percentile
from bench.warm import repeat_with_cpu

SECTION = "Levers: each against the core without it (by turns, same run)"


def event_loop(res: Results, plan: Plan, code: Code, work: Path, root: Path,
               core_pid: int) -> None:
    loop = {"count": plan.count, "warmup": plan.warmup, "function": "Echo"}
    one = Plan(**{**plan.__dict__, "runs": 1})
    with running_core(work / "root-uvloop", env={"SPRIG_EVENT_LOOP": "uvloop"}) as other:
        deploy(other, code, [Fn("Echo", "python", True)], work / "lever-uvloop")
        other_pid = int(other.call("status")["pid"])
        p50: dict[str, list[float]] = {"asyncio": [], "uvloop": []}
        cpu: dict[str, list[float]] = {"asyncio": [], "uvloop": []}
        for _ in range(plan.runs):
            for name, r, pid in (("uvloop", other.root, other_pid), ("asyncio", root, core_pid)):
                runs, c, _ = repeat_with_cpu(one, "management", {**loop, "root": str(r)}, pid)
                p50[name].append(percentile(runs[0]["samples_us"], 0.5))
                cpu[name] += c
    res.add(SECTION, Figure("lever_loop_cpu_asyncio", "core CPU per invocation, asyncio's "
                            "event loop", "µs", tuple(cpu["asyncio"]), None))
    res.add(SECTION, Figure("lever_loop_cpu_uvloop", "core CPU per invocation, uvloop (opt-in)",
                            "µs", tuple(cpu["uvloop"]), "lever_loop_cpu_asyncio"))
    res.add(SECTION, Figure("lever_loop_p50_asyncio", "warm p50 (management socket), asyncio's "
                            "event loop", "µs", tuple(p50["asyncio"]), None))
    res.add(SECTION, Figure("lever_loop_p50_uvloop", "warm p50 (management socket), uvloop "
                            "(opt-in)", "µs", tuple(p50["uvloop"]), "lever_loop_p50_asyncio"))


def runtime_api_lanes(res: Results, plan: Plan, code: Code) -> None:
    runs = [run_module("bench.lanes", "measure", {"handler_dir": str(code.python_echo),
                                                  "count": plan.count, "rounds": 2})
            for _ in range(plan.runs)]
    for what, key, unit in (("round trip p50 (core → worker → core)", "p50_us", "µs"),
                            ("session CPU per invocation (the core's side)", "cpu_us", "µs")):
        base = f"lever_lane_{key}_http"
        res.add(SECTION, Figure(base, f"Runtime API {what}, HTTP", unit,
                                tuple(r["http"][key] for r in runs), None))
        res.add(SECTION, Figure(f"lever_lane_{key}_frames", f"Runtime API {what}, framed lane",
                                unit, tuple(r["frames"][key] for r in runs), base))
