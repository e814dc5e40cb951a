"""The issues' targets, checked against one run's figures, and what the figures say.

Why separate: the targets are policy (pure functions over Results). The explanations of each
miss quote this run's figures; the causes behind them come from profiling the core with
py-spy, strace and /proc (the method is in BENCHMARKS.md, "How the misses were profiled").
"""

from __future__ import annotations

from bench.stats import Results

X = "\u00d7"


def _m(res: Results, key: str) -> float | None:
    fig = res.figures.get(key)
    return fig.median if fig else None


def _why_warm(res: Results) -> str:
    floor, core, worker = _m(res, "floor.p50"), _m(res, "cpu_core"), _m(res, "cpu_worker")
    if not (floor and core and worker):
        return ""
    return (f"An invocation crosses 4 process boundaries (client → core → worker → core → "
            f"client) where the floor crosses 2, so ~2{X} the floor is the structural minimum "
            f"on this machine. The rest is CPU in the core: {core:.0f} µs per invocation "
            f"(worker {worker:.0f} µs; the whole floor round trip is {floor:.0f} µs). py-spy: "
            f"~40% of the core's busy time is inside socket writes (the reply to the worker "
            f"and to the client, each waking a peer on a 2-vCPU VM), ~35% is aiohttp request/"
            f"response handling, ~7% the three synchronous log writes per invocation "
            f"(START/END/REPORT), ~5% per-invocation timers. Closing it: a lean HTTP/1.1 "
            f"protocol for the invoke routes (as runtime_api/http11.py already is), one "
            f"buffered log write per invocation, one timer per worker instead of per call.")


def _why_lambda_local(res: Results) -> str:
    ll, floor = _m(res, "ll_node.p50"), _m(res, "floor.p50")
    if not (ll and floor):
        return ""
    return (f"lambda-local runs the handler inside the caller: no process boundary at all. "
            f"On this machine one cross-process round trip alone (the floor) costs "
            f"{floor:.0f} µs, and an isolated invocation needs two; beating {ll:.0f} µs "
            f"would need each hop under {ll / 4:.0f} µs. Not reachable by any design that "
            f"keeps the handler in its own process here; Sprig does beat "
            f"python-lambda-local, which forks per call.")


def _why_throughput(res: Results) -> str:
    core = _m(res, "cpu_core")
    if not core:
        return ""
    return (f"The core's event loop is the bottleneck, not the workers: at {core:.0f} µs of "
            f"core CPU per invocation one core process tops out near {1e6 / core:,.0f} inv/s "
            f"whatever maxInstancesCount is, and on 2 vCPUs the workers and callers compete "
            f"with it. The 10 ms handler rows show the workers themselves do scale (≈ n{X}). "
            f"Closing it: the per-invocation core CPU above.")


def _why_cold(res: Results) -> str:
    cold, bare, init = _m(res, "cold_py"), _m(res, "bare_py"), _m(res, "init_py")
    if not (cold and bare):
        return ""
    extra = f" (REPORT Init Duration {init:.1f} ms)" if init else ""
    return (f"{cold - bare:.1f} ms more than the bare start{extra}. Measured causes: the "
            f"launcher forks the ~45 MB core with a Python preexec_fn (cgroup join, setgroups, "
            f"setresuid), which forbids vfork: fork of a 40 MB process costs 3-7 ms here vs "
            f"0.1-0.3 ms for vfork; user/group look-ups (NSS, /etc/passwd and /etc/group read "
            f"twice) on the event loop per start; the runtime bootstrap's own imports and the "
            f"Runtime API handshake. Closing it: exec through `setpriv --reuid --regid "
            f"--groups` (or bwrap's own --uid/--gid) with no preexec_fn so Popen can vfork "
            f"(measured: 1.2 ms for setpriv vs 3-7 ms fork), resolve credentials once per "
            f"function, not per worker.")


def _why_container(res: Results) -> str:
    c, n = _m(res, "cold_py_c"), _m(res, "cold_py")
    if not (c and n):
        return ""
    return (f"+{c - n:.1f} ms over NoContainer. strace of one container start: the child's "
            f"write to the new memory cgroup's cgroup.procs (cgroup v1) took ~16 ms (a "
            f"cgroup v1 attach waits for an RCU grace period); bwrap's own start ~9 ms; ~57 "
            f"mount calls (every /etc file bound and remounted read-only one by one). "
            f"Closing it: cgroup v2 with clone3(CLONE_INTO_CGROUP) or the "
            f"`favordynmods` cgroup mount option (no grace period per attach); bind one "
            f"prepared read-only /etc directory instead of ~25 files; keep one pre-started "
            f"sandbox per on-demand function.")


