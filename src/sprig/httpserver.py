"""A small HTTP/1.1 server for the core's local APIs (Invoke API, management socket, V1 SDK IPC).

Why not aiohttp: ``import aiohttp.web`` alone costs the core about 16 MB of resident memory, and
these servers need only a sliver of HTTP, which :mod:`sprig.runtime_api.http11` already speaks
(keep-alive, Content-Length and chunked bodies, 100-continue, oversize bodies discarded). This
module adds what an application needs on top of it:

* :class:`Router`: routes by method and a path regex (named groups become ``request.params``),
  404/405 as plain text, 413 for bodies over the limit;
* :class:`HttpRequest` with case-insensitive :class:`Headers` (repeats kept), raw path and query;
* :class:`Response` and :class:`StreamResponse` (a chunked body from an async iterator, e.g. the
  management API's JSON lines);
* :class:`HttpServer`: listens on TCP or on a Unix socket created owner-only (the umask is set
  while it is created, so it is never briefly open to others), and closes gracefully: stop
  accepting, close idle keep-alive connections, let requests in progress finish (up to a grace
  time), end streams.

Requests of one connection are handled in order, one at a time, each in its own task; a client
that goes away cancels its streamed response.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import socket
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from sprig.runtime_api.http11 import Connection, Request

if TYPE_CHECKING:
    from ssl import SSLContext

log = logging.getLogger(__name__)

TEXT = "text/plain; charset=utf-8"
_dumps = json.dumps
JSON = "application/json"


class Headers(Mapping[str, str]):
    """Request headers: names case-insensitive; a repeated header's first value wins for
    ``[]``/``get`` (as aiohttp), :meth:`getall` and :attr:`fields` keep every one."""

    __slots__ = ("_first", "fields")

    def __init__(self, fields: list[tuple[str, str]]) -> None:
        self.fields = fields                 # (lower-case name, value) as received, in order
        first: dict[str, str] = {}
        for name, value in fields:
            first.setdefault(name, value)
        self._first = first

    def __getitem__(self, name: str) -> str:
        return self._first[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._first

    def __iter__(self) -> Iterator[str]:
        return iter(self._first)

    def __len__(self) -> int:
        return len(self._first)

    def getall(self, name: str) -> list[str]:
        key = name.lower()
        return [v for n, v in self.fields if n == key]


@dataclass(frozen=True)
class HttpRequest:
    """One request. ``path`` is raw (not percent-decoded), without the query."""

    method: str
    target: str                      # the request-target as sent: raw path and query
    headers: Headers
    body: bytes
    size: int                        # the body's real size, even when it was discarded
    truncated: bool                  # the body was over the limit: ``body`` is incomplete
    limit: int                       # the server's body size limit, in bytes
    params: Mapping[str, str] = field(default_factory=dict)   # the route's named groups
    sock: socket.socket | None = None   # the connection's socket: who the peer is, for checks

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]

    @property
    def query_string(self) -> str:
        return self.target.partition("?")[2]

    @property
    def query(self) -> dict[str, str]:
        """The decoded query (``+`` is a space); a repeated key's first value wins."""
        found: dict[str, str] = {}
        for key, value in parse_qsl(self.query_string, keep_blank_values=True):
            found.setdefault(key, value)
        return found

    def json(self) -> Any:
        """The body as JSON (raises ValueError or UnicodeDecodeError)."""
        return json.loads(self.body)


@dataclass(frozen=True)
class Response:
    """A complete answer. ``content_type=None`` sends no Content-Type."""

    status: int = 200
    body: bytes = b""
    content_type: str | None = JSON
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def text(cls, status: int, message: str,
             headers: tuple[tuple[str, str], ...] = ()) -> Response:
        return cls(status, message.encode(), TEXT, headers)

    @classmethod
    def json(cls, document: Any, status: int = 200,
             dumps: Callable[[Any], str] = _dumps) -> Response:
        return cls(status, dumps(document).encode(), JSON)


@dataclass(frozen=True)
class StreamResponse:
    """A chunked answer: the head now, then each item of ``chunks`` as it comes."""

    chunks: AsyncIterator[bytes]
    status: int = 200
    content_type: str | None = JSON
    headers: tuple[tuple[str, str], ...] = ()


