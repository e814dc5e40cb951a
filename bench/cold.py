"""Cold starts: the first invocation of an on-demand function right after it is deployed,
against a bare interpreter that only imports (requires, loads) the same handler.

Why "after deploy": an on-demand function has no worker until its first invocation, which is
exactly the path a worker reaped after ``maxIdleTimeInSeconds`` takes again (that minimum is
30 s, too long to repeat here). Each cold start uses its own freshly deployed function.
"""

from __future__ import annotations

import base64
import re
import time
from pathlib import Path

from bench.functions import Code, Fn
from bench.harness import timed_process
from bench.plan import Plan
from bench.stats import Figure, Results
from sprig.testing import CoreProcess

# Workers get a clean environment from the core, so the bare baselines do too: an inherited
# NODE_EXTRA_CA_CERTS alone costs Node ~80 ms of start-up on this kind of machine.
CLEAN_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/tmp"}

REPORT_INIT = re.compile(r"REPORT RequestId: .*Init Duration: ([0-9.]+) ms")

KINDS = (  # key, label, lang, isolation, memory KB
    ("py", "Python, NoContainer", "python", "NoContainer", 16384),
    ("py_c", "Python, GreengrassContainer", "python", "GreengrassContainer", 16384),
    ("node", "Node.js, NoContainer", "node", "NoContainer", 65536),
    ("java", "Java, NoContainer", "java", "NoContainer", 262144),
)


def cold_functions(plan: Plan, java: bool) -> list[Fn]:
    return [Fn(f"Cold_{key}_{i}", lang, False, iso, mem)
            for i in range(plan.colds) for key, _, lang, iso, mem in KINDS
            if java or lang != "java"]


def bare_commands(code: Code) -> dict[str, tuple[str, list[str], Path | None]]:
    """key → (label, argv, cwd) of each language's bare start that loads the handler."""
    cmds: dict[str, tuple[str, list[str], Path | None]] = {
        "py": (f"bare `{Path(code.python_exe).name} -c 'import app'`",
               [code.python_exe, "-c", "import app"], code.python_echo),
        "node": ("bare `node -e 'require(handler)'`",
                 ["node", "-e", f"require({str(code.node_echo / 'index.js')!r})"], None),
    }
    if code.java_jar is not None:
        cmds["java"] = ("bare `java -cp echo.jar bench.Echo` (empty main)",
                        ["java", "-cp", str(code.java_jar), "bench.Echo"], None)
    return cmds


def _invoke_ms(core: CoreProcess, name: str) -> float:
    t0 = time.perf_counter()
    out = core.call("invoke", {"function": name,
                               "payload": base64.b64encode(b'{"name": "cold"}').decode()})
    elapsed = (time.perf_counter() - t0) * 1000
    if out.get("functionError"):
        raise RuntimeError(f"{name} failed: {base64.b64decode(out['payload'])[:500]!r}")
    return elapsed


def sprig_colds(res: Results, plan: Plan, core: CoreProcess, code: Code, java: bool) -> None:
    """Sprig's cold starts and the bare starts, interleaved sample by sample: on a shared,
    noisy machine a baseline measured minutes earlier would not be comparable."""
    s = "Cold start"
    kinds = [k for k in KINDS if java or k[2] != "java"]
    bare = bare_commands(code)
    for _, argv, cwd in bare.values():
        timed_process(argv, cwd, CLEAN_ENV)     # page cache warm, as for Sprig's workers
    bare_ms: dict[str, list[float]] = {key: [] for key in bare}
    first: dict[str, list[float]] = {k[0]: [] for k in kinds}
    per_round = max(2, plan.bare_starts // plan.colds)
    for i in range(plan.colds):
        for key, (_, argv, cwd) in bare.items():
            for _ in range(per_round):
                bare_ms[key].append(timed_process(argv, cwd, CLEAN_ENV) / 1000)
        for key, *_ in kinds:
            first[key].append(_invoke_ms(core, f"Cold_{key}_{i}"))
    for key, (label, _, _) in bare.items():
        res.add(s, Figure(f"bare_{key}", label, "ms", tuple(bare_ms[key]), None))
    baselines = {"py": "bare_py", "py_c": "cold_py", "node": "bare_node", "java": "bare_java"}
    for key, label, *_ in kinds:
        res.add(s, Figure(f"cold_{key}", f"Sprig first invoke, {label} (client-side)", "ms",
                          tuple(first[key]), baselines[key]))
        inits = []
        for i in range(plan.colds):
            m = REPORT_INIT.search(core.log(f"Cold_{key}_{i}"))
            if m:
                inits.append(float(m.group(1)))
        if inits:
            res.add(s, Figure(f"init_{key}", f"REPORT Init Duration, {label}", "ms",
                              tuple(inits), baselines[key].replace("cold_py", "init_py")))
