"""Measurements that explain the headline figures: what a process spawn costs with and without
fork, what a cgroup v1 join costs, how much memory the core's imports take, and where the core
spends its CPU during warm invocations (a py-spy profile taken in this run).

Why in the run: other people change the core while these benchmarks exist; explanations quoted
from an old profile would go stale, so the report quotes these figures instead.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

from bench.harness import PYTHON, REPO
from bench.profile import busy_frames, py_spy
from bench.stats import Figure, Results

SPAWN = r'''
import json, os, statistics, subprocess, sys, time
ballast = bytearray(40 * 2**20)           # a core-sized heap, touched
for i in range(0, len(ballast), 4096):
    ballast[i] = 1
def pre():
    os.setgroups([os.getgid()])
res = {"vfork": [], "fork": []}
for i in range(60):                         # interleaved: noise hits both alike
    kind = "fork" if i % 2 else "vfork"
    t0 = time.perf_counter()
    p = subprocess.Popen(["/bin/true"], close_fds=True, start_new_session=True,
                         preexec_fn=pre if kind == "fork" else None)
    res[kind].append((time.perf_counter() - t0) * 1000)
    p.wait()
if os.geteuid() == 0 and os.path.isdir("/sys/fs/cgroup/memory"):
    joins = []
    for i in range(15):
        d = f"/sys/fs/cgroup/memory/sprig-bench-join-{os.getpid()}-{i}"
        os.mkdir(d)
        with open(d + "/memory.limit_in_bytes", "w") as f:
            f.write(str(16 * 2**20))
        def join(d=d):
            fd = os.open(d + "/cgroup.procs", os.O_WRONLY)
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
        t0 = time.perf_counter()
        p = subprocess.Popen(["/bin/true"], preexec_fn=join, close_fds=True)
        joins.append((time.perf_counter() - t0) * 1000)
        p.wait()
        os.rmdir(d)
    res["fork+join"] = joins
print(json.dumps(res))
'''

IMPORTS = (("bare interpreter", "pass"), ("+ asyncio", "import asyncio"),
           ("+ aiohttp.web (for comparison)", "import asyncio, aiohttp.web"),
           ("the core's modules", "import sprig.daemon"))


def spawn_costs(res: Results) -> None:
    s = "Why: process start and cgroup costs on this machine"
    out = subprocess.run([PYTHON, "-c", SPAWN], capture_output=True, text=True, timeout=300,
                         check=True)
    doc = json.loads(out.stdout)
    res.add(s, Figure("spawn_vfork", "Popen from a 40 MB process, no preexec_fn (vfork)",
                      "ms", tuple(doc["vfork"]), None))
    res.add(s, Figure("spawn_fork", "Popen from a 40 MB process with a preexec_fn (fork)",
                      "ms", tuple(doc["fork"]), "spawn_vfork"))
    if "fork+join" in doc:
        res.add(s, Figure("spawn_join", "… and joining a fresh cgroup v1 memory cgroup in "
                          "the child", "ms", tuple(doc["fork+join"]), "spawn_vfork"))


def _timed(argv: list[str], n: int = 15) -> tuple[float, ...]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, timeout=60, capture_output=True)
        out.append((time.perf_counter() - t0) * 1000)
    return tuple(out)


def sandbox_costs(res: Results) -> None:
    """bubblewrap's own start: namespaces only, then with 25 read-only file binds (about what
    a GreengrassContainer worker exposes from /etc)."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return
    s = "Why: process start and cgroup costs on this machine"
    res.add(s, Figure("true", "/bin/true", "ms", _timed(["/bin/true"]), None))
    base = [bwrap, "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-ipc",
            "--unshare-uts", "--unshare-user", "--ro-bind", "/usr", "/usr",
            "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
            "--symlink", "usr/bin", "/bin", "--proc", "/proc", "--dev", "/dev"]
    try:
        res.add(s, Figure("bwrap_min", "bwrap /bin/true: user, pid, ipc, uts namespaces, /usr",
                          "ms", _timed([*base, "/bin/true"]), "true"))
        files = sorted(str(p) for p in Path("/etc").iterdir() if p.is_file())[:25]
        binds = [a for f in files for a in ("--ro-bind", f, f)]
        res.add(s, Figure("bwrap_binds", f"… plus {len(files)} read-only /etc file binds",
                          "ms", _timed([*base, *binds, "/bin/true"]), "bwrap_min"))
    except subprocess.CalledProcessError:
        res.notes.append("bwrap could not create namespaces here: sandbox costs not measured.")


def import_footprint(res: Results) -> None:
    s = "Why: the core's resident memory is mostly its imports"
    for i, (label, stmt) in enumerate(IMPORTS):
        code = (f"{stmt}\nimport gc; gc.collect()\n"
                "print([l for l in open('/proc/self/status') if l.startswith('VmRSS')][0]"
                ".split()[1])")
        runs = []
        for _ in range(3):
            out = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True,
                                 timeout=120, cwd=REPO)
            if out.returncode != 0:
                break
            runs.append(int(out.stdout.strip()) / 1024)
        if runs:
            res.add(s, Figure(f"import{i}", f"VmRSS after: {label}", "MB", tuple(runs),
                              "import0" if i else None))


def warm_profile(res: Results, core_pid: int, root: Path, seconds: int) -> None:
    """py-spy on the core while a client drives the echo loop; the frames with the largest
    share of busy samples go in the report."""
    spy = py_spy()
    out = root.parent / "warm-profile.txt"
    load = subprocess.Popen(
        [PYTHON, "-m", "bench.loops", "management",
         json.dumps({"root": str(root), "function": "Echo", "count": 10_000_000,
                     "warmup": 10})], cwd=REPO, stdout=subprocess.DEVNULL)
    try:
        time.sleep(0.5)                  # let the loop reach steady state
        subprocess.run([spy, "record", "-p", str(core_pid), "-d", str(seconds), "-r", "500",
                        "--format", "raw", "-o", str(out), "--nonblocking"],
                       check=True, capture_output=True, timeout=seconds + 60)
    finally:
        load.kill()
        load.wait()
    frames = busy_frames(out.read_text(), 18)
    res.profile = frames
    with_write = [share for share, f in frames if "Transport.write" in f]
    if with_write:
        res.notes.append(f"py-spy ({seconds} s of warm echo invocations): "
                         f"{with_write[0]:.0f}% of the core's busy samples are inside "
                         "socket writes.")


def launcher_uses_preexec() -> bool:
    path = REPO / "src" / "sprig" / "launcher" / "process.py"
    try:
        return "preexec_fn=" in path.read_text()
    except OSError:
        return False

