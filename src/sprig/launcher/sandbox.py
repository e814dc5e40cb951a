"""Preparing a GreengrassContainer sandbox: host probing, checks, addGroupOwner, the argv.

Identity: bwrap is started unprivileged (the child drops to it before exec, after joining its
cgroup). On Debian 12 and Raspberry Pi OS bookworm bwrap is not setuid, so it creates a user
namespace itself. Which host uid it runs as:

* with a **sandbox uid** (``LaunchSpec.sandbox_uid``, what the core gives every container
  function: one uid per component, from a reserved range), bwrap runs as that uid with the
  run-as user's gid and groups, and maps it to the run-as user inside (``--unshare-user --uid
  U --gid G``). The function sees exactly the configured user and group; on the host no other
  process has its uid, so none can read its ``/proc/<pid>/environ`` or memory, trace it,
  signal it or write through ``/proc/<pid>/root`` — not even a NoContainer function or a
  generic component of the same run-as user (the kernel allows all of that between processes
  of one uid, and to the owner of a user namespace). Group permissions (``addGroupOwner``)
  work as before; files it creates in rw volumes belong to the sandbox uid on the host.
* without one, bwrap runs as the run-as user, who keeps its own uid and gid inside.

Running bwrap as root with ``--unshare-user --uid U`` instead would map U to host root: files
the function creates would belong to root and host permission checks would be root's. When the
run-as user *is* root (asked for explicitly), bwrap runs privileged without a user namespace
and drops all capabilities. None of this needs a setuid bit or configuration beyond what those
distributions ship (unprivileged user namespaces enabled).
"""

from __future__ import annotations

import functools
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from sprig.errors import LaunchError, SandboxUnavailable
from sprig.launcher import access, etc_view
from sprig.launcher.bubblewrap import ETC_PATHS, SYSTEM_DIRS, HostView, build_argv
from sprig.launcher.spec import LaunchSpec, Mount
from sprig.launcher.users import Credentials

# Devices every sandbox has in bubblewrap's minimal /dev; they are not "declared devices".
DeviceRule = tuple[str, int, int]   # ("c" | "b", major, minor)

INSTALL_BWRAP = ("install bubblewrap (Debian/Raspberry Pi OS: `apt-get install bubblewrap`)"
                 "; or deploy the function with containerMode NoContainer")


@dataclass(frozen=True)
class SandboxPlan:
    """What spawn needs to start a sandbox: the argv and the devices to make read-only."""

    argv: list[str]
    read_only_devices: tuple[DeviceRule, ...]


def bwrap_path() -> str:
    """The bubblewrap executable, or SandboxUnavailable naming the package."""
    found = _which(os.environ.get("PATH", os.defpath))
    if found is None:
        raise SandboxUnavailable(f"GreengrassContainer needs bubblewrap (bwrap), which is "
                                 f"not installed: {INSTALL_BWRAP}")
    return found


@functools.lru_cache(maxsize=4)
def _which(search_path: str) -> str | None:
    """bwrap on ``search_path``, looked up once per PATH (8 stats per sandbox otherwise); if it
    is removed later, its start fails with the launcher's error."""
    return shutil.which("bwrap", path=search_path)


def _under(path: str, prefixes: tuple[str, ...]) -> bool:
    return any(path == p or path.startswith(p.rstrip("/") + "/") for p in prefixes)


def runtime_prefixes(exe: str) -> tuple[str, ...]:
    """Installation directories of ``exe`` outside the system directories.

    For ``/root/.pyenv/versions/3.11.7/bin/python3.11`` that is the version directory; for a
    venv's ``.../.venv/bin/python`` (a symlink to such an interpreter) both the venv and the
    interpreter's prefix, since Python reads ``pyvenv.cfg`` next to the link and its stdlib
    from the real prefix. A binary not in a ``bin`` directory contributes its directory.
    """
    out: list[str] = []
    for p in (os.path.abspath(exe), os.path.realpath(exe)):
        if _under(p, SYSTEM_DIRS):
            continue
        parent = os.path.dirname(p)
        prefix = os.path.dirname(parent) if os.path.basename(parent) == "bin" else parent
        if prefix not in out and prefix != "/":
            out.append(prefix)
    return tuple(out)


@functools.cache
def _system_view() -> tuple[tuple[tuple[str, str], ...], tuple[str, ...], tuple[str, ...]]:
    links: list[tuple[str, str]] = []
    dirs: list[str] = []
    for d in SYSTEM_DIRS:
        if os.path.islink(d):
            links.append((d, os.readlink(d)))
        elif os.path.isdir(d):
            dirs.append(d)
    etc = tuple(p for p in ETC_PATHS if os.path.exists(p))
    return tuple(links), tuple(dirs), etc


def probe_host(exe: str, listed: tuple[str, ...] = ()) -> HostView:
    """What of the host the sandbox binds for an executable ``exe`` (a host path).

    An ``exe`` inside a ``listed`` path (the spec's own binds, e.g. a ``provided`` function's
    bootstrap in its code directory) adds no prefix: guessing one there could widen the view
    into Sprig's root beyond what the spec lists.
    """
    links, dirs, etc = _system_view()
    prefixes = () if _under(os.path.abspath(exe), listed) else runtime_prefixes(exe)
    prepared = etc_view.prepared()
    return HostView(symlinks=links, system_dirs=dirs, etc=etc, runtime_prefixes=prefixes,
                    etc_dir=str(prepared) if prepared is not None else None)


