"""Per-process cgroups behind one interface, for cgroup v1 and v2 hosts.

Greengrass only supports cgroup v1 and its users' most frequent complaint is containerized
functions failing on v2 hosts; Sprig has one :class:`CgroupDriver` per version and picks one
with :func:`detect`. Each worker gets its own cgroup (Greengrass once shipped a bug where
instances shared one), which gives three things: the memory limit, the CPU limit, and a
reliable list of every process of the worker so killing it leaves nothing behind.

A process joins its cgroup *before* it executes the workload: the child writes its own pid
into every :meth:`Cgroup.join_files` entry between fork and exec (see
:mod:`sprig.launcher.process`), so no allocation can escape the limit.
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path
from typing import Protocol

from sprig.errors import SprigError

DEFAULT_ROOT = Path("/sys/fs/cgroup")
PARENT = "sprig"
_NAME = re.compile(r"^[A-Za-z0-9_.@:+-]{1,200}$")


class Cgroup(Protocol):
    """One worker's cgroup (its directories in every hierarchy the driver uses)."""

    @property
    def path(self) -> Path: ...

    def join_files(self) -> tuple[Path, ...]:
        """The ``cgroup.procs`` files a child writes its pid into before exec."""
        ...

    def self_join_files(self) -> tuple[Path, ...] | None:
        """Files a single-threaded process writes ``0`` into to move *itself* without the
        kernel's global threadgroup lock (cgroup v1 ``tasks``: no RCU grace period, ~0.6 ms
        against ~9 ms for a pid written to ``cgroup.procs``, measured here); None where the
        hierarchy has no such way (cgroup v2: ``cgroup.threads`` stays inside one domain)."""
        ...

    def add(self, pid: int) -> None: ...

    def pids(self) -> list[int]: ...

    def kill_all(self) -> None:
        """SIGKILL every process in the cgroup, until it is empty."""
        ...

    def oom_killed(self) -> bool:
        """True if the kernel's OOM killer killed a process here (the limit was exceeded)."""
        ...

    def memory_peak_kb(self) -> int | None: ...

    def remove(self) -> None:
        """Delete the cgroup (its processes must be gone); safe to call twice."""
        ...


class CgroupDriver(Protocol):
    """Creates per-worker cgroups in one hierarchy."""

    @property
    def version(self) -> int: ...

    @property
    def root(self) -> Path: ...

    def create(self, name: str, memory_kb: int | None = None, cpus: float | None = None,
               *, read_only_devices: tuple[tuple[str, int, int], ...] = ()) -> Cgroup:
        """Create the cgroup ``sprig/<name>`` with its limits.

        ``read_only_devices`` are ``("c"|"b", major, minor)`` whose writes are denied (needs the
        ``devices`` controller, v1 only; see :meth:`controllers`).
        """
        ...

    def controllers(self) -> tuple[str, ...]:
        """Controllers this driver can use (``memory``, ``cpu``, ``devices``)."""
        ...

    def sweep(self, older_than_s: float = 600.0, prefix: str = "") -> list[Path]:
        """Remove empty worker cgroups left by a core that died without cleaning up."""
        ...


class CgroupError(SprigError, OSError):
    """A cgroup file could not be created or written (message names the file); still an
    :class:`OSError`, which is how the launcher's callers catch every failure to set one up."""


def check_name(name: str) -> str:
    """Refuse names that could escape the ``sprig`` directory or that the kernel rejects."""
    if not _NAME.match(name) or name in (".", ".."):
        raise ValueError(
            f"cgroup name {name!r} is not allowed; allowed: 1-200 characters of "
            "letters, digits and _ . @ : + -"
        )
    return name


def write(path: Path, value: str) -> None:
    """Write one value to a cgroup control file, naming the file on failure."""
    try:
        with open(path, "w") as f:
            f.write(value)
    except OSError as e:
        raise CgroupError(e.errno, f"cannot write {value!r} to {path}: {e.strerror}") from None


