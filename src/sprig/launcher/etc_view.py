"""One prepared, read-only ``/etc`` for every sandbox, instead of a bind per file.

A GreengrassContainer sees a few paths of the host's ``/etc`` (``bubblewrap.ETC_PATHS``: users,
name resolution, CA certificates, the dynamic linker's cache...). Binding each one costs
bubblewrap a mount, a read-only remount and a scan of ``/proc/self/mountinfo``: for the 22
paths some 6 ms of every container cold start, measured here (``bench/causes.py``). So the
core keeps a copy of exactly those paths in one directory and bubblewrap binds it once at
``/etc``.

What is copied is what any user of the device could read anyway: regular files and
directories readable by others, symbolic links as links (they resolve inside the sandbox, as
they did with the binds). Anything else (``/etc/ssl/private``, a file only its group reads)
is left out, so the copy never holds more than a sandbox could see before. A top-level link
that points outside the system directories (``/etc/resolv.conf`` into ``/run``) is copied as
the file it points to, as a bind would have shown it.

Freshness: before each sandbox starts, the copy is compared with the host by the status
(``lstat``) of every copied top-level path and of every directory in the copied trees; any
difference (a package, ``useradd``, ``update-ca-certificates``, a new ``resolv.conf``: they
all replace files by renaming) makes a new copy for the sandboxes that start from then on.
An edit in place of a file deep in a copied tree changes no directory: a full comparison of
every entry catches it, run at most every ``full_check_s`` (10 s). Copies are named by their
content (hashed from the host's files, so a restarted core finds its copy without writing
anything: a full disk stays full) and never change; every copy this core used stays while it
runs (a sandbox may still bind it), and the copies of an earlier core are removed once this
core's own exists (sandboxes die with their core).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

Signature = tuple[tuple[str, int, int, int, int], ...]


def _lstat_key(path: str) -> tuple[str, int, int, int, int]:
    try:
        st = os.lstat(path)
    except OSError:
        return (path, -1, -1, -1, -1)
    return (path, st.st_mtime_ns, st.st_size, st.st_ino, st.st_mode)


def _others_can_read(st: os.stat_result) -> bool:
    if stat.S_ISDIR(st.st_mode):
        return st.st_mode & 0o005 == 0o005
    return bool(st.st_mode & 0o004)


class EtcView:
    """The prepared ``/etc`` of ``paths`` (absolute paths directly under ``/etc``), kept in
    ``home``; :meth:`current` gives the copy to bind, up to date with the host."""

    def __init__(self, home: Path, paths: Iterable[str], system_dirs: Iterable[str],
                 *, full_check_s: float = 10.0, etc: str = "/etc") -> None:
        self.home = home
        self.etc = etc.rstrip("/")
        self.paths = tuple(p for p in paths if os.path.dirname(p) == self.etc)
        self.system_dirs = tuple(system_dirs)
        self.full_check_s = full_check_s
        self._lock = threading.Lock()
        self._current: Path | None = None
        self._quick: Signature = ()
        self._full: Signature = ()
        self._dirs: tuple[str, ...] = ()
        self._full_at = 0.0
        self._used: set[str] = set()
        self._swept = False

    # -- signatures --------------------------------------------------------------------------
    def _quick_signature(self, dirs: tuple[str, ...]) -> Signature:
        # a top-level link is followed too: /etc/resolv.conf's target in /run is rewritten
        followed = tuple(_lstat_key(os.path.realpath(p)) for p in self.paths
                         if os.path.islink(p))
        return (*(_lstat_key(p) for p in (*self.paths, *dirs)), *followed)

    def _walk(self) -> tuple[tuple[str, ...], Signature]:
        """Every directory of the copied trees, and the status of every entry in them."""
        dirs: list[str] = []
        keys: list[tuple[str, int, int, int, int]] = []
        for top in self.paths:
            if os.path.islink(top) or not os.path.isdir(top):
                continue
            for dirpath, dirnames, filenames in os.walk(top):
                dirs.append(dirpath)
                for name in (*dirnames, *filenames):
                    keys.append(_lstat_key(os.path.join(dirpath, name)))
        return tuple(dirs), tuple(keys)

    # -- the copy ----------------------------------------------------------------------------
    def current(self) -> Path:
        """The copy to bind at ``/etc`` (made or renewed here when the host changed)."""
        with self._lock:
            if self._current is not None and self._current.is_dir():
                quick_same = self._quick_signature(self._dirs) == self._quick
                if quick_same and time.monotonic() - self._full_at < self.full_check_s:
                    return self._current
                if quick_same:
                    dirs, full = self._walk()
                    self._full_at = time.monotonic()
                    if (dirs, full) == (self._dirs, self._full):
                        return self._current
            return self._renew()

    def _renew(self) -> Path:
        dirs, full = self._walk()
        quick = self._quick_signature(dirs)
        entries = list(self._entries())
        target = self.home / _digest(entries)
        if not target.is_dir():        # else made by an earlier core: reused, nothing written
            self.home.mkdir(parents=True, exist_ok=True)
            self.home.chmod(0o755)
            tmp = Path(tempfile.mkdtemp(prefix=".etc-", dir=self.home))
            try:
                tmp.chmod(0o755)
                _materialise(entries, tmp)
                try:
                    tmp.rename(target)
                except OSError:          # made by another thread or core meanwhile
                    shutil.rmtree(tmp, ignore_errors=True)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        self._current, self._quick, self._dirs, self._full = target, quick, dirs, full
        self._full_at = time.monotonic()
        self._used.add(target.name)
        if not self._swept:
            # Copies this process never used belong to a core that is gone, and with it its
            # sandboxes (--die-with-parent): removed once a current one exists, never before
            # (on a full disk, removing first and copying again would fail).
            self._swept = True
            with contextlib.suppress(OSError):
                self.sweep()
        return target

    def _entries(self) -> Iterable[_Entry]:
        """What the copy holds, by the rules in the module docstring, in a stable order."""
        for path in self.paths:
            yield from self._top(path, os.path.basename(path))

    def _top(self, path: str, rel: str) -> Iterable[_Entry]:
        try:
            st = os.lstat(path)
        except OSError:
            return
        if stat.S_ISLNK(st.st_mode):
            real = os.path.realpath(path)
            if any(real == d or real.startswith(d + "/") for d in self.system_dirs):
                yield _Entry(rel, "link", 0o777, real)     # e.g. localtime -> /usr/share/...
                return
            try:
                st = os.stat(real)
            except OSError:
                return                       # a dangling link shows nothing
            path = real
        if stat.S_ISDIR(st.st_mode):
            yield from self._tree(path, rel, st)
        elif stat.S_ISREG(st.st_mode) and _others_can_read(st):
            yield _Entry(rel, "file", stat.S_IMODE(st.st_mode) & 0o755, path)

    def _tree(self, src: str, rel: str, st: os.stat_result) -> Iterable[_Entry]:
        if not _others_can_read(st):
            return
        yield _Entry(rel, "dir", stat.S_IMODE(st.st_mode) & 0o755, src)
        for entry in sorted(os.scandir(src), key=lambda e: e.name):
            try:
                est = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            sub = f"{rel}/{entry.name}"
            if stat.S_ISLNK(est.st_mode):
                yield _Entry(sub, "link", 0o777, os.readlink(entry.path))
            elif stat.S_ISDIR(est.st_mode):
                yield from self._tree(entry.path, sub, est)
            elif stat.S_ISREG(est.st_mode) and _others_can_read(est):
                yield _Entry(sub, "file", stat.S_IMODE(est.st_mode) & 0o755, entry.path)

    def sweep(self) -> int:
        """Remove every copy this process has not used (a killed core's, or older); how many
        went."""
        removed = 0
        if not self.home.is_dir():
            return 0
        for child in self.home.iterdir():
            if child.name not in self._used:
                shutil.rmtree(child, ignore_errors=True)
                removed += 1
        return removed


@dataclass(frozen=True)
class _Entry:
    rel: str          # path inside the copy
    kind: str         # "file", "dir" or "link"
    mode: int
    source: str       # the host file or directory; a link's target


def _digest(entries: list[_Entry]) -> str:
    """The copy's name, from everything it holds (names, kinds, modes, bytes, link targets)."""
    h = hashlib.sha256()
    for e in entries:
        h.update(f"{e.rel}\0{e.kind}\0{e.mode:o}\0".encode())
        if e.kind == "link":
            h.update(e.source.encode())
        elif e.kind == "file":
            with open(e.source, "rb") as f:
                h.update(f.read())
        h.update(b"\0")
    return h.hexdigest()[:16]


def _materialise(entries: list[_Entry], root: Path) -> None:
    dirs: list[tuple[Path, int]] = []
    for e in entries:
        dest = root / e.rel
        if e.kind == "dir":
            dest.mkdir()
            dirs.append((dest, e.mode))
        elif e.kind == "link":
            os.symlink(e.source, dest)
        else:
            shutil.copyfile(e.source, dest, follow_symlinks=True)
            os.chmod(dest, e.mode)
    for d, mode in reversed(dirs):      # modes last: a 0555 directory is filled first
        d.chmod(mode)


_view: list[EtcView | None] = [None]


def use(home: Path | None, paths: Iterable[str] = (), system_dirs: Iterable[str] = ()) -> None:
    """Make sandboxes bind one prepared ``/etc`` kept under ``home`` (None: one bind per path,
    as without a core). The core calls this at start; the copies of its last run are removed
    once this run's copy exists (see :meth:`EtcView._renew`)."""
    _view[0] = EtcView(home, paths, system_dirs) if home is not None else None


def prepared() -> Path | None:
    """The current prepared ``/etc`` (None when not in use or it cannot be made)."""
    view = _view[0]
    if view is None:
        return None
    try:
        return view.current()
    except OSError:
        return None            # e.g. a full disk: per-path binds still work
