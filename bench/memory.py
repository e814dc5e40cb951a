"""Memory: the core's resident set idle and with many deployed functions, and a Python hello
world worker's peak against the 16 MB default ``memorySize``.

Why several readings: RSS moves a little as the core's allocator settles, so each figure is a
few readings spaced out in time (min/median/max).
"""

from __future__ import annotations

import base64
import re
import time
from pathlib import Path

from bench.functions import Code, Fn
from bench.harness import deploy
from bench.plan import Plan
from bench.stats import Figure, Results
from sprig.daemon import cgroup_prefix
from sprig.testing import CoreProcess

CGROUP_V1 = Path("/sys/fs/cgroup/memory/sprig")
REPORT_MEM = re.compile(r"Max Memory Used: (\d+) MB")


def status_kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_readings(pid: int, n: int = 5, gap_s: float = 0.2) -> tuple[float, ...]:
    """``n`` VmRSS readings (MB) ``gap_s`` apart."""
    out = []
    for i in range(n):
        if i:
            time.sleep(gap_s)
        out.append(status_kb(pid, "VmRSS") / 1024)
    return tuple(out)


def core_rss(res: Results, plan: Plan, core: CoreProcess, code: Code, work: Path) -> None:
    s = "Memory: the core"
    pid = int(core.call("status")["pid"])
    res.add(s, Figure("rss0", "core RSS, idle, no functions", "MB", rss_readings(pid), None))
    deployed = 0
    for total in plan.many_functions:
        fns = [Fn(f"Idle{i:03d}", "python", False, "GreengrassContainer")
               for i in range(deployed, total)]
        took = deploy(core, code, fns, work / f"many-{total}")
        deployed = total
        res.add(s, Figure(f"rss{total}", f"core RSS, {total} idle on-demand functions", "MB",
                          rss_readings(pid), "rss0",
                          note=f"deploying {len(fns)} more took {took:.1f} s"))
    lo, hi = plan.many_functions[0], plan.many_functions[-1]
    a, b = res.figures[f"rss{lo}"].runs, res.figures[f"rss{hi}"].runs
    per = tuple((y - x) * 1024 / (hi - lo) for x, y in zip(a, b, strict=True))
    res.add(s, Figure("rss_per_fn", f"core RSS per further idle on-demand function "
                      f"({lo}→{hi})", "KB", per, None))


def core_rss_pinned(res: Results, core: CoreProcess, code: Code, work: Path,
                    count: int = 20) -> None:
    """The core's RSS with ``count`` pinned functions, whose workers exist: the idle
    on-demand figure alone would leave out what a running worker costs the core (its
    sockets, buffers, log pipes)."""
    s = "Memory: the core"
    pid = int(core.call("status")["pid"])
    fns = [Fn(f"Pinned{i:03d}", "python", True) for i in range(count)]
    took = deploy(core, code, fns, work / f"pinned-{count}")
    for fn in fns:   # every worker has served once: its buffers exist
        out = core.call("invoke", {"function": fn.name,
                                   "payload": base64.b64encode(b"{}").decode()})
        if out.get("functionError"):
            raise RuntimeError(f"{fn.name}: {base64.b64decode(out['payload'])!r}")
    workers = _children(pid)
    wrss = sum(status_kb(p, "VmRSS") for p in workers) / 1024
    res.add(s, Figure(f"rss_pinned{count}", f"core RSS, {count} pinned functions (workers "
                      f"running, each invoked once)", "MB", rss_readings(pid), "rss0",
                      note=f"deploying took {took:.1f} s; the {len(workers)} worker "
                      f"processes hold {wrss:.0f} MB more, outside the core"))


def _children(pid: int) -> list[int]:
    out = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(proc.name))
            except (OSError, ValueError, IndexError):
                continue
    return out


def _cgroup_dirs(root: Path, name: str) -> list[Path]:
    """The worker cgroups of ``name`` on the core at ``root``: the launcher names them
    ``<core prefix><component>-<worker number>-<instance>`` under ``memory/sprig``."""
    if not CGROUP_V1.is_dir():
        return []
    return sorted(CGROUP_V1.glob(f"{cgroup_prefix(root)}{name}-*"))


def _cgroup_pids(dirs: list[Path]) -> list[int]:
    pids: list[int] = []
    for d in dirs:
        try:
            pids += [int(p) for p in (d / "cgroup.procs").read_text().split()]
        except OSError:
            continue
    return pids


def _pids_in(work_dir: Path) -> list[int]:
    """Processes whose working directory is ``work_dir`` (a NoContainer worker has no cgroup
    of its own)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if Path(proc / "cwd").resolve() == work_dir.resolve():
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


def worker_memory(res: Results, core: CoreProcess, code: Code, work: Path) -> None:
    """Hello world pinned, 16 MB, container and NoContainer: REPORT's Max Memory Used, the
    cgroup's max_usage (includes page cache the worker touched), and the processes' peak
    RSS (VmHWM)."""
    s = "Memory: a Python hello world worker (memorySize 16 MB)"
    fns = [Fn("HelloC", "hello", True, "GreengrassContainer"),
           Fn("HelloN", "hello", True, "NoContainer")]
    deploy(core, code, fns, work / "hello")
    for fn in fns:
        for _ in range(5):
            out = core.call("invoke", {"function": fn.name,
                                       "payload": base64.b64encode(b"{}").decode()})
            if out.get("functionError"):
                raise RuntimeError(f"{fn.name}: {base64.b64decode(out['payload'])!r}")
    iso = {"HelloC": "GreengrassContainer", "HelloN": "NoContainer"}
    for name in ("HelloC", "HelloN"):
        reports = [float(m) for m in REPORT_MEM.findall(core.log(name))]
        if reports:
            res.add(s, Figure(f"report_mem_{name}", f"REPORT Max Memory Used, {iso[name]}",
                              "MB", tuple(reports), None))
        dirs = _cgroup_dirs(core.root, name)
        if dirs:
            peaks = []
            for d in dirs:
                try:
                    peaks.append(int((d / "memory.max_usage_in_bytes").read_text()) / 2**20)
                except OSError:
                    pass
            if peaks:
                res.add(s, Figure(f"cg_peak_{name}", f"cgroup memory.max_usage, {iso[name]}",
                                  "MB", tuple(peaks), None,
                                  note="includes page cache charged to the worker"))
        pids = _cgroup_pids(dirs) or _pids_in(core.layout.root / "work" / name)
        if pids:
            hwm = sum(status_kb(p, "VmHWM") for p in pids) / 1024
            rss = sum(status_kb(p, "VmRSS") for p in pids) / 1024
            res.add(s, Figure(f"hwm_{name}", f"worker processes' peak RSS (VmHWM), "
                              f"{iso[name]}", "MB", (hwm,), None,
                              note=f"{len(pids)} process(es), current RSS {rss:.1f} MB"))
