"""check_device on this machine, and the refusal messages for devices that lack things."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sprig.errors import SandboxUnavailable
from sprig.launcher.capabilities import (
    DeviceReport,
    check_device,
    require_container_support,
    unavailable_error,
)

FULL = DeviceReport(cgroup_version=2, cgroup_root="/sys/fs/cgroup",
                    cgroup_controllers=("memory", "cpu"), cgroup_mounts=("cgroup2 /sys/fs/cgroup",),
                    namespaces=("mnt", "pid", "ipc", "uts", "user", "net"),
                    bwrap_path="/usr/bin/bwrap", bwrap_version="bubblewrap 0.8.0",
                    user_namespaces=True, sandbox_error=None, runtimes={"python3": "/usr/bin/p"})


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")
def test_this_machine_supports_containers() -> None:
    report = check_device()
    text = report.format()
    print("\n" + text)
    assert report.bwrap_path and report.user_namespaces and report.memory_limit
    assert report.cgroup_version in (1, 2)
    assert "GreengrassContainer: supported" in text
    require_container_support(need_memory_limit=True, report=report)


def test_nothing_missing() -> None:
    assert unavailable_error(FULL, True) is None
    assert "GreengrassContainer: supported" in FULL.format()


def test_missing_bubblewrap_and_memory_cgroup() -> None:
    report = DeviceReport(**{**FULL.__dict__, "bwrap_path": None, "bwrap_version": None,
                             "user_namespaces": False, "cgroup_version": None,
                             "cgroup_root": None, "cgroup_controllers": ()})
    with pytest.raises(SandboxUnavailable) as e:
        require_container_support(need_memory_limit=True, report=report)
    msg = str(e.value)
    assert "bubblewrap (bwrap)" in msg and "apt-get install bubblewrap" in msg
    assert "memory cgroup" in msg and "cgroup_enable=memory cgroup_memory=1" in msg
    assert "NoContainer" in msg
    assert "user namespaces" not in msg   # not reported twice when bwrap is simply absent
    # without a memory limit wanted, only bubblewrap is missing
    err = unavailable_error(report, need_memory_limit=False)
    assert err is not None and "memory cgroup" not in str(err)
    text = report.format()
    assert "NOT supported" in text and "alternative: deploy functions with containerMode " \
        "NoContainer" in text


def test_user_namespaces_disabled() -> None:
    report = DeviceReport(**{**FULL.__dict__, "user_namespaces": False,
                             "sandbox_error": "bwrap: No permissions to creating new namespace"})
    err = unavailable_error(report, True)
    assert err is not None
    assert "unprivileged user namespaces" in str(err)
    assert "kernel.unprivileged_userns_clone=1" in str(err)
    assert "No permissions" in str(err)


def test_fake_cgroup_root_without_memory(tmp_path: Path) -> None:
    report = check_device(cgroup_root=tmp_path)
    assert report.cgroup_version is None and not report.memory_limit
    err = unavailable_error(report, True)
    assert err is not None and "memory cgroup" in str(err)


def test_read_only_devices_need_the_v1_devices_controller_at_deployment() -> None:
    """Said at deployment (issue 13): before, an on-demand function deployed on a cgroup v2 host
    and failed at its first invocation."""
    with pytest.raises(SandboxUnavailable) as e:
        require_container_support(report=FULL, read_only_devices=("/dev/ttyS2",))
    msg = str(e.value)
    assert "/dev/ttyS2" in msg and "cgroup v2" in msg and "devices controller" in msg
    assert "permission rw" in msg and "NoContainer" in msg
    require_container_support(report=FULL)                      # no read-only device: fine
    v1 = DeviceReport(**{**FULL.__dict__, "cgroup_version": 1,
                         "cgroup_controllers": ("memory", "cpu", "devices")})
    require_container_support(report=v1, read_only_devices=("/dev/ttyS2",))
