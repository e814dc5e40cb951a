"""The issues' targets, checked against one run's figures, and what the figures say.

Why separate: the targets are policy (pure functions over Results). The explanations of each
miss quote this run's figures; the causes behind them come from profiling the core with
py-spy, strace and /proc (the method is in BENCHMARKS.md, "How the misses were profiled").
"""

from __future__ import annotations

import os

from bench.stats import Results, Target, paired_ratios

X = "\u00d7"


def _m(res: Results, key: str) -> float | None:
    fig = res.figures.get(key)
    return fig.median if fig else None


def _share(res: Results, needle: str) -> float | None:
    """The largest busy-sample share of a profiled frame containing ``needle``."""
    shares = [share for share, frame in res.profile if needle in frame]
    return max(shares) if shares else None


def _why_warm(res: Results) -> str:
    floor, core, worker = _m(res, "floor.p50"), _m(res, "cpu_core"), _m(res, "cpu_worker")
    mgmt, fcpu, load = _m(res, "mgmt.p50"), _m(res, "cpu_floor"), res.figures.get("load_warm")
    if not (floor and core and worker and mgmt):
        return ""
    text = (f"An invocation crosses 4 process boundaries (client → core → worker → core → "
            f"client) where the floor crosses 2. Of the {mgmt:.0f} µs round trip the core is "
            f"on a CPU {core:.0f} µs ({core / mgmt:.0%}) and the worker {worker:.0f} µs "
            f"({worker / mgmt:.0%})")
    if fcpu:
        text += f"; the whole floor round trip costs {fcpu:.0f} µs of CPU in both its processes"
    text += "."
    if load is not None:
        text += (f" The machine had {load.note.split()[0]} usable vCPUs and a 1-minute load "
                 f"average of {load.low:.1f} to {load.high:.1f} during these runs, so the "
                 f"client, the core and the worker competed with "
                 f"{max(0.0, load.median - 1):.1f} other runnable processes on average.")
    write, log = _share(res, "Transport.write"), _share(res, "write_line")
    if write is not None:
        text += (f" py-spy in this run: {write:.0f}% of the core's busy samples are inside "
                 f"socket writes (each reply wakes a sleeping peer, which may run before the "
                 f"writer resumes)")
        text += (f"; {log:.0f}% is the per-invocation log lines." if log is not None
                 else ".")
    text += (" Closing it: less Python between the socket and the worker (the profile table "
             "below shows the chain).")
    return text


def _why_lambda_local(res: Results) -> str:
    ll, floor = _m(res, "ll_node.p50"), _m(res, "floor.p50")
    if not (ll and floor):
        return ""
    return (f"lambda-local runs the handler inside the caller: no process boundary at all. "
            f"On this machine one cross-process round trip alone (the floor) costs "
            f"{floor:.0f} µs, and an isolated invocation needs two; beating {ll:.0f} µs "
            f"would need each of the 4 hops under {ll / 4:.0f} µs. Not reachable by any design "
            f"that keeps the handler in its own process here; Sprig does beat "
            f"python-lambda-local, which forks per call.")


def _why_throughput(res: Results) -> str:
    core = _m(res, "cpu_core")
    if not core:
        return ""
    cpus = len(os.sched_getaffinity(0))
    s1, s2 = _m(res, "od1.sleep"), _m(res, "od2.sleep")
    scale = (f" The 10 ms handler rows scale {s2 / s1:.2f}{X} from 1 to 2 workers, so the "
             f"workers themselves do." if s1 and s2 else "")
    return (f"The core's single event loop is the bottleneck, not the workers: at {core:.0f} µs "
            f"of core CPU per invocation one core process cannot exceed "
            f"~{1e6 / core:,.0f} inv/s whatever maxInstancesCount is, and the workers and the "
            f"callers share this run's {cpus} vCPUs with it.{scale} Closing it: the "
            f"per-invocation core CPU above.")


def _lever(res: Results, new: str, old: str) -> str:
    """``old → new ms`` from this run's figures ("" if either is missing)."""
    a, b = _m(res, old), _m(res, new)
    return f"{a:.1f} → {b:.1f} ms" if a and b else ""


def _why_cold(res: Results) -> str:
    cold, bare, init = _m(res, "cold_py"), _m(res, "bare_py"), _m(res, "init_py")
    if not (cold and bare):
        return ""
    text = f"{cold - bare:.1f} ms more than the bare start"
    if init:
        text += (f" (REPORT Init Duration {init:.1f} ms, from the spawn to the runtime's "
                 "first /next)")
    kept = [(label, _lever(res, new, old)) for label, new, old in (
        ("user dropped by setpriv so Popen can vfork", "drop_setpriv", "drop_preexec"),
        ("bootstrap loaded as bytecode, not compiled", "boot_pyc", "boot_compile"))]
    kept = [(label, fig) for label, fig in kept if fig]
    if kept:
        text += ". Levers kept, measured in this run: " + "; ".join(
            f"{label} ({fig})" for label, fig in kept)
    text += (". What is left: the management request and the worker's Runtime API session "
             "before the spawn, setpriv's own exec, and the first invocation's trip through "
             "a fresh worker")
    return text + "."


