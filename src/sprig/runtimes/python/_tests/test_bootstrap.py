"""Sprig's Python bootstrap against the real Runtime API server, on every installed Python."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sprig.runtime_api import InitFailedError, Job, OutcomeKind, RuntimeSession
from sprig.runtime_api.frames import FrameConnection
from sprig.runtimes.python import bootstrap_path, compiled_bootstrap

ARN = "arn:aws:lambda:us-east-1:123456789012:function:f:1"

APP = '''
import os
count = 0
def handler(event, context):
    global count
    count += 1
    print("hello from handler %d" % count)
    if isinstance(event, dict) and event.get("fail"):
        raise ValueError("boom")
    if isinstance(event, dict) and "big" in event:
        return "x" * event["big"]
    if isinstance(event, bytes):
        return b"raw:" + event
    if isinstance(event, dict) and event.get("log"):
        import logging
        logging.getLogger().info("via logging %s", event["log"])
    cc = context.client_context
    return {
        "echo": event, "count": count, "rid": context.aws_request_id,
        "arn": context.invoked_function_arn, "remaining": context.get_remaining_time_in_millis(),
        "custom": cc.custom if cc else None, "env": cc.env if cc else None,
        "app_title": cc.client.app_title if cc and cc.client else None,
        "name": context.function_name, "version": context.function_version,
        "memory": context.memory_limit_in_mb, "group": context.log_group_name,
        "stream": context.log_stream_name,
        "identity": context.identity.cognito_identity_id,
    }
'''


def interpreters() -> list[str]:
    """The venv's Python, plus the oldest and newest supported Python 3 and 2.7 if installed."""
    found = [sys.executable]
    for v in ("3.7", "3.13", "2.7"):
        for base in sorted(Path("/root/.pyenv/versions").glob(f"{v}.*")):
            exe = base / "bin" / f"python{v}"
            if exe.exists():
                found.append(str(exe))
    return found


@pytest.fixture(params=["http", "frames"])
async def session(request: pytest.FixtureRequest, tmp_path: Path,
                  ) -> AsyncIterator[RuntimeSession]:
    """Each test runs on both lanes: HTTP over TCP (what the official clients use), and the
    framed lane on the Unix socket (what Sprig starts its Python workers with)."""
    unix = str(tmp_path / "w.sock") if request.param == "frames" else None
    s = await RuntimeSession.open(log=lambda _: None, unix_path=unix)
    yield s
    await s.aclose()


def on_frames(session: RuntimeSession) -> bool:
    """True if the worker is connected on the framed lane (and not on HTTP)."""
    conns = list(session._conns)
    return bool(conns) and all(isinstance(c, FrameConnection) for c in conns)


@pytest.fixture
def code(tmp_path: Path) -> Path:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "app.py").write_text(APP)
    (tmp_path / "syntax.py").write_text("def broken(:\n")
    (tmp_path / "raises.py").write_text("raise KeyError('at import')\n")
    return tmp_path


async def start(session: RuntimeSession, code: Path, handler: str, python: str = sys.executable,
                script: Path | None = None) -> asyncio.subprocess.Process:
    env = {"PATH": os.environ["PATH"], "AWS_LAMBDA_RUNTIME_API": session.address,
           "LAMBDA_TASK_ROOT": str(code), "_HANDLER": handler,
           "AWS_LAMBDA_FUNCTION_NAME": "f", "AWS_LAMBDA_FUNCTION_VERSION": "1",
           "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "16", "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/f",
           "AWS_LAMBDA_LOG_STREAM_NAME": "s"}
    if session.unix_path is not None:     # the framed lane, and no TCP listener it could use
        env.update({"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:1",
                    "SPRIG_RUNTIME_API_SOCKET": session.unix_path,
                    "SPRIG_RUNTIME_API_FRAMES": "1"})
    return await asyncio.create_subprocess_exec(
        python, "-u", str(script or bootstrap_path()), cwd="/", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)


async def finish(proc: asyncio.subprocess.Process) -> str:
    if proc.returncode is None:
        proc.kill()
    out, _ = await proc.communicate()
    return out.decode()


