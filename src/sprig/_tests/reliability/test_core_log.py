"""The core's own log under a flood: rotated within config.yaml's logging figures, owner-only,
and a repeated error summarised instead of written thousands of times a second.

Two floods, performed for real against a real core: IPC garbage (a connection that sends a
frame with a broken prelude, thousands of times), and refused accepts (the core held at its
file-descriptor limit while clients keep connecting: asyncio logs every failed ``accept()``,
up to 100 times a second per listener, each with a traceback). Each test prints the size of
the log after the flood.
"""

from __future__ import annotations

import asyncio
import os
import re
import resource
import socket
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from sprig.log_ratelimit import DEFAULT_BURST
from sprig.logs import follow, rotated_files
from sprig.testing import CoreProcess

pytestmark = pytest.mark.e2e

FILE_KB, TOTAL_KB = 64, 256           # config.yaml logging: small, so the bound is visible
GARBAGE = b"\x00\x00\x00\x10\x00\x00\x00\x00" + b"garbage!"   # a prelude whose CRC is wrong
FLOOD_S = 5.0


@pytest.fixture
def small_log_core(public_tmp: Path) -> Iterator[CoreProcess]:
    config = {"logging": {"fileSizeKB": FILE_KB, "totalLogsSizeKB": TOTAL_KB}}
    with CoreProcess(public_tmp / "root", config=config) as proc:
        yield proc


def log_files(core: CoreProcess) -> list[Path]:
    path = core.layout.core_log
    return [*rotated_files(path), path]


def log_text(core: CoreProcess) -> str:
    return "".join(p.read_text(errors="replace") for p in log_files(core))


def log_bytes(core: CoreProcess) -> int:
    return sum(p.stat().st_size for p in log_files(core))


def wait_for_line(core: CoreProcess, predicate: Callable[[str], bool],
                  timeout_s: float = 60) -> str:
    """The first line of the core log (from its start) that satisfies ``predicate``, read
    as ``sprig logs core --follow`` reads it."""
    async def scan() -> str:
        async with asyncio.timeout(timeout_s):
            async for line in follow(core.layout.core_log, from_end=False):
                if predicate(line):
                    return line
        raise AssertionError("unreachable")

    return asyncio.run(scan())


def summarised(text: str, needle: str) -> int:
    """How many repeats of the error containing ``needle`` the summary lines report."""
    total = 0
    for line in text.splitlines():
        found = re.search(r" \.\.\. repeated (\d+) times? in the last \d+ s$", line)
        if found and needle in line:
            total += int(found[1])
    return total


def send_garbage(ipc_socket: Path) -> None:
    """One connection that speaks garbage, until the core hangs up on it."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(30)
        s.connect(str(ipc_socket))
        s.sendall(GARBAGE)
        while s.recv(4096):
            pass


def test_ipc_garbage_flood_is_summarised_and_the_log_stays_bounded(
        small_log_core: CoreProcess) -> None:
    core = small_log_core
    before = log_bytes(core)
    floods = 3000
    started = time.monotonic()
    for _ in range(floods):
        send_garbage(core.layout.ipc_socket)
    elapsed = time.monotonic() - started
    assert core.call("status")                           # still answering
    during = log_bytes(core) - before
    core.stop()
    text = log_text(core)
    needle = "ipc: protocol error from an unauthenticated client"
    written = text.count(needle) - text.count(" ... repeated ")
    print(f"\nIPC garbage: {floods} connections in {elapsed:.1f} s "
          f"({floods / elapsed:.0f}/s); core log grew by {during} bytes during the flood "
          f"({written} lines written, the rest summarised); after stop: "
          f"{log_bytes(core)} bytes in {len(log_files(core))} file(s)")
    # Every refused connection is accounted for: written, or counted in a summary.
    assert written + summarised(text, needle) == floods
    assert written <= 2 * DEFAULT_BURST                  # one window, or two at most
    assert during < 16 * 1024
    for path in log_files(core):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert log_bytes(core) <= TOTAL_KB * 1024


def open_fds(pid: int) -> list[int]:
    return [int(fd) for fd in os.listdir(f"/proc/{pid}/fd")]


@contextmanager
def fd_limit(pid: int, spare: int) -> Iterator[None]:
    """Hold process ``pid`` to ``spare`` file descriptors above its highest open one."""
    old = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (max(open_fds(pid)) + 1 + spare, old[1]))
    try:
        yield
    finally:
        resource.prlimit(pid, resource.RLIMIT_NOFILE, old)


def connect(address: tuple[str, int] | str, clients: list[socket.socket]) -> None:
    """One client connecting (TCP, or a Unix socket path): queued in the core's accept
    backlog, or given up after 0.25 s when the backlog is full."""
    s = socket.socket(socket.AF_UNIX if isinstance(address, str) else socket.AF_INET)
    s.settimeout(0.25)
    try:
        s.connect(address)
    except OSError:
        s.close()
        return
    clients.append(s)


def test_refused_accepts_at_the_fd_limit_are_one_line_not_a_traceback_storm(
        small_log_core: CoreProcess) -> None:
    core = small_log_core
    assert core.proc is not None
    url = urlsplit(core.endpoints()["lambda"])
    invoke_api = (url.hostname or "127.0.0.1", url.port or 80)
    ipc = str(core.layout.ipc_socket)
    before = log_bytes(core)
    clients: list[socket.socket] = []
    attempts = 0
    try:
        with fd_limit(core.proc.pid, spare=4):
            # The core accepts 4 connections, then every accept() fails with EMFILE, on the
            # invoke API (the HTTP server's listener) and on ipc.socket (the IPC server's).
            for _ in range(25):
                connect(invoke_api, clients)
                connect(ipc, clients)
            attempts = 50
            for where in (f"{invoke_api[0]}:{invoke_api[1]}", ipc):
                wait_for_line(core, lambda line, w=where: f"refused a connection on {w}:" in line)
            # Clients keep coming for FLOOD_S seconds while the core is at its limit.
            deadline = time.monotonic() + FLOOD_S
            while time.monotonic() < deadline:
                connect(invoke_api, clients)
                connect(ipc, clients)
                attempts += 2
            during = log_bytes(core) - before
    finally:
        for c in clients:
            c.close()
    # Limit restored, clients gone: the listener works again by itself.
    assert core.call("status")
    core.stop()
    text = log_text(core)
    print(f"\nrefused accepts: {attempts} connection attempts, core at its fd limit for "
          f"{FLOOD_S:.0f} s; core log grew by {during} bytes during the flood; after stop: "
          f"{log_bytes(core)} bytes in {len(log_files(core))} file(s); "
          f"{summarised(text, 'refused a connection on')} refused accepts summarised "
          f"in {text.count(' ... repeated ')} line(s)")
    assert "Traceback" not in text
    assert "socket.accept() out of system resource" not in text
    refused = [ln for ln in text.splitlines() if "refused a connection on" in ln
               and " ... repeated " not in ln]
    for where in (f"{invoke_api[0]}:{invoke_api[1]}", ipc):     # each listener: its own lines
        mine = [ln for ln in refused if f"refused a connection on {where}:" in ln]
        assert 1 <= len(mine) <= 2 * DEFAULT_BURST, where
        assert "accept() failed with EMFILE (Too many open files)" in mine[0]
    assert summarised(text, "refused a connection on") > 0
    assert during < 16 * 1024
    assert log_bytes(core) <= TOTAL_KB * 1024