def _why_container(res: Results) -> str:
    c, n = _m(res, "cold_py_c"), _m(res, "cold_py")
    if not (c and n):
        return ""
    text = f"+{c - n:.1f} ms over NoContainer"
    kept = [(label, _lever(res, new, old)) for label, new, old in (
        ("cgroup v1 joined by the process itself (0 to tasks, no RCU grace period)",
         "join_self", "join_procs"),
        ("one prepared /etc bound once instead of a bind per file", "bwrap_etc",
         "bwrap_binds"))]
    kept = [(label, fig) for label, fig in kept if fig]
    if kept:
        text += ". Levers kept, measured in this run: " + "; ".join(
            f"{label} ({fig})" for label, fig in kept)
    bmin, true = _m(res, "bwrap_min"), _m(res, "true")
    if bmin and true:
        text += (f". What is left: bwrap's own start with its namespaces "
                 f"({bmin - true:.1f} ms here), preparing the sandbox's plan (checks of every "
                 "mounted path) and the cgroup's creation; next levers: cgroup v2 "
                 "clone3(CLONE_INTO_CGROUP) where the memory controller is on v2, a cached "
                 "plan per function")
    return text + "."


def _why_prestarted(res: Results) -> str:
    text = ("No worker start is paid (the worker was up before the call; its REPORT has no "
            "Init Duration)")
    first, warm = _m(res, "idle_floor_first"), _m(res, "idle_floor_warm")
    if first and warm:
        text += (f". What is left is mostly this machine waking up: in this run a plain round "
                 f"trip between two Python processes took {first:,.0f} µs as the first call "
                 f"after half a second of quiet against {warm:,.0f} µs warm "
                 f"({first / warm:.1f}{X}), and a first invocation crosses three processes "
                 "(client, core, worker) that have all been asleep")
    return text + "; see the pre-started worker rows."


def _why_rss(res: Results) -> str:
    rss0 = _m(res, "rss0")
    if not rss0:
        return ""
    text = f"The core is {rss0:.1f} MB before any function is deployed"
    steps = [(res.figures[k].label.removeprefix("VmRSS after: "), res.figures[k].median)
             for k in ("import0", "import1", "import2", "import3") if k in res.figures]
    if steps:
        text += ": mostly its imports (VmRSS " + ", ".join(
            f"{label} {mb:.1f} MB" for label, mb in steps) + ")"
    text += (". Functions themselves cost little (next row). Closing it: import the HTTP "
             "framework (aiohttp, with yarl, multidict, …) only where still needed, or serve "
             "every endpoint with the core's own asyncio HTTP/1.1 code; import the MQTT client "
             "and the secret store's crypto only when configured.")
    return text


def _runs(res: Results, key: str) -> tuple[float, ...]:
    fig = res.figures.get(key)
    return fig.runs if fig else ()


def _ratio_runs(res: Results, num: str, base: str) -> tuple[float, ...]:
    return paired_ratios(_runs(res, num), _runs(res, base))


def hello_memory(res: Results, suffix: str = "HelloC") -> tuple[float, tuple[float, ...]]:
    """The hello world worker's memory: the larger of REPORT's Max Memory Used and the
    processes' peak RSS (and the readings it was taken from)."""
    figs = [f for f in (res.figures.get(f"report_mem_{suffix}"),
                        res.figures.get(f"hwm_{suffix}")) if f is not None]
    if not figs:
        return 0.0, ()
    top = max(figs, key=lambda f: f.median)
    return top.median, top.runs


