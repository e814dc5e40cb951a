"""What this device can do for GreengrassContainer, and a clear refusal when it cannot.

:func:`check_device` probes for real (it starts a tiny sandbox as an unprivileged user, the
same way functions are started) rather than trusting kernel config files, because a missing
feature usually shows up only when used (user namespaces disabled by sysctl or AppArmor, a
cgroup hierarchy mounted read-only). :func:`require_container_support` turns the report into
a :class:`SandboxUnavailable` that names what is missing, how to enable it, and that
NoContainer is the alternative — Sprig never runs a containerized function without isolation.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from sprig.errors import SandboxUnavailable
from sprig.launcher import cgroups

NAMESPACES = ("mnt", "pid", "ipc", "uts", "user", "net")
RUNTIMES = ("python3", "node", "java")
KERNEL_MEMORY_PARAMS = "cgroup_enable=memory cgroup_memory=1"


@dataclass(frozen=True)
class DeviceReport:
    """The result of :func:`check_device`."""

    cgroup_version: int | None               # the driver Sprig would use (None: no memory cgroup)
    cgroup_root: str | None
    cgroup_controllers: tuple[str, ...]      # usable by that driver (memory, cpu, devices)
    cgroup_mounts: tuple[str, ...]           # "cgroup2 /sys/fs/cgroup/unified", "cgroup memory ..."
    namespaces: tuple[str, ...]              # kernel namespaces present (/proc/self/ns)
    bwrap_path: str | None
    bwrap_version: str | None
    user_namespaces: bool                    # unprivileged bwrap sandbox started successfully
    sandbox_error: str | None                # why the probe sandbox failed, if it did
    runtimes: dict[str, str] = field(default_factory=dict)   # name → path (`sprig core check`
                                                             # lists Lambda runtimes itself)

    @property
    def memory_limit(self) -> bool:
        return "memory" in self.cgroup_controllers

    def missing(self, need_memory_limit: bool = True) -> list[tuple[str, str]]:
        """(what is missing, how to enable it) for GreengrassContainer on this device."""
        out: list[tuple[str, str]] = []
        if self.bwrap_path is None:
            out.append(("bubblewrap (bwrap)", "apt-get install bubblewrap"))
        for ns in ("mnt", "pid", "ipc", "uts", "user"):
            if ns not in self.namespaces:
                out.append((f"the {ns} namespace",
                            f"a kernel built with CONFIG_{ns.upper()}_NS=y"))
        if self.bwrap_path is not None and not self.user_namespaces:
            out.append(("unprivileged user namespaces"
                        + (f" ({self.sandbox_error})" if self.sandbox_error else ""),
                        "sysctl kernel.unprivileged_userns_clone=1 and "
                        "user.max_user_namespaces>0 (on Ubuntu also "
                        "kernel.apparmor_restrict_unprivileged_userns=0)"))
        if need_memory_limit and not self.memory_limit:
            out.append(("a writable memory cgroup (v1 memory controller or cgroup v2 with the "
                        "memory controller)",
                        f"add `{KERNEL_MEMORY_PARAMS}` to the kernel command line (Raspberry "
                        "Pi: /boot/firmware/cmdline.txt or /boot/cmdline.txt) and reboot, and "
                        "run the core as root"))
        return out

    def format(self) -> str:
        """Human-readable lines for ``sprig core check``."""
        def yn(ok: bool) -> str:
            return "yes" if ok else "NO"

        lines = [
            "cgroups:          " + (
                f"v{self.cgroup_version} at {self.cgroup_root}" if self.cgroup_version
                else "no usable memory cgroup"),
            "  controllers:    " + (", ".join(self.cgroup_controllers) or "none"),
        ]
        lines += [f"  mounted:        {m}" for m in self.cgroup_mounts]
        lines += [
            "namespaces:       " + (", ".join(self.namespaces) or "none"),
            "bubblewrap:       " + (f"{self.bwrap_path} ({self.bwrap_version})"
                                    if self.bwrap_path else "NOT INSTALLED"),
            "user namespaces:  " + yn(self.user_namespaces)
            + (f" ({self.sandbox_error})" if self.sandbox_error else ""),
            "memory limits:    " + yn(self.memory_limit),
        ]
        missing = self.missing()
        lines.append("GreengrassContainer: " + ("supported" if not missing else "NOT supported"))
        lines += [f"  missing: {what} — to enable: {how}" for what, how in missing]
        if missing:
            lines.append("  alternative: deploy functions with containerMode NoContainer")
        lines.append("NoContainer:      supported")
        return "\n".join(lines)


def _cgroup_mounts() -> tuple[str, ...]:
    out: list[str] = []
    try:
        text = Path("/proc/self/mounts").read_text()
    except OSError:
        return ()
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[2] in ("cgroup", "cgroup2"):
            opts = [o for o in parts[3].split(",") if o not in ("rw", "ro", "nosuid", "nodev",
                                                               "noexec", "relatime")]
            ro = " (read-only)" if "ro" in parts[3].split(",") else ""
            if parts[2] == "cgroup":
                label = ",".join(opts)
            else:
                try:
                    ctl = (Path(parts[1]) / "cgroup.controllers").read_text().split()
                except OSError:
                    ctl = []
                label = f"(controllers: {' '.join(ctl) or 'none'})"
            out.append(f"{parts[2]} {parts[1]}{' ' + label if label else ''}{ro}")
    return tuple(out)


def _probe_sandbox(bwrap: str) -> str | None:
    """Start ``bwrap ... true`` as an unprivileged user; None on success, else the error."""
    argv = [bwrap, "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--die-with-parent",
            "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "true"]
    preexec = None
    if os.geteuid() == 0:
        try:
            nobody = pwd.getpwnam("nobody")
        except KeyError:
            nobody = None
        if nobody is not None:
            uid, gid = nobody.pw_uid, nobody.pw_gid

            def preexec() -> None:
                os.setgroups([])
                os.setresgid(gid, gid, gid)
                os.setresuid(uid, uid, uid)
    try:
        r = subprocess.run(argv, capture_output=True, timeout=10, preexec_fn=preexec, cwd="/",
                           check=False)
    except (OSError, subprocess.SubprocessError) as e:
        return str(e)
    if r.returncode != 0:
        return r.stderr.decode(errors="replace").strip() or f"exit code {r.returncode}"
    return None


def check_device(cgroup_root: Path = cgroups.DEFAULT_ROOT) -> DeviceReport:
    """Probe cgroups, namespaces, bubblewrap and runtimes on this device."""
    driver = cgroups.detect(cgroup_root)
    try:
        ns = tuple(n for n in NAMESPACES if os.path.exists(f"/proc/self/ns/{n}"))
    except OSError:
        ns = ()
    bwrap = shutil.which("bwrap")
    version = None
    error: str | None = "bubblewrap is not installed"
    if bwrap:
        try:
            version = subprocess.run([bwrap, "--version"], capture_output=True, timeout=10,
                                     check=False).stdout.decode().strip() or None
        except (OSError, subprocess.SubprocessError):
            version = None
        error = _probe_sandbox(bwrap)
    runtimes = {r: p for r in RUNTIMES if (p := shutil.which(r))}
    return DeviceReport(
        cgroup_version=driver.version if driver else None,
        cgroup_root=str(driver.root) if driver else None,
        cgroup_controllers=driver.controllers() if driver else (),
        cgroup_mounts=_cgroup_mounts(),
        namespaces=ns,
        bwrap_path=bwrap,
        bwrap_version=version,
        user_namespaces=bwrap is not None and error is None,
        sandbox_error=error if bwrap else None,
        runtimes=runtimes,
    )


_cached: list[DeviceReport] = []


def device_report() -> DeviceReport:
    """:func:`check_device` once per process (it starts a probe sandbox, ~10 ms)."""
    if not _cached:
        _cached.append(check_device())
    return _cached[0]


def unavailable_error(report: DeviceReport, need_memory_limit: bool) -> SandboxUnavailable | None:
    """The error for a GreengrassContainer deployment on this device, or None if supported."""
    missing = report.missing(need_memory_limit)
    if not missing:
        return None
    parts = "; ".join(f"{what} (to enable: {how})" for what, how in missing)
    return SandboxUnavailable(
        f"containerMode GreengrassContainer is not supported on this device: missing {parts}. "
        "Alternative: deploy the function with containerMode NoContainer (no isolation, no "
        "memory limit).")


def require_container_support(need_memory_limit: bool = True,
                              report: DeviceReport | None = None,
                              read_only_devices: tuple[str, ...] = ()) -> None:
    """Raise SandboxUnavailable naming what is missing for GreengrassContainer, including the
    cgroup v1 ``devices`` controller when ``read_only_devices`` (paths) must be enforced."""
    report = report or device_report()
    err = unavailable_error(report, need_memory_limit)
    if err is None:
        err = read_only_devices_error(report, read_only_devices)
    if err is not None:
        raise err


def read_only_devices_error(report: DeviceReport,
                            devices: tuple[str, ...]) -> SandboxUnavailable | None:
    """A read-only device (``permission: ro``) is enforced by a cgroup v1 ``devices`` rule
    (bubblewrap can only bind a device node read-write); without that controller (cgroup v2
    hosts) a worker could not start. Said at deployment, not at a worker's first start (an
    on-demand function would otherwise deploy and fail on its first invocation)."""
    if not devices or "devices" in report.cgroup_controllers:
        return None
    version = f"cgroup v{report.cgroup_version}" if report.cgroup_version else "no usable cgroup"
    return SandboxUnavailable(
        f"containerParams.devices: read-only devices ({', '.join(devices)}) need the cgroup v1 "
        f"devices controller, which this device lacks ({version}); allowed here: permission "
        "rw, or containerMode NoContainer")
