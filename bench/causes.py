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
import tempfile
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
    # to exit, old way against the launcher's way: a preexec_fn that drops to nobody (fork)
    # vs setpriv exec'd in front (vfork); a pid written to cgroup.procs in a preexec_fn vs a
    # shell that writes 0 to tasks (the process moves itself, no global lock)
    setpriv = ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
    def drop():
        os.setgroups([65534]); os.setresgid(65534, 65534, 65534); os.setresuid(65534, 65534, 65534)
    for key in ("drop_preexec", "drop_setpriv", "join_procs", "join_self"):
        res[key] = []
    for i in range(15):
        for key in ("drop_preexec", "drop_setpriv", "join_procs", "join_self"):
            d = f"/sys/fs/cgroup/memory/sprig-bench-join-{os.getpid()}-{key}-{i}"
            os.mkdir(d)
            argv, pre = ["/bin/true"], None
            if key == "drop_preexec":
                pre = drop
            elif key == "drop_setpriv":
                argv = setpriv + argv
            elif key == "join_procs":
                def pre(d=d):
                    fd = os.open(d + "/cgroup.procs", os.O_WRONLY)
                    os.write(fd, str(os.getpid()).encode())
                    os.close(fd)
            else:
                argv = ["/bin/sh", "-c", f"echo 0 >{d}/tasks && exec \"$@\"", "join", *argv]
            t0 = time.perf_counter()
            subprocess.run(argv, preexec_fn=pre, close_fds=True, check=True)
            res[key].append((time.perf_counter() - t0) * 1000)
            os.rmdir(d)
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
    s = "Levers kept (issue 18): each against what it replaced, from a 40 MB process"
    pairs = (("drop_preexec", "run /bin/true as nobody: preexec_fn setresuid (fork), to exit",
              None),
             ("drop_setpriv", "run /bin/true as nobody: setpriv exec'd in front (vfork), to "
              "exit", "drop_preexec"),
             ("join_procs", "join a fresh v1 memory cgroup: pid to cgroup.procs in a "
              "preexec_fn, to exit", None),
             ("join_self", "join it: sh writes 0 to tasks, then exec (no global lock), to exit",
              "join_procs"))
    for key, label, base in pairs:
        if doc.get(key):
            res.add(s, Figure(key, label, "ms", tuple(doc[key]), base))
    bootstrap_compile(res)


def bootstrap_compile(res: Results) -> None:
    """What running the Python bootstrap as a script cost on every worker start (compiling
    it) against loading the bytecode the core now prepares once per interpreter."""
    import marshal

    src = (REPO / "src" / "sprig" / "runtimes" / "python" / "bootstrap.py").read_text()
    code = compile(src, "bootstrap.py", "exec")
    data = marshal.dumps(code)
    comp, load = [], []
    for _ in range(15):
        t0 = time.perf_counter()
        compile(src, "bootstrap.py", "exec")
        t1 = time.perf_counter()
        marshal.loads(data)
        t2 = time.perf_counter()
        comp.append((t1 - t0) * 1000)
        load.append((t2 - t1) * 1000)
    s = "Levers kept (issue 18): each against what it replaced, from a 40 MB process"
    res.add(s, Figure("boot_compile", "the Python bootstrap run as source: compiled at every "
                      "worker start", "ms", tuple(comp), None))
    res.add(s, Figure("boot_pyc", "… as bytecode compiled once per interpreter: loaded",
                      "ms", tuple(load), "boot_compile"))


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
        with tempfile.TemporaryDirectory(prefix="sprig-bench-etc-") as etc:
            for f in files:
                shutil.copyfile(f, Path(etc) / Path(f).name)
            Path(etc).chmod(0o755)
            res.add(s, Figure("bwrap_etc", f"… with those {len(files)} files copied into one "
                              "prepared directory bound once at /etc (the launcher's way)",
                              "ms", _timed([*base, "--ro-bind", etc, "/etc", "/bin/true"]),
                              "bwrap_binds"))
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
