"""spawn(): real processes — exit codes, signals, output, run-as, tree kills, errors."""

from __future__ import annotations

import asyncio
import os
import select
import signal
import sys
import textwrap
from pathlib import Path

import pytest

from sprig.errors import LaunchError
from sprig.launcher.process import ExitStatus, exit_status, spawn
from sprig.launcher.spec import LaunchSpec, ResourceLimits
from sprig.run_as import RunAs

PY = sys.executable
SYSTEM_PY = "/usr/bin/python3"
ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def spec(code: str, tmp_path: Path, **kw: object) -> LaunchSpec:
    return LaunchSpec(argv=(PY, "-c", textwrap.dedent(code)), env=dict(ENV), cwd=tmp_path,
                      **kw)  # type: ignore[arg-type]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purposes
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_describe() -> None:
    assert ExitStatus(3, None, False).describe() == "exited with code 3"
    assert ExitStatus(None, 9, False).describe() == "killed by signal 9 (SIGKILL)"
    assert (ExitStatus(None, 9, True, 16384).describe()
            == "killed: memory limit of 16384 KB exceeded")
    assert exit_status(-15, sandboxed=False, oom_killed=False, memory_limit_kb=None).signal == 15
    assert exit_status(137, sandboxed=True, oom_killed=False, memory_limit_kb=None).signal == 9
    assert exit_status(137, sandboxed=False, oom_killed=False,
                       memory_limit_kb=None).returncode == 137


async def test_exit_code_and_output(tmp_path: Path) -> None:
    lines: list[tuple[str, bytes]] = []
    p = await spawn(spec("""
        import sys
        print("hello"); print("x" * 70000)
        sys.stderr.write("oops\\n"); sys.stdout.write("tail")
        sys.exit(3)""", tmp_path), on_output=lambda s, line: lines.append((s, line)))
    st = await p.wait()
    assert st == ExitStatus(3, None, False)
    assert p.returncode == 3
    out = [line for s, line in lines if s == "stdout"]
    assert out[0] == b"hello"
    assert b"".join(out[1:3]) == b"x" * 70000 and len(out[1]) == 65536
    assert out[-1] == b"tail"
    assert ("stderr", b"oops") in lines
    assert (await p.aclose()) == st
    assert (await p.aclose()) == st   # twice is fine


async def test_output_taken_returns_once_what_the_pipes_held_reached_on_output(
        tmp_path: Path) -> None:
    lines: list[bytes] = []
    p = await spawn(spec("""
        import sys, time
        sys.stdout.write("12345\\n"); sys.stdout.flush()
        sys.stderr.write("err\\n"); sys.stderr.flush()
        time.sleep(60)""", tmp_path), on_output=lambda _s, line: lines.append(line))
    try:
        pipes = [t.get_extra_info("pipe") for t in p._transports]
        # Block without yielding to the loop until both lines wait in their pipes, unread.
        for pipe in pipes:
            assert select.select([pipe], [], [], 10)[0]
        assert lines == []
        async with asyncio.timeout(10):          # no task: the caller's own await
            await p.output_taken()
        assert sorted(lines) == [b"12345", b"err"]
        async with asyncio.timeout(10):
            await p.output_taken()               # nothing more to take: returns too
    finally:
        await p.aclose(0)


async def test_stdin_cwd_env(tmp_path: Path) -> None:
    lines: list[bytes] = []
    env = dict(ENV, GREETING="hi")
    s = LaunchSpec(argv=(PY, "-c", "import os,sys; print(os.environ['GREETING'], os.getcwd(), "
                         "sys.stdin.read())"), env=env, cwd=tmp_path)
    p = await spawn(s, on_output=lambda _s, line: lines.append(line), stdin=b"payload")
    assert (await p.wait()).returncode == 0
    await p.aclose()
    assert lines == [f"hi {tmp_path} payload".encode()]


