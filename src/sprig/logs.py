"""Per-component log files: write (with size-based rotation), tail, and follow.

A component's stdout/stderr go to ``logs/<component>.log`` (Greengrass: ``/greengrass/v2/logs``),
one line per output line, in Greengrass's TEXT format::

    2026-11-27T10:00:00.123Z [INFO] (stdout) com.example.Hello: the line

Rotation follows Greengrass's figures (reference §6.2, §9): a file is rotated when the next line
would take it past ``max_file_bytes`` (default 1 MB, ``fileSizeKB`` 1024), and the oldest rotated
files are deleted so that the current file plus the rotated ones stay within ``max_total_bytes``
(default 10 MB, ``totalLogsSizeKB`` 10240). A rotated file is named after the UTC time of its
rotation, ``<name>_<yyyy_mm_dd_HH_MM_SS_ffffff>.log``, so names sort oldest first. Greengrass
also rotates hourly; :meth:`ComponentLog.rotate` lets the caller do that on its own timer.

The core's own log (``logs/sprig.log``) is rotated by the same code: :class:`CoreLogHandler`
is a :mod:`logging` handler over a :class:`ComponentLog` created owner-only (``mode=0o600``), so
the core log and the component logs share one rotation implementation and one pair of limits
(``logging.fileSizeKB`` / ``logging.totalLogsSizeKB`` in ``config.yaml``, as Greengrass applies
the nucleus ``logging`` figures to ``greengrass.log`` and to every component's log alike).

Writes are on the hot path of every component's output: one unbuffered ``write(2)`` per call
(so ``sprig logs`` sees each line at once), no fsync, the timestamp text cached per second.

A full disk is not an error here: lines are dropped and counted, and the count is written once
there is space again (:meth:`ComponentLog.write_line`, :class:`CoreLogHandler`); the paths that
are full are reported to :data:`sprig.disk.WATCH` for ``sprig status``.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import re
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import BinaryIO, Final, Self

from sprig.disk import WATCH, is_disk_full
from sprig.errors import ValidationError

_log = logging.getLogger("sprig.logs")

DEFAULT_MAX_FILE_BYTES: Final = 1024 * 1024
DEFAULT_MAX_TOTAL_BYTES: Final = 10 * 1024 * 1024
LEVELS: Final = ("DEBUG", "INFO", "WARN", "ERROR")
FILE_MODE: Final = 0o640
_READ_BLOCK: Final = 64 * 1024
_ROTATED_STAMP = r"\d{4}_\d{2}_\d{2}_\d{2}_\d{2}_\d{2}_\d{6}"


class ComponentLog:
    """The log file of one component. Thread-safe; ``close()`` when the component goes away."""

    def __init__(
        self,
        path: Path,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
        *,
        component: str | None = None,
        clock: Callable[[], float] = time.time,
        mode: int = FILE_MODE,
    ) -> None:
        if max_file_bytes < 1:
            raise ValidationError(
                "max_file_bytes", "must be positive", value=max_file_bytes,
                allowed="a number of bytes >= 1",
            )
        if max_total_bytes < max_file_bytes:
            raise ValidationError(
                "max_total_bytes", "must be at least max_file_bytes", value=max_total_bytes,
                allowed=f">= {max_file_bytes}",
            )
        self.path = Path(path)
        self.component = component if component is not None else self.path.stem
        self.max_file_bytes = max_file_bytes
        self.max_total_bytes = max_total_bytes
        self._clock = clock
        self._mode = mode
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._size = 0
        self._closed = False
        self._stamp_second = -1
        self._stamp_text = ""
        self._last_rotation_stamp = ""
        self._dropped = 0            # lines lost to a full disk since the last good write
        self._cut = False            # a write was cut short: the file ends mid-line

    # -- writing ---------------------------------------------------------------------------

    def write_line(self, stream: str, text: str, *, level: str = "INFO") -> None:
        """Append ``text`` (one line; embedded newlines become several lines) from ``stream``.

        On a full disk (ENOSPC, EDQUOT) the lines are dropped and counted, never raised: a log
        line must not fail an invocation or wedge a worker. The next write that succeeds is
        preceded by a ``[WARN] ... N log line(s) dropped: no space left on <path>`` line.
        """
        if level not in LEVELS:
            raise ValidationError(
                "level", "unknown log level", value=level, allowed=", ".join(LEVELS)
            )
        first = False
        with self._lock:
            if self._closed:
                raise ValueError(f"log {self.path} is closed")
            now = self._clock()  # under the lock: stamps and rotation names stay in order
            head = f"{self._stamp(now)} [{level}] ({stream}) {self.component}: "
            parts = text.rstrip("\r\n").split("\n")
            data = "".join(f"{head}{part.rstrip(chr(13))}\n" for part in parts).encode(
                "utf-8", "replace"
            )
            try:
                if self._dropped:
                    data = self._dropped_notice(now) + data
                self._append_locked(data, now)
            except OSError as e:
                if not is_disk_full(e):
                    raise
                self._dropped += len(parts)
                first = WATCH.failed(self.path, f"the log of {self.component}")
            else:
                self._dropped = 0
                WATCH.recovered(self.path)
                return
        if first:                      # outside the lock; the core log may be full too
            _log.warning("no space left on %s: dropping %s's log lines (counted; written "
                         "again once there is space)", self.path, self.component)

    def write_text(self, text: str) -> None:
        """Append ``text`` as it is (already formatted, e.g. by :class:`CoreLogHandler`), in
        one write, rotating first if it would take the file past ``max_file_bytes``. Raises
        OSError (a full disk included): the caller decides what a lost write means."""
        with self._lock:
            if self._closed:
                raise ValueError(f"log {self.path} is closed")
            self._append_locked(text.encode("utf-8", "replace"), self._clock())

    def _append_locked(self, data: bytes, now: float) -> None:
        """One ``write(2)`` normally, rotating first when needed. On ENOSPC part of a line may
        be on disk: the next successful write starts on a new line (see ``_cut``)."""
        fd = self._fd if self._fd is not None else self._open()
        if self._size > 0 and self._size + len(data) > self.max_file_bytes:
            fd = self._rotate_locked(now)
        if self._cut and data:
            data = b"\n" + data
        view = memoryview(data)
        while view:
            try:
                written = os.write(fd, view)
            except OSError:
                if len(view) != len(data):
                    self._cut = True
                raise
            view = view[written:]
            self._size += written
        self._cut = False

    def _dropped_notice(self, now: float) -> bytes:
        """The line that says how many lines a full disk cost: a reader must not believe the
        log is complete."""
        notice = (f"{self._stamp(now)} [WARN] (sprig) {self.component}: {self._dropped} log "
                  f"line(s) dropped: no space left on {self.path}\n")
        return notice.encode("utf-8", "replace")

    def rotate(self) -> Path | None:
        """Rotate now (e.g. hourly); returns the rotated file, or None when there was nothing."""
        with self._lock:
            if self._closed:
                raise ValueError(f"log {self.path} is closed")
            if self._fd is None:
                self._open()
            if self._size == 0:
                return None
            self._rotate_locked(self._clock())
            rotated = rotated_files(self.path)
            return rotated[-1] if rotated else None

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals -------------------------------------------------------------------------

    def _stamp(self, now: float) -> str:
        second = int(now)
        if second != self._stamp_second:
            self._stamp_second = second
            self._stamp_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        millis = min(int((now - second) * 1000), 999)
        return f"{self._stamp_text}.{millis:03d}Z"

    def _open(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, self._mode)
        self._fd = fd
        st = os.fstat(fd)
        if st.st_mode & 0o777 & ~self._mode:   # an older file, more open than it should be
            os.fchmod(fd, st.st_mode & 0o777 & self._mode)
        self._size = st.st_size
        self._prune()
        return fd

    def _rotate_locked(self, now: float) -> int:
        assert self._fd is not None
        os.close(self._fd)
        self._fd = None
        os.rename(self.path, self._rotated_name(now))
        return self._open()

    def _rotated_name(self, now: float) -> Path:
        second = int(now)
        micros = min(int((now - second) * 1_000_000), 999_999)
        stamp = time.strftime("%Y_%m_%d_%H_%M_%S", time.gmtime(second)) + f"_{micros:06d}"
        # Never sort before an earlier rotation, even if the clock steps back.
        stamp = max(stamp, self._last_rotation_stamp)
        self._last_rotation_stamp = stamp
        base = f"{self.path.stem}_{stamp}"
        candidate = self.path.with_name(base + self.path.suffix)
        n = 0
        while candidate.exists():
            n += 1
            candidate = self.path.with_name(f"{base}_{n}{self.path.suffix}")
        return candidate

    def _prune(self) -> None:
        """Delete the oldest rotated files until they fit beside a full current file."""
        budget = self.max_total_bytes - max(self.max_file_bytes, self._size)
        files = []
        total = 0
        for f in rotated_files(self.path):
            try:
                size = f.stat().st_size
            except FileNotFoundError:
                continue
            files.append((f, size))
            total += size
        for f, size in files:
            if total <= budget:
                break
            try:
                f.unlink()
            except FileNotFoundError:
                pass
            total -= size


# -- the core's own log -------------------------------------------------------------------

CORE_LOG_MODE: Final = 0o600
CORE_LOG_FORMAT: Final = "%(asctime)s.%(msecs)03dZ [%(levelname)s] (%(name)s) %(message)s"


class CoreLogHandler(logging.Handler):
    """Writes the core's log records to a rotated, owner-only file (``logs/sprig.log``), safe
    on a full disk.

    The file is owner-only because the core's log may name paths and configurations of every
    component. One record is one write, cut to ``max_file_bytes`` if longer (a giant message or
    traceback cannot break the size bound). Times are UTC, as in the component logs.

    Why not :class:`logging.FileHandler`: on ENOSPC it prints a traceback per record and its
    buffer later spills a stale fragment with no gap marker. Here, on a full disk the record is
    kept in memory (the last :attr:`KEEP` of them) and written, after a line saying how many
    were lost, as soon as a write succeeds again — so what the core said about the full disk is
    read once there is room.
    """

    KEEP: Final = 200

    def __init__(self, path: Path, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
                 max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES, *,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.path = Path(path)
        self.file = ComponentLog(path, max_file_bytes, max_total_bytes, clock=clock,
                                 mode=CORE_LOG_MODE)
        formatter = logging.Formatter(CORE_LOG_FORMAT, "%Y-%m-%dT%H:%M:%S")
        formatter.converter = time.gmtime
        self.setFormatter(formatter)
        self._held: collections.deque[str] = collections.deque(maxlen=self.KEEP)
        self._dropped = 0
        # Open (and create) it now: an error shows at start-up, and a file left larger than
        # the limit (e.g. by a version that did not rotate) is rotated away at once.
        try:
            self.file.write_text("")
        except OSError as e:
            if not is_disk_full(e):
                raise
            WATCH.failed(self.path, "the core log")

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record) + "\n"
            limit = self.file.max_file_bytes
            if len(text) > limit // 4:    # cheap test first: a character is at most 4 bytes
                data = text.encode("utf-8", "replace")
                if len(data) > limit:
                    mark = b"... [cut: the record was longer than the log file size]\n"
                    data = data[: max(limit - len(mark), 0)] + mark
                    text = data.decode("utf-8", "ignore")
        except Exception:
            self.handleError(record)
            return
        try:
            self.file.write_text(self._held_back() + text if self._dropped else text)
        except OSError as e:
            if not is_disk_full(e):
                self.handleError(record)
                return
            if not self._dropped:
                self._held.clear()
            self._dropped += 1
            self._held.append(text)
            WATCH.failed(self.path, "the core log")
            return
        except Exception:
            self.handleError(record)
            return
        self._dropped = 0
        self._held.clear()
        WATCH.recovered(self.path)

    def _held_back(self) -> str:
        """The gap line, then the records held back while the disk was full."""
        gone = self._dropped - len(self._held)
        note = logging.makeLogRecord({
            "name": "sprig.logs", "levelno": logging.WARNING, "levelname": "WARNING",
            "msg": f"no space left on {self.path}: {self._dropped} line(s) were held back"
                   + (f", the oldest {gone} are lost" if gone else "")})
        return self.format(note) + "\n" + "".join(self._held)

    def close(self) -> None:
        self.file.close()
        super().close()


# -- reading -------------------------------------------------------------------------------


def rotated_files(path: Path) -> list[Path]:
    """The rotated files of the log at ``path``, oldest first."""
    path = Path(path)
    pattern = re.compile(
        re.escape(path.stem) + rf"_({_ROTATED_STAMP})(?:_(\d+))?" + re.escape(path.suffix) + "$"
    )
    found: list[tuple[str, int, Path]] = []
    try:
        names = os.listdir(path.parent)
    except FileNotFoundError:
        return []
    for name in names:
        match = pattern.fullmatch(name)
        if match:
            found.append((match.group(1), int(match.group(2) or 0), path.with_name(name)))
    found.sort()
    return [p for _, _, p in found]


def tail_lines(path: Path, n: int) -> list[str]:
    """The last ``n`` lines of the log (oldest first), reaching into rotated files if needed.

    Reads backwards in blocks, so the cost depends on ``n``, not on the file size.
    """
    if n <= 0:
        return []
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            lines = _tail_fh(fh, n, os.fstat(fh.fileno()).st_size)
    except FileNotFoundError:
        lines = []
    if len(lines) < n:
        lines = _tail_rotated(path, n - len(lines)) + lines
    return lines


def _tail_rotated(path: Path, n: int) -> list[str]:
    """The last ``n`` lines of the rotated files only (oldest first)."""
    lines: list[str] = []
    for f in reversed(rotated_files(path)):
        if len(lines) >= n:
            break
        try:
            with open(f, "rb") as fh:
                lines = _tail_fh(fh, n - len(lines), os.fstat(fh.fileno()).st_size) + lines
        except FileNotFoundError:
            continue
    return lines[-n:]


def _tail_fh(fh: BinaryIO, n: int, end: int) -> list[str]:
    """The last ``n`` lines of the bytes ``[0, end)`` of the binary file ``fh``."""
    if end <= 0 or n <= 0:
        return []
    data = b""
    pos = end
    while pos > 0 and data.count(b"\n") <= n:
        step = min(_READ_BLOCK, pos)
        pos -= step
        fh.seek(pos)
        data = fh.read(step) + data
    if data.endswith(b"\n"):
        data = data[:-1]
    parts = data.split(b"\n")
    if pos > 0:
        parts = parts[1:]  # the first part may be the tail of a longer line
    return [p.decode("utf-8", "replace") for p in parts[-n:]]


def _open_binary(path: Path) -> BinaryIO:
    """Open a local log file for reading (a local open does not block the loop noticeably)."""
    return open(path, "rb")


def follow(
    path: Path, from_end: bool = True, *, last: int = 0, poll_interval: float = 0.1
) -> AsyncIterator[str]:
    """Yield the log's lines as they are written, for ever, surviving rotation (``tail -F``).

    With ``from_end`` (the default) the lines are those written after this call; if the file
    does not exist yet, all of it is new. ``from_end=False`` starts at the beginning of the
    current file. ``last`` (which takes precedence) first yields that many existing lines,
    rotated files included, with no gap or overlap before the new ones. When the file is
    rotated, the rest of the old file is read before the new one.
    """
    path = Path(path)
    start: int | None = 0
    if last > 0:
        start = None  # wherever the file ends once opened
    elif from_end:
        try:
            start = os.stat(path).st_size
        except FileNotFoundError:
            start = 0
    return _follow(path, start, last, poll_interval)


async def _follow(
    path: Path, start: int | None, last: int, poll_interval: float
) -> AsyncIterator[str]:
    while True:
        try:
            fh = _open_binary(path)
            break
        except FileNotFoundError:
            await asyncio.sleep(poll_interval)
    try:
        size = os.fstat(fh.fileno()).st_size
        if last > 0:
            earlier = _tail_fh(fh, last, size)
            if len(earlier) < last:
                earlier = _tail_rotated(path, last - len(earlier)) + earlier
            for line in earlier:
                yield line
        fh.seek(size if start is None else min(start, size))
        buf = b""
        while True:
            chunk = fh.read(_READ_BLOCK)
            if chunk:
                buf += chunk
                *complete, buf = buf.split(b"\n")
                for raw in complete:
                    yield raw.decode("utf-8", "replace")
                continue
            try:
                current = os.stat(path)
            except FileNotFoundError:
                current = None
            mine = os.fstat(fh.fileno())
            if current is not None and (current.st_ino, current.st_dev) != (
                mine.st_ino,
                mine.st_dev,
            ):
                rest = fh.read()
                if rest:  # written before the rename: deliver it first
                    buf += rest
                    continue
                if buf:
                    yield buf.decode("utf-8", "replace")
                    buf = b""
                fh.close()
                fh = _open_binary(path)
                continue
            if current is not None and current.st_size < fh.tell():
                fh.seek(0)  # truncated in place
                buf = b""
                continue
            await asyncio.sleep(poll_interval)
    finally:
        fh.close()

