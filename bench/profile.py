"""``python -m bench.profile [warm|cold|container] [--seconds S]``: where the core's time goes.

Runs a core, drives it (warm: the management-socket echo loop; cold / container: first
invocations of fresh on-demand functions), samples the core with py-spy (installed into the
virtualenv if missing) and prints the frames that hold the most of its busy (non-idle) samples.
This is how the causes quoted in BENCHMARKS.md for missed targets were found.
"""

from __future__ import annotations

import argparse
import base64
import collections
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.functions import Fn, write_code
from bench.harness import PYTHON, REPO, deploy, public_dir, running_core

PY_SPY = "py-spy==0.4.3"
IDLE = ("EpollSelector.select", "_worker (concurrent/futures/thread.py)",
        "Thread.wait", "Condition.wait", "SimpleQueue.get")


def py_spy() -> str:
    exe = Path(PYTHON).parent / "py-spy"
    if not exe.exists():
        subprocess.run([PYTHON, "-m", "pip", "install", "--quiet", PY_SPY], check=True,
                       timeout=600)
    return str(exe) if exe.exists() else (shutil.which("py-spy") or "py-spy")


def busy_frames(raw: str, top: int) -> list[tuple[float, str]]:
    """Inclusive share of busy samples per frame, from py-spy's ``--format raw`` output
    (``frame;frame;... count`` lines). Samples whose leaf is an idle wait are left out."""
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        if any(idle in frames[-1] for idle in IDLE):
            continue
        total += int(count)
        for frame in {f.split(":")[0] + (")" if "(" in f else "") for f in frames}:
            incl[frame] += int(count)
    if not total:
        return []
    skip = ("<module>", "_run_module_as_main", "_run_code", "run_forever", "run_until_complete",
            "Runner.run", "run (asyncio", "main (sprig", "cmd_core_run", "thread (", "Thread.")
    return [(100 * n / total, f) for f, n in incl.most_common()
            if not any(s in f for s in skip)][:top]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    ap.add_argument("what", choices=["warm", "cold", "container"], nargs="?", default="warm")
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--top", type=int, default=40)
    args = ap.parse_args(argv)
    spy = py_spy()
    with public_dir("sprig-profile-") as work:
        code = write_code(work / "code")
        with running_core(work / "root") as core:
            pid = int(core.call("status")["pid"])
            out = work / "profile.txt"
            if args.what == "warm":
                deploy(core, code, [Fn("Echo", "python", True)], work / "fn")
                load = subprocess.Popen(
                    [PYTHON, "-m", "bench.loops", "management",
                     json.dumps({"root": str(core.root), "function": "Echo",
                                 "count": 1_000_000, "warmup": 10})],
                    cwd=REPO, stdout=subprocess.DEVNULL)
                try:
                    subprocess.run([spy, "record", "-p", str(pid), "-d", str(int(args.seconds)),
                                    "-r", "500", "--format", "raw", "-o", str(out),
                                    "--nonblocking"], check=True, capture_output=True,
                                   timeout=args.seconds + 60)
                finally:
                    load.kill()
                    load.wait()
            else:
                iso = "NoContainer" if args.what == "cold" else "GreengrassContainer"
                n = 30
                deploy(core, code, [Fn(f"Cold{i}", "python", False, iso) for i in range(n)],
                       work / "fn")
                spy_proc = subprocess.Popen(
                    [spy, "record", "-p", str(pid), "-r", "1000", "--idle", "--threads",
                     "--format", "raw", "-o", str(out), "--nonblocking"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(1.0)          # py-spy attaches; nothing to wait on
                for i in range(n):
                    core.call("invoke", {"function": f"Cold{i}",
                                         "payload": base64.b64encode(b"{}").decode()})
                spy_proc.send_signal(2)
                spy_proc.wait(60)
            for share, frame in busy_frames(out.read_text(), args.top):
                print(f"{share:5.1f}%  {frame}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