async def test_killed_by_signal(tmp_path: Path) -> None:
    p = await spawn(spec("import time; time.sleep(60)", tmp_path))
    p.send_signal(signal.SIGKILL)
    st = await p.wait()
    assert st.signal == signal.SIGKILL and st.returncode is None
    assert st.describe() == "killed by signal 9 (SIGKILL)"
    await p.aclose()


async def test_own_session(tmp_path: Path) -> None:
    lines: list[bytes] = []
    p = await spawn(spec("import os; print(os.getsid(0), os.getpgid(0), os.getpid())", tmp_path),
                    on_output=lambda _s, line: lines.append(line))
    await p.wait()
    await p.aclose()
    sid, pgid, pid = map(int, lines[0].split())
    assert sid == pgid == pid == p.pid


async def test_tree_kill_ignoring_sigterm(tmp_path: Path) -> None:
    """A parent and children that ignore SIGTERM, one in its own session: all die."""
    ready = asyncio.Event()
    pids: list[int] = []

    def out(_s: str, line: bytes) -> None:
        pids.extend(int(x) for x in line.split())
        ready.set()

    p = await spawn(spec("""
        import os, signal, time, subprocess, sys
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        code = "import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
        a = subprocess.Popen([sys.executable, "-c", code])
        b = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
        print(os.getpid(), a.pid, b.pid, flush=True)
        time.sleep(600)""", tmp_path), on_output=out)
    await asyncio.wait_for(ready.wait(), 10)
    assert all(pid_alive(x) for x in pids)
    st = await p.aclose(grace_s=0.3)
    assert st.signal == signal.SIGKILL
    assert not any(pid_alive(x) for x in pids[:2])
    if p.cgroup is not None:   # the setsid grandchild is only reachable through the cgroup
        assert not pid_alive(pids[2])
    else:
        os.kill(pids[2], signal.SIGKILL)


async def test_graceful_sigterm(tmp_path: Path) -> None:
    ready = asyncio.Event()
    lines: list[bytes] = []

    def out(_s: str, line: bytes) -> None:
        lines.append(line)
        ready.set()

    p = await spawn(spec("""
        import os, signal, sys, time
        def bye(*a):
            os.write(1, b"bye\\n"); sys.exit(7)
        signal.signal(signal.SIGTERM, bye)
        print("up", flush=True)
        time.sleep(60)""", tmp_path), on_output=out)
    await asyncio.wait_for(ready.wait(), 10)
    st = await p.aclose(grace_s=10)
    assert st.returncode == 7, lines
    assert lines == [b"up", b"bye"]


async def test_missing_executable(tmp_path: Path) -> None:
    s = LaunchSpec(argv=("no-such-program-xyz",), env=dict(ENV), cwd=tmp_path)
    with pytest.raises(LaunchError, match="no-such-program-xyz"):
        await spawn(s)
    s = LaunchSpec(argv=(str(tmp_path / "nope"),), env=dict(ENV), cwd=tmp_path)
    with pytest.raises(LaunchError, match="not found"):
        await spawn(s)
    s = LaunchSpec(argv=(PY,), env=dict(ENV), cwd=tmp_path / "missing")
    with pytest.raises(LaunchError, match="cwd"):
        await spawn(s)


async def test_unknown_user(tmp_path: Path) -> None:
    with pytest.raises(LaunchError, match="no_such_user_q"):
        await spawn(spec("pass", tmp_path, run_as=RunAs("no_such_user_q")))
    with pytest.raises(LaunchError, match="no_such_group_q"):
        await spawn(spec("pass", tmp_path, run_as=RunAs("nobody", "no_such_group_q")))


