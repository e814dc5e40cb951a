"""Process plumbing for :mod:`sprig.launcher.process`: /proc scans, exit watching, output.

Kept apart so ``process.py`` reads as policy (what to start, how to stop it) while the
mechanics live here: finding a process group's live members and a process's children in
/proc, watching an exit with a pidfd, and turning pipe bytes into lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import threading
from collections.abc import Callable
from typing import IO

OutputCallback = Callable[[str, bytes], None]

MAX_LINE = 64 * 1024          # longer lines are delivered in chunks of this size


def live_group_members(pgid: int) -> list[int]:
    """Pids of processes in process group ``pgid`` that are not zombies (a /proc scan)."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return []
    members = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != b"Z":
            members.append(int(entry.name))
    return members


def pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


async def read_lines(stream: asyncio.StreamReader, name: str, cb: OutputCallback) -> None:
    buf = b""
    while True:
        chunk = await stream.read(MAX_LINE)
        if not chunk:
            break
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for line in lines:
            for i in range(0, max(len(line), 1), MAX_LINE):
                cb(name, line[i:i + MAX_LINE])
        while len(buf) >= MAX_LINE:
            cb(name, buf[:MAX_LINE])
            buf = buf[MAX_LINE:]
    if buf:
        cb(name, buf)


def write_all(pipe: IO[bytes], data: bytes) -> None:
    with contextlib.suppress(OSError):
        try:
            pipe.write(data)
        finally:
            pipe.close()


def watch_exit(proc: subprocess.Popen[bytes]) -> asyncio.Future[int]:
    """A future resolved with the wait status as soon as the process exits.

    The exit is watched with a pidfd on the event loop, not with asyncio's subprocess
    transport: that one resolves ``wait()`` only once every pipe is closed, which never happens
    while a grandchild (a daemon) still holds stdout. Kernels without pidfd (< 5.3) fall back
    to a waiting thread.
    """
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[int] = loop.create_future()
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        def resolve(rc: int) -> None:
            if not fut.done():
                fut.set_result(rc)

        def waiter() -> None:
            loop.call_soon_threadsafe(resolve, proc.wait())

        threading.Thread(target=waiter, name=f"wait-{proc.pid}", daemon=True).start()
        return fut

    def on_ready() -> None:
        rc = proc.poll()
        if rc is None:
            return
        loop.remove_reader(pidfd)
        os.close(pidfd)
        if not fut.done():
            fut.set_result(rc)

    loop.add_reader(pidfd, on_ready)
    return fut


async def stream_reader(pipe: IO[bytes]) -> tuple[asyncio.StreamReader, asyncio.BaseTransport]:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=MAX_LINE * 2)
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), pipe)
    return reader, transport


def alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except OSError:
        return []
