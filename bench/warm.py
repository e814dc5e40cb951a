"""Warm invocations: the floor, the in-process peers, and Sprig's paths, on the same echo.

Each loop runs ``plan.runs`` times in a fresh interpreter; a figure is the per-run p50 (or p99,
or invocations per second), so its min/median/max show how stable the machine was.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from bench.functions import Code
from bench.harness import REPO, floor_server, run_loop
from bench.plan import Plan
from bench.stats import Figure, Results, percentile

NODE_MODULES = REPO / ".compat" / "node" / "node_modules"


def add_latency(res: Results, section: str, key: str, label: str,
                runs: list[dict[str, Any]], baseline: str | None,
                tput_baseline: str | None = None, note: str = "",
                p99: bool = True, tput: bool = True) -> None:
    """p50, p99 and invocations/s figures from repeated loop results."""
    res.add(section, Figure(f"{key}.p50", f"{label} p50", "µs",
                            tuple(percentile(r["samples_us"], 0.5) for r in runs),
                            baseline, note=note))
    if p99:
        res.add(section, Figure(f"{key}.p99", f"{label} p99", "µs",
                                tuple(percentile(r["samples_us"], 0.99) for r in runs),
                                baseline.replace(".p50", ".p99") if baseline else None))
    if tput:
        res.add(section, Figure(f"{key}.tput", f"{label} throughput", "inv/s",
                                tuple(len(r["samples_us"]) / r["elapsed_s"] for r in runs),
                                tput_baseline, higher_is_better=True))


def repeat(plan: Plan, kind: str, args: dict[str, Any]) -> list[dict[str, Any]]:
    return [run_loop(kind, args) for _ in range(plan.runs)]


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    out: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return out
    for task in tasks:
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            out += [int(child), *descendants(int(child))]
    return out


def repeat_with_cpu(plan: Plan, kind: str, args: dict[str, Any], core_pid: int,
                    ) -> tuple[list[dict[str, Any]], list[float], list[float]]:
    """Like :func:`repeat`, plus the core's and its workers' CPU per invocation (µs) in each
    run: where an invocation's time goes, which latency alone cannot say."""
    runs, core_cpu, worker_cpu = [], [], []
    for _ in range(plan.runs):
        workers = descendants(core_pid)
        before = cpu_s(core_pid), sum(cpu_s(p) for p in workers)
        runs.append(run_loop(kind, args))
        after = cpu_s(core_pid), sum(cpu_s(p) for p in workers)
        n = int(args["count"]) + int(args.get("warmup", 20))
        core_cpu.append((after[0] - before[0]) / n * 1e6)
        worker_cpu.append((after[1] - before[1]) / n * 1e6)
    return runs, core_cpu, worker_cpu


def floor(res: Results, plan: Plan, code: Code, work: Path, size: int = 0,
          count: int | None = None) -> list[dict[str, Any]]:
    """Two Python processes exchanging one JSON message over a Unix socket (a new server per
    run, so every run starts alike)."""
    out = []
    for i in range(plan.runs):
        sock = work / f"floor-{size}-{i}.sock"
        with floor_server(sock, code.python_echo) as pid:
            before = cpu_s(pid)
            got = run_loop("floor", {"path": str(sock), "count": count or plan.count,
                                     "warmup": plan.warmup, "size": size})
            n = (count or plan.count) + plan.warmup
            got["server_cpu_s_per_call"] = (cpu_s(pid) - before) / n
            out.append(got)
    return out


