"""Fixtures for the runtime tests: a small Runtime API server and worker processes.

The server is a faithful-enough Runtime API (2018-06-01) written on aiohttp for these tests: it
hands out queued invocations on ``/next`` with the headers the real clients need (client-protocols
§0), and records what comes back on ``/response``, ``/error`` and ``/init/error``.
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

import pytest
from aiohttp import web

PREFIX = "/2018-06-01/runtime"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
WAIT_S = 30.0


@dataclass(frozen=True)
class Outcome:
    """What a worker posted for one invocation."""

    kind: str                    # "response" or "error"
    body: bytes
    headers: Mapping[str, str]

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


class RuntimeApi:
    """An in-test Runtime API server on 127.0.0.1 (one worker at a time)."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._by_id: dict[str, _Pending] = {}
        self.init_error: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self.port = 0
        self._runner: web.AppRunner | None = None

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
            "Lambda-Runtime-Invoked-Function-Arn":
                "arn:aws:lambda:us-east-1:123456789012:function:sample:$LATEST",
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

    async def _next(self, request: web.Request) -> web.StreamResponse:
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
        body = await request.read()
        return self._finish(request.match_info["id"], Outcome("response", body,
                                                              dict(request.headers)))

    async def _error(self, request: web.Request) -> web.Response:
        body = await request.read()
        return self._finish(request.match_info["id"], Outcome("error", body,
                                                              dict(request.headers)))

    async def _init_error(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not self.init_error.done():
            self.init_error.set_result(Outcome("init_error", body, dict(request.headers)))
        return web.json_response({"status": "OK"}, status=202)


@pytest.fixture
async def rapi() -> AsyncIterator[RuntimeApi]:
    server = RuntimeApi()
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


def lambda_env(rapi: RuntimeApi, handler: str, task_root: Path, **extra: str) -> dict[str, str]:
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
def make_env(rapi: RuntimeApi) -> Any:
    """``make_env(handler, task_root, **extra)``: :func:`lambda_env` bound to this test's server."""
    def make(handler: str, task_root: Path, **extra: str) -> dict[str, str]:
        return lambda_env(rapi, handler, task_root, **extra)
    return make