def check_targets(res: Results) -> None:
    floor, mgmt, raw = _m(res, "floor.p50"), _m(res, "mgmt.p50"), _m(res, "raw.p50")
    ll_node, ll_py = _m(res, "ll_node.p50"), _m(res, "ll_py.p50")
    warm = _why_warm(res)
    if floor and mgmt:
        res.check(f"Warm pinned Python p50 ≤ 3{X} the floor (management socket)", mgmt / floor,
                  3.0, X, why=warm, spread=_ratio_runs(res, "mgmt.p50", "floor.p50"))
    if floor and raw:
        cpu_raw, cpu = _m(res, "cpu_core_raw"), _m(res, "cpu_core")
        extra = (f" Through the invoke API the core spends {cpu_raw:.0f} µs of CPU per "
                 f"invocation against {cpu:.0f} µs on the management socket: SigV4 "
                 f"verification (canonical request, HMAC chain) and TCP instead of a Unix "
                 f"socket." if cpu_raw and cpu else "")
        # raw runs after the by-turns block: its ratio pairs with the floor's runs in order.
        res.check(f"Warm pinned Python p50 ≤ 4{X} the floor (invoke API, raw SigV4 client)",
                  raw / floor, 4.0, X, why=warm + extra,
                  spread=_ratio_runs(res, "raw.p50", "floor.p50"))
    core_cpu, floor_cpu = _m(res, "cpu_core"), _m(res, "cpu_floor")
    if core_cpu and floor_cpu:
        res.check(f"Core CPU per invocation ≤ 2{X} the floor's own CPU per round trip",
                  core_cpu / floor_cpu, 2.0, X, why=warm,
                  spread=_ratio_runs(res, "cpu_core", "cpu_floor"))
    if mgmt and ll_node:
        res.check("Warm Python p50 below lambda-local (npm) in-process p50", mgmt, ll_node,
                  "µs", why=_why_lambda_local(res), spread=_runs(res, "mgmt.p50"))
    if mgmt and ll_py:
        res.check("Warm Python p50 below python-lambda-local call() p50", mgmt, ll_py, "µs",
                  spread=_runs(res, "mgmt.p50"))
    od2, ftput = _m(res, "od2.tput"), _m(res, "floor.tput")
    if od2 and ftput:
        res.check("2 workers ≥ half the floor's sequential throughput", od2 / ftput, 0.5, X,
                  at_most=False, why=_why_throughput(res),
                  spread=_ratio_runs(res, "od2.tput", "floor.tput"))
    bare, cpy, cpc = _m(res, "bare_py"), _m(res, "cold_py"), _m(res, "cold_py_c")
    if bare and cpy:
        res.check(f"Cold start NoContainer ≤ 1.5{X} a bare interpreter", cpy / bare, 1.5, X,
                  why=_why_cold(res), spread=_ratio_runs(res, "cold_py", "bare_py"))
    if cpy and cpc:
        res.check(f"Cold start GreengrassContainer ≤ 1.3{X} NoContainer", cpc / cpy, 1.3, X,
                  why=_why_container(res), spread=_ratio_runs(res, "cold_py_c", "cold_py"))
    for key, label in (("prov_deploy", "after a deployment"), ("prov_idle", "after idle")):
        first, warm_p50 = _m(res, key), _m(res, "prov_warm")
        if first and warm_p50:
            res.check(f"Pre-started workers (minInstancesCount): first invocation "
                      f"{label} ≤ 2{X} a warm one", first / warm_p50, 2.0, X,
                      why=_why_prestarted(res),
                      spread=_ratio_runs(res, key, "prov_warm"))
    rss20, per, pinned = _m(res, "rss20"), _m(res, "rss_per_fn"), _m(res, "rss_pinned20")
    if rss20:
        res.check("Core RSS ≤ 40 MB idle with 20 on-demand functions", rss20, 40.0, "MB",
                  why=_why_rss(res), spread=_runs(res, "rss20"))
    if pinned:
        res.check("Core RSS ≤ 40 MB with 20 pinned functions (their workers running)",
                  pinned, 40.0, "MB", why=_why_rss(res), spread=_runs(res, "rss_pinned20"))
    if per is not None:
        res.check("≤ 100 KB per further idle on-demand function", per, 100.0, "KB",
                  spread=_runs(res, "rss_per_fn"))
    hello, readings = hello_memory(res)
    if hello:
        res.check("Python hello world within 16 MB (container; the larger of REPORT Max "
                  "Memory Used and the processes' peak RSS)", hello, 16.0, "MB",
                  spread=readings)


