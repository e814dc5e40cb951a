"""A full disk is a state of the device, not a crash: one error, one test for it, and what is
full right now.

Why one module: every writer on a hot or start-up path (component logs, the core log,
``state.db``, ``run/endpoints.json``, the runtime assets) must decide what ENOSPC means for it —
drop and count a log line, refuse a deployment or an Event invocation with :class:`DiskFull`
naming the path, retry later — and ``sprig status`` must say what is full. Each writer reports a
failure with :meth:`DiskWatch.failed` and its next successful write with
:meth:`DiskWatch.recovered`; nothing needs a restart when space returns.
"""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from sprig.errors import SprigError

#: Below this many free bytes, a filesystem counts as full for ``sprig status``.
LOW_SPACE_BYTES: Final = 1024 * 1024
_FULL_ERRNOS: Final = frozenset({errno.ENOSPC, errno.EDQUOT})
_SQLITE_FULL: Final = 13


def is_disk_full(exc: BaseException) -> bool:
    """True for ENOSPC / EDQUOT and SQLite's SQLITE_FULL ("database or disk is full")."""
    if isinstance(exc, shutil.Error):      # copytree: a list of (src, dst, reason) texts
        texts = [str(r) for r in (exc.args[0] if exc.args else [])]
        return any(os.strerror(n) in t for t in texts for n in _FULL_ERRNOS)
    if isinstance(exc, OSError):
        return exc.errno in _FULL_ERRNOS
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        if isinstance(code, int) and code & 0xFF == _SQLITE_FULL:
            return True
        return "database or disk is full" in str(exc)
    return False


def free_bytes(path: Path) -> int | None:
    """Bytes an unprivileged writer may still use on the filesystem of ``path`` (or of its
    nearest existing parent); None if it cannot be asked."""
    p = Path(path)
    while True:
        try:
            st = os.statvfs(p)
        except FileNotFoundError:
            if p.parent == p:
                return None
            p = p.parent
            continue
        except OSError:
            return None
        return st.f_bavail * st.f_frsize


class DiskFull(SprigError):
    """A write failed for lack of space; ``str()`` names the path: ``no space left on <path>``.

    Raised instead of the raw ``OSError`` / ``sqlite3.OperationalError`` wherever a caller
    gets an answer (deployments, Event invocations); nothing was changed.
    """

    def __init__(self, path: Path | str, what: str = "") -> None:
        self.path = Path(path)
        self.what = what
        text = f"no space left on {self.path}"
        super().__init__(f"{text}: {what}" if what else text)


def disk_full_error(exc: OSError, fallback: Path, what: str = "") -> DiskFull:
    """:class:`DiskFull` for an ENOSPC ``OSError``: the file it names (for a copy, the
    destination), else ``fallback`` (the directory the write was under)."""
    name = exc.filename2 or exc.filename
    return DiskFull(Path(os.fsdecode(name)) if name else fallback, what)


@dataclass(frozen=True)
class FullPath:
    """One path whose last write failed for lack of space."""

    path: str
    what: str
    since: float
    failures: int

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "what": self.what, "since": self.since,
                "failures": self.failures}


class DiskWatch:
    """What is full right now (thread-safe: log writes come from threads too).

    A path stays listed until its writer succeeds again, or until its filesystem has at
    least :data:`LOW_SPACE_BYTES` free (a log nobody writes to any more must not be reported
    full for ever). It never logs itself: the core log is one of the writers it watches.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._full: dict[str, FullPath] = {}

    def failed(self, path: Path | str, what: str) -> bool:
        """Record a failed write; True when ``path`` was not already listed (log it once)."""
        key = str(path)
        with self._lock:
            old = self._full.get(key)
            self._full[key] = FullPath(key, what, old.since if old else time.time(),
                                       (old.failures if old else 0) + 1)
            return old is None

    def recovered(self, path: Path | str) -> FullPath | None:
        """A write to ``path`` succeeded: forget it; returns what was listed, if anything."""
        if not self._full:              # the common case: no lock, no work
            return None
        with self._lock:
            return self._full.pop(str(path), None)

    def is_full(self, path: Path | str) -> bool:
        return str(path) in self._full

    def snapshot(self) -> list[FullPath]:
        """The paths still full, oldest first."""
        with self._lock:
            entries = list(self._full.values())
        still = []
        for entry in entries:
            free = free_bytes(Path(entry.path))
            if free is not None and free >= LOW_SPACE_BYTES:
                self.recovered(entry.path)
                continue
            still.append(entry)
        return sorted(still, key=lambda e: e.since)

    def clear(self) -> None:
        with self._lock:
            self._full.clear()


#: The process's watch (the core is one process; its writers report here).
WATCH: Final = DiskWatch()


def status(root: Path) -> dict[str, Any]:
    """For ``sprig status``: free bytes on the root's filesystem and what is full."""
    free = free_bytes(root)
    return {
        "root": str(root),
        "freeBytes": free,
        "low": free is not None and free < LOW_SPACE_BYTES,
        "full": [e.to_json() for e in WATCH.snapshot()],
    }
