"""Fixtures for the runtime tests: Runtime API servers and worker processes.

``rapi`` is Sprig's own Runtime API (:class:`sprig.runtime_api.RuntimeSession`, one per worker),
behind a small adapter. ``recorder`` is an aiohttp Runtime API written for these tests that also
keeps the HTTP headers a runtime sends, for the wire-level checks (``test_wire.py``).
Both hand out invocations with the headers the real clients need (client-protocols §0).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import shutil
import socket
import subprocess
import zipfile

import pytest
from aiohttp import web

from sprig.runtime_api import InitFailedError, Job, RuntimeSession
from sprig.runtimes import java

PREFIX = "/2018-06-01/runtime"
JAVA_FIXTURES = Path(__file__).resolve().parent / "fixtures" / "java"
WAIT_S = 30.0


ARN = "arn:aws:lambda:us-east-1:123456789012:function:sample:$LATEST"


@dataclass(frozen=True)
class Outcome:
    """What a worker posted for one invocation (or on /init/error)."""

    kind: str                    # "response", "error" or "init_error"
    body: bytes
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)   # only from the recorder

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class _Pending:
    request_id: str
    payload: bytes
    headers: dict[str, str]
    done: asyncio.Future[Outcome] = field(default_factory=lambda: asyncio.get_running_loop()
                                          .create_future())


class SprigRuntimeApi:
    """Sprig's Runtime API (one :class:`RuntimeSession`, so one worker) with the test interface."""

    def __init__(self, session: RuntimeSession) -> None:
        self.session = session
        self.address = session.address

    async def invoke(self, payload: bytes | Any, *, content_type: str = "application/json",
                     client_context: dict[str, Any] | None = None, timeout_ms: int = 60_000,
                     wait_s: float = WAIT_S) -> Outcome:
        """Run one invocation; ``payload`` is sent as is when it is bytes, else as JSON.

        Sprig's server says ``application/json`` or, for binary jobs, ``application/octet-stream``.
        """
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        job = Job.for_payload(body, function_arn=ARN, timeout_s=timeout_ms / 1000,
                              binary=content_type != "application/json",
                              client_context=client_context)
        out = await asyncio.wait_for(self.session.run(job), wait_s)
        return Outcome(str(out.kind), out.body, out.content_type)

    async def wait_init_error(self, wait_s: float = WAIT_S) -> Outcome:
        with pytest.raises(InitFailedError) as info:
            await self.session.wait_ready(timeout=wait_s)
        return Outcome("init_error", info.value.error.body)


