"""Start and stop real cores and measurement subprocesses, always cleaning up.

Why: every benchmark needs a core on a root the unprivileged run-as user can reach, functions
deployed into it, and client loops in fresh interpreters; a crash half-way must not leave cores,
workers or roots behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.functions import Code, Fn, import_all
from sprig.testing import CoreProcess

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


@contextlib.contextmanager
def public_dir(prefix: str) -> Iterator[Path]:
    """A temporary directory others may traverse (the run-as user must reach the root)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def leftovers(root: Path) -> list[int]:
    """Processes still working under ``root`` (their cwd inside it): a core that had to be
    killed leaves its workers running, as they live in their own sessions."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        if cwd == str(root) or cwd.startswith(str(root) + "/"):
            found.append(int(proc.name))
    return found


@contextlib.contextmanager
def running_core(root: Path, config: dict[str, Any] | None = None,
                 stop_timeout_s: float = 60,
                 env: dict[str, str] | None = None) -> Iterator[CoreProcess]:
    """A core for the block (``env``: variables added to the core's environment); stopped
    gracefully, else killed along with its workers."""
    core = CoreProcess(root, config=config,
                       env={**os.environ, **env} if env else None).start(60)
    try:
        yield core
    finally:
        try:
            core.stop(stop_timeout_s)
        except subprocess.TimeoutExpired:
            print(f"  (the core on {root} did not stop in {stop_timeout_s:.0f} s: killed)",
                  flush=True)
            core.kill()
        for pid in leftovers(root):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def deploy(core: CoreProcess, code: Code, fns: list[Fn], out: Path,
           config: dict[str, Any] | None = None) -> float:
    """Deploy ``fns`` in one deployment; return how long the deployment took (s)."""
    import_all(code, fns, out)
    update = {name: {"MERGE": merge} for name, merge in (config or {}).items()}
    t0 = time.perf_counter()
    result = core.deploy(recipe_dir=out / "recipes", artifact_dir=out / "artifacts",
                         merge={fn.name: "1.0.0" for fn in fns},
                         configuration_update=update or None)
    elapsed = time.perf_counter() - t0
    if result.get("status") != "SUCCEEDED":
        reason = str(result.get("reason", ""))
        logs = "".join(f"\n--- {fn.name} log (tail)\n{core.log(fn.name)[-3000:]}"
                       for fn in fns if f"component {fn.name} " in reason)
        raise RuntimeError(f"deployment failed: {result}{logs}\n{core.output()}")
    return elapsed


def run_module(module: str, kind: str, args: dict[str, Any],
               timeout_s: float = 300) -> dict[str, Any]:
    """Run ``python -m module kind JSON`` in its own session; on a timeout the whole session
    (the loop and anything it started, e.g. mosquitto_sub) is killed."""
    proc = subprocess.Popen([PYTHON, "-m", module, kind, json.dumps(args)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise RuntimeError(f"{module} {kind} did not finish in {timeout_s:.0f} s") from None
    if proc.returncode != 0:
        raise RuntimeError(f"{module} {kind} failed: {err[-3000:]}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def run_loop(kind: str, args: dict[str, Any], timeout_s: float = 300) -> dict[str, Any]:
    """Run one ``bench.loops`` measurement in a fresh interpreter."""
    return run_module("bench.loops", kind, args, timeout_s)


@contextlib.contextmanager
def floor_server(path: Path, handler_dir: Path) -> Iterator[int]:
    """The floor's server process (its pid), listening on ``path`` until the block ends."""
    proc = subprocess.Popen(
        [PYTHON, "-m", "bench.loops", "floor-server",
         json.dumps({"path": str(path), "handler_dir": str(handler_dir)})],
        cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"floor server did not start: {line!r}")
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def timed_process(argv: list[str], cwd: Path | None = None,
                  env: dict[str, str] | None = None) -> float:
    """Wall time (µs) of a process from spawn to exit."""
    t0 = time.perf_counter()
    subprocess.run(argv, cwd=cwd, check=True, timeout=120, stdout=subprocess.DEVNULL,
                   env=env)
    return (time.perf_counter() - t0) * 1e6
