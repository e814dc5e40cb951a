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


class OutputCount:
    """How far one output pipe has been read: bytes the transport fed the stream, bytes the
    line reader took from it, and who waits for a mark (see :meth:`taken_up_to`)."""

    def __init__(self) -> None:
        self.fed = 0
        self.taken = 0
        self.ended = False
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    def taken_up_to(self, mark: int) -> asyncio.Future[None]:
        """A future done once the line reader has taken ``mark`` bytes (or the pipe ended)."""
        future = asyncio.get_running_loop().create_future()
        if self.ended or self.taken >= mark:
            future.set_result(None)
        else:
            self._waiters.append((mark, future))
        return future

    def took(self, size: int) -> None:
        self.taken += size
        self._wake(lambda mark: mark <= self.taken)

    def end(self) -> None:
        self.ended = True
        self._wake(lambda mark: True)

    def _wake(self, due: Callable[[int], bool]) -> None:
        if not self._waiters:
            return
        waiting = []
        for mark, future in self._waiters:
            if not due(mark):
                waiting.append((mark, future))
            elif not future.done():
                future.set_result(None)
        self._waiters = waiting


class _CountingProtocol(asyncio.StreamReaderProtocol):
    def __init__(self, reader: asyncio.StreamReader, count: OutputCount) -> None:
        super().__init__(reader)
        self._count = count

    def data_received(self, data: bytes) -> None:
        self._count.fed += len(data)
        super().data_received(data)


async def read_lines(stream: asyncio.StreamReader, name: str, cb: OutputCallback,
                     count: OutputCount | None = None) -> None:
    try:
        await _read_lines(stream, name, cb, count)
    finally:
        if count is not None:
            count.end()


async def _read_lines(stream: asyncio.StreamReader, name: str, cb: OutputCallback,
                      count: OutputCount | None) -> None:
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
        if count is not None:
            count.took(len(chunk))
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


async def stream_reader(pipe: IO[bytes], count: OutputCount | None = None,
                        ) -> tuple[asyncio.StreamReader, asyncio.BaseTransport]:
    """A stream on ``pipe``; with ``count``, the bytes it is fed are counted there."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=MAX_LINE * 2)
    transport, _ = await loop.connect_read_pipe(
        lambda: (asyncio.StreamReaderProtocol(reader) if count is None
                 else _CountingProtocol(reader, count)), pipe)
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