IDENTITY = ("import os, json; print(os.getuid(), os.geteuid(), os.getgid(), os.getegid(), "
            "sorted(os.getgroups())); "
            "st = dict(l.split(':', 1) for l in open('/proc/self/status')); "
            "print(json.dumps({k: st[k].split() for k in "
            "('Uid', 'Gid', 'CapPrm', 'CapEff', 'CapAmb')}))")


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
@pytest.mark.parametrize("how", ["setpriv", "preexec"])
async def test_run_as_user_and_group(tmp_path: Path, how: str,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Both ways of dropping to the run-as user leave the same identity: real, effective,
    saved and file-system ids all the user's, no capability left (setpriv lets Popen vfork;
    the preexec_fn is the fallback where setpriv is missing)."""
    import grp
    import pwd

    from sprig.launcher import process
    if how == "preexec":
        monkeypatch.setattr(process, "_setpriv", lambda: None)
    nobody = pwd.getpwnam("nobody")
    group = grp.getgrnam("nogroup")
    lines: list[bytes] = []
    # the venv's interpreter and pytest's tmp_path live under /root, which nobody cannot enter
    s = LaunchSpec(argv=(SYSTEM_PY, "-c", IDENTITY),
                   env=dict(ENV), cwd=Path("/"), run_as=RunAs("nobody", "nogroup"))
    p = await spawn(s,
                    on_output=lambda _s, line: lines.append(line))
    assert (await p.wait()).returncode == 0
    await p.aclose()
    u, eu, g, eg, *_ = lines[0].decode().split(" ", 4)
    assert (int(u), int(eu)) == (nobody.pw_uid, nobody.pw_uid)
    assert (int(g), int(eg)) == (group.gr_gid, group.gr_gid)
    assert "0" not in lines[0].decode().split("[", 1)[1].replace("]", "").split(", ")
    import json
    status = json.loads(lines[1])
    assert status["Uid"] == [str(nobody.pw_uid)] * 4      # real, effective, saved, fs
    assert status["Gid"] == [str(group.gr_gid)] * 4
    assert status["CapPrm"] == status["CapEff"] == status["CapAmb"] == ["0000000000000000"]


@pytest.mark.skipif(os.geteuid() != 0, reason="joining a cgroup needs root")
async def test_a_limited_process_joins_its_cgroup_before_it_runs(tmp_path: Path) -> None:
    """With systemResourceLimits the process is in its memory cgroup from its first
    instruction on (cgroup v1: it moves itself, then becomes the run-as user)."""
    from sprig.launcher.process import default_driver
    if default_driver() is None:
        pytest.skip("no writable memory cgroup on this machine")
    lines: list[bytes] = []
    s = LaunchSpec(argv=(SYSTEM_PY, "-c", "import os; print(os.getuid()); "
                         "print(open('/proc/self/cgroup').read())"),
                   env=dict(ENV), cwd=Path("/"), run_as=RunAs("nobody", "nogroup"),
                   limits=ResourceLimits(memory_kb=65536))
    p = await spawn(s, on_output=lambda _s, line: lines.append(line))
    assert (await p.wait()).returncode == 0
    assert p.cgroup is not None
    name = p.cgroup.path.name
    await p.aclose()
    import pwd
    assert int(lines[0]) == pwd.getpwnam("nobody").pw_uid
    assert any(name in line.decode() for line in lines[1:]), lines


def test_the_self_join_script(tmp_path: Path) -> None:
    """The shell prefix writes 0 to every file, then becomes the command; a write that fails
    stops it with 125 and says why before anything of the command runs."""
    import subprocess

    from sprig.launcher.process import _self_join_argv
    files = (tmp_path / "a" / "tasks", tmp_path / "b" / "tasks")
    for f in files:
        f.parent.mkdir()
        f.write_text("")
    marker = tmp_path / "ran"
    argv = _self_join_argv("/bin/sh", files, ["/bin/touch", str(marker)])
    assert subprocess.run(argv, capture_output=True, timeout=30).returncode == 0
    assert [f.read_text() for f in files] == ["0\n", "0\n"] and marker.exists()
    marker.unlink()
    gone = (tmp_path / "gone" / "tasks", *files)
    r = subprocess.run(_self_join_argv("/bin/sh", gone, ["/bin/touch", str(marker)]),
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 125 and not marker.exists()
    assert f"sprig: cannot join the cgroup {tmp_path / 'gone'}" in r.stderr


async def test_memory_limit_no_container(tmp_path: Path) -> None:
    """systemResourceLimits.memory for a NoContainer process kills an over-allocation."""
    from sprig.launcher.process import default_driver
    if default_driver() is None:
        pytest.skip("no writable memory cgroup on this machine")
    p = await spawn(spec("b = bytearray(64 * 1024 * 1024); b[::4096] = b'x' * (len(b) // 4096)",
                         tmp_path, limits=ResourceLimits(memory_kb=32768)))
    st = await p.wait()
    await p.aclose()
    assert st.oom_killed and st.signal == signal.SIGKILL
    assert st.describe() == "killed: memory limit of 32768 KB exceeded"


async def test_wait_returns_while_a_daemon_holds_stdout(tmp_path: Path) -> None:
    """The leader's exit is seen even though a setsid grandchild keeps the pipe open."""
    lines: list[bytes] = []
    p = await spawn(spec("""
        import subprocess, sys
        d = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                             start_new_session=True)
        print(d.pid, flush=True)""", tmp_path), on_output=lambda _s, line: lines.append(line))
    st = await asyncio.wait_for(p.wait(), 10)
    assert st.returncode == 0
    daemon = int(lines[0])
    try:
        assert pid_alive(daemon)
        await asyncio.wait_for(p.aclose(), 10)
    finally:
        os.kill(daemon, signal.SIGKILL)