def _check_source(field: str, m: Mount) -> None:
    if not m.source.is_absolute() or not m.destination.is_absolute():
        raise LaunchError(f"{field}: paths must be absolute (got source {str(m.source)!r}, "
                          f"destination {str(m.destination)!r})")
    if not m.source.exists():
        raise LaunchError(f"{field}: source path {str(m.source)!r} does not exist on this "
                          "device; allowed: an existing file or directory")
    if _under(str(m.destination), ("/proc",)):
        raise LaunchError(f"{field}: destination {str(m.destination)!r} is not allowed; "
                          "allowed: any absolute path outside /proc")


def device_rule(field: str, path: Path) -> DeviceRule:
    """``("c"|"b", major, minor)`` of a device node, or LaunchError naming the field."""
    if not str(path).startswith("/dev/"):
        raise LaunchError(f"{field}: device path {str(path)!r} is not allowed; allowed: a "
                          "device under /dev")
    try:
        st = os.stat(path)
    except OSError:
        raise LaunchError(f"{field}: device {str(path)!r} does not exist on this device"
                          ) from None
    if stat.S_ISCHR(st.st_mode):
        kind = "c"
    elif stat.S_ISBLK(st.st_mode):
        kind = "b"
    else:
        raise LaunchError(f"{field}: {str(path)!r} is not a character or block device")
    return kind, os.major(st.st_rdev), os.minor(st.st_rdev)


def add_group_owner(m: Mount, gid: int) -> None:
    """``addGroupOwner``: give the run-as group ownership of the source, g+r (g+rw if rw).

    Directories also get g+x so the group can enter them. Only the source itself changes,
    as Greengrass does, not its contents.
    """
    st = os.stat(m.source)
    os.chown(m.source, -1, gid)
    mode = stat.S_IRGRP | (stat.S_IWGRP if m.writable else 0)
    if stat.S_ISDIR(st.st_mode):
        mode |= stat.S_IXGRP
    os.chmod(m.source, stat.S_IMODE(st.st_mode) | mode)


def _check_access(spec: LaunchSpec, exe: str, creds: Credentials) -> None:
    """Every bind source must be reachable by the run-as user, who starts bwrap."""
    who = creds.user
    checks: list[tuple[str, Path, bool]] = [("argv[0]", Path(exe), False), ("cwd", spec.cwd, False)]
    checks += [(f"read_only_paths[{i}]", p, False) for i, p in enumerate(spec.read_only_paths)]
    checks += [(f"writable_paths[{i}]", p, True) for i, p in enumerate(spec.writable_paths)]
    checks += [(f"volumes[{i}].sourcePath", m.source, m.writable)
               for i, m in enumerate(spec.volumes)]
    checks += [(f"devices[{i}].path", m.source, m.writable) for i, m in enumerate(spec.devices)]
    for field_name, path, write in checks:
        why = access.blocker(path, creds, write=write)
        if why is not None:
            raise LaunchError(
                f"{field_name}: {str(path)!r} is not accessible to the run-as user {who}: {why}; "
                "allowed: a path that user can reach (fix its permissions, or set "
                "addGroupOwner on a volume or device)")


def prepare(spec: LaunchSpec, exe: str, creds: Credentials | None,
            inside: Credentials | None = None) -> SandboxPlan:
    """Check the spec against the host, apply addGroupOwner and build the bwrap argv.

    ``exe`` is ``argv[0]`` resolved on the host; ``creds`` the identity bwrap runs as on the
    host (None: the core's own); ``inside`` the run-as identity the function sees, when it
    differs from ``creds`` (a sandbox uid: see :attr:`LaunchSpec.sandbox_uid`).
    """
    bwrap = bwrap_path()
    for i, p in enumerate(spec.read_only_paths):
        if not p.exists():
            raise LaunchError(f"read_only_paths[{i}]: {str(p)!r} does not exist")
    for i, p in enumerate(spec.writable_paths):
        if not p.exists():
            raise LaunchError(f"writable_paths[{i}]: {str(p)!r} does not exist")
    for i, m in enumerate(spec.volumes):
        _check_source(f"volumes[{i}]", m)
        if _under(str(m.source), ("/sys",)):
            raise LaunchError(f"volumes[{i}].sourcePath: {str(m.source)!r} is not allowed; "
                              "allowed: a path outside /sys (use mountROSysfs for /sys)")
    visible = (*map(str, spec.read_only_paths), *map(str, spec.writable_paths),
               *map(str, spec.ephemeral_paths),
               *(str(m.destination) for m in spec.volumes), *SYSTEM_DIRS)
    if str(spec.cwd) not in ("/", "/tmp") and not _under(str(spec.cwd), visible):
        raise LaunchError(f"cwd: {str(spec.cwd)!r} would not exist inside the container; "
                          "allowed: /tmp or a path under read_only_paths, writable_paths or a "
                          "volume destination")
    ro_devices: list[DeviceRule] = []
    for i, m in enumerate(spec.devices):
        _check_source(f"devices[{i}]", m)
        rule = device_rule(f"devices[{i}].path", m.source)
        if not m.writable:
            ro_devices.append(rule)
    gid = creds.gid if creds else os.getegid()
    for m in (*spec.volumes, *spec.devices):
        if m.add_group_owner:
            add_group_owner(m, gid)
    if creds is not None:
        _check_access(spec, exe, creds)
    listed = tuple(str(p) for p in (*spec.read_only_paths, *spec.writable_paths))
    user_map = None
    if inside is not None and creds is not None and inside.uid != creds.uid:
        user_map = (inside.uid, inside.gid)
    argv = build_argv(spec, probe_host(exe, listed), bwrap=bwrap, argv=(exe, *spec.argv[1:]),
                      user_map=user_map)
    return SandboxPlan(argv, tuple(ro_devices))