def node_lambda_local(plan: Plan, code: Code, size: int = 0,
                      count: int | None = None) -> list[dict[str, Any]]:
    out = []
    for _ in range(plan.runs):
        proc = subprocess.run(
            ["node", str(REPO / "bench" / "node_loop.js"), str(NODE_MODULES),
             str(code.node_echo), str(count or plan.count), str(plan.warmup), str(size)],
            capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise RuntimeError(f"lambda-local (npm) failed: {proc.stderr[-2000:]}")
        out.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return out


def baselines(res: Results, plan: Plan, code: Code, work: Path) -> None:
    s = "Warm invoke: baselines"
    ll_count = max(20, plan.count // 20)   # each call() forks a process: ~15 ms
    add_latency(res, s, "ll_py", "python-lambda-local call()",
                repeat(plan, "lambda-local", {"handler_dir": str(code.python_echo),
                                              "count": ll_count, "warmup": 3}),
                "floor.p50", "floor.tput",
                note="call() runs the handler in a forked multiprocessing.Process per call")
    add_latency(res, s, "ll_node", "lambda-local (npm) execute(), in-process",
                node_lambda_local(plan, code), "floor.p50", "floor.tput",
                note="handler loaded once (lambdaFunc), run in the caller's event loop")


def sprig_warm(res: Results, plan: Plan, root: Path, core_pid: int, code: Code,
               work: Path) -> None:
    """The floor and the core path run by turns (floor, Sprig, floor, Sprig, ...): on a shared
    machine, a floor measured minutes apart from Sprig would not be comparable."""
    s = "Warm invoke: Sprig, pinned Python echo"
    r = str(root)
    loop = {"root": r, "count": plan.count, "warmup": plan.warmup}
    floors, runs, core_cpu, worker_cpu = [], [], [], []
    loads: list[float] = []
    one = Plan(**{**plan.__dict__, "runs": 1})
    for _ in range(plan.runs):
        floors += floor(res, one, code, work)
        got, c, w = repeat_with_cpu(one, "management", {**loop, "function": "Echo"},
                                    core_pid)
        runs += got
        core_cpu += c
        worker_cpu += w
        loads.append(os.getloadavg()[0])
    base = "Warm invoke: baselines"
    add_latency(res, base, "floor", "Floor: 2 Python processes, JSON over a Unix socket",
                floors, None)
    keys = res.sections[base]
    res.sections[base] = [k for k in keys if k.startswith("floor.")] + [
        k for k in keys if not k.startswith("floor.")]
    add_latency(res, s, "mgmt", "Sprig core path (management socket `invoke`), NoContainer",
                runs, "floor.p50", "floor.tput")
    res.add(base, Figure(
        "cpu_floor", "Floor: CPU per round trip (client + server)", "µs",
        tuple((r["cpu_s"] / len(r["samples_us"]) + r["server_cpu_s_per_call"]) * 1e6
              for r in floors), None,
        note="the client's process_time over the timed calls, the server's from /proc"))
    res.add(base, Figure("load_warm", "1-minute load average after each Sprig warm run", "",
                         tuple(loads), None,
                         note=f"{len(os.sched_getaffinity(0))} vCPUs usable by this run"))
    res.add(s, Figure("cpu_core", "core process CPU per invocation (core path)", "µs",
                      tuple(core_cpu), "cpu_floor", note="user + system, from /proc/<pid>/stat"))
    res.add(s, Figure("cpu_worker", "worker process CPU per invocation", "µs",
                      tuple(worker_cpu), None))
    add_latency(res, s, "mgmt_c", "Sprig core path, GreengrassContainer",
                repeat(plan, "management", {**loop, "function": "EchoC"}), "mgmt.p50",
                "mgmt.tput")
    runs, core_cpu, _ = repeat_with_cpu(plan, "raw", {**loop, "function": "Echo"}, core_pid)
    add_latency(res, s, "raw", "Sprig invoke API, raw SigV4 HTTP client (keep-alive)",
                runs, "floor.p50", "floor.tput")
    res.add(s, Figure("cpu_core_raw", "core process CPU per invocation (invoke API)", "µs",
                      tuple(core_cpu), "cpu_core"))
    add_latency(res, s, "boto3", "Sprig invoke API, boto3 client.invoke()",
                repeat(plan, "boto3", {**loop, "function": "Echo",
                                       "count": plan.boto3_count}), "floor.p50",
                "floor.tput")


def other_runtimes_warm(res: Results, plan: Plan, root: Path, java: bool) -> None:
    s = "Warm invoke: Node.js and Java (pinned, NoContainer, core path)"
    loop = {"root": str(root), "count": plan.count, "warmup": plan.warmup}
    add_latency(res, s, "node", "Sprig Node.js echo",
                repeat(plan, "management", {**loop, "function": "NodeEcho"}),
                "ll_node.p50", "ll_node.tput")
    if java:
        add_latency(res, s, "java", "Sprig Java echo",
                    repeat(plan, "management", {**loop, "function": "JavaEcho"}),
                    "floor.p50", "floor.tput")


def concurrency(res: Results, plan: Plan, root: Path) -> None:
    """On-demand functions with maxInstancesCount 1, 2, 4 under ``plan.clients`` concurrent
    callers: a CPU-light echo (the core's own ceiling) and a 10 ms handler (worker
    parallelism)."""
    s = "Concurrency: on-demand, maxInstancesCount 1/2/4"
    for n in (1, 2, 4):
        base = {"root": str(root), "function": f"OnDemand{n}", "clients": plan.clients}
        echo = repeat(plan, "management", {**base, "count": plan.concurrent_count})
        res.add(s, Figure(f"od{n}.tput", f"echo, {n} worker(s), {plan.clients} callers",
                          "inv/s", tuple(len(r["samples_us"]) / r["elapsed_s"] for r in echo),
                          "floor.tput", higher_is_better=True))
        res.add(s, Figure(f"od{n}.p50", f"echo, {n} worker(s), {plan.clients} callers, p50",
                          "µs", tuple(percentile(r["samples_us"], 0.5) for r in echo),
                          "floor.p50"))
        slow = repeat(plan, "management", {**base, "count": plan.sleep_count, "sleep_ms": 10})
        res.add(s, Figure(f"od{n}.sleep", f"10 ms handler, {n} worker(s)", "inv/s",
                          tuple(len(r["samples_us"]) / r["elapsed_s"] for r in slow),
                          None, higher_is_better=True,
                          note=f"ideal {100 * min(n, plan.clients)} inv/s"))


def payloads(res: Results, plan: Plan, code: Code, work: Path, root: Path) -> None:
    s = "Payload size scaling (pinned Python echo, 128 MB)"
    for size, count in plan.payload_counts:
        label = f"{size // 1024} KB" if size < 1 << 20 else f"{size >> 20} MB"
        fl = floor(res, plan, code, work, size, count)
        res.add(s, Figure(f"floor_{size}.p50", f"floor, {label}", "µs",
                          tuple(percentile(r["samples_us"], 0.5) for r in fl), None))
        for kind, name in (("management", "core path"), ("raw", "invoke API (raw)")):
            runs = repeat(plan, kind, {"root": str(root), "function": "EchoBig", "size": size,
                                       "count": count, "warmup": max(3, plan.warmup // 10)})
            res.add(s, Figure(f"{kind}_{size}.p50", f"Sprig {name}, {label}", "µs",
                              tuple(percentile(r["samples_us"], 0.5) for r in runs),
                              f"floor_{size}.p50"))
        nl = node_lambda_local(plan, code, size, count)
        res.add(s, Figure(f"ll_node_{size}.p50", f"lambda-local (npm), {label}", "µs",
                          tuple(percentile(r["samples_us"], 0.5) for r in nl),
                          f"floor_{size}.p50"))