def read_int_field(path: Path, key: str) -> int | None:
    """Read ``key N`` from a flat-keyed file (memory.events, memory.oom_control)."""
    try:
        text = path.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == key:
            return int(parts[1])
    return None


def read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if not text or text == "max":
        return None
    return int(text)


def read_pids(procs: Path) -> list[int]:
    try:
        return [int(p) for p in procs.read_text().split()]
    except (OSError, ValueError):
        return []


def kill_pids(procs: Path, timeout_s: float = 10.0) -> None:
    """SIGKILL every pid listed in ``procs`` repeatedly until it is empty.

    Repeated because a process may fork between the read and the kill; the kernel removes a
    process from ``cgroup.procs`` when it exits, so an empty file means the tree is gone.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        pids = read_pids(procs)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if time.monotonic() > deadline:
            raise CgroupError(0, f"processes {pids} in {procs} survived SIGKILL")
        time.sleep(0.001)


def rmdir_retry(path: Path, timeout_s: float = 2.0) -> None:
    """Remove a cgroup directory; EBUSY while exiting tasks are still being released."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.005)


def make_fresh_dir(path: Path) -> None:
    """Create a worker's cgroup directory, never sharing one with a running worker.

    An existing directory without processes is a leftover (e.g. of a core killed with -9) and
    is replaced, so its old counters (oom_kill, peak) do not leak into the new worker.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir()
        return
    except FileExistsError:
        pass
    except OSError as e:
        raise CgroupError(e.errno, f"cannot create cgroup {path}: {e.strerror}") from None
    if read_pids(path / "cgroup.procs"):
        raise CgroupError(17, f"cgroup {path} is in use by running processes; allowed: a "
                              "cgroup name no running worker uses")
    try:
        rmdir_retry(path)
        path.mkdir()
    except OSError as e:
        raise CgroupError(e.errno, f"cannot recreate cgroup {path}: {e.strerror}") from None


def sweep_dirs(parents: list[Path], older_than_s: float, prefix: str = "") -> list[Path]:
    """Remove process-less cgroups under ``parents`` not modified for ``older_than_s``.

    Only old ones: a fresh empty cgroup may be one another core is about to join (cores and
    test runs share ``sprig/``); a spawn takes milliseconds, so ten minutes is far on the safe
    side. With ``prefix`` (a core's own cgroups: see ``process.set_cgroup_prefix``) every
    process-less cgroup whose name starts with it goes, whatever its age.
    """
    removed: list[Path] = []
    now = time.time()
    for parent in parents:
        try:
            entries = [p for p in parent.iterdir() if p.is_dir()]
        except OSError:
            continue
        for d in entries:
            try:
                if prefix and not d.name.startswith(prefix):
                    continue
                if now - d.stat().st_mtime < older_than_s or read_pids(d / "cgroup.procs"):
                    continue
                d.rmdir()
                removed.append(d)
            except OSError:
                continue
    return removed


def _v1_memory_usable(mem: Path) -> bool:
    return (mem / "memory.limit_in_bytes").exists() and os.access(mem, os.W_OK)


def _v2_has_memory(mount: Path) -> bool:
    try:
        return "memory" in (mount / "cgroup.controllers").read_text().split()
    except OSError:
        return False


def detect(root: Path = DEFAULT_ROOT) -> CgroupDriver | None:
    """Pick the driver for this host, or None if no usable memory cgroup exists.

    Rule: pure v2 (cgroup2 mounted at ``root``) → v2; a writable v1 memory controller → v1;
    a hybrid host whose v2 mount (``root/unified``) holds the memory controller → v2; else None.
    """
    from sprig.launcher.cgroups.v1 import V1Driver
    from sprig.launcher.cgroups.v2 import V2Driver

    if (root / "cgroup.controllers").exists():
        return V2Driver(root)
    if _v1_memory_usable(root / "memory"):
        return V1Driver(root)
    unified = root / "unified"
    if _v2_has_memory(unified) and os.access(unified, os.W_OK):
        return V2Driver(unified)
    return None
