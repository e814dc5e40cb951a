"""Cold starts hidden: on-demand functions with ``minInstancesCount`` 1, their first
invocation after the deployment and after an idle spell longer than
``maxIdleTimeInSeconds`` against their own warm invocations, and what each pre-started
worker costs in memory.

Why two phases: the idle spell (at least 30 s, Greengrass's minimum) would add half a minute
to every run, so the functions are deployed and measured before the other core
measurements, and measured again after them (:func:`after_idle`), once the reaper has had
its chance. Every figure is an invocation through the management socket, the same client
path for the first and the warm calls, so their ratio is the cost of the worker start that
is left.
"""

from __future__ import annotations

import base64
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.functions import Code, Fn
from bench.harness import deploy
from bench.memory import _pids_in, status_kb
from bench.plan import Plan
from bench.stats import Figure, Results
from sprig.testing import CoreProcess

IDLE_S = 30          # maxIdleTimeInSeconds: Greengrass's minimum
WARM_CALLS = 20
SECTION = "Cold starts hidden: minInstancesCount 1 (on-demand, NoContainer)"


@dataclass
class Prestarted:
    names: list[str]
    first: list[float] = field(default_factory=list)     # µs, first call after deployment
    warm: list[float] = field(default_factory=list)      # µs, median of warm calls, per fn
    last_call: float = 0.0


def _call_us(core: CoreProcess, name: str) -> float:
    t0 = time.perf_counter()
    out = core.call("invoke", {"function": name,
                               "payload": base64.b64encode(b'{"name": "warm"}').decode()})
    elapsed = (time.perf_counter() - t0) * 1e6
    if out.get("functionError"):
        raise RuntimeError(f"{name} failed: {base64.b64decode(out['payload'])[:500]!r}")
    return elapsed


_ECHO_SERVER = """
import os, socket, sys
srv = socket.socket(socket.AF_UNIX)
srv.bind(sys.argv[1])
srv.listen(8)
print("ready", flush=True)
while True:
    c, _ = srv.accept()
    d = c.recv(65536)
    if d == b"quit":
        break
    c.sendall(d)
    c.close()
"""


def idle_wake_baseline(res: Results, work: Path, idle_s: float = 0.5, rounds: int = 5) -> None:
    """The machine's own price for a first round trip after idle: two plain Python processes,
    a fresh Unix connection per call (as the management client makes), the first call after
    ``idle_s`` of quiet against warm calls. A sleeping vCPU's wake-up is paid by every
    process a first invocation crosses, so this bounds what any runtime can do here."""
    path = str(work / "idle-echo.sock")
    server = subprocess.Popen([sys.executable, "-c", _ECHO_SERVER, path],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"

        def call() -> float:
            t0 = time.perf_counter()
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(path)
                s.sendall(b"x" * 64)
                s.recv(65536)
            return (time.perf_counter() - t0) * 1e6

        firsts, warms = [], []
        for _ in range(rounds):
            time.sleep(idle_s)
            firsts.append(call())
            warms.append(statistics.median(call() for _ in range(WARM_CALLS)))
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(path)
            s.sendall(b"quit")
    finally:
        server.wait(timeout=10)
    res.add(SECTION, Figure("idle_floor_warm", "baseline: plain round trip between two Python "
                            "processes, warm (fresh connection per call)", "µs", tuple(warms),
                            None))
    res.add(SECTION, Figure("idle_floor_first", f"baseline: the same, first call after "
                            f"{idle_s:g} s of quiet", "µs", tuple(firsts), "idle_floor_warm"))


def deploy_and_measure(res: Results, plan: Plan, core: CoreProcess, code: Code,
                       work: Path) -> Prestarted:
    """Deploy one function per sample (each its own deployment, so each first call is the
    first after a deployment), then its first and warm calls."""
    n = 3 if plan.quick else 5
    state = Prestarted([f"Prestarted{i}" for i in range(n)])
    mem: list[float] = []
    for i, name in enumerate(state.names):
        deploy(core, code, [Fn(name, "python", False)], work / f"prestart-{i}",
               config={name: {"minInstancesCount": 1, "maxIdleTimeInSeconds": IDLE_S}})
        pids = _pids_in(core.layout.root / "work" / name)
        mem.append(sum(status_kb(p, "VmRSS") for p in pids) / 1024)
        state.first.append(_call_us(core, name))
        state.warm.append(statistics.median(_call_us(core, name) for _ in range(WARM_CALLS)))
    state.last_call = time.monotonic()
    idle_wake_baseline(res, work)
    res.add(SECTION, Figure("prov_warm", f"warm invocation (median of {WARM_CALLS} per "
                            "function, management socket, one connection per call)", "µs",
                            tuple(state.warm), None))
    res.add(SECTION, Figure("prov_deploy", "first invocation right after the deployment",
                            "µs", tuple(state.first), "prov_warm",
                            note="the deployment returns once the pre-started worker is ready"))
    res.add(SECTION, Figure("prov_mem", "RSS of one pre-started worker (before any "
                            "invocation)", "MB", tuple(mem), None))
    return state


def after_idle(res: Results, core: CoreProcess, state: Prestarted) -> None:
    """The first call after the functions sat idle for longer than maxIdleTimeInSeconds."""
    idle = time.monotonic() - state.last_call
    if idle < IDLE_S + 1:
        time.sleep(IDLE_S + 1 - idle)        # the reaper's deadline must have passed
        idle = time.monotonic() - state.last_call
    samples = tuple(_call_us(core, name) for name in state.names)
    res.add(SECTION, Figure("prov_idle", f"first invocation after {idle:.0f} s idle "
                            f"(maxIdleTimeInSeconds {IDLE_S})", "µs", samples, "prov_warm"))
