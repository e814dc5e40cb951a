"""cgroup v1 driver: ``<root>/memory/sprig/<name>`` plus ``<root>/cpu/sprig/<name>`` if present.

Memory: ``memory.limit_in_bytes`` and, when swap accounting exists, the same value in
``memory.memsw.limit_in_bytes`` so a worker cannot dodge its limit by swapping. OOM kills are
counted by the ``oom_kill`` line of ``memory.oom_control`` (kernel 4.13+); older kernels fall
back to ``memory.failcnt`` being non-zero with ``under_oom``.
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

CFS_PERIOD_US = 100_000


@dataclass(frozen=True)
class V1Cgroup:
    memory_dir: Path
    cpu_dir: Path | None
    devices_dir: Path | None = None

    @property
    def path(self) -> Path:
        return self.memory_dir

    def _dirs(self) -> list[Path]:
        return [d for d in (self.memory_dir, self.cpu_dir, self.devices_dir) if d is not None]

    def join_files(self) -> tuple[Path, ...]:
        return tuple(d / "cgroup.procs" for d in self._dirs())

    def self_join_files(self) -> tuple[Path, ...] | None:
        return tuple(d / "tasks" for d in self._dirs())

    def add(self, pid: int) -> None:
        for f in self.join_files():
            write(f, str(pid))

    def pids(self) -> list[int]:
        return read_pids(self.memory_dir / "cgroup.procs")

    def kill_all(self) -> None:
        kill_pids(self.memory_dir / "cgroup.procs")

    def oom_killed(self) -> bool:
        ctl = self.memory_dir / "memory.oom_control"
        kills = read_int_field(ctl, "oom_kill")
        if kills is not None:
            return kills > 0
        # Kernels before 4.13 have no oom_kill counter: a hit limit plus an OOM state is the
        # best evidence available.
        return (read_int(self.memory_dir / "memory.failcnt") or 0) > 0 and bool(
            read_int_field(ctl, "under_oom"))

    def memory_peak_kb(self) -> int | None:
        peak = read_int(self.memory_dir / "memory.max_usage_in_bytes")
        return None if peak is None else peak // 1024

    def remove(self) -> None:
        for d in self._dirs():
            rmdir_retry(d)


class V1Driver:
    """Per-worker cgroups on a cgroup v1 host (memory required, cpu optional)."""

    version = 1

    def __init__(self, root: Path) -> None:
        self._root = root
        self._memory = root / "memory" / PARENT
        cpu_mount = root / "cpu"
        self._cpu = cpu_mount / PARENT if (cpu_mount / "cpu.cfs_quota_us").exists() else None
        dev_mount = root / "devices"
        self._devices = dev_mount / PARENT if (dev_mount / "devices.deny").exists() else None

    @property
    def root(self) -> Path:
        return self._root

    def controllers(self) -> tuple[str, ...]:
        return ("memory",) + (("cpu",) if self._cpu else ()) + (
            ("devices",) if self._devices else ())

    def sweep(self, older_than_s: float = 600.0, prefix: str = "") -> list[Path]:
        parents = [d for d in (self._memory, self._cpu, self._devices) if d is not None]
        return sweep_dirs(parents, older_than_s, prefix)

    def create(self, name: str, memory_kb: int | None = None, cpus: float | None = None,
               *, read_only_devices: tuple[tuple[str, int, int], ...] = ()) -> V1Cgroup:
        check_name(name)
        mem = self._memory / name
        make_fresh_dir(mem)
        cpu_dir: Path | None = None
        dev_dir: Path | None = None
        try:
            if read_only_devices:
                if self._devices is None:
                    raise CgroupError(0, "read-only devices need the cgroup v1 devices "
                                         "controller, which is not mounted")
                dev_dir = self._devices / name
                make_fresh_dir(dev_dir)
                for kind, major, minor in read_only_devices:
                    write(dev_dir / "devices.deny", f"{kind} {major}:{minor} w")
            if memory_kb is not None:
                limit = str(memory_kb * 1024)
                write(mem / "memory.limit_in_bytes", limit)
                memsw = mem / "memory.memsw.limit_in_bytes"
                if memsw.exists():
                    write(memsw, limit)
                else:
                    with contextlib.suppress(CgroupError):
                        write(mem / "memory.swappiness", "0")
            # Only the hierarchies that carry a limit are joined: each join is a cgroup
            # migration that waits for an RCU grace period (milliseconds) on v1.
            if self._cpu is not None and cpus is not None:
                cpu_dir = self._cpu / name
                make_fresh_dir(cpu_dir)
                write(cpu_dir / "cpu.cfs_period_us", str(CFS_PERIOD_US))
                write(cpu_dir / "cpu.cfs_quota_us", str(max(1000, int(cpus * CFS_PERIOD_US))))
        except OSError:
            V1Cgroup(mem, cpu_dir, dev_dir).remove()
            raise
        return V1Cgroup(mem, cpu_dir, dev_dir)