def _why_rss(res: Results) -> str:
    rss0 = _m(res, "rss0")
    if not rss0:
        return ""
    return (f"The core is {rss0:.1f} MB before any function is deployed: its imports. "
            f"Measured VmRSS of a bare interpreter 8.5 MB, after `import asyncio` 19 MB (it "
            f"loads ssl/OpenSSL), after `import aiohttp.web` 36 MB, after importing the "
            f"core 44 MB. Functions themselves cost little (next row). Closing it: serve the "
            f"management, invoke and V1 SDK HTTP endpoints with the hand-written asyncio "
            f"HTTP/1.1 server the Runtime API already uses, dropping aiohttp, yarl, multidict "
            f"and friends (~12-17 MB), and import the MQTT client only when a broker is "
            f"configured.")


def check_targets(res: Results) -> None:
    floor, mgmt, raw = _m(res, "floor.p50"), _m(res, "mgmt.p50"), _m(res, "raw.p50")
    ll_node, ll_py = _m(res, "ll_node.p50"), _m(res, "ll_py.p50")
    warm = _why_warm(res)
    if floor and mgmt:
        res.check(f"Warm Python p50 ≤ 4{X} the floor (core path)", mgmt / floor, 4.0, X,
                  why=warm)
    if floor and raw:
        res.check(f"Warm Python p50 ≤ 4{X} the floor (invoke API, raw SigV4 client)",
                  raw / floor, 4.0, X, why="As above, plus SigV4 verification and TCP.")
    if mgmt and ll_node:
        res.check("Warm Python p50 below lambda-local (npm) in-process p50", mgmt, ll_node,
                  "µs", why=_why_lambda_local(res))
    if mgmt and ll_py:
        res.check("Warm Python p50 below python-lambda-local call() p50", mgmt, ll_py, "µs")
    od2, ftput = _m(res, "od2.tput"), _m(res, "floor.tput")
    if od2 and ftput:
        res.check("2 workers ≥ half the floor's throughput", od2 / ftput, 0.5, X,
                  at_most=False, why=_why_throughput(res))
    bare, cpy, cpc = _m(res, "bare_py"), _m(res, "cold_py"), _m(res, "cold_py_c")
    if bare and cpy:
        res.check(f"Cold start NoContainer ≤ 1.5{X} a bare interpreter", cpy / bare, 1.5, X,
                  why=_why_cold(res))
    if cpy and cpc:
        res.check(f"Cold start GreengrassContainer ≤ 1.3{X} NoContainer", cpc / cpy, 1.3, X,
                  why=_why_container(res))
    rss20, per = _m(res, "rss20"), _m(res, "rss_per_fn")
    if rss20:
        res.check("Core RSS ≤ 40 MB idle with 20 functions", rss20, 40.0, "MB",
                  why=_why_rss(res))
    if per is not None:
        res.check("≤ 100 KB per further idle on-demand function", per, 100.0, "KB")
    hello = max((v for v in (_m(res, "report_mem_HelloC"), _m(res, "hwm_HelloC"))
                 if v is not None), default=None)
    if hello:
        res.check("Python hello world within 16 MB (container; the larger of REPORT Max "
                  "Memory Used and the processes' peak RSS)", hello, 16.0, "MB")


def analysis(res: Results) -> list[str]:
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
                   f"{per:.0f} KB per further one (Greengrass's Java nucleus asks for 96 MB).")
    hello = _m(res, "report_mem_HelloC")
    if hello:
        out.append(f"- **Worker memory**: a Python hello world reports Max Memory Used "
                   f"{hello:.0f} MB in a container with the 16 MB default.")
    fan, fan_m = _m(res, "fan_sprig"), _m(res, "fan_mosq")
    rt, rt_p = _m(res, "rt_bridge"), _m(res, "rt_paho")
    if fan and fan_m:
        out.append(f"- **Messaging**: local bus fan-out {fan:,.0f} msg/s vs Mosquitto "
                   f"{fan_m:,.0f} msg/s; an MQTT round trip through the bridge {rt or 0:.0f} µs "
                   f"vs {rt_p or 0:.0f} µs for a plain MQTT client on the same broker.")
    missed = [t for t in res.targets if not t.met]
    out.append(f"- **Targets**: {len(res.targets) - len(missed)} of {len(res.targets)} met; "
               "each miss says by how much, why, and what would close it (table below).")
    return out
