"""The HTTP/1.1 layer (sprig.http1) over real loopback connections: strictness, bounds before
buffering, timeouts, pipelining and corking, lingering close, the connection cap."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from sprig.http1 import Connection, ConnectionCap, Limits, Request, Response

WAIT = 10.0


@dataclass
class Recorder:
    """A server for the tests: records what the layer hands over and answers by path.

    ``/park...`` requests are held until the test answers them (as a parked ``/next``);
    ``/refuse`` is refused at the end of its head; everything else is echoed at once.
    """

    limit: int = 1000
    heads: list[Request] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)
    parked: list[tuple[Connection, Request]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    gone: asyncio.Event = field(default_factory=asyncio.Event)     # a connection was lost
    lost: int = 0

    def on_head(self, conn: Connection, head: Request) -> int | Response:
        self.heads.append(head)
        if head.target == "/refuse":
            return Response.text(403, "refused at the head")
        return self.limit

    def on_request(self, conn: Connection, request: Request) -> None:
        self.requests.append(request)
        self.arrived.set()
        if request.refusal is not None:
            conn.send(request.refusal)
        elif request.truncated:
            conn.respond(413, f"too large: {request.size} > {request.limit}".encode())
        elif request.target.startswith("/park"):
            self.parked.append((conn, request))
        else:
            conn.respond(200, json.dumps({"target": request.target, "size": request.size,
                                          "body": request.body.decode("latin-1")}).encode())

    def on_error(self, status: int, reason: str) -> Response:
        self.errors.append((status, reason))
        return Response.text(status, reason)

    def on_lost(self, conn: Connection) -> None:
        self.lost += 1

    def answer_parked(self) -> None:
        conn, request = self.parked.pop(0)
        conn.respond(200, json.dumps({"target": request.target}).encode())


@dataclass
class Served:
    recorder: Recorder
    port: int
    server: asyncio.Server
    cap: ConnectionCap
    logged: list[str]

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port)

    async def exchange(self, data: bytes) -> bytes:
        """Send ``data``, read everything until the server closes."""
        reader, writer = await self.connect()
        try:
            writer.write(data)
            return await asyncio.wait_for(reader.read(), WAIT)
        finally:
            writer.close()


async def serve(limits: Limits, limit: int = 1000) -> Served:
    recorder = Recorder(limit)
    logged: list[str] = []
    cap = ConnectionCap("test", limits.max_connections, logged.append)
    loop = asyncio.get_running_loop()

    def make() -> asyncio.Protocol:
        return cap.protocol(lambda: Connection(recorder, limits))

    def lost(conn: Connection) -> None:
        recorder.lost += 1
        cap.release()
        recorder.gone.set()

    recorder.on_lost = lost  # type: ignore[method-assign]
    server = await loop.create_server(make, "127.0.0.1", 0)
    return Served(recorder, server.sockets[0].getsockname()[1], server, cap, logged)


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    s = await serve(Limits(head_timeout_s=WAIT, body_timeout_s=WAIT))
    yield s
    s.server.close()


def status_of(answer: bytes) -> int:
    return int(answer.split(b"\r\n", 1)[0].split()[1])


GOOD = b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n"
H = b"POST / HTTP/1.1\r\nHost: x\r\n"


@pytest.mark.parametrize(("data", "status", "reason"), [
    (H + b"Content-Length: 3\r\nContent-Length: 5\r\n\r\nabcde", 400, "Duplicate Content-Length"),
    (H + b"Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400, "Duplicate Content-Length"),
    (H + b"Content-Length: +3\r\n\r\nabc", 400, "Invalid character in Content-Length"),
    (H + b"Content-Length: 1_0\r\n\r\n0123456789", 400, "Invalid character in Content-Length"),
    (H + b"Content-Length: 3, 3\r\n\r\nabc", 400, "Invalid character in Content-Length"),
    (H + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 400,
     "Transfer-Encoding can't be present with Content-Length"),
    (H + b"Transfer-Encoding: xchunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 400,
     "invalid `Transfer-Encoding`"),
    (H + b"Transfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 400,
     "Transfer-Encoding 'gzip, chunked' is not supported; allowed: chunked"),
    (H + b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
     400, "a repeated Transfer-Encoding header"),
    (H + b"Expect: 100-continue\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n", 400,
     "a repeated Expect header"),
    (H + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabcXX0\r\n\r\n", 400,
     "Expected LF after chunk data"),
    (H + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\n0\r\n\r\n", 400,
     "Missing expected CR after chunk data"),
    (b"GET / HTTP/1.2\r\nHost: x\r\n\r\n", 400, "Invalid HTTP version"),
    (b"GET / HTTPS/1.1\r\nHost: x\r\n\r\n", 400, "Expected HTTP/"),
    (b"GET /\r\nHost: x\r\n\r\n", 400, "no HTTP version"),
    (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505, "HTTP/2.0 is not supported"),
    (b"GET / HTTP/1.1\r\n\r\n", 400, "0 Host headers"),
    (b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400, "2 Host headers"),
    (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n", 400,
     "not allowed in an HTTP/1.0 request"),
    (b"GET / HTTP/1.1\r\nHost: x\r\nA: b\r\n c\r\n\r\n", 400, "malformed request"),
    (b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400, "Invalid header token"),
    (b"GET / HTTP/1.1\r\nHost: x\x00y\r\n\r\n", 400, "Invalid header value char"),
    (b"GET / HTTP/1.1\nHost: x\n\n", 400, "Expected CRLF"),
    (b"G@T / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "Invalid method"),
    (b"\x00\x01garbage\r\n\r\n", 400, "malformed request"),
    (b"GET / HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\n\r\n", 417, "allowed: 100-continue"),
    (b"CONNECT x:1 HTTP/1.1\r\nHost: x\r\n\r\n", 400, "upgrades"),
    (H + b"Connection: upgrade\r\nUpgrade: h2c\r\nContent-Length: 1\r\n\r\nx", 400, "upgrades"),
])
async def test_what_a_strict_server_refuses(served: Served, data: bytes, status: int,
                                            reason: str) -> None:
    answer = await served.exchange(data)
    assert status_of(answer) == status, answer
    assert b"\r\nConnection: close\r\n" in answer
    assert reason in answer.partition(b"\r\n\r\n")[2].decode(), answer
    assert served.recorder.requests == []          # never handed to the server


async def test_a_well_formed_exchange_and_leading_blank_lines(served: Served) -> None:
    answer = await served.exchange(
        b"\r\n\r\nPOST /a?q=1 HTTP/1.1\r\nHost: x\r\nX-Thing:  v \t\r\nContent-Length: 3\r\n"
        b"\r\nabcPOST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2;ext=1\r\nde\r\n1\r\nf\r\n0\r\nTrailer: t\r\n\r\n"
        b"GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    a, b, c = served.recorder.requests
    assert (a.method, a.target, a.body, a.length) == ("POST", "/a?q=1", b"abc", 3)
    assert a.headers["x-thing"] == "v" and "trailer" not in b.headers
    assert (b.body, b.length, b.size) == (b"def", None, 3)
    assert (c.method, c.body) == ("GET", b"")
    assert answer.count(b"HTTP/1.1 200 OK") == 3 and answer.count(b"Connection: close") == 1


async def test_http10_closes_after_its_answer_unless_kept_alive(served: Served) -> None:
    answer = await served.exchange(b"GET /old HTTP/1.0\r\n\r\n")
    assert status_of(answer) == 200 and b"Connection: close" in answer
    reader, writer = await served.connect()
    try:
        writer.write(b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        first = await asyncio.wait_for(reader.readuntil(b'"/a"'), WAIT)
        assert b"Connection: close" not in first
    finally:
        writer.close()


async def test_an_upgrade_without_body_is_served_as_http11_then_closed(served: Served) -> None:
    answer = await served.exchange(b"GET /up HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, "
                                   b"HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AA\r\n\r\n")
    assert status_of(answer) == 200 and b"Connection: close" in answer


async def test_a_head_over_the_limit_is_431_while_it_is_still_coming(served: Served) -> None:
    reader, writer = await served.connect()
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ")
        for _ in range(70):                       # one endless line, 1 KB at a time
            writer.write(b"a" * 1024)
        answer = await asyncio.wait_for(reader.read(), WAIT)
    finally:
        writer.close()
    assert status_of(answer) == 431 and b"over 65536 bytes" in answer


async def test_too_many_header_fields_is_431(served: Served) -> None:
    many = b"".join(b"X-%d: 1\r\n" % i for i in range(101))
    answer = await served.exchange(b"GET / HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
    assert status_of(answer) == 431 and b"more than 100 header fields" in answer


async def test_a_declared_body_over_the_limit_is_refused_before_it_is_sent(
        served: Served) -> None:
    reader, writer = await served.connect()
    try:
        writer.write(H + b"Content-Length: 5000000\r\n\r\n")      # no body byte sent
        answer = await asyncio.wait_for(reader.read(), WAIT)
    finally:
        writer.close()
    assert status_of(answer) == 413 and answer.endswith(b"too large: 5000000 > 1000")
    (request,) = served.recorder.requests
    assert request.truncated and request.body == b"" and request.size == 5000000


async def test_a_refusal_at_the_head_leaves_the_body_unread_but_not_reset(
        served: Served) -> None:
    """The client sends all of its body before reading: the server drops it while lingering,
    so the client reads the answer, not a connection reset."""
    def client() -> bytes:
        with socket.create_connection(("127.0.0.1", served.port), timeout=WAIT) as s:
            s.sendall(b"POST /refuse HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n"
                      + b"x" * 2_000_000)
            data = b""
            while chunk := s.recv(65536):
                data += chunk
            return data

    answer = await asyncio.to_thread(client)
    assert status_of(answer) == 403 and answer.endswith(b"refused at the head")
    (request,) = served.recorder.requests
    assert request.refusal is not None and request.body == b""


async def test_a_refused_head_without_body_keeps_the_connection(served: Served) -> None:
    answer = await served.exchange(b"GET /refuse HTTP/1.1\r\nHost: x\r\n\r\n" + GOOD.replace(
        b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
    assert status_of(answer) == 403 and answer.count(b"HTTP/1.1 200 OK") == 1


async def test_a_chunked_body_is_cut_off_when_it_passes_the_limit(served: Served) -> None:
    reader, writer = await served.connect()
    try:
        writer.write(H + b"Transfer-Encoding: chunked\r\n\r\n" + b"400\r\n" + b"x" * 1024
                     + b"\r\n")                   # the rest never comes
        answer = await asyncio.wait_for(reader.read(), WAIT)
    finally:
        writer.close()
    assert status_of(answer) == 413
    (request,) = served.recorder.requests
    assert request.truncated and request.length is None and request.size > 1000


@pytest.mark.parametrize(("endless", "status"), [
    (b"1;" + b"e" * 200_000, 400),                     # a chunk-size line that never ends
    (b"0\r\n" + b"T: v\r\n" * 20_000, 400),            # endless trailers
    (b"1\r\nx\r\n" * 40_000 + b"0\r\n\r\n", 200),     # tiny chunks: allowed
])
async def test_chunked_framing_is_bounded_and_linear(endless: bytes, status: int) -> None:
    """Refused once the framing (sizes, extensions, trailers) passes the head limit, at a
    cost linear in the bytes (fed 7 at a time here); many tiny chunks are fine."""
    s = await serve(Limits(head_timeout_s=WAIT, body_timeout_s=WAIT), limit=10_000_000)
    try:
        reader, writer = await s.connect()
        writer.write(H + b"Connection: close\r\nTransfer-Encoding: chunked\r\n\r\n")
        started = time.process_time()
        for i in range(0, len(endless), 7):
            writer.write(endless[i:i + 7])
        answer = await asyncio.wait_for(reader.read(), WAIT)
        spent = time.process_time() - started
        writer.close()
    finally:
        s.server.close()
    assert status_of(answer) == status, answer[:300]
    assert b"chunked framing" in answer if status == 400 else b'"size": 40000' in answer
    assert spent < 3.0, f"{spent:.2f} s of CPU"


async def test_a_head_trickled_byte_by_byte_costs_linear_time(served: Served) -> None:
    """60 KB of one header, one byte per write: parsed once, not rebuilt at every byte."""
    reader, writer = await served.connect()
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    started = time.process_time()
    writer.write(b"GET /slow HTTP/1.1\r\nHost: x\r\nX-Long: ")
    for _ in range(60_000):
        writer.write(b"a")
        if writer.transport.get_write_buffer_size() > 65536:
            await writer.drain()
    writer.write(b"\r\nConnection: close\r\n\r\n")
    answer = await asyncio.wait_for(reader.read(), WAIT)
    spent = time.process_time() - started
    writer.close()
    assert status_of(answer) == 200
    assert len(served.recorder.requests[0].headers["x-long"]) == 60_000
    assert spent < 5.0, f"{spent:.2f} s of CPU"


async def test_timeouts_head_body_and_idle() -> None:
    s = await serve(Limits(head_timeout_s=0.3, body_timeout_s=0.3, idle_timeout_s=0.3))
    try:
        started = time.monotonic()
        half_head = await s.exchange(b"GET / HTTP/1.1\r\nHost: x\r\n")
        half_body = await s.exchange(H + b"Content-Length: 10\r\n\r\nabc")
        idle = await s.exchange(b"")
        kept = await s.exchange(GOOD)             # answered, then idle: closed
        assert time.monotonic() - started < 4 * WAIT
    finally:
        s.server.close()
    assert status_of(half_head) == 408 and half_head.endswith(b"head did not arrive within 0.3 s")
    assert status_of(half_body) == 408 and half_body.endswith(b"body did not arrive within 0.3 s")
    assert idle == b""
    assert status_of(kept) == 200 and b"408" not in kept


async def test_a_connection_that_never_sends_is_closed_after_the_head_timeout() -> None:
    """Not after the (long) keep-alive idle time: silent connections cannot hold the cap."""
    s = await serve(Limits(head_timeout_s=0.3, idle_timeout_s=3600))
    try:
        reader, writer = await s.connect()
        assert await asyncio.wait_for(reader.read(), WAIT) == b""
        writer.close()
    finally:
        s.server.close()


async def test_a_request_waiting_for_its_answer_is_never_idle() -> None:
    s = await serve(Limits(idle_timeout_s=0.2, head_timeout_s=0.2))
    try:
        reader, writer = await s.connect()
        writer.write(b"GET /park HTTP/1.1\r\nHost: x\r\n\r\n")
        await asyncio.wait_for(s.recorder.arrived.wait(), WAIT)
        # Five idle timeouts pass: the connection must stay open (only the absence of a
        # close can be checked, so this waits that long).
        waited = asyncio.ensure_future(reader.read(1))
        done, _ = await asyncio.wait({waited}, timeout=1.0)
        assert not done, "closed while a request was waiting for its answer"
        s.recorder.answer_parked()
        first = await asyncio.wait_for(waited, WAIT) + await asyncio.wait_for(
            reader.readuntil(b'{"target": "/park"}'), WAIT)
        assert first.startswith(b"HTTP/1.1 200 OK")
        writer.close()
    finally:
        s.server.close()


async def test_pipelined_requests_are_read_only_as_answers_go_out(served: Served) -> None:
    reader, writer = await served.connect()
    try:
        writer.write(b"".join(b"GET /park%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(50)))
        await asyncio.wait_for(served.recorder.arrived.wait(), WAIT)
        assert len(served.recorder.requests) == 8         # max_pipelined; the rest waits
        for i in range(50):
            while not served.recorder.parked:
                served.recorder.arrived.clear()
                await asyncio.wait_for(served.recorder.arrived.wait(), WAIT)
            served.recorder.answer_parked()
            got = await asyncio.wait_for(reader.readuntil(b"}"), WAIT)
            assert got.endswith(b'{"target": "/park%d"}' % i)
            assert len(served.recorder.requests) - (i + 1) <= 8
    finally:
        writer.close()


async def test_an_answer_corked_behind_a_parked_request_leaves_with_its_answer(
        served: Served) -> None:
    """/response then /next in one write: the first answer waits for the parked second one's,
    and both leave in one write (what Sprig's runtimes pipeline on every invocation)."""
    reader, writer = await served.connect()
    writes: list[bytes] = []
    try:
        writer.write(b"POST /done HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
                     b"GET /park HTTP/1.1\r\nHost: x\r\n\r\n")
        while not served.recorder.parked:
            served.recorder.arrived.clear()
            await asyncio.wait_for(served.recorder.arrived.wait(), WAIT)
        conn, _ = served.recorder.parked[0]
        transport = conn._transport
        assert transport is not None
        real_write = transport.write
        transport.write = lambda data: (writes.append(bytes(data)),  # type: ignore[method-assign]
                                        real_write(data))[1]
        served.recorder.answer_parked()
        answer = await asyncio.wait_for(reader.readuntil(b'{"target": "/park"}'), WAIT)
    finally:
        writer.close()
    assert answer.count(b"HTTP/1.1 200 OK") == 2
    assert len(writes) == 1 and writes[0] == answer


async def test_100_continue_only_for_a_body_that_will_be_read(served: Served) -> None:
    reader, writer = await served.connect()
    try:
        writer.write(H + b"Content-Length: 2\r\nExpect: 100-continue\r\n\r\n")
        assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT) == \
            b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"ok")
        assert b'"body": "ok"' in await asyncio.wait_for(reader.readuntil(b"}"), WAIT)
        writer.write(H + b"Content-Length: 2000\r\nExpect: 100-continue\r\n\r\n")
        refused = await asyncio.wait_for(reader.read(), WAIT)
        assert refused.startswith(b"HTTP/1.1 413 ")       # no 100 Continue first
    finally:
        writer.close()


