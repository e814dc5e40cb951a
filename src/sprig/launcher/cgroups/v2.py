"""cgroup v2 driver: ``<mount>/sprig/<name>`` with memory.max, memory.swap.max=0 and cpu.max.

The ``memory`` and ``cpu`` controllers are enabled in ``cgroup.subtree_control`` of the mount
root and of ``sprig`` (v2 only hands controllers down explicitly). ``memory.oom.group`` is set
so an OOM kills the whole worker rather than one arbitrary process of it, and the ``oom_kill``
counter of ``memory.events`` says whether the limit killed something.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from sprig.launcher.cgroups import (
    PARENT,
    CgroupError,
    check_name,
    kill_pids,
    make_fresh_dir,
    read_int,
    read_int_field,
    read_pids,
    rmdir_retry,
    sweep_dirs,
    write,
)

CPU_PERIOD_US = 100_000


@dataclass(frozen=True)
class V2Cgroup:
    dir: Path

    @property
    def path(self) -> Path:
        return self.dir

    def join_files(self) -> tuple[Path, ...]:
        return (self.dir / "cgroup.procs",)

    def self_join_files(self) -> tuple[Path, ...] | None:
        return None

    def add(self, pid: int) -> None:
        write(self.dir / "cgroup.procs", str(pid))

    def pids(self) -> list[int]:
        return read_pids(self.dir / "cgroup.procs")

    def kill_all(self) -> None:
        kill_file = self.dir / "cgroup.kill"   # kernel 5.14+: atomic, fork-safe
        if kill_file.exists() and self.pids():
            with contextlib.suppress(CgroupError):
                write(kill_file, "1")
        kill_pids(self.dir / "cgroup.procs")

    def oom_killed(self) -> bool:
        return (read_int_field(self.dir / "memory.events", "oom_kill") or 0) > 0

    def memory_peak_kb(self) -> int | None:
        peak = read_int(self.dir / "memory.peak")   # kernel 5.19+
        return None if peak is None else peak // 1024

    def remove(self) -> None:
        rmdir_retry(self.dir)


class V2Driver:
    """Per-worker cgroups in a cgroup2 hierarchy mounted at ``mount``."""

    version = 2

    def __init__(self, mount: Path) -> None:
        self._mount = mount

    @property
    def root(self) -> Path:
        return self._mount

    def available(self) -> tuple[str, ...]:
        try:
            return tuple((self._mount / "cgroup.controllers").read_text().split())
        except OSError:
            return ()

    def controllers(self) -> tuple[str, ...]:
        return tuple(c for c in ("memory", "cpu") if c in self.available())

    def _enable(self, directory: Path, controllers: tuple[str, ...]) -> None:
        ctl = directory / "cgroup.subtree_control"
        try:
            enabled = ctl.read_text().split()
        except OSError:
            enabled = []
        missing = [c for c in controllers if c not in enabled]
        if missing:
            write(ctl, " ".join(f"+{c}" for c in missing))

    def sweep(self, older_than_s: float = 600.0, prefix: str = "") -> list[Path]:
        return sweep_dirs([self._mount / PARENT], older_than_s, prefix)

    def create(self, name: str, memory_kb: int | None = None, cpus: float | None = None,
               *, read_only_devices: tuple[tuple[str, int, int], ...] = ()) -> V2Cgroup:
        check_name(name)
        if read_only_devices:
            # v2 controls devices with eBPF programs only; not implemented (yet).
            raise CgroupError(0, "read-only devices are not supported on cgroup v2 hosts")
        parent = self._mount / PARENT
        wanted = self.controllers()
        try:
            parent.mkdir(exist_ok=True)
            self._enable(self._mount, wanted)
            self._enable(parent, wanted)
            make_fresh_dir(parent / name)
        except CgroupError:
            raise
        except OSError as e:
            raise CgroupError(e.errno, f"cannot create cgroup {parent / name}: {e.strerror}"
                              ) from None
        group = V2Cgroup(parent / name)
        try:
            if memory_kb is not None:
                write(group.dir / "memory.max", str(memory_kb * 1024))
                swap = group.dir / "memory.swap.max"
                if swap.exists():
                    write(swap, "0")
                with contextlib.suppress(CgroupError):
                    write(group.dir / "memory.oom.group", "1")
            if cpus is not None:
                quota = max(1000, int(cpus * CPU_PERIOD_US))
                write(group.dir / "cpu.max", f"{quota} {CPU_PERIOD_US}")
        except OSError:
            group.remove()
            raise
        return group
