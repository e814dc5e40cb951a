"""-Xmx from the memory size keeps a JVM inside its cgroup memory limit: a handler that wants too
much gets java.lang.OutOfMemoryError as its invocation's error, never a kernel OOM kill."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sprig.runtimes import java

JAVA = shutil.which("java")
MEMORY_V1 = Path("/sys/fs/cgroup/memory")


def _writable_v1() -> bool:
    return (MEMORY_V1 / "memory.limit_in_bytes").exists() and os.access(MEMORY_V1, os.W_OK)


pytestmark = [
    pytest.mark.skipif(JAVA is None, reason="java is not installed on this machine"),
    pytest.mark.skipif(not _writable_v1(), reason="needs a writable cgroup v1 memory "
                       "controller at /sys/fs/cgroup/memory"),
]


@pytest.fixture
def cgroup() -> Iterator[Path]:
    path = MEMORY_V1 / f"sprig-test-{uuid.uuid4().hex[:12]}"
    path.mkdir()
    try:
        yield path
    finally:
        # Kill what is left and remove the group once the kernel has emptied it.
        deadline = time.monotonic() + 10
        while True:
            pids = (path / "cgroup.procs").read_text().split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
            try:
                path.rmdir()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)


@pytest.mark.parametrize("memory_mb", [64, 128])
async def test_heap_fits_in_the_memory_limit(rapi: Any, workers: Any, make_env: Any, code: Any,
                                             cgroup: Path, memory_mb: int) -> None:
    assert JAVA is not None
    (cgroup / "memory.limit_in_bytes").write_text(str(memory_mb * 1024 * 1024))
    argv = java.launch_argv(JAVA, code.runtime_jar, code.directory, "example.Hog::hold", memory_mb)
    # The shell puts itself in the cgroup, then becomes the JVM.
    wrapped = ["sh", "-c", f'echo $$ > {cgroup}/cgroup.procs && exec "$@"', "sh", *argv]
    proc = await workers.start(wrapped, make_env("example.Hog::hold", code.directory),
                               cwd=code.directory)
    heap = java.heap_mb(memory_mb)
    assert heap is not None
    fits = heap // 2
    assert (await rapi.invoke(fits)).json == f"held {fits} MB"
    out = await rapi.invoke(memory_mb * 2)
    assert out.kind == "error"
    assert out.json["errorType"] == "java.lang.OutOfMemoryError"
    assert int((cgroup / "memory.failcnt").read_text()) == 0     # the kernel never had to step in
    assert await workers.exit_code(proc) == 1      # then the worker ends, to be started afresh