class RecordingRuntimeApi:
    """An in-test Runtime API server on 127.0.0.1 that records the headers it receives."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._by_id: dict[str, _Pending] = {}
        self.init_error: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self.port = 0
        self._runner: web.AppRunner | None = None
        self.peers: list[tuple[str, int]] = []   # client address of every request, in order

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_get(f"{PREFIX}/invocation/next", self._next)
        app.router.add_post(f"{PREFIX}/invocation/{{id}}/response", self._response)
        app.router.add_post(f"{PREFIX}/invocation/{{id}}/error", self._error)
        app.router.add_post(f"{PREFIX}/init/error", self._init_error)
        self._runner = web.AppRunner(app, handle_signals=False, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        sockets = server.sockets  # type: ignore[attr-defined]
        self.port = sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def invoke(self, payload: bytes | Any, *, content_type: str = "application/json",
                     client_context: dict[str, Any] | None = None, timeout_ms: int = 60_000,
                     wait_s: float = WAIT_S) -> Outcome:
        """Queue one invocation and wait for what the worker posts back.

        ``payload`` is sent as is when it is bytes, else as JSON.
        """
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        request_id = str(uuid.uuid4())
        headers = {
            "Content-Type": content_type,
            "Lambda-Runtime-Aws-Request-Id": request_id,
            "Lambda-Runtime-Deadline-Ms": str(int(time.time() * 1000) + timeout_ms),
            "Lambda-Runtime-Invoked-Function-Arn": ARN,
            "Lambda-Runtime-Trace-Id": "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1",
        }
        if client_context is not None:
            headers["Lambda-Runtime-Client-Context"] = json.dumps(client_context)
        pending = _Pending(request_id, body, headers)
        self._by_id[request_id] = pending
        await self._queue.put(pending)
        return await asyncio.wait_for(asyncio.shield(pending.done), wait_s)

    async def wait_init_error(self, wait_s: float = WAIT_S) -> Outcome:
        return await asyncio.wait_for(asyncio.shield(self.init_error), wait_s)

    def _peer(self, request: web.Request) -> None:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if peer is not None:
            self.peers.append((str(peer[0]), int(peer[1])))

    async def _next(self, request: web.Request) -> web.StreamResponse:
        self._peer(request)
        pending = await self._queue.get()
        return web.Response(body=pending.payload, headers=pending.headers)

    def _finish(self, request_id: str, outcome: Outcome) -> web.Response:
        pending = self._by_id.pop(request_id, None)
        if pending is None:
            return web.json_response({"errorType": "InvalidRequestID",
                                      "errorMessage": request_id}, status=400)
        if not pending.done.done():
            pending.done.set_result(outcome)
        return web.json_response({"status": "OK"}, status=202)

    async def _response(self, request: web.Request) -> web.Response:
        self._peer(request)
        body = await request.read()
        return self._finish(request.match_info["id"], Outcome(
            "response", body, request.headers.get("Content-Type", ""), dict(request.headers)))

    async def _error(self, request: web.Request) -> web.Response:
        self._peer(request)
        body = await request.read()
        return self._finish(request.match_info["id"], Outcome(
            "error", body, request.headers.get("Content-Type", ""), dict(request.headers)))

    async def _init_error(self, request: web.Request) -> web.Response:
        self._peer(request)
        body = await request.read()
        if not self.init_error.done():
            self.init_error.set_result(Outcome("init_error", body,
                                               request.headers.get("Content-Type", ""),
                                               dict(request.headers)))
        return web.json_response({"status": "OK"}, status=202)


@pytest.fixture
async def rapi() -> AsyncIterator[SprigRuntimeApi]:
    session = await RuntimeSession.open(log=lambda line: None)
    try:
        yield SprigRuntimeApi(session)
    finally:
        await session.aclose()


@pytest.fixture
async def unix_rapi(tmp_path: Path) -> AsyncIterator[SprigRuntimeApi]:
    """Sprig's Runtime API also listening on a Unix socket; ``address`` is a TCP port where
    nothing listens, so a worker that works at all uses the socket (``unix_env``)."""
    session = await RuntimeSession.open(log=lambda line: None,
                                        unix_path=str(tmp_path / "rapi.sock"))
    api = SprigRuntimeApi(session)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        api.address = f"127.0.0.1:{probe.getsockname()[1]}"
    try:
        yield api
    finally:
        await session.aclose()


@pytest.fixture
def unix_env(unix_rapi: SprigRuntimeApi) -> Any:
    """``unix_env(handler, task_root, **extra)``: the environment for ``unix_rapi``."""
    def make(handler: str, task_root: Path, **extra: str) -> dict[str, str]:
        assert unix_rapi.session.unix_path is not None
        return lambda_env(unix_rapi, handler, task_root,
                          SPRIG_RUNTIME_API_SOCKET=unix_rapi.session.unix_path, **extra)
    return make


@pytest.fixture
async def recorder() -> AsyncIterator[RecordingRuntimeApi]:
    server = RecordingRuntimeApi()
    await server.start()
    try:
        yield server
    finally:
        await server.close()


class Workers:
    """Starts worker processes and makes sure none outlives its test."""

    def __init__(self) -> None:
        self.procs: list[asyncio.subprocess.Process] = []

    async def start(self, argv: Sequence[str], env: Mapping[str, str],
                    cwd: Path) -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            *argv, env=dict(env), cwd=str(cwd),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    async def exit_code(self, proc: asyncio.subprocess.Process, wait_s: float = WAIT_S) -> int:
        return await asyncio.wait_for(proc.wait(), wait_s)

    async def output(self, proc: asyncio.subprocess.Process) -> str:
        """The worker's log (stop it first)."""
        assert proc.stdout is not None
        return (await proc.stdout.read()).decode(errors="replace")

    async def close(self) -> None:
        for proc in self.procs:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()