def analysis(res: Results, targets: list[Target] | None = None) -> list[str]:
    """Plain sentences for the top of the report, from this run's figures."""
    out: list[str] = []
    floor, mgmt, ll_py = _m(res, "floor.p50"), _m(res, "mgmt.p50"), _m(res, "ll_py.p50")
    boto, raw = _m(res, "boto3.p50"), _m(res, "raw.p50")
    if floor and mgmt:
        out.append(f"- **Warm invoke**: a pinned Python echo answers in {mgmt:.0f} µs (p50) "
                   f"through the core's management socket, {mgmt / floor:.1f}{X} the floor of "
                   f"two Python processes talking over a Unix socket ({floor:.0f} µs)."
                   + (f" python-lambda-local's call() takes {ll_py / 1000:.1f} ms "
                      f"({ll_py / mgmt:.0f}{X} slower) because it forks a process per call."
                      if ll_py else ""))
    if boto and raw:
        out.append(f"- **boto3 vs the wire**: through the invoke API boto3 measures "
                   f"{boto:.0f} µs and a raw SigV4 client {raw:.0f} µs on the same server: "
                   f"{boto - raw:.0f} µs of the boto3 figure is boto3's own client-side "
                   f"pipeline, not Sprig.")
    cold, bare, cc = _m(res, "cold_py"), _m(res, "bare_py"), _m(res, "cold_py_c")
    if cold and bare:
        out.append(f"- **Cold start**: first invocation of an on-demand Python function "
                   f"{cold:.1f} ms (NoContainer) and {cc or 0:.1f} ms (GreengrassContainer) "
                   f"against {bare:.1f} ms for a bare `python3 -c 'import app'`.")
    rss20, per = _m(res, "rss20"), _m(res, "rss_per_fn")
    if rss20 and per is not None:
        out.append(f"- **Memory**: the core holds {rss20:.1f} MB with 20 idle functions and "
                   f"{per:.0f} KB per further one (quoted, not measured: Greengrass V2 "
                   f"requires ≥ 96 MB of RAM for its core software, AWS IoT Greengrass V2 "
                   f"Developer Guide, \"Setting up AWS IoT Greengrass V2\", device "
                   f"requirements).")
    hello, _ = hello_memory(res)
    if hello:
        report, hwm = _m(res, "report_mem_HelloC"), _m(res, "hwm_HelloC")
        out.append(f"- **Worker memory**: a Python hello world in a container with the 16 MB "
                   f"default uses {hello:.1f} MB (the larger of REPORT's Max Memory Used, "
                   f"{report or 0:.0f} MB, and its processes' peak RSS, {hwm or 0:.1f} MB).")
    prov, prov_w = _m(res, "prov_deploy"), _m(res, "prov_warm")
    prov_mem = _m(res, "prov_mem")
    if prov and prov_w:
        out.append(f"- **Cold starts hidden**: with minInstancesCount 1 the first "
                   f"invocation after a deployment takes {prov:.0f} µs against {prov_w:.0f} µs "
                   f"warm" + (f"; each pre-started worker costs {prov_mem:.1f} MB of RSS"
                              if prov_mem else "") + ".")
    fan, fan_m = _m(res, "fan_sprig"), _m(res, "fan_mosq")
    rt, rt_p = _m(res, "rt_bridge"), _m(res, "rt_paho")
    if fan and fan_m:
        out.append(f"- **Messaging**: local bus fan-out {fan:,.0f} msg/s vs Mosquitto "
                   f"{fan_m:,.0f} msg/s; an MQTT round trip through the bridge {rt or 0:.0f} µs "
                   f"vs {rt_p or 0:.0f} µs for a plain MQTT client on the same broker.")
    ua, uu = _m(res, "lever_loop_cpu_asyncio"), _m(res, "lever_loop_cpu_uvloop")
    pa, pu = _m(res, "lever_loop_p50_asyncio"), _m(res, "lever_loop_p50_uvloop")
    ra, ru = _m(res, "lever_loop_rss_asyncio"), _m(res, "lever_loop_rss_uvloop")
    if ua and uu and pa and pu:
        out.append(f"- **Levers**: uvloop as the core's event loop (opt-in, "
                   f"`SPRIG_EVENT_LOOP=uvloop`): {uu:.0f} µs of core "
                   f"CPU per invocation against {ua:.0f} µs on asyncio's loop "
                   f"({uu / ua - 1:+.0%}), warm p50 {pu:.0f} µs against {pa:.0f} µs "
                   f"({pu / pa - 1:+.0%}), measured by turns in this run"
                   + (f", for {ru - ra:+.1f} MB of core RSS ({ru:.1f} against {ra:.1f} MB, two "
                      f"fresh cores with one pinned function)" if ra and ru else "") + ".")
    lh, lf = _m(res, "lever_lane_p50_us_http"), _m(res, "lever_lane_p50_us_frames")
    ch, cf = _m(res, "lever_lane_cpu_us_http"), _m(res, "lever_lane_cpu_us_frames")
    if lh and lf and ch and cf:
        out.append(f"- **Levers**: the Runtime API's framed lane (Sprig's Python runtime) against "
                   f"HTTP on the same Unix socket: a core → worker → core round trip of "
                   f"{lf:.0f} µs against {lh:.0f} µs ({lf / lh - 1:+.0%}), {cf:.0f} µs of the "
                   f"session side's CPU per invocation against {ch:.0f} µs ({cf / ch - 1:+.0%}), "
                   f"by turns in this run.")
    out.append(target_summary(res.targets if targets is None else targets))
    return out


def target_summary(targets: list[Target]) -> str:
    met = sum(t.verdict == "yes" for t in targets)
    noise = sum(t.verdict == "within noise" for t in targets)
    return (f"- **Targets**: {met} of {len(targets)} met at both ends of the spread, {noise} "
            f"within noise (the median meets the bound, the worst end does not); each miss "
            f"says by how much, why, and what would close it (table above).")

