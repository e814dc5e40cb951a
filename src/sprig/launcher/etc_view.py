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
content and never change; one still bound by a running sandbox is kept until the core
restarts (sandboxes die with the core).
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
        self.home.mkdir(parents=True, exist_ok=True)
        self.home.chmod(0o755)
        tmp = Path(tempfile.mkdtemp(prefix=".etc-", dir=self.home))
        try:
            tmp.chmod(0o755)
            for path in self.paths:
                self._copy_top(path, tmp / os.path.basename(path))
            target = self.home / _content_digest(tmp)
            if target.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                try:
                    tmp.rename(target)
                except OSError:          # made by another thread or core meanwhile
                    shutil.rmtree(tmp, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._current, self._quick, self._dirs, self._full = target, quick, dirs, full
        self._full_at = time.monotonic()
        return target

    def _copy_top(self, path: str, dest: Path) -> None:
        try:
            st = os.lstat(path)
        except OSError:
            return
        if stat.S_ISLNK(st.st_mode):
            real = os.path.realpath(path)
            if any(real == d or real.startswith(d + "/") for d in self.system_dirs):
                os.symlink(real, dest)       # e.g. localtime -> /usr/share/zoneinfo/...
                return
            try:
                st = os.stat(real)
            except OSError:
                return                       # a dangling link shows nothing
            path = real
        if stat.S_ISDIR(st.st_mode):
            self._copy_tree(path, dest, st)
        elif stat.S_ISREG(st.st_mode) and _others_can_read(st):
            _copy_file(path, dest, st)

    def _copy_tree(self, src: str, dest: Path, st: os.stat_result) -> None:
        if not _others_can_read(st):
            return
        dest.mkdir()
        for entry in os.scandir(src):
            try:
                est = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            target = dest / entry.name
            if stat.S_ISLNK(est.st_mode):
                os.symlink(os.readlink(entry.path), target)
            elif stat.S_ISDIR(est.st_mode):
                self._copy_tree(entry.path, target, est)
            elif stat.S_ISREG(est.st_mode) and _others_can_read(est):
                _copy_file(entry.path, target, est)
        dest.chmod(stat.S_IMODE(st.st_mode) & 0o755)

    def sweep(self) -> int:
        """Remove every copy but the current one (at core start: no sandbox is left); how
        many went."""
        keep = self._current.name if self._current is not None else None
        removed = 0
        if not self.home.is_dir():
            return 0
        for child in self.home.iterdir():
            if child.name != keep:
                shutil.rmtree(child, ignore_errors=True)
                removed += 1
        return removed


def _copy_file(src: str, dest: Path, st: os.stat_result) -> None:
    shutil.copyfile(src, dest, follow_symlinks=True)
    os.chmod(dest, stat.S_IMODE(st.st_mode) & 0o755)


def _content_digest(root: Path) -> str:
    """A name for a copy from its whole content (names, kinds, modes, bytes, link targets)."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted((*dirnames, *filenames)):
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            h.update(f"{os.path.relpath(p, root)}\0{st.st_mode:o}\0".encode())
            if stat.S_ISLNK(st.st_mode):
                h.update(os.readlink(p).encode())
            elif stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    h.update(f.read())
            h.update(b"\0")
    return h.hexdigest()[:16]


_view: list[EtcView | None] = [None]


def use(home: Path | None, paths: Iterable[str] = (), system_dirs: Iterable[str] = ()) -> None:
    """Make sandboxes bind one prepared ``/etc`` kept under ``home`` (None: one bind per path,
    as without a core). The core calls this at start, then sweeps the copies of its last run."""
    _view[0] = EtcView(home, paths, system_dirs) if home is not None else None
    if home is not None:
        with contextlib.suppress(OSError):
            _view[0].sweep()  # type: ignore[union-attr]


def prepared() -> Path | None:
    """The current prepared ``/etc`` (None when not in use or it cannot be made)."""
    view = _view[0]
    if view is None:
        return None
    try:
        return view.current()
    except OSError:
        return None            # e.g. a full disk: per-path binds still work
