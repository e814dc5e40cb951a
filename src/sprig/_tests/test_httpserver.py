"""The shared HTTP server, driven by real clients: http.client, urllib and raw sockets."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import socket
import stat
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from sprig.httpserver import (
    Deferred,
    HttpRequest,
    HttpServer,
    Limits,
    Response,
    Router,
    StreamResponse,
)

WAIT = 10.0


class App:
    """A few routes whose handlers the tests can hold up and watch."""

    def __init__(self) -> None:
        self.router = Router()
        self.router.add("GET", "/echo/(?P<name>[^/]+)", self.echo)
        self.router.add("POST", "/echo/(?P<name>[^/]+)", self.echo)
        self.router.add("POST", "/slow", self.slow)
        self.router.add("GET", "/fail", self.fail)
        self.router.add("GET", "/stream", self.stream)
        self.router.add("GET", "/quick/(?P<how>[a-z]+)", self.awaited, quick=self.quick)
        self.release = asyncio.Event()
        self.entered = asyncio.Event()
        self.stream_closed = asyncio.Event()
        self.order: list[str] = []
        self.tasks_seen: list[asyncio.Task[Any] | None] = []
        self.later: asyncio.Future[str] | None = None
        self.deferred_started = asyncio.Event()

    def quick(self, request: HttpRequest) -> Response | Deferred[Response] | None:
        """``now``: answered at once; ``later``: when the test resolves :attr:`later`;
        ``boom``: raises; ``badanswer``: its answer raises; anything else: awaited."""
        how = request.params["how"]
        self.tasks_seen.append(asyncio.current_task())
        if how == "now":
            self.order.append("now")
            return Response.text(200, "quick now")
        if how == "later":
            self.later = asyncio.get_running_loop().create_future()
            self.deferred_started.set()

            def answer(future: asyncio.Future[Any]) -> Response:
                self.order.append("later")
                return Response.text(200, f"quick later: {future.result()}")

            return Deferred(self.later, answer)
        if how == "boom":
            raise RuntimeError("quick handler bug")
        if how == "badanswer":
            done = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return Deferred(done, lambda future: 1 / 0)
        return None

    async def awaited(self, request: HttpRequest) -> Response:
        self.order.append("awaited")
        return Response.text(200, f"awaited {request.params['how']}")

    async def echo(self, request: HttpRequest) -> Response:
        self.order.append(request.params["name"])
        return Response.json({
            "name": request.params["name"], "method": request.method, "path": request.path,
            "query": request.query, "raw_query": request.query_string,
            "x_thing": request.headers.get("X-THING"), "all": request.headers.getall("x-rep"),
            "body": request.body.decode(), "size": request.size,
        })

    async def slow(self, request: HttpRequest) -> Response:
        self.entered.set()
        await self.release.wait()
        return Response.text(200, "slow done")

    async def fail(self, request: HttpRequest) -> Response:
        raise RuntimeError("handler bug")

    async def stream(self, request: HttpRequest) -> StreamResponse:
        count = int(request.query.get("n", "-1"))

        async def lines() -> AsyncIterator[bytes]:
            try:
                i = 0
                while i != count:
                    yield json.dumps({"i": i}).encode() + b"\n"
                    i += 1
                    if i == 3:
                        self.entered.set()
                        await self.release.wait()
            finally:
                self.stream_closed.set()

        return StreamResponse(lines(), content_type="application/x-ndjson")


@pytest.fixture
async def served() -> AsyncIterator[tuple[App, HttpServer, int]]:
    app = App()
    server = HttpServer(app.router, max_body=1000, name="test")
    port = await server.listen_tcp("127.0.0.1", 0)
    try:
        yield app, server, port
    finally:
        app.release.set()
        await server.aclose(grace_s=2)


def request(port: int, method: str, path: str, body: bytes | Iterator[bytes] | None = None,
            headers: dict[str, str] | None = None,
            conn: http.client.HTTPConnection | None = None) -> tuple[int, dict[str, str], bytes]:
    own = conn is None
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
    try:
        c.request(method, path, body, headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        if own:
            c.close()


async def raw(port: int, data: bytes, *, until_eof: bool = True) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        if until_eof:
            return await asyncio.wait_for(reader.read(), WAIT)
        return await asyncio.wait_for(reader.read(65536), WAIT)
    finally:
        writer.close()


async def test_routes_params_query_and_case_insensitive_headers(
        served: tuple[App, HttpServer, int]) -> None:
    _, _, port = served
    status, headers, body = await asyncio.to_thread(
        request, port, "POST", "/echo/a%20b?x=1&x=2&y=a+b&z", b"hello",
        {"x-thing": "T", "X-Rep": "1"})
    assert status == 200 and headers["content-type"] == "application/json"
    doc = json.loads(body)
    assert doc["name"] == "a%20b" and doc["path"] == "/echo/a%20b"    # raw, not decoded
    assert doc["query"] == {"x": "1", "y": "a b", "z": ""}
    assert doc["raw_query"] == "x=1&x=2&y=a+b&z"
    assert doc["x_thing"] == "T" and doc["body"] == "hello" and doc["size"] == 5


async def test_repeated_headers_are_all_kept(served: tuple[App, HttpServer, int]) -> None:
    _, _, port = served
    answer = await raw(port, b"GET /echo/r HTTP/1.1\r\nHost: x\r\nX-Rep: 1\r\nx-rep: 2\r\n"
                             b"Connection: close\r\n\r\n")
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["all"] == ["1", "2"]


async def test_unknown_path_is_404_and_wrong_method_405_with_allow(
        served: tuple[App, HttpServer, int]) -> None:
    _, _, port = served
    status, _, body = await asyncio.to_thread(request, port, "GET", "/nothing")
    assert status == 404 and b"/nothing" in body
    status, headers, body = await asyncio.to_thread(request, port, "DELETE", "/echo/a")
    assert status == 405 and headers["allow"] == "GET, POST"
    assert b"allowed: GET, POST" in body


async def test_keep_alive_serves_many_requests_on_one_connection(
        served: tuple[App, HttpServer, int]) -> None:
    app, _, port = served

    def three() -> list[int]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
        try:
            statuses = [request(port, "GET", f"/echo/{i}", conn=conn)[0] for i in range(3)]
            assert conn.sock is not None      # never reconnected
            return statuses
        finally:
            conn.close()

    assert await asyncio.to_thread(three) == [200, 200, 200]
    assert app.order == ["0", "1", "2"]


async def test_chunked_body_and_100_continue(served: tuple[App, HttpServer, int]) -> None:
    _, _, port = served
    # http.client sends an iterable body chunked (it adds Transfer-Encoding itself)
    status, _, body = await asyncio.to_thread(request, port, "POST", "/echo/c",
                                              iter([b"ab", b"cd"]))
    assert status == 200 and json.loads(body)["body"] == "abcd"
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"POST /echo/e HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                     b"Expect: 100-continue\r\nConnection: close\r\n\r\n")
        await writer.drain()
        assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT) == \
            b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"ok")
        rest = await asyncio.wait_for(reader.read(), WAIT)
        assert rest.startswith(b"HTTP/1.1 200 OK") and b'"body": "ok"' in rest
    finally:
        writer.close()


async def test_pipelined_requests_are_answered_in_order(
        served: tuple[App, HttpServer, int]) -> None:
    _, _, port = served
    answer = await raw(port, b"GET /echo/one HTTP/1.1\r\nHost: x\r\n\r\n"
                             b"GET /echo/two HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert answer.index(b'"one"') < answer.index(b'"two"')
    assert answer.count(b"HTTP/1.1 200 OK") == 2


async def test_body_over_the_limit_is_413_at_once_and_never_read(
        served: tuple[App, HttpServer, int]) -> None:
    app, _, port = served
    # Answered at the end of the head: the body is not even sent yet.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"POST /echo/big HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), WAIT)     # then closed (EOF)
        assert answer.startswith(b"HTTP/1.1 413 Request Entity Too Large\r\n")
        assert b"Connection: close\r\n" in answer
        assert answer.endswith(b"request body of 5000 bytes is too large; allowed: up to "
                               b"1000 bytes")
    finally:
        writer.close()
    assert app.order == []

    def two() -> tuple[tuple[int, dict[str, str], bytes], int]:
        # http.client sends the whole body, then reads the answer (the server drops the body
        # meanwhile, so the client sees no reset), then reconnects for the next request.
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
        try:
            big = request(port, "POST", "/echo/big", b"x" * 500_000, conn=conn)
            return big, request(port, "GET", "/echo/after", conn=conn)[0]
        finally:
            conn.close()

    (status, headers, body), after = await asyncio.to_thread(two)
    assert status == 413 and b"500000 bytes" in body and b"1000 bytes" in body
    assert headers["connection"] == "close"
    assert after == 200 and app.order == ["after"]


async def test_chunked_body_over_the_limit_is_413_when_it_passes_it(
        served: tuple[App, HttpServer, int]) -> None:
    app, _, port = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"POST /echo/c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                     + b"200\r\n" + b"x" * 512 + b"\r\n" + b"300\r\n" + b"y" * 768 + b"\r\n")
        answer = await asyncio.wait_for(reader.read(), WAIT)
        assert answer.startswith(b"HTTP/1.1 413 ")
        assert answer.endswith(b"request body of unknown size (chunked) passed too large; "
                               b"allowed: up to 1000 bytes")
    finally:
        writer.close()
    assert app.order == []


async def test_malformed_request_is_400_and_closed(served: tuple[App, HttpServer, int]) -> None:
    _, _, port = served
    answer = await raw(port, b"GET /echo/a HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 Bad Request")
    assert b"Connection: close" in answer
    assert answer.endswith(b"Bad Request: malformed request: Invalid character in Content-Length")


async def test_custom_bad_request_answer() -> None:
    server = HttpServer(Router(), max_body=10,
                        on_error=lambda status, reason: Response.json({"why": reason}, status))
    port = await server.listen_tcp("127.0.0.1", 0)
    try:
        answer = await raw(port, b"NONSENSE\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 400 ")
        assert answer.endswith(b'{"why": "malformed request: Invalid method encountered"}')
    finally:
        await server.aclose()


async def test_handler_bug_is_500_and_the_server_keeps_serving(
        served: tuple[App, HttpServer, int], caplog: pytest.LogCaptureFixture) -> None:
    _, _, port = served
    status, _, body = await asyncio.to_thread(request, port, "GET", "/fail")
    assert status == 500 and b"handler bug" not in body
    assert "handler bug" in caplog.text
    assert (await asyncio.to_thread(request, port, "GET", "/echo/x"))[0] == 200


async def test_streamed_response_is_chunked_and_read_line_by_line(
        served: tuple[App, HttpServer, int]) -> None:
    app, _, port = served
    app.release.set()

    def read() -> tuple[str | None, list[Any]]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
        try:
            conn.request("GET", "/stream?n=5")
            r = conn.getresponse()
            return r.getheader("Transfer-Encoding"), [json.loads(line) for line in r]
        finally:
            conn.close()

    encoding, items = await asyncio.to_thread(read)
    assert encoding == "chunked" and items == [{"i": i} for i in range(5)]
    await asyncio.wait_for(app.stream_closed.wait(), WAIT)


async def test_client_going_away_ends_the_stream(served: tuple[App, HttpServer, int]) -> None:
    app, _, port = served
    _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.wait_for(app.entered.wait(), WAIT)      # the stream waits for more
    writer.close()
    await asyncio.wait_for(app.stream_closed.wait(), WAIT)


async def test_close_finishes_requests_in_progress_and_closes_idle_connections(
        served: tuple[App, HttpServer, int]) -> None:
    app, server, port = served
    idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", port)
    idle_writer.write(b"GET /echo/i HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await asyncio.wait_for(idle_reader.readuntil(b"\r\n\r\n"), WAIT)).startswith(
        b"HTTP/1.1 200")
    busy_reader, busy_writer = await asyncio.open_connection("127.0.0.1", port)
    busy_writer.write(b"POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    await asyncio.wait_for(app.entered.wait(), WAIT)
    closing = asyncio.create_task(server.aclose(grace_s=WAIT))
    # The idle keep-alive connection is closed at once (after its pending body bytes).
    while await asyncio.wait_for(idle_reader.read(65536), WAIT):
        pass
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)      # no longer accepting
    assert not closing.done()
    app.release.set()
    answer = await asyncio.wait_for(busy_reader.read(), WAIT)
    assert answer.startswith(b"HTTP/1.1 200 OK") and b"Connection: close" in answer
    assert answer.endswith(b"slow done")
    await asyncio.wait_for(closing, WAIT)
    idle_writer.close()
    busy_writer.close()


async def test_close_cancels_what_outlives_the_grace_time_and_ends_streams(
        served: tuple[App, HttpServer, int]) -> None:
    app, server, port = served
    stream_reader, stream_writer = await asyncio.open_connection("127.0.0.1", port)
    stream_writer.write(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.wait_for(app.entered.wait(), WAIT)
    app.entered.clear()
    slow_reader, slow_writer = await asyncio.open_connection("127.0.0.1", port)
    slow_writer.write(b"POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    await asyncio.wait_for(app.entered.wait(), WAIT)
    await asyncio.wait_for(server.aclose(grace_s=0.2), WAIT)
    assert app.stream_closed.is_set()
    streamed = await asyncio.wait_for(stream_reader.read(), WAIT)
    assert b'{"i": 2}' in streamed and not streamed.endswith(b"0\r\n\r\n")   # cut short
    assert (await asyncio.wait_for(slow_reader.read(), WAIT)).startswith(b"HTTP/1.1 503")
    stream_writer.close()
    slow_writer.close()


async def test_unix_socket_is_owner_only_from_birth_and_removed_on_close(
        tmp_path: Path) -> None:
    path = tmp_path / "api.sock"
    path.write_text("stale")                        # replaced, whatever it was
    server = HttpServer(Router(), max_body=10)
    before = os.umask(0o022)
    try:
        await server.listen_unix(path)
        assert os.umask(0o022) == 0o022              # the umask is restored
    finally:
        os.umask(before)
    mode = path.stat().st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600

    def get() -> bytes:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(WAIT)
            s.connect(str(path))
            s.sendall(b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return b"".join(iter(lambda: s.recv(65536), b""))

    assert (await asyncio.to_thread(get)).startswith(b"HTTP/1.1 404")
    await server.aclose()
    assert not path.exists()


async def test_close_leaves_a_socket_that_is_not_ours(tmp_path: Path) -> None:
    path = tmp_path / "api.sock"
    server = HttpServer(Router(), max_body=10)
    await server.listen_unix(path)
    path.unlink()
    path.write_text("someone else's")
    await server.aclose()
    assert path.read_text() == "someone else's"


async def test_idle_and_silent_connections_are_closed_after_the_idle_timeout() -> None:
    app = App()
    server = HttpServer(app.router, max_body=10,
                        limits=Limits(idle_timeout_s=0.2, head_timeout_s=0.2))
    port = await server.listen_tcp("127.0.0.1", 0)
    try:
        silent_reader, silent_writer = await asyncio.open_connection("127.0.0.1", port)
        half_reader, half_writer = await asyncio.open_connection("127.0.0.1", port)
        half_writer.write(b"GET /echo/a HTTP/1.1\r\nHost")           # never finished
        used_reader, used_writer = await asyncio.open_connection("127.0.0.1", port)
        used_writer.write(b"GET /echo/a HTTP/1.1\r\nHost: x\r\n\r\n")
        first = await asyncio.wait_for(used_reader.readuntil(b"\r\n\r\n"), WAIT)
        assert first.startswith(b"HTTP/1.1 200")
        # The half request is answered 408, the others are closed silently: EOF.
        half = await asyncio.wait_for(half_reader.read(), WAIT)
        assert half.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
        assert half.endswith(b"the request head did not arrive within 0.2 s")
        for reader in (silent_reader, used_reader):
            while await asyncio.wait_for(reader.read(65536), WAIT):
                pass
        for writer in (silent_writer, half_writer, used_writer):
            writer.close()
    finally:
        await server.aclose()


async def test_a_connection_that_never_sent_a_request_is_closed_by_close(
        served: tuple[App, HttpServer, int]) -> None:
    _, server, port = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /echo/a HTTP/1.1\r\n")                       # half a head
    await writer.drain()
    await asyncio.wait_for(server.aclose(grace_s=0.2), WAIT)
    try:        # closed: EOF, or a reset if the half head was still unread in the kernel
        assert await asyncio.wait_for(reader.read(), WAIT) == b""
    except ConnectionResetError:
        pass
    writer.close()


# -- quick routes: answered without a task ---------------------------------------------------

async def test_a_quick_route_answers_in_the_read_or_falls_back_to_its_handler(
        served: tuple[App, HttpServer, int]) -> None:
    app, server, port = served
    status, _, body = await asyncio.to_thread(request, port, "GET", "/quick/now")
    assert (status, body) == (200, b"quick now")
    status, _, body = await asyncio.to_thread(request, port, "GET", "/quick/other")
    assert (status, body) == (200, b"awaited other")
    # Called from the connection's read, not from a task; the fallback ran its handler.
    assert app.tasks_seen == [None, None] and app.order == ["now", "awaited"]
    assert not server._tasks and not server._deferred


async def test_a_deferred_answer_keeps_the_connection_s_requests_in_order(
        served: tuple[App, HttpServer, int]) -> None:
    app, server, port = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET /quick/later HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"GET /echo/two HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"GET /quick/now HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        await writer.drain()
        await asyncio.wait_for(app.deferred_started.wait(), WAIT)
        assert app.later is not None and server._deferred == {app.later}
        app.later.set_result("resolved")
        answer = await asyncio.wait_for(reader.read(), WAIT)
    finally:
        writer.close()
    # The requests behind the deferred one waited for it: answered, and even run, after it
    # (once a task serves the connection's queue, it serves the rest: awaited).
    assert app.order == ["later", "two", "awaited"]
    assert answer.index(b"quick later: resolved") < answer.index(b'"two"') \
        < answer.index(b"awaited now")
    assert not server._deferred


async def test_a_failing_quick_route_is_500_and_the_server_keeps_serving(
        served: tuple[App, HttpServer, int]) -> None:
    _, _, port = served
    for how in ("boom", "badanswer"):
        status, _, body = await asyncio.to_thread(request, port, "GET", f"/quick/{how}")
        assert status == 500 and b"internal server error" in body
    status, _, _ = await asyncio.to_thread(request, port, "GET", "/quick/now")
    assert status == 200


async def test_close_answers_503_to_a_deferred_answer_that_outlives_the_grace_time(
        served: tuple[App, HttpServer, int]) -> None:
    app, server, port = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET /quick/later HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        await asyncio.wait_for(app.deferred_started.wait(), WAIT)
        await asyncio.wait_for(server.aclose(grace_s=0.2), WAIT)
        answer = await asyncio.wait_for(reader.read(), WAIT)
    finally:
        writer.close()
    assert answer.startswith(b"HTTP/1.1 503") and b"Connection: close" in answer
    assert app.later is not None and app.later.cancelled()


async def test_a_client_that_leaves_before_its_deferred_answer_breaks_nothing(
        served: tuple[App, HttpServer, int]) -> None:
    app, server, port = served
    _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /quick/later HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    await asyncio.wait_for(app.deferred_started.wait(), WAIT)
    writer.close()
    await writer.wait_closed()
    assert app.later is not None
    app.later.set_result("nobody reads this")
    status, _, body = await asyncio.to_thread(request, port, "GET", "/quick/now")
    assert (status, body) == (200, b"quick now")
    assert app.order == ["later", "now"] and not server._deferred
