"""The framed lane of the Runtime API, spoken by a raw socket as a hostile worker would.

Whatever the lane refuses is logged and ends the connection without an answer; nothing a
worker sends makes the core read a body over the limit or answer a job to anyone but the worker
that holds it. (The real bootstrap on this lane: runtimes/python/_tests/test_bootstrap.py.)
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sprig.runtime_api import Job, OutcomeKind, RuntimeSession, SessionState, wire
from sprig.runtime_api.frames import FRAME_HEAD, PREFACE, encode
from sprig.runtime_api.session import _Gate

ARN = "arn:aws:lambda:us-east-1:123456789012:function:f:1"
WAIT_S = 10


class Worker:
    """A raw client of the framed lane (blocking calls run in a thread)."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.sock.settimeout(WAIT_S)
        self.buf = b""

    async def send(self, data: bytes) -> None:
        await asyncio.to_thread(self.sock.sendall, data)

    async def _take(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = await asyncio.to_thread(self.sock.recv, 65536)
            if not chunk:
                raise EOFError
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    async def job(self) -> tuple[dict[str, str], bytes]:
        kind, head_len, body_len = FRAME_HEAD.unpack(await self._take(FRAME_HEAD.size))
        assert kind == b"J"
        return json.loads(await self._take(head_len)), await self._take(body_len)

    async def closed(self) -> bool:
        """True once the core closed the connection (after anything still in flight)."""
        try:
            while True:
                if not await asyncio.to_thread(self.sock.recv, 65536):
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
async def lane(tmp_path: Path) -> AsyncIterator[tuple[RuntimeSession, list[str], str]]:
    lines: list[str] = []
    path = str(tmp_path / "w.sock")
    s = await RuntimeSession.open(log=lines.append, unix_path=path, max_response_bytes=1000)
    yield s, lines, path
    await s.aclose()


def job(payload: bytes = b'{"a": 1}') -> Job:
    return Job.for_payload(payload, function_arn=ARN, timeout_s=30,
                           client_context={"custom": {"k": "v\nw"}})


async def ready(session: RuntimeSession, path: str) -> Worker:
    w = Worker(path)
    await w.send(PREFACE + encode(b"N", {}))
    await session.wait_ready(timeout=WAIT_S)
    return w


async def test_a_round_trip_carries_what_next_would(
        lane: tuple[RuntimeSession, list[str], str]) -> None:
    session, lines, path = lane
    w = await ready(session, path)
    try:
        j = job()
        fut = session.submit(j)
        headers, body = await w.job()
        assert body == b'{"a": 1}'
        assert headers["lambda-runtime-aws-request-id"] == j.request_id
        assert headers["lambda-runtime-invoked-function-arn"] == ARN
        assert headers["content-type"] == wire.CT_JSON
        assert int(headers["lambda-runtime-deadline-ms"]) == j.deadline_ms
        # a value with a newline crosses intact (a header block would need escaping)
        assert json.loads(headers["lambda-runtime-client-context"]) == {"custom": {"k": "v\nw"}}
        # the answer, one byte per write: the lane reassembles frames
        frame = encode(b"R", {"id": j.request_id, "type": "text/plain"}, b"done")
        for i in range(len(frame)):
            await w.send(frame[i:i + 1])
        out = await asyncio.wait_for(fut, WAIT_S)
        assert (out.kind, out.body, out.content_type) == (OutcomeKind.RESPONSE, b"done",
                                                          "text/plain")
        # an error answer, and the next job, the worker parked implicitly after answering
        j2 = job()
        fut = session.submit(j2)
        headers, _ = await w.job()
        await w.send(encode(b"E", {"id": j2.request_id},
                            b'{"errorType": "ValueError", "errorMessage": "boom"}'))
        out = await asyncio.wait_for(fut, WAIT_S)
        assert out.kind is OutcomeKind.ERROR and out.error_type == "ValueError"
        assert session.state is SessionState.IDLE and not lines
    finally:
        w.close()


@pytest.mark.parametrize(("data", "logged"), [
    (b"\x00sprig-frames/9\n", "not a frame preface"),
    (PREFACE + encode(b"X", {}), "unknown frame kind"),
    (PREFACE + encode(b"N", {"a": 1}), "not a JSON object of strings"),       # type: ignore
    (PREFACE + FRAME_HEAD.pack(b"N", 2, 0) + b"[]", "not a JSON object of strings"),
    (PREFACE + FRAME_HEAD.pack(b"N", 2**31, 0), "frame header of 2147483648 bytes is over"),
    (PREFACE + FRAME_HEAD.pack(b"N", 2, 2**31) + b"{}", "frame body of 2147483648 bytes"),
    (PREFACE + encode(b"N", {}) + encode(b"N", {}), "State transition from IDLE"),
    (PREFACE + encode(b"R", {"type": "x"}), "without a request id"),
    (PREFACE + encode(b"N", {}) + encode(b"R", {"id": "not-it"}, b"x"), "Invalid request ID"),
    # an error document over the limit is refused (not read), never taken for a response
    (PREFACE + encode(b"N", {}) + FRAME_HEAD.pack(b"E", 2, 5000) + b"{}",
     "an error of 5000 bytes is over the 1000 bytes allowed"),
], ids=["preface", "kind", "header-values", "header-list", "header-size", "body-size",
        "second-next", "no-id", "unknown-id", "error-size"])
async def test_what_the_lane_refuses_is_logged_and_closes_the_connection(
        lane: tuple[RuntimeSession, list[str], str], data: bytes, logged: str) -> None:
    _session, lines, path = lane
    w = Worker(path)
    try:
        await w.send(data)
        assert await asyncio.wait_for(w.closed(), WAIT_S)
        assert any(logged in line for line in lines), lines
    finally:
        w.close()


async def test_a_body_over_the_limit_is_never_read_and_ends_as_too_large(
        lane: tuple[RuntimeSession, list[str], str]) -> None:
    session, _lines, path = lane
    w = await ready(session, path)
    try:
        j = job()
        fut = session.submit(j)
        await w.job()
        head = json.dumps({"id": j.request_id}).encode()
        # declared 10 MB; only the frame's head is sent: the core must not wait for the body
        await w.send(FRAME_HEAD.pack(b"R", len(head), 10_000_000) + head)
        out = await asyncio.wait_for(fut, WAIT_S)
        assert out.kind is OutcomeKind.TOO_LARGE
        assert out.error_type == wire.FN_RESPONSE_TOO_LARGE
        assert await asyncio.wait_for(w.closed(), WAIT_S)
    finally:
        w.close()


async def test_init_error_is_recorded(lane: tuple[RuntimeSession, list[str], str]) -> None:
    session, _lines, path = lane
    w = Worker(path)
    try:
        await w.send(PREFACE + encode(b"I", {"errorType": "Runtime.ImportModuleError"},
                                      b'{"errorMessage": "no module"}'))
        with pytest.raises(Exception, match="no module"):
            await session.wait_ready(timeout=WAIT_S)
        assert session.init_error is not None
        assert session.init_error.error_type == "Runtime.ImportModuleError"
    finally:
        w.close()


async def test_http_on_the_same_socket_still_works(
        lane: tuple[RuntimeSession, list[str], str]) -> None:
    """The first byte chooses the lane: the official clients' HTTP is unchanged there."""
    session, _, path = lane
    w = Worker(path)
    try:
        await w.send(f"GET {wire.PATH_NEXT} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        await session.wait_ready(timeout=WAIT_S)
        fut = session.submit(job(b'{"h": 1}'))
        reply = b""
        while b'{"h": 1}' not in reply:
            reply += await asyncio.to_thread(w.sock.recv, 65536)
        assert reply.startswith(b"HTTP/1.1 200 ")
        assert not fut.done()
    finally:
        w.close()


NEXT_HTTP = b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: w\r\n\r\n"


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
@pytest.mark.parametrize("first", [PREFACE + encode(b"N", {}), NEXT_HTTP],
                         ids=["frames", "http"])
def test_what_a_worker_says_before_it_is_known_waits_for_it(
        tmp_path: Path, loop: str, first: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker may connect and ask for its first job before the core knows its pid (bind).
    Nothing it sent is parsed before then, and nothing is lost: on uvloop, which reads a new
    connection even when the protocol paused it in connection_made, those bytes were dropped
    and every worker that spoke early waited for a job forever."""
    uvloop = pytest.importorskip("uvloop")   # a test dependency (pyproject): never skips here
    at_gate = asyncio.Event()                # the connection waits for bind()
    read_early = asyncio.Event()             # ... and (uvloop) its bytes were read there
    admit, received = _Gate.connection_made, _Gate.data_received

    def connection_made(gate: _Gate, transport: asyncio.BaseTransport) -> None:
        admit(gate, transport)
        at_gate.set()

    def data_received(gate: _Gate, data: bytes) -> None:
        received(gate, data)
        read_early.set()

    monkeypatch.setattr(_Gate, "connection_made", connection_made)
    monkeypatch.setattr(_Gate, "data_received", data_received)

    async def main() -> None:
        path = str(tmp_path / "w.sock")
        lines: list[str] = []
        session = await RuntimeSession.open(log=lines.append, unix_path=path, guarded=True,
                                            tcp=False)
        w = Worker(path)
        try:
            await w.send(first)
            await asyncio.wait_for(at_gate.wait(), WAIT_S)
            if loop == "uvloop":             # asyncio reads nothing before bind()
                await asyncio.wait_for(read_early.wait(), WAIT_S)
            assert session._waiting, "the connection is not waiting for bind()"
            assert not session._conns, "served before its peer was known"
            session.bind(lambda sock: True)
            await session.wait_ready(timeout=WAIT_S)
            j = job()
            session.submit(j)
            if first == NEXT_HTTP:
                head = await w._take(12)
                assert head == b"HTTP/1.1 200"
            else:
                headers, body = await w.job()
                assert headers["lambda-runtime-aws-request-id"] == j.request_id
                assert body == b'{"a": 1}'
            assert not lines
        finally:
            w.close()
            await session.aclose()

    (uvloop.run if loop == "uvloop" else asyncio.run)(main())