def job(payload: bytes, **kw: object) -> Job:
    return Job.for_payload(payload, function_arn=ARN, timeout_s=30, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("form", ["source", "bytecode"])
@pytest.mark.parametrize("python", interpreters())
async def test_round_trip_state_errors_and_binary(session: RuntimeSession, code: Path,
                                                  python: str, form: str) -> None:
    """Each interpreter runs the bootstrap as source and as the bytecode it compiled itself
    (what workers run: compiled_bootstrap)."""
    script = None
    if form == "bytecode":
        script = compiled_bootstrap(python)
        assert script.suffix == ".pyc" and script.parent == bootstrap_path().parent / "__pycache__"
        assert compiled_bootstrap(python) == script          # made once
    proc = await start(session, code, "pkg.app.handler", python, script)
    try:
        await session.wait_ready(timeout=30)
        cc = {"custom": {"k": "v"}, "env": {"e": 1}, "client": {"app_title": "t"}}
        j = job(b'{"a": [1, "\\u00e9"]}', client_context=cc)
        out = await asyncio.wait_for(session.run(j), 30)
        assert out.kind is OutcomeKind.RESPONSE, out
        assert on_frames(session) == (session.unix_path is not None)
        doc = json.loads(out.body)
        assert doc["echo"] == {"a": [1, "é"]} and doc["count"] == 1
        assert doc["rid"] == j.request_id and doc["arn"] == ARN
        assert 0 < doc["remaining"] <= 30000
        assert (doc["custom"], doc["env"], doc["app_title"]) == ({"k": "v"}, {"e": 1}, "t")
        assert (doc["name"], doc["version"], doc["memory"]) == ("f", "1", "16")
        assert (doc["group"], doc["stream"], doc["identity"]) == ("/aws/lambda/f", "s", None)

        out = await asyncio.wait_for(session.run(job(b'{"log": 1}')), 30)
        assert json.loads(out.body)["count"] == 2          # module state survives
        await asyncio.wait_for(session.run(job(b'{"log": 2}')), 30)

        if "python2" not in python:     # Python 2 cannot tell bytes from str
            out = await asyncio.wait_for(session.run(job(b"\x00\x01", binary=True)), 30)
            assert out.ok and out.body == b"raw:\x00\x01"
            assert out.content_type == "application/octet-stream"

        out = await asyncio.wait_for(session.run(job(b'{"not json')), 30)
        assert out.kind is OutcomeKind.ERROR and out.error_type == "Runtime.UnmarshalError"
        assert "Unable to unmarshal input" in json.loads(out.body)["errorMessage"]

        out = await asyncio.wait_for(session.run(job(b'{"fail": true}')), 30)
        assert out.kind is OutcomeKind.ERROR and out.error_type == "ValueError"
        err = json.loads(out.body)
        assert err["errorMessage"] == "boom"
        assert any("raise ValueError" in line for line in err["stackTrace"])
        assert all("bootstrap.py" not in line for line in err["stackTrace"])
    finally:
        log = await finish(proc)
    assert "hello from handler 1" in log and "[ERROR] ValueError: boom" in log
    assert "via logging 2" in log          # logging imported by the handler gets a handler


@pytest.mark.parametrize(("handler", "error_type"), [
    ("nohandler", "Runtime.MalformedHandlerName"),
    ("missing.handler", "Runtime.ImportModuleError"),
    ("pkg.app.nope", "Runtime.HandlerNotFound"),
    ("syntax.handler", "Runtime.UserCodeSyntaxError"),
    ("raises.handler", "KeyError"),
])
async def test_init_errors(session: RuntimeSession, code: Path, handler: str,
                           error_type: str) -> None:
    proc = await start(session, code, handler)
    try:
        with pytest.raises(InitFailedError) as e:
            await session.wait_ready(timeout=30)
        assert e.value.error.error_type == error_type
        assert await asyncio.wait_for(proc.wait(), 30) == 1
    finally:
        await finish(proc)


async def test_oversize_response_fails_and_exits(session: RuntimeSession, code: Path) -> None:
    proc = await start(session, code, "pkg.app.handler")
    try:
        await session.wait_ready(timeout=30)
        out = await asyncio.wait_for(session.run(job(b'{"big": 6300000}')), 30)
        assert out.kind is OutcomeKind.TOO_LARGE
        assert await asyncio.wait_for(proc.wait(), 30) == 1
    finally:
        await finish(proc)


async def test_small_footprint(session: RuntimeSession, code: Path) -> None:
    """The idle runtime must leave room for user code in a 16 MB cgroup."""
    proc = await start(session, code, "pkg.app.handler")
    try:
        await session.wait_ready(timeout=30)
        status = Path(f"/proc/{proc.pid}/status").read_text()
        fields = dict(ln.split(":", 1) for ln in status.splitlines())
        rss_kb, anon_kb = (int(fields[k].split()[0]) for k in ("VmRSS", "RssAnon"))
        # The bare interpreter is ~9.7 MB RSS (6 MB of it shared library pages): we add ~2 MB.
        assert rss_kb < 12 * 1024 and anon_kb < 6 * 1024, (rss_kb, anon_kb)
    finally:
        await finish(proc)


async def test_unix_socket_transport(tmp_path: Path, code: Path) -> None:
    """With SPRIG_RUNTIME_API_SOCKET alone the runtime speaks HTTP on it and never touches TCP
    (pipelined requests too)."""
    sock = str(tmp_path / "w.sock")
    session = await RuntimeSession.open(log=lambda _: None, unix_path=sock)
    try:
        env = {"PATH": os.environ["PATH"],       # and no AWS_LAMBDA_RUNTIME_API at all
               "SPRIG_RUNTIME_API_SOCKET": sock, "LAMBDA_TASK_ROOT": str(code),
               "_HANDLER": "pkg.app.handler"}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-u", str(bootstrap_path()), env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        try:
            await session.wait_ready(timeout=30)
            for n in (1, 2, 3):
                out = await asyncio.wait_for(session.run(job(b"{}")), 30)
                assert json.loads(out.body)["count"] == n
            assert session._conns and not on_frames(session)
            out = await asyncio.wait_for(session.run(job(b'{"fail": true}')), 30)
            assert out.kind is OutcomeKind.ERROR
            assert (Path(sock).stat().st_mode & 0o777) == 0o600
        finally:
            await finish(proc)
    finally:
        await session.aclose()
    assert not Path(sock).exists()


def test_each_interpreter_gets_its_own_bytecode_and_a_broken_one_the_source(
        tmp_path: Path) -> None:
    """The file is named after the interpreter (path, size, time), so an upgraded or another
    interpreter never runs bytecode it cannot load; one that cannot compile gets the source."""
    link = tmp_path / "python3"
    link.write_text(f"#!/bin/sh\nexec {sys.executable} \"$@\"\n")
    link.chmod(0o755)
    mine = compiled_bootstrap(sys.executable)
    other = compiled_bootstrap(str(link))
    assert other.suffix == ".pyc" and other != mine
    os.utime(link, ns=(1, 1))                      # "upgraded": another name
    assert compiled_bootstrap(str(link)) not in (mine, other)
    # root runs the compiler: an interpreter someone else could change gets the source
    writable = tmp_path / "python-others-can-write"
    writable.write_text(link.read_text())
    writable.chmod(0o777)
    assert compiled_bootstrap(str(writable)) == bootstrap_path()
    if os.geteuid() == 0:
        os.chown(link, 65534, 65534)               # owned by nobody
        os.utime(link, ns=(2, 2))
        assert compiled_bootstrap(str(link)) == bootstrap_path()
    broken = tmp_path / "python-broken"
    broken.write_text("#!/bin/sh\nexit 3\n")
    broken.chmod(0o755)
    assert compiled_bootstrap(str(broken)) == bootstrap_path()
    assert compiled_bootstrap(str(tmp_path / "absent")) == bootstrap_path()
