"""cgroup drivers: v1 against this machine's real memory controller, v2 against the real
unified mount (no memory controller here) and against a fake hierarchy for the limit files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sprig.launcher.cgroups import CgroupError, check_name, detect
from sprig.launcher.cgroups.v1 import V1Driver
from sprig.launcher.cgroups.v2 import V2Driver

REAL = Path("/sys/fs/cgroup")
V1_OK = (REAL / "memory" / "memory.limit_in_bytes").exists() and os.access(REAL / "memory",
                                                                            os.W_OK)
UNIFIED = REAL / "unified"
V2_OK = (UNIFIED / "cgroup.procs").exists() and os.access(UNIFIED, os.W_OK)


def sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def name(tag: str) -> str:
    return f"test-{tag}-{os.getpid()}"


@pytest.mark.skipif(not V1_OK, reason="no writable cgroup v1 memory controller")
def test_v1_real_memory_controller() -> None:
    driver = V1Driver(REAL)
    assert "memory" in driver.controllers()
    cg = driver.create(name("v1"), memory_kb=8192, cpus=0.5)
    p = sleeper()
    try:
        mem = cg.memory_dir
        assert mem == REAL / "memory" / "sprig" / name("v1")
        assert (mem / "memory.limit_in_bytes").read_text().strip() == str(8192 * 1024)
        if (mem / "memory.memsw.limit_in_bytes").exists():
            assert (mem / "memory.memsw.limit_in_bytes").read_text().strip() == str(8192 * 1024)
        if cg.cpu_dir is not None:
            assert (cg.cpu_dir / "cpu.cfs_quota_us").read_text().strip() == "50000"
        cg.add(p.pid)
        assert cg.pids() == [p.pid]
        assert not cg.oom_killed()
        peak = cg.memory_peak_kb()
        assert peak is not None and peak >= 0
        # a name in use by a running worker is never shared
        with pytest.raises(CgroupError, match="in use"):
            driver.create(name("v1"))
        cg.kill_all()
        assert cg.pids() == []
        assert p.wait(5) == -signal.SIGKILL
        cg.remove()
        cg.remove()   # twice is fine
        assert not mem.exists()
    finally:
        p.kill()
        p.wait()


@pytest.mark.skipif(not V1_OK, reason="no writable cgroup v1 memory controller")
def test_v1_leftover_is_replaced_and_devices_rule() -> None:
    driver = V1Driver(REAL)
    leftover = driver.create(name("left"), memory_kb=4096)
    again = driver.create(name("left"), memory_kb=8192)   # empty leftover: recreated
    assert again.memory_dir == leftover.memory_dir
    assert (again.memory_dir / "memory.limit_in_bytes").read_text().strip() == str(8192 * 1024)
    again.remove()
    if "devices" not in driver.controllers():
        return
    st = os.stat("/dev/full")
    cg = driver.create(name("dev"), read_only_devices=(("c", os.major(st.st_rdev),
                                                          os.minor(st.st_rdev)),))
    try:
        assert cg.devices_dir is not None
        code = ("import os, errno\ntry: os.close(os.open('/dev/full', os.O_WRONLY)); print('w')\n"
                "except OSError as e: print(errno.errorcode[e.errno])\n"
                "os.close(os.open('/dev/full', os.O_RDONLY)); print('r')")
        procs = str(cg.devices_dir / "cgroup.procs")

        def join() -> None:
            with open(procs, "w") as f:
                f.write(str(os.getpid()))

        out = subprocess.run([sys.executable, "-c", code], preexec_fn=join, capture_output=True,
                             check=True).stdout.split()
        assert out == [b"EPERM", b"r"]
    finally:
        cg.remove()


@pytest.mark.skipif(not V2_OK, reason="no writable cgroup2 mount at /sys/fs/cgroup/unified")
def test_v2_real_unified_mount() -> None:
    """Create, join, list, kill (cgroup.kill) and remove on the real cgroup2 mount."""
    driver = V2Driver(UNIFIED)
    cg = driver.create(name("v2"))
    p = sleeper()
    try:
        cg.add(p.pid)
        assert cg.pids() == [p.pid]
        assert not cg.oom_killed()
        cg.kill_all()
        assert cg.pids() == []
        assert p.wait(5) == -signal.SIGKILL
        cg.remove()
        assert not cg.dir.exists()
        if "memory" not in driver.controllers():
            # here the memory controller is bound to v1: a limit cannot be set, and says so
            with pytest.raises(CgroupError, match=r"memory\.max"):
                driver.create(name("v2mem"), memory_kb=16384)
            assert not (UNIFIED / "sprig" / name("v2mem")).exists()
            print("cgroup v2 here: create/join/list/kill/remove ran for real; the memory limit "
                  f"path did NOT (controllers: {' '.join(driver.controllers()) or 'none'}): "
                  "it runs only on the fake hierarchy (test_v2_fake_hierarchy_limits)")
        else:
            print("cgroup v2 here: create/join/list/kill/remove and the memory limit ran for real")
    finally:
        p.kill()
        p.wait()


def fake_v2(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (root / "cgroup.subtree_control").write_text("")
    (root / "cgroup.procs").write_text("")
    return root


def test_v2_fake_hierarchy_limits(tmp_path: Path) -> None:
    root = fake_v2(tmp_path / "cg")
    driver = V2Driver(root)
    assert driver.version == 2 and driver.controllers() == ("memory", "cpu")
    cg = driver.create("w1", memory_kb=16384, cpus=1.5)
    assert cg.dir == root / "sprig" / "w1"
    assert (root / "cgroup.subtree_control").read_text() == "+memory +cpu"
    assert (root / "sprig" / "cgroup.subtree_control").read_text() == "+memory +cpu"
    assert (cg.dir / "memory.max").read_text() == str(16384 * 1024)
    assert (cg.dir / "cpu.max").read_text() == "150000 100000"
    assert (cg.dir / "memory.oom.group").read_text() == "1"
    assert not cg.oom_killed() and cg.memory_peak_kb() is None
    (cg.dir / "memory.events").write_text("low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\n")
    (cg.dir / "memory.peak").write_text(str(5000 * 1024))
    assert cg.oom_killed() and cg.memory_peak_kb() == 5000
    (cg.dir / "cgroup.procs").write_text("")
    assert cg.join_files() == (cg.dir / "cgroup.procs",)
    with pytest.raises(CgroupError, match="read-only devices"):
        driver.create("w2", read_only_devices=(("c", 1, 7),))


def test_detect_rules(tmp_path: Path) -> None:
    pure = fake_v2(tmp_path / "pure")
    d = detect(pure)
    assert isinstance(d, V2Driver) and d.root == pure

    v1 = tmp_path / "v1"
    (v1 / "memory").mkdir(parents=True)
    (v1 / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712")
    assert isinstance(detect(v1), V1Driver)

    hybrid = tmp_path / "hybrid"   # v1 without memory, v2 with it
    fake_v2(hybrid / "unified")
    d = detect(hybrid)
    assert isinstance(d, V2Driver) and d.root == hybrid / "unified"

    bare = tmp_path / "bare"       # v2 mount but the memory controller is elsewhere
    (bare / "unified").mkdir(parents=True)
    (bare / "unified" / "cgroup.controllers").write_text("cpu io\n")
    assert detect(bare) is None
    assert detect(tmp_path / "nothing") is None


@pytest.mark.skipif(not V1_OK, reason="no writable cgroup v1 memory controller")
def test_detect_this_machine() -> None:
    d = detect()
    assert d is not None and d.version == 1


def test_names_cannot_escape() -> None:
    for bad in ("..", "a/b", "", "x" * 300, "a b"):
        with pytest.raises(ValueError, match="allowed"):
            check_name(bad)
    assert check_name("fn.hello-1_2@3") == "fn.hello-1_2@3"


@pytest.mark.skipif(not V1_OK, reason="no writable cgroup v1 memory controller")
def test_sweep_removes_only_old_empty_cgroups() -> None:
    driver = V1Driver(REAL)
    old, busy, fresh = (driver.create(name(t)) for t in ("old", "busy", "fresh"))
    p = sleeper()
    try:
        busy.add(p.pid)
        past = os.stat(old.memory_dir).st_mtime - 3600
        for cg in (old, busy):
            os.utime(cg.memory_dir, (past, past))
        removed = driver.sweep(older_than_s=600)
        assert old.memory_dir in removed and not old.memory_dir.exists()
        assert busy.memory_dir.exists() and fresh.memory_dir.exists()
    finally:
        p.kill()
        p.wait()
        for cg in (busy, fresh):
            cg.kill_all()
            cg.remove()
