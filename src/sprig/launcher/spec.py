"""What to launch: a value object the launcher turns into a running process.

The Lambda manager and the generic-component supervisor both describe processes with a
:class:`LaunchSpec`; :mod:`sprig.launcher.process` starts it, plainly (NoContainer) or inside a
bubblewrap sandbox with a per-process cgroup (GreengrassContainer).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sprig.lambda_params import ContainerMode
from sprig.run_as import RunAs


@dataclass(frozen=True)
class Mount:
    """A host path made visible inside a container (a volume or a device)."""

    source: Path
    destination: Path
    writable: bool = False
    add_group_owner: bool = False


@dataclass(frozen=True)
class ResourceLimits:
    """``systemResourceLimits`` (NoContainer / generic) or the container memory size."""

    memory_kb: int | None = None
    cpus: float | None = None


@dataclass(frozen=True)
class LaunchSpec:
    """Everything needed to start one process.

    ``read_only_paths`` are host paths the process needs to see read-only inside a container
    (the function code, the runtime bootstrap); they are mounted at the same path unless listed
    in ``mounts`` with another destination. ``cgroup_name`` names the per-process cgroup
    (one per worker) used for the memory limit and for killing the whole tree.
    """

    argv: tuple[str, ...]
    env: dict[str, str]
    cwd: Path
    run_as: RunAs | None = None          # None: the core's own user
    container_mode: ContainerMode = ContainerMode.NO_CONTAINER
    limits: ResourceLimits = field(default_factory=ResourceLimits)
    read_only_paths: tuple[Path, ...] = ()
    writable_paths: tuple[Path, ...] = ()
    volumes: tuple[Mount, ...] = ()
    devices: tuple[Mount, ...] = ()
    mount_ro_sysfs: bool = False
    cgroup_name: str | None = None
    #: The component the process belongs to: registered so the core's listeners can tell its
    #: processes from any other (see :mod:`sprig.launcher.registry`).
    owner: str | None = None
    #: GreengrassContainer only: the host uid the sandbox runs as. Inside, the process is still
    #: ``run_as`` (a user namespace maps one to the other), so files, names and groups look the
    #: same to the function; on the host no other process shares its uid, so none can read,
    #: trace or signal it (see :mod:`sprig.launcher.sandbox`).
    sandbox_uid: int | None = None
    #: GreengrassContainer only: with a size (KB), /tmp and every path of ``ephemeral_paths``
    #: are private tmpfs mounts of at most that size each, instead of /tmp bounded only by the
    #: memory limit and host directories bound writable: the function cannot fill the disk.
    ephemeral_storage_kb: int | None = None
    ephemeral_paths: tuple[Path, ...] = ()