async def test_pass_fds(tmp_path: Path) -> None:
    r, w = os.pipe()
    try:
        p = await spawn(spec(f"import os; os.write({w}, b'via fd')", tmp_path), pass_fds=(w,))
        assert (await p.wait()).returncode == 0
        await p.aclose()
        assert os.read(r, 100) == b"via fd"
    finally:
        os.close(r)
        os.close(w)


def test_non_root_core_cannot_switch_user(tmp_path: Path) -> None:
    """A core that is not root refuses another run-as user (checked in a real nobody process)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to become nobody for the check")
    import shutil
    import subprocess
    import tempfile
    # nobody must be able to read the package: the checkout may live in root's private home.
    public = Path(tempfile.mkdtemp(prefix="sprig-src-", dir="/tmp"))
    public.chmod(0o755)
    shutil.copytree(Path(__file__).resolve().parents[2], public / "sprig",
                    ignore=shutil.ignore_patterns("_tests", "__pycache__"))
    for d in [public, *public.rglob("*")]:
        d.chmod(0o755 if d.is_dir() else 0o644)
    src = str(public)
    code = ("from sprig.launcher.users import credentials_for\n"
            "from sprig.run_as import RunAs\n"
            "from sprig.errors import LaunchError\n"
            "assert credentials_for(RunAs('nobody')) is None\n"
            "try:\n    credentials_for(RunAs('root'))\nexcept LaunchError as e:\n    print(e)\n")
    out = subprocess.run([SYSTEM_PY, "-c", code], env={"PYTHONPATH": src}, cwd="/",
                         capture_output=True, check=True, user="nobody", group="nogroup",
                         extra_groups=[]).stdout.decode()
    shutil.rmtree(public, ignore_errors=True)
    assert "cannot run as root because the core runs as 'nobody', not root" in out


async def test_cpu_limit_no_container(tmp_path: Path) -> None:
    """systemResourceLimits.cpus: the process runs in a cpu cgroup with the CFS quota."""
    from sprig.launcher.cgroups.v1 import V1Cgroup
    from sprig.launcher.process import default_driver
    driver = default_driver()
    if driver is None or "cpu" not in driver.controllers():
        pytest.skip("no writable cpu cgroup on this machine")
    lines: list[bytes] = []
    p = await spawn(spec("print(open('/proc/self/cgroup').read().replace(chr(10), ' '))",
                         tmp_path, limits=ResourceLimits(cpus=0.25)),
                    on_output=lambda _s, line: lines.append(line))
    assert p.cgroup is not None
    cg = p.cgroup
    if isinstance(cg, V1Cgroup):
        assert cg.cpu_dir is not None
        assert (cg.cpu_dir / "cpu.cfs_quota_us").read_text().strip() == "25000"
        assert f"cpu:/sprig/{cg.cpu_dir.name}" in (await p.wait() and lines[0].decode())
    else:
        assert (cg.path / "cpu.max").read_text().split()[0] == "25000"
    await p.aclose()


async def test_no_cgroup_without_limits(tmp_path: Path) -> None:
    p = await spawn(spec("pass", tmp_path))
    assert p.cgroup is None
    await p.wait()
    assert p.memory_peak_kb() is None
    await p.aclose()


@pytest.mark.skipif(os.geteuid() != 0, reason="joining a cgroup needs root")
async def test_without_self_join_a_limited_process_joins_in_the_child(tmp_path: Path) -> None:
    """Where a process cannot move itself (cgroup v2: no `tasks`), the pid is written from
    the child between fork and exec, before the user is dropped. A fake v2 hierarchy records
    the write."""
    import pwd

    from sprig.launcher.cgroups._tests.test_cgroups import fake_v2
    from sprig.launcher.cgroups.v2 import V2Cgroup, V2Driver

    class Driver(V2Driver):
        def create(self, name: str, *args: object, **kw: object) -> V2Cgroup:
            cg = super().create(name, *args, **kw)  # type: ignore[arg-type]
            (cg.dir / "cgroup.procs").write_text("")     # the kernel's file, faked
            return cg

    driver = Driver(fake_v2(tmp_path / "cg"))
    lines: list[bytes] = []
    s = LaunchSpec(argv=(SYSTEM_PY, "-c", "import os; print(os.getpid(), os.getuid())"),
                   env=dict(ENV), cwd=Path("/"), run_as=RunAs("nobody", "nogroup"),
                   limits=ResourceLimits(memory_kb=65536))
    p = await spawn(s, on_output=lambda _s, line: lines.append(line), cgroup_driver=driver)
    assert p.cgroup is not None
    procs = p.cgroup.join_files()[0]
    await p.wait()
    joined = procs.read_text()
    procs.write_text("")             # the fake hierarchy never empties by itself
    await p.aclose(0.0)
    pid, uid = (int(x) for x in lines[0].split())
    assert joined == str(pid) and uid == pwd.getpwnam("nobody").pw_uid


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
async def test_root_helpers_never_see_the_loader_variables(tmp_path: Path) -> None:
    """The shell and setpriv run as root before the program: a loader variable of the
    function (here LD_DEBUG_OUTPUT, which makes every dynamically linked program write a
    file) must reach only the program, which runs as the user — else a variable such as
    LD_LIBRARY_PATH naming a directory the function can write would run its code as root.
    The program still gets exactly its environment."""
    import json
    import pwd
    import shutil
    import tempfile

    from sprig.launcher.process import default_driver
    out = Path(tempfile.mkdtemp(prefix="sprig-ld-", dir="/tmp"))   # reachable by nobody
    out.chmod(0o777)
    env = {**ENV, "LD_DEBUG": "files", "LD_DEBUG_OUTPUT": str(out / "ld"),
           "LANG": "C.UTF-8", "LANGUAGE": "../../tmp/x", "SECRET": "s3cr3t",
           "BASH_FUNC_echo%%": "() { touch /tmp/pwned; }"}
    limits = ResourceLimits(memory_kb=65536) if default_driver() is not None else ResourceLimits()
    lines: list[bytes] = []
    s = LaunchSpec(argv=(SYSTEM_PY, "-c", "import os, json; print(json.dumps(dict(os.environ)))"),
                   env=env, cwd=Path("/"), run_as=RunAs("nobody", "nogroup"), limits=limits)
    p = await spawn(s, on_output=lambda _s, line: lines.append(line))
    assert (await p.wait()).returncode == 0, lines
    await p.aclose()
    printed = next(line for line in reversed(lines) if line.startswith(b"{"))
    assert json.loads(printed) == env                    # exactly its environment
    try:
        owners = {f.stat().st_uid for f in out.iterdir()}
    finally:
        shutil.rmtree(out)
    assert owners == {pwd.getpwnam("nobody").pw_uid}     # the program's files, no root's