@pytest.fixture
async def workers() -> AsyncIterator[Workers]:
    w = Workers()
    try:
        yield w
    finally:
        await w.close()


def lambda_env(rapi: SprigRuntimeApi | RecordingRuntimeApi, handler: str, task_root: Path,
               **extra: str) -> dict[str, str]:
    """The environment the Lambda manager gives a worker."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    env.update({
        "AWS_LAMBDA_RUNTIME_API": rapi.address,
        "_HANDLER": handler,
        "LAMBDA_TASK_ROOT": str(task_root),
        "AWS_LAMBDA_FUNCTION_NAME": "sample",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/sample",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2026/11/27/[$LATEST]sprig",
        "AWS_GREENGRASS_LAMBDA_ENCODING_TYPE": "json",
    })
    env.update(extra)
    return env


@pytest.fixture
def make_env(rapi: SprigRuntimeApi) -> Any:
    """``make_env(handler, task_root, **extra)``: :func:`lambda_env` bound to ``rapi``."""
    def make(handler: str, task_root: Path, **extra: str) -> dict[str, str]:
        return lambda_env(rapi, handler, task_root, **extra)
    return make


@pytest.fixture
def recorder_env(recorder: RecordingRuntimeApi) -> Any:
    """``recorder_env(handler, task_root, **extra)``: :func:`lambda_env` bound to ``recorder``."""
    def make(handler: str, task_root: Path, **extra: str) -> dict[str, str]:
        return lambda_env(recorder, handler, task_root, **extra)
    return make


# ---- The sample Java function, compiled once per session -------------------------------------

JAVAC = shutil.which("javac")
JAR = shutil.which("jar")


@dataclass(frozen=True)
class Code:
    runtime_jar: Path
    directory: Path     # classes/ + lib/greeting.jar
    jar: Path           # one jar with the function and its library
    zip: Path           # classes/ + lib/greeting.jar, zipped


def _javac(classpath: str, out: Path, sources: list[Path]) -> None:
    assert JAVAC is not None
    subprocess.run([JAVAC, "--release", "8", "-nowarn", "-cp", classpath, "-d", str(out),
                    *map(str, sources)], check=True, capture_output=True)


@pytest.fixture(scope="session")
def code(tmp_path_factory: pytest.TempPathFactory) -> Code:
    """The runtime jar (built by ensure_runtime_jar into a temporary cache) and the sample
    function in ``fixtures/java`` compiled against it: as a jar made with the ``jar`` tool, as a
    directory with ``classes/`` + ``lib/greeting.jar``, and as a zip with that layout."""
    if JAVAC is None or JAR is None:
        pytest.skip("needs a JDK (javac, jar) on PATH")
    base = tmp_path_factory.mktemp("java")
    runtime_jar = java.ensure_runtime_jar(base / "cache")
    lib_classes = base / "lib-classes"
    _javac("", lib_classes, sorted((JAVA_FIXTURES / "lib-src").rglob("*.java")))
    directory = base / "code-dir"
    (directory / "lib").mkdir(parents=True)
    assert JAR is not None
    subprocess.run([JAR, "cf", str(directory / "lib" / "greeting.jar"), "-C", str(lib_classes),
                    "."], check=True)
    classes = directory / "classes"
    _javac(f"{runtime_jar}:{lib_classes}", classes, sorted((JAVA_FIXTURES / "src").rglob("*.java")))
    fat = base / "function.jar"
    subprocess.run([JAR, "cf", str(fat), "-C", str(classes), ".", "-C", str(lib_classes), "."],
                   check=True)
    package = base / "function.zip"
    with zipfile.ZipFile(package, "w") as zf:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(directory).as_posix())
    return Code(runtime_jar, directory, fat, package)