async def test_connections_over_the_cap_are_closed_at_once_and_reported_once() -> None:
    s = await serve(Limits(max_connections=3))
    try:
        kept = [await s.connect() for _ in range(3)]
        for reader, writer in kept:          # each is served: the three are all accepted
            writer.write(b"GET /k HTTP/1.1\r\nHost: x\r\n\r\n")
            await asyncio.wait_for(reader.readuntil(b"}"), WAIT)
        for _ in range(20):
            reader, writer = await s.connect()
            writer.write(GOOD)
            try:
                assert await asyncio.wait_for(reader.read(), WAIT) == b""   # closed, unread
            except ConnectionResetError:
                pass
            writer.close()
        assert s.cap.refused == 20 and s.cap.open == 3
        assert len(s.logged) == 1 and "test: 3 connections open, the most allowed" in s.logged[0]
        s.recorder.gone.clear()
        reader, writer = kept.pop()
        writer.close()
        await asyncio.wait_for(s.recorder.gone.wait(), WAIT)   # released when it is lost
        assert s.cap.open == 2
        again = await s.exchange(GOOD.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
        assert status_of(again) == 200
        for _, writer in kept:
            writer.close()
    finally:
        s.server.close()


def test_the_cap_reports_at_most_one_line_per_interval() -> None:
    now = [0.0]
    lines: list[str] = []
    cap = ConnectionCap("l", 1, lines.append, interval_s=60, clock=lambda: now[0])
    assert isinstance(cap.protocol(asyncio.Protocol), asyncio.Protocol) and cap.open == 1
    for t in (1.0, 2.0, 30.0, 61.0, 62.0, 200.0):
        now[0] = t
        cap.protocol(asyncio.Protocol)
    assert cap.refused == 6
    assert [line.split("; ")[1] for line in lines] == [
        "closed 1 new connection(s) at once (1 in all)",
        "closed 3 new connection(s) at once in the last 60 s (4 in all)",
        "closed 2 new connection(s) at once in the last 139 s (6 in all)"]
    now[0] = 210.0
    cap.protocol(asyncio.Protocol)           # within the interval: counted, not reported
    assert len(lines) == 3
    cap.flush()                              # e.g. when the server closes
    assert lines[-1].endswith("closed 1 new connection(s) at once in the last 10 s (7 in all)")
    cap.flush()
    assert len(lines) == 4                   # nothing more to report
    cap.release()
    cap.protocol(asyncio.Protocol)
    assert cap.open == 1


async def test_the_cap_reports_the_count_of_an_interval_once_it_is_over() -> None:
    """A flood that stops within the minute is still counted in the log, a minute later."""
    reported = asyncio.Event()
    lines: list[str] = []

    def log(line: str) -> None:
        lines.append(line)
        if len(lines) == 2:
            reported.set()

    cap = ConnectionCap("l", 0, log, interval_s=0.2)
    for _ in range(5):
        cap.protocol(asyncio.Protocol)
    assert len(lines) == 1
    await asyncio.wait_for(reported.wait(), WAIT)
    assert "closed 4 new connection(s) at once in the last 0 s (5 in all)" in lines[1]
