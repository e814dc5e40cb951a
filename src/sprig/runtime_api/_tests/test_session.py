"""The Runtime API against the real awslambdaric client and against raw HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sprig.runtime_api import (
    InitFailedError,
    Job,
    OutcomeKind,
    RuntimeSession,
    SessionAborted,
    wire,
)

ARN = "arn:aws:lambda:us-east-1:123456789012:function:f:1"

APP = '''
import json
def handler(event, context):
    if isinstance(event, dict) and event.get("fail"):
        raise ValueError("boom")
    if isinstance(event, dict) and event.get("big"):
        return "x" * event["big"]
    cc = context.client_context
    return {
        "echo": event if not isinstance(event, bytes) else event.decode(),
        "bytes": isinstance(event, bytes),
        "rid": context.aws_request_id,
        "arn": context.invoked_function_arn,
        "remaining": context.get_remaining_time_in_millis(),
        "custom": cc.custom if cc else None,
        "name": context.function_name,
    }
'''


@pytest.fixture
async def session() -> AsyncIterator[RuntimeSession]:
    lines: list[str] = []
    s = await RuntimeSession.open(log=lines.append)
    yield s
    await s.aclose()


async def start_ric(session: RuntimeSession, code: Path, handler: str = "app.handler",
                    ) -> asyncio.subprocess.Process:
    env = dict(os.environ, AWS_LAMBDA_RUNTIME_API=session.address, AWS_LAMBDA_FUNCTION_NAME="f",
               AWS_LAMBDA_FUNCTION_VERSION="1", AWS_LAMBDA_FUNCTION_MEMORY_SIZE="128")
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "awslambdaric", handler, cwd=code, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)


@pytest.fixture
def code(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text(APP)
    return tmp_path


async def stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.kill()
    await proc.wait()


async def test_awslambdaric_round_trip(session: RuntimeSession, code: Path) -> None:
    proc = await start_ric(session, code)
    try:
        await session.wait_ready(timeout=30)
        job = Job.for_payload(b'{"a": 1}', function_arn=ARN, timeout_s=30,
                              client_context={"custom": {"k": "v"}})
        out = await asyncio.wait_for(session.run(job), 30)
        assert out.kind is OutcomeKind.RESPONSE, out
        doc = json.loads(out.body)
        assert doc["echo"] == {"a": 1} and doc["bytes"] is False
        assert doc["rid"] == job.request_id and doc["arn"] == ARN
        assert 0 < doc["remaining"] <= 30000
        assert doc["custom"] == {"k": "v"} and doc["name"] == "f"

        binary = Job.for_payload(b"\x00raw", function_arn=ARN, timeout_s=30, binary=True)
        out = await asyncio.wait_for(session.run(binary), 30)
        assert json.loads(out.body)["bytes"] is True

        out = await asyncio.wait_for(
            session.run(Job.for_payload(b'{"fail": true}', function_arn=ARN, timeout_s=30)), 30)
        assert out.kind is OutcomeKind.ERROR and out.error_type == "ValueError"
        err = json.loads(out.body)
        assert err["errorMessage"] == "boom" and err["errorType"] == "ValueError"
        assert isinstance(err["stackTrace"], list) and err["stackTrace"]
        assert session.invocations == 3
    finally:
        await stop(proc)


async def test_awslambdaric_init_error(session: RuntimeSession, code: Path) -> None:
    proc = await start_ric(session, code, handler="nosuchmodule.handler")
    try:
        with pytest.raises(InitFailedError) as e:
            await session.wait_ready(timeout=30)
        assert e.value.error.error_type == "Runtime.ImportModuleError"
        assert await asyncio.wait_for(proc.wait(), 30) == 1
    finally:
        await stop(proc)


async def test_oversize_response_is_413_and_client_exits(session: RuntimeSession,
                                                          code: Path) -> None:
    proc = await start_ric(session, code)
    try:
        await session.wait_ready(timeout=30)
        job = Job.for_payload(b'{"big": 6400000}', function_arn=ARN, timeout_s=30)
        out = await asyncio.wait_for(session.run(job), 30)
        assert out.kind is OutcomeKind.TOO_LARGE
        assert out.error_type == wire.FN_RESPONSE_TOO_LARGE
        assert "6291556 bytes" in json.loads(out.body)["errorMessage"]
        # The Python RIC treats any non-2xx as fatal: the manager must restart it.
        assert await asyncio.wait_for(proc.wait(), 30) != 0
    finally:
        await stop(proc)


# -- raw HTTP: the refusals -------------------------------------------------------------------

class Raw:
    """A tiny keep-alive HTTP/1.1 client over asyncio streams."""

    def __init__(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.r, self.w = r, w

    @classmethod
    async def connect(cls, address: str) -> Raw:
        host, port = address.split(":")
        return cls(*await asyncio.open_connection(host, int(port)))

    def send(self, method: str, path: str, body: bytes = b"", chunked: bool = False,
             headers: dict[str, str] | None = None) -> None:
        head = f"{method} {path} HTTP/1.1\r\nHost: x\r\n"
        for k, v in (headers or {}).items():
            head += f"{k}: {v}\r\n"
        if chunked:
            head += "Transfer-Encoding: chunked\r\n\r\n"
            data = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in (body[:3], body[3:]) if c)
            self.w.write(head.encode() + data + b"0\r\n\r\n")
        else:
            self.w.write(head.encode() + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)

    async def read(self) -> tuple[int, dict[str, str], bytes]:
        status_line = await self.r.readline()
        status = int(status_line.split()[1])
        headers: dict[str, str] = {}
        while (line := await self.r.readline()) != b"\r\n":
            k, _, v = line.decode().partition(":")
            headers[k.strip().lower()] = v.strip()
        body = await self.r.readexactly(int(headers["content-length"]))
        return status, headers, body

    async def call(self, method: str, path: str, body: bytes = b"", **kw: object,
                   ) -> tuple[int, dict[str, str], bytes]:
        self.send(method, path, body, **kw)  # type: ignore[arg-type]
        return await asyncio.wait_for(self.read(), 10)

    def close(self) -> None:
        self.w.close()


P = wire.PREFIX


async def test_protocol_states(session: RuntimeSession) -> None:
    c = await Raw.connect(session.address)
    try:
        st, _, body = await c.call("GET", "/2018-06-01/nope")
        assert st == 404 and json.loads(body)["errorType"]
        # /next parks until a job arrives, and carries every header.
        c.send("GET", f"{P}/invocation/next")
        read = asyncio.ensure_future(c.read())
        await session.wait_ready(timeout=5)
        fut = session.submit(Job.for_payload(b'{"x":1}', function_arn=ARN, timeout_s=5,
                                             client_context={"custom": {"a": 1}}))
        st, h, body = await asyncio.wait_for(read, 5)
        assert st == 200 and body == b'{"x":1}'
        assert h["content-type"] == "application/json"
        rid = h["lambda-runtime-aws-request-id"]
        assert int(h["lambda-runtime-deadline-ms"]) > 0
        assert h["lambda-runtime-invoked-function-arn"] == ARN
        assert json.loads(h["lambda-runtime-client-context"]) == {"custom": {"a": 1}}

        c2 = await Raw.connect(session.address)
        st, _, body = await c2.call("GET", f"{P}/invocation/next")     # while busy
        assert st == 403 and json.loads(body)["errorType"] == "InvalidStateTransition"
        st, _, body = await c2.call("POST", f"{P}/invocation/other-id/response", b"{}")
        assert st == 400 and json.loads(body)["errorType"] == "InvalidRequestID"
        c2.close()
        st, _, body = await c.call("POST", f"{P}/init/error", b"{}")   # after init
        assert st == 403
        # A chunked response body is accepted (after a 100 Continue when asked for one).
        c.send("POST", f"{P}/invocation/{rid}/response", b'{"ok":true}', chunked=True,
               headers={"Expect": "100-continue"})
        assert await asyncio.wait_for(c.r.readline(), 5) == b"HTTP/1.1 100 Continue\r\n"
        assert await asyncio.wait_for(c.r.readline(), 5) == b"\r\n"
        st, _, body = await asyncio.wait_for(c.read(), 5)
        assert st == 202 and json.loads(body) == {"status": "OK"}
        out = await asyncio.wait_for(fut, 5)
        assert out.ok and out.body == b'{"ok":true}'
        # Stale id: already answered.
        st, _, body = await c.call("POST", f"{P}/invocation/{rid}/error", b"{}")
        assert st == 403
        # An error with only the header and a Node-style body.
        c.send("GET", f"{P}/invocation/next")
        read = asyncio.ensure_future(c.read())
        fut = session.submit(Job.for_payload(b"{}", function_arn=ARN, timeout_s=5))
        st, h, _ = await asyncio.wait_for(read, 5)
        rid = h["lambda-runtime-aws-request-id"]
        st, _, _ = await c.call("POST", f"{P}/invocation/{rid}/error",
                                b'{"errorType":"TypeError","errorMessage":"m","trace":["a"]}')
        assert st == 202
        out = await asyncio.wait_for(fut, 5)
        assert out.kind is OutcomeKind.ERROR
        assert json.loads(out.body) == {"errorMessage": "m", "errorType": "TypeError",
                                        "stackTrace": ["a"]}
    finally:
        c.close()


async def test_abort_fails_pending_and_refuses_work(session: RuntimeSession) -> None:
    fut = session.submit(Job.for_payload(b"{}", function_arn=ARN, timeout_s=1))
    session.abort("worker died")
    with pytest.raises(SessionAborted):
        await fut
    with pytest.raises(SessionAborted):
        session.submit(Job.for_payload(b"{}", function_arn=ARN, timeout_s=1))
    with pytest.raises(InitFailedError):
        await session.wait_ready(timeout=1)


async def test_init_error_is_202_and_recorded(session: RuntimeSession) -> None:
    c = await Raw.connect(session.address)
    try:
        st, _, _ = await c.call(
            "POST", f"{P}/init/error", b'{"errorMessage":"bad","errorType":"X","stackTrace":[]}',
            headers={"Lambda-Runtime-Function-Error-Type": "Runtime.HandlerNotFound"})
        assert st == 202
        with pytest.raises(InitFailedError) as e:
            await session.wait_ready(timeout=1)
        assert e.value.error.error_type == "X" and e.value.error.error_message == "bad"
    finally:
        c.close()


async def test_pipelined_answer_and_next(session: RuntimeSession) -> None:
    """A runtime may send its answer and the next /next in one write; answers stay in order."""
    c = await Raw.connect(session.address)
    try:
        c.send("GET", f"{P}/invocation/next")
        fut = session.submit(Job.for_payload(b'{"n":1}', function_arn=ARN, timeout_s=5))
        _, h, _ = await c.read()
        rid = h["lambda-runtime-aws-request-id"]
        body = b'{"r":1}'
        c.w.write(f"POST {P}/invocation/{rid}/response HTTP/1.1\r\nHost: x\r\n"
                  f"Content-Length: {len(body)}\r\n\r\n".encode() + body
                  + f"GET {P}/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert (await asyncio.wait_for(fut, 5)).body == body
        fut2 = session.submit(Job.for_payload(b'{"n":2}', function_arn=ARN, timeout_s=5))
        st, _, reply = await asyncio.wait_for(c.read(), 5)
        assert st == 202 and json.loads(reply) == {"status": "OK"}
        st, h, event = await asyncio.wait_for(c.read(), 5)
        assert st == 200 and event == b'{"n":2}'
        rid2 = h["lambda-runtime-aws-request-id"]
        st, _, _ = await c.call("POST", f"{P}/invocation/{rid2}/response", b"{}")
        assert st == 202 and (await asyncio.wait_for(fut2, 5)).ok
    finally:
        c.close()


async def test_guarded_cap_counts_only_the_workers_own_connections() -> None:
    """Strangers waiting for bind(), or refused after it, never use up the worker's room: the
    worker still gets its connections (up to the cap), and the strangers are closed unread."""
    lines: list[str] = []
    session = await RuntimeSession.open(log=lines.append, guarded=True)
    cap = session.limits.max_connections
    ports: set[int] = set()             # the worker's connections: known before they connect

    async def own() -> Raw:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        ports.add(sock.getsockname()[1])
        sock.setblocking(False)
        host, port = session.address.split(":")
        await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
        return Raw(*await asyncio.open_connection(sock=sock))

    try:
        strangers = [await Raw.connect(session.address) for _ in range(cap + 2)]
        mine = [await own()]
        session.bind(lambda sock: sock.getpeername()[1] in ports)
        for c in strangers:            # judged at bind: closed without a byte of answer
            assert await asyncio.wait_for(c.r.read(), 5) == b""
        mine += [await own() for _ in range(cap - 1)]    # the rest of the worker's room
        for c in mine:                 # every one of them is served
            st, _, _ = await c.call("GET", "/2018-06-01/nope")
            assert st == 404
        extra = await own()            # its own, but over the cap: closed at once
        assert await asyncio.wait_for(extra.r.read(), 5) == b""
        assert [line for line in lines if "the most allowed" in line] == [
            f"Runtime API (TCP): {cap} connections open, the most allowed; closed 1 new "
            "connection(s) at once (1 in all)"]
        for c in [*strangers, *mine, extra]:
            c.close()
    finally:
        await session.aclose()


async def test_submit_with_calls_back_from_the_read_that_brought_the_answer(
        session: RuntimeSession) -> None:
    """The hot path's callback: the outcome arrives synchronously, in the read of the
    worker's answer (no future, no loop iteration more); the next job may be submitted from
    the callback itself; an abort arrives on the next loop iteration; a failing callback is
    reported to the loop and the session goes on."""
    loop = asyncio.get_running_loop()
    reported: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    got: list[object] = []
    c = await Raw.connect(session.address)
    try:
        def first(answer: object) -> None:
            got.append(answer)
            assert asyncio.current_task() is None       # the read's callback, not a task
            session.submit_with(Job.for_payload(b'{"n":2}', function_arn=ARN, timeout_s=5),
                                second)

        def second(answer: object) -> None:
            got.append(answer)
            raise RuntimeError("a callback bug")

        c.send("GET", f"{P}/invocation/next")
        await session.wait_ready(timeout=5)
        session.submit_with(Job.for_payload(b'{"n":1}', function_arn=ARN, timeout_s=5), first)
        _, h, _ = await asyncio.wait_for(c.read(), 5)
        st, _, _ = await c.call("POST", f"{P}/invocation/"
                                f"{h['lambda-runtime-aws-request-id']}/response", b'{"r":1}')
        assert st == 202 and len(got) == 1 and got[0].body == b'{"r":1}'  # type: ignore[attr-defined]
        st, h, event = await c.call("GET", f"{P}/invocation/next")   # submitted by `first`
        assert st == 200 and event == b'{"n":2}'
        st, _, _ = await c.call("POST", f"{P}/invocation/"
                                f"{h['lambda-runtime-aws-request-id']}/response", b'{"r":2}')
        assert st == 202 and len(got) == 2 and reported
        assert "a callback bug" in repr(reported[0].get("exception"))
        # Still serving after the failing callback; then an abort reaches the callback.
        c.send("GET", f"{P}/invocation/next")
        aborted: asyncio.Future[object] = loop.create_future()
        session.submit_with(Job.for_payload(b"{}", function_arn=ARN, timeout_s=5),
                            aborted.set_result)
        await asyncio.wait_for(c.read(), 5)
        session.abort("the worker exited")
        assert not aborted.done()                       # not from inside abort()
        assert isinstance(await asyncio.wait_for(aborted, 5), SessionAborted)
    finally:
        c.close()