Answer = Response | StreamResponse
Handler = Callable[[HttpRequest], Awaitable[Answer]]


class NoRoute(Exception):
    """No route for the path (``allowed`` empty: 404) or not for the method (405)."""

    def __init__(self, method: str, path: str, allowed: tuple[str, ...]) -> None:
        self.method = method
        self.path = path
        self.allowed = allowed
        super().__init__(f"{method} {path}")


class Router:
    """Routes by method and path regex; calling it is a :data:`Handler` with plain-text
    404/405/413 answers. Patterns match the whole raw path (no query)."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        self._routes.append((method.upper(), re.compile(pattern), handler))

    def resolve(self, request: HttpRequest) -> tuple[Handler, HttpRequest]:
        """The handler and the request with its ``params``; raises :class:`NoRoute`."""
        path = request.path
        allowed: list[str] = []
        for method, pattern, handler in self._routes:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            if method == request.method:
                return handler, replace(request, params=match.groupdict())
            allowed.append(method)
        raise NoRoute(request.method, path, tuple(sorted(set(allowed))))

    async def __call__(self, request: HttpRequest) -> Answer:
        try:
            handler, request = self.resolve(request)
        except NoRoute as e:
            if not e.allowed:
                return Response.text(404, f"no such resource: {e.path}")
            return Response.text(405, f"method {e.method} is not allowed on {e.path}; "
                                      f"allowed: {', '.join(e.allowed)}",
                                 (("Allow", ", ".join(e.allowed)),))
        if request.truncated:
            return too_large(request)
        return await handler(request)


def too_large(request: HttpRequest) -> Response:
    return Response.text(413, f"request body of {request.size} bytes is too large; allowed: "
                              f"up to {request.limit} bytes")


def bad_request(reason: str) -> Response:
    return Response.text(400, f"Bad Request: {reason}")


@dataclass
class _Client:
    """One connection's queue: its requests are answered in order, one at a time."""

    queue: deque[Request] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None
    streaming: bool = False
    last_active: float = 0.0         # loop time of the last request received or answered


