"""Which processes belong to which component: real spawns, real sessions, real cgroups."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from sprig.lambda_params import ContainerMode
from sprig.launcher.process import default_driver, spawn
from sprig.launcher.registry import REGISTRY, Refusals, peer_in
from sprig.launcher.spec import LaunchSpec, ResourceLimits
from sprig.run_as import RunAs

PY = "/usr/bin/python3"
ENV = {"PATH": "/usr/bin:/bin"}

# The child prints its own pid, the pid of a grandchild that left its process group (setpgid),
# and then waits; the grandchild keeps the session, so it still belongs to the tree.
FAMILY = """
import os, signal
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.setpgid(0, 0)
    os.write(w, b"x")
    signal.pause()
    os._exit(0)
os.read(r, 1)
print(os.getpid(), pid, flush=True)
signal.pause()
"""


def plain(owner: str, code: str = FAMILY) -> LaunchSpec:
    return LaunchSpec(argv=(sys.executable, "-c", code), env=dict(ENV), cwd=Path("/"),
                      owner=owner)


async def start(spec: LaunchSpec) -> tuple[object, list[int]]:
    first: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def out(stream: str, line: bytes) -> None:
        if stream == "stdout" and not first.done():
            first.set_result(line.decode())

    proc = await spawn(spec, on_output=out)
    pids = [int(x) for x in (await asyncio.wait_for(first, 30)).split()]
    return proc, pids


async def test_session_membership_survives_a_new_process_group_and_ends_with_the_tree() -> None:
    a, (a_pid, a_grandchild) = await start(plain("CompA"))
    b, (b_pid, _) = await start(plain("CompB"))
    try:
        assert REGISTRY.owner_of(a_pid) == "CompA"
        assert REGISTRY.owner_of(a_grandchild) == "CompA"      # left the group, not the session
        assert REGISTRY.belongs(a_grandchild, "CompA")
        assert not REGISTRY.belongs(b_pid, "CompA")
        assert REGISTRY.owner_of(b_pid) == "CompB"
        assert REGISTRY.owner_of(os.getpid()) is None          # not started by the launcher
        outsider = subprocess.Popen(["sleep", "30"], start_new_session=True)
        try:
            assert REGISTRY.owner_of(outsider.pid) is None
        finally:
            outsider.kill()
            outsider.wait()
    finally:
        await a.aclose(0.5)   # type: ignore[attr-defined]
        await b.aclose(0.5)   # type: ignore[attr-defined]
    assert REGISTRY.owner_of(a_pid) is None
    assert REGISTRY.trees("CompA") == []


async def test_a_connection_is_admitted_only_from_the_tree() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    connect = (f"import signal, socket; s = socket.create_connection(('127.0.0.1', {port}));"
               " print(0, 0, flush=True); signal.pause()")
    mine, _ = await start(plain("Mine", connect))
    theirs, _ = await start(plain("Theirs", connect))
    loop = asyncio.get_running_loop()
    try:
        verdicts = []
        for _ in range(2):
            conn, _ = await loop.run_in_executor(None, server.accept)
            with conn:
                verdicts.append((peer_in(conn, mine)[0],        # type: ignore[arg-type]
                                 REGISTRY.stranger("Mine", conn),
                                 REGISTRY.stranger("Theirs", conn)))
        # exactly one of the two connections is Mine's, and each is its own owner's only
        assert sorted(v[0] for v in verdicts) == [False, True]
        for is_mine, stranger_to_mine, stranger_to_theirs in verdicts:
            assert (stranger_to_mine is None) == is_mine
            assert (stranger_to_theirs is None) == (not is_mine)
            if not is_mine:
                assert stranger_to_mine is not None and "component Theirs" in stranger_to_mine
    finally:
        server.close()
        await mine.aclose(0.5)   # type: ignore[attr-defined]
        await theirs.aclose(0.5)   # type: ignore[attr-defined]


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")
@pytest.mark.skipif(os.geteuid() != 0, reason="run-as switching and cgroups need root")
@pytest.mark.skipif(default_driver() is None, reason="no writable memory cgroup")
async def test_a_sandbox_uid_hides_the_worker_from_processes_of_its_run_as_user() -> None:
    """Inside, the run-as user (``nobody``); on the host, the sandbox uid: another process of
    ``nobody`` cannot read its environment, signal it, or pass as a member of its tree."""
    sandbox_uid = 0x70000000 + 4242
    code = "import os, signal; print(os.getuid(), os.getpid(), flush=True); signal.pause()"
    spec = LaunchSpec(argv=(PY, "-c", code), env=dict(ENV, SECRET="s3cr3t"), cwd=Path("/tmp"),
                      container_mode=ContainerMode.GREENGRASS_CONTAINER,
                      run_as=RunAs("nobody", "nogroup"), limits=ResourceLimits(memory_kb=65536),
                      owner="Boxed", sandbox_uid=sandbox_uid)
    proc, (inside_uid, _) = await start(spec)
    try:
        assert inside_uid == 65534                     # nobody, inside
        host_pids = proc.member_pids()                 # type: ignore[attr-defined]
        worker = [p for p in host_pids if os.stat(f"/proc/{p}").st_uid == sandbox_uid]
        assert worker, "the sandbox runs as the sandbox uid on the host"
        probe = ("import os, signal, sys\n"
                 "pid = int(sys.argv[1])\n"
                 "try:\n    open('/proc/%d/environ' % pid, 'rb').read(); print('read')\n"
                 "except OSError as e: print(type(e).__name__)\n"
                 "try:\n    os.kill(pid, signal.SIGSTOP); print('signalled')\n"
                 "except OSError as e: print(type(e).__name__)\n")
        out = subprocess.run(["runuser", "-u", "nobody", "--", PY, "-c", probe,
                              str(worker[0])], capture_output=True, text=True, timeout=30)
        assert out.stdout.split() == ["PermissionError", "PermissionError"], out
        assert REGISTRY.owner_of(worker[0]) == "Boxed"
    finally:
        await proc.aclose(0.5)   # type: ignore[attr-defined]


def test_refusals_are_logged_at_powers_of_ten() -> None:
    r = Refusals()
    logged = [n for n in (r.count("uid 999") for _ in range(1200)) if n is not None]
    assert logged == [1, 10, 100, 1000]
    assert r.count("uid 1000") == 1