class HttpServer:
    """Serve ``app`` on one or more listeners; ``await aclose()`` to stop."""

    def __init__(self, app: Handler, *, max_body: int, name: str = "http",
                 on_bad_request: Callable[[str], Response] = bad_request,
                 idle_timeout_s: float = 75.0) -> None:
        self._app = app
        self._idle_timeout_s = idle_timeout_s
        self._sweeper: asyncio.Task[None] | None = None
        self._max_body = max_body
        self._name = name
        self._on_bad_request = on_bad_request
        self._servers: list[asyncio.Server] = []
        self._clients: dict[Connection, _Client] = {}
        self._tasks: set[asyncio.Task[None]] = set()   # in progress, even if the client left
        self._unix_paths: list[tuple[Path, int]] = []
        self._closing = False

    # -- listening -------------------------------------------------------------------------
    async def listen_tcp(self, host: str, port: int, *, tls: SSLContext | None = None) -> int:
        """Listen on ``host:port`` (0: any free port), over TLS with ``tls``; return the port
        bound."""
        loop = asyncio.get_running_loop()
        server = await loop.create_server(self._connection, host, port, ssl=tls)
        self._servers.append(server)
        self._start_sweeper()
        return int(server.sockets[0].getsockname()[1])

    async def listen_unix(self, path: Path) -> None:
        """Listen on a Unix socket at ``path`` (replaced if present), mode 0600 from birth."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)              # a stale socket of an earlier run
        loop = asyncio.get_running_loop()
        old = os.umask(0o177)    # the socket is created owner-only, never briefly open
        try:
            server = await loop.create_unix_server(self._connection, str(path))
        finally:
            os.umask(old)
        os.chmod(path, 0o600)
        self._servers.append(server)
        self._start_sweeper()
        self._unix_paths.append((path, os.stat(path).st_ino))

    # -- graceful close --------------------------------------------------------------------
    async def aclose(self, grace_s: float = 10.0) -> None:
        """Stop accepting; close idle connections; let requests in progress finish for up to
        ``grace_s`` (streams end at once), then cancel what is left and close everything."""
        self._closing = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        for server in self._servers:
            server.close()
        for path, inode in self._unix_paths:
            with contextlib.suppress(OSError):
                if os.stat(path).st_ino == inode:
                    os.unlink(path)
        for conn, client in list(self._clients.items()):
            client.queue.clear()
            if client.streaming and client.task is not None:
                client.task.cancel()
            conn.close_when_idle()
        if self._tasks:
            _, late = await asyncio.wait(self._tasks, timeout=grace_s)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=1.0)
        for conn in list(self._clients):
            conn.close()
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()

    # -- connections -----------------------------------------------------------------------
    def _connection(self) -> Connection:
        conn = Connection(self._on_request, self._on_lost, self._max_body,
                          on_bad_request=self._bad_request)
        self._clients[conn] = _Client(last_active=asyncio.get_running_loop().time())
        return conn

    def _start_sweeper(self) -> None:
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(
                self._sweep(), name=f"{self._name}-idle-sweeper")

    async def _sweep(self) -> None:
        """Close connections with nothing in progress and no request for ``idle_timeout_s``
        (idle keep-alive connections of clients that forgot them, or half-sent requests)."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._idle_timeout_s / 4)
            limit = loop.time() - self._idle_timeout_s
            for conn, client in list(self._clients.items()):
                if client.task is None and client.last_active < limit:
                    conn.close()

    def _bad_request(self, conn: Connection, reason: str) -> None:
        answer = self._on_bad_request(reason)
        conn.respond(answer.status, answer.body, content_type=answer.content_type,
                     headers=answer.headers, close=True)

    def _on_lost(self, conn: Connection) -> None:
        client = self._clients.pop(conn, None)
        if client is not None and client.task is not None and client.streaming:
            client.task.cancel()      # nobody reads the stream any more
        if client is not None:
            client.queue.clear()

    def _on_request(self, conn: Connection, request: Request) -> None:
        client = self._clients.get(conn)
        if client is None:
            return                    # lost
        if self._closing:
            conn.respond(503, b"the server is shutting down", content_type=TEXT, close=True)
            return
        client.last_active = asyncio.get_running_loop().time()
        client.queue.append(request)
        if client.task is None:
            client.task = asyncio.get_running_loop().create_task(
                self._serve(conn, client), name=f"{self._name}-request")
            self._tasks.add(client.task)
            client.task.add_done_callback(self._tasks.discard)

    async def _serve(self, conn: Connection, client: _Client) -> None:
        try:
            while client.queue and not conn.closed:
                await self._answer(conn, client, client.queue.popleft())
        finally:
            client.task = None
            client.streaming = False
            client.last_active = asyncio.get_running_loop().time()
            if self._closing:
                conn.close_when_idle()

    async def _answer(self, conn: Connection, client: _Client, raw: Request) -> None:
        request = HttpRequest(raw.method, raw.path, Headers(raw.fields), raw.body, raw.size,
                              raw.truncated, self._max_body, sock=conn.socket())
        try:
            answer = await self._app(request)
        except asyncio.CancelledError:
            conn.respond(503, b"the server is shutting down", content_type=TEXT, close=True)
            raise
        except Exception:
            log.exception("%s: %s %s failed", self._name, request.method, request.path)
            answer = Response.text(500, "internal server error; see the core log")
        if isinstance(answer, Response):
            conn.respond(answer.status, answer.body, content_type=answer.content_type,
                         headers=answer.headers)
            return
        client.streaming = True
        conn.start_stream(answer.status, content_type=answer.content_type,
                          headers=answer.headers)
        try:
            async for chunk in answer.chunks:
                await conn.write_chunk(chunk)
                if conn.closed:
                    break
        except asyncio.CancelledError:
            conn.close()          # no last chunk: the client sees the stream cut short
            raise
        except Exception:
            log.exception("%s: the stream of %s %s failed", self._name, request.method,
                          request.path)
            conn.close()
            return
        finally:
            client.streaming = False
            aclose = getattr(answer.chunks, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
        conn.end_stream()
