"""The core's HTTP servers (Invoke API, management socket, V1 SDK IPC) on :mod:`sprig.http1`.

Why not aiohttp: ``import aiohttp.web`` alone costs the core about 16 MB of resident memory, and
these servers need only a sliver of HTTP, which :mod:`sprig.http1` speaks (strictly, with
bounds and timeouts, over llhttp). This module adds what an application needs on top of it:

* :class:`Router`: routes by method and a path regex (named groups become ``request.params``),
  404/405 as plain text -- answered at the end of the head, before any body is read -- and 413
  for bodies over the limit;
* :class:`HttpRequest` with case-insensitive :class:`Headers` (repeats kept), raw path and query;
* :class:`Response` and :class:`StreamResponse` (a chunked body from an async iterator, e.g. the
  management API's JSON lines);
* :class:`HttpServer`: listens on TCP or on a Unix socket created owner-only (the umask is set
  while it is created, so it is never briefly open to others), each listener with its own
  connection cap (:class:`~sprig.http1.Limits`); decides at the end of each head whether and how
  much body to read (``screen``: e.g. the invoke API refuses a request without valid
  credentials before reading its body; ``max_body``: the limit, which may depend on the head);
  and closes gracefully: stop accepting, close idle keep-alive connections, let requests in
  progress finish (up to a grace time; requests arriving meanwhile get 503), end streams.

Requests of one connection are handled in order, one at a time, each in its own task; a client
that goes away cancels its streamed response. A route may also answer *quickly*: a
:data:`Quick` handler runs at once, in the read that completed the request, and answers with
a :class:`Response` or a :class:`Deferred` (a future and how to word its result) -- no task, and
two loop iterations fewer per request than awaiting: the management API's ``invoke`` (every
warm invocation's hot path) answers that way.
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
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from urllib.parse import parse_qsl

from sprig.http1 import (
    JSON,
    TEXT,
    Connection,
    ConnectionCap,
    Headers,
    Limits,
    Request,
    Response,
)

__all__ = ["JSON", "TEXT", "Answer", "Deferred", "Handler", "Headers", "HttpRequest",
           "HttpServer", "Limits", "NoRoute", "Quick", "Response", "Router", "StreamResponse",
           "bad_request", "too_large"]

if TYPE_CHECKING:
    from ssl import SSLContext

log = logging.getLogger(__name__)

DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class HttpRequest:
    """One request. ``path`` is raw (not percent-decoded), without the query.

    The same shape is shown to a server's ``screen`` and ``max_body`` at the end of the head,
    with an empty ``body`` and ``size`` the declared Content-Length (0 when chunked).
    """

    method: str
    target: str                      # the request-target as sent: raw path and query
    headers: Headers
    body: bytes
    size: int                        # the body's size; for a truncated one, what is known of it
    truncated: bool                  # the body was over the limit: never read, ``body`` empty
    limit: int                       # the body size limit for this request, in bytes
    params: Mapping[str, str] = field(default_factory=dict)   # the route's named groups
    sock: socket.socket | None = None   # the connection's socket: who the peer is, for checks
    length: int | None = 0           # the declared Content-Length; None: chunked

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]

    def with_params(self, params: Mapping[str, str]) -> HttpRequest:
        """The same request with the route's named groups (``dataclasses.replace`` without
        its introspection: this runs for every request)."""
        return HttpRequest(self.method, self.target, self.headers, self.body, self.size,
                           self.truncated, self.limit, params, self.sock, self.length)

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
class StreamResponse:
    """A chunked answer: the head now, then each item of ``chunks`` as it comes."""

    chunks: AsyncIterator[bytes]
    status: int = 200
    content_type: str | None = JSON
    headers: tuple[tuple[str, str], ...] = ()


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Deferred(Generic[T]):
    """An answer under way without a task: once ``future`` is done, ``answer(future)`` gives
    the result (for a :data:`Quick` route, the :class:`Response`; it may raise)."""

    future: asyncio.Future[Any]
    answer: Callable[[asyncio.Future[Any]], T]


Answer = Response | StreamResponse
Handler = Callable[[HttpRequest], Awaitable[Answer]]
#: A route's synchronous handler: a Response now, a Deferred one, or None for "await the
#: route's Handler instead".
Quick = Callable[[HttpRequest], "Response | Deferred[Response] | None"]
Screen = Callable[[HttpRequest], Response | None]


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
        self._quick: dict[Handler, Quick] = {}

    def add(self, method: str, pattern: str, handler: Handler, *,
            quick: Quick | None = None) -> None:
        """Route to ``handler``; with ``quick``, try that first (see :data:`Quick`)."""
        self._routes.append((method.upper(), re.compile(pattern), handler))
        if quick is not None:
            self._quick[handler] = quick

    def quick(self, request: HttpRequest) -> Response | Deferred[Response] | None:
        """The route's quick answer, if it has a quick handler and gives one; else None (the
        request goes the awaited way, which also words 404/405/413)."""
        if not self._quick or request.truncated:
            return None
        try:
            handler, request = self.resolve(request)
        except NoRoute:
            return None
        quick = self._quick.get(handler)
        return None if quick is None else quick(request)

    def _match(self, method_wanted: str, path: str) -> tuple[Handler, re.Match[str]]:
        allowed: list[str] = []
        for method, pattern, handler in self._routes:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            if method == method_wanted:
                return handler, match
            allowed.append(method)
        raise NoRoute(method_wanted, path, tuple(sorted(set(allowed))))

    def resolve(self, request: HttpRequest) -> tuple[Handler, HttpRequest]:
        """The handler and the request with its ``params``; raises :class:`NoRoute`."""
        handler, match = self._match(request.method, request.path)
        params = match.groupdict()
        return handler, (request.with_params(params) if params else request)

    def screen(self, request: HttpRequest) -> Response | None:
        """404/405 at the end of the head: a body for no route is never read."""
        try:
            self._match(request.method, request.path)
        except NoRoute as e:
            return no_route(e)
        return None

    async def __call__(self, request: HttpRequest) -> Answer:
        try:
            handler, request = self.resolve(request)
        except NoRoute as e:
            return no_route(e)
        if request.truncated:
            return too_large(request)
        return await handler(request)


def no_route(e: NoRoute) -> Response:
    if not e.allowed:
        return Response.text(404, f"no such resource: {e.path}")
    return Response.text(405, f"method {e.method} is not allowed on {e.path}; "
                              f"allowed: {', '.join(e.allowed)}",
                         (("Allow", ", ".join(e.allowed)),))


def too_large(request: HttpRequest) -> Response:
    size = "of unknown size (chunked) passed" if request.length is None else \
        f"of {request.size} bytes is"
    return Response.text(413, f"request body {size} too large; allowed: up to "
                              f"{request.limit} bytes")


def bad_request(status: int, reason: str) -> Response:
    """The plain-text answer to a request the HTTP layer refuses."""
    return Response.text(status, f"{HTTPStatus(status).phrase}: {reason}")


@dataclass
class _Client:
    """One connection's queue: its requests are answered in order, one at a time."""

    cap: ConnectionCap
    queue: deque[Request] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None
    deferred: asyncio.Future[Any] | None = None     # a quick answer under way
    streaming: bool = False


class HttpServer:
    """Serve ``app`` on one or more listeners; ``await aclose()`` to stop.

    At the end of each head: ``screen`` may refuse the request at once (its body is never
    read; a :class:`Router` app screens its 404/405 unless another screen is given), then
    ``max_body`` (a number, or a function of the head) bounds the body: a request over it is
    handed to ``app`` truncated, without its body. ``on_error`` words the answer to a request
    the HTTP layer refuses (status, reason). ``quick`` answers requests without a task when
    it can (see :data:`Quick`; a :class:`Router` app's quick routes unless another is given).
    """

    def __init__(self, app: Handler, *, max_body: int | Callable[[HttpRequest], int],
                 name: str = "http",
                 on_error: Callable[[int, str], Response] = bad_request,
                 screen: Screen | None = None,
                 quick: Quick | None = None,
                 limits: Limits = DEFAULT_LIMITS) -> None:
        self._app = app
        self._max_body = max_body
        self._screen = screen if screen is not None or not isinstance(app, Router) \
            else app.screen
        self._name = name
        self._on_error = on_error
        self.limits = limits
        self._servers: list[asyncio.Server] = []
        self._caps: list[ConnectionCap] = []
        self._clients: dict[Connection, _Client] = {}
        self._tasks: set[asyncio.Task[None]] = set()   # in progress, even if the client left
        self._deferred: set[asyncio.Future[Any]] = set()   # quick answers under way, likewise
        self._quick = quick if quick is not None or not isinstance(app, Router) else app.quick
        self._unix_paths: list[tuple[Path, int]] = []
        self._closing = False

    # -- listening -------------------------------------------------------------------------
    def _cap(self, where: str) -> ConnectionCap:
        cap = ConnectionCap(f"{self._name} ({where})", self.limits.max_connections,
                            log.warning)
        self._caps.append(cap)
        return cap

    async def listen_tcp(self, host: str, port: int, *, tls: SSLContext | None = None) -> int:
        """Listen on ``host:port`` (0: any free port), over TLS with ``tls``; return the port
        bound."""
        loop = asyncio.get_running_loop()
        cap = self._cap(f"{host}:{port}")
        server = await loop.create_server(lambda: self._connection(cap), host, port, ssl=tls)
        self._servers.append(server)
        bound = int(server.sockets[0].getsockname()[1])
        cap.name = f"{self._name} ({host}:{bound})"
        return bound

    async def listen_unix(self, path: Path) -> None:
        """Listen on a Unix socket at ``path`` (replaced if present), mode 0600 from birth."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)              # a stale socket of an earlier run
        loop = asyncio.get_running_loop()
        cap = self._cap(str(path))
        old = os.umask(0o177)    # the socket is created owner-only, never briefly open
        try:
            server = await loop.create_unix_server(lambda: self._connection(cap), str(path))
        finally:
            os.umask(old)
        os.chmod(path, 0o600)
        self._servers.append(server)
        self._unix_paths.append((path, os.stat(path).st_ino))

    @property
    def refused_connections(self) -> int:
        """Connections closed at once because a listener had its most open (in all)."""
        return sum(cap.refused for cap in self._caps)

    # -- graceful close --------------------------------------------------------------------
    async def aclose(self, grace_s: float = 10.0) -> None:
        """Stop accepting; close idle connections; let requests in progress finish for up to
        ``grace_s`` (streams end at once), then cancel what is left and close everything."""
        self._closing = True
        for server in self._servers:
            server.close()
        for cap in self._caps:
            cap.flush()
        for path, inode in self._unix_paths:
            with contextlib.suppress(OSError):
                if os.stat(path).st_ino == inode:
                    os.unlink(path)
        for conn, client in list(self._clients.items()):
            client.queue.clear()
            if client.streaming and client.task is not None:
                client.task.cancel()
            conn.close_when_idle()
        in_progress: set[asyncio.Future[Any]] = {*self._tasks, *self._deferred}
        if in_progress:
            _, late = await asyncio.wait(in_progress, timeout=grace_s)
            for task in late:
                task.cancel()        # a Deferred's caller answers 503 (see _deferred_done)
            if late:
                await asyncio.wait(late, timeout=1.0)
        for conn in list(self._clients):
            conn.close()
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()

    # -- connections (sprig.http1.Server) --------------------------------------------------
    def _connection(self, cap: ConnectionCap) -> asyncio.Protocol:
        return cap.protocol(lambda: self._accept(cap))

    def _accept(self, cap: ConnectionCap) -> Connection:
        conn = Connection(self, self.limits)
        self._clients[conn] = _Client(cap)
        return conn

    def _view(self, conn: Connection, raw: Request) -> HttpRequest:
        return HttpRequest(raw.method, raw.target, raw.headers, raw.body, raw.size,
                           raw.truncated, raw.limit, sock=conn.socket(), length=raw.length)

    def on_head(self, conn: Connection, head: Request) -> int | Response:
        request = self._view(conn, head)
        if self._screen is not None:
            refusal = self._screen(request)
            if refusal is not None:
                return refusal
        return self._max_body(request) if callable(self._max_body) else self._max_body

    def on_error(self, status: int, reason: str) -> Response:
        return self._on_error(status, reason)

    def on_lost(self, conn: Connection) -> None:
        client = self._clients.pop(conn, None)
        if client is None:
            return
        client.cap.release()
        if client.task is not None and client.streaming:
            client.task.cancel()      # nobody reads the stream any more
        client.queue.clear()

    def on_request(self, conn: Connection, request: Request) -> None:
        client = self._clients.get(conn)
        if client is None:
            return                    # lost
        if self._closing:
            conn.respond(503, b"the server is shutting down", content_type=TEXT, close=True)
            return
        client.queue.append(request)
        if client.task is None and client.deferred is None:
            self._next(conn, client)

    def _next(self, conn: Connection, client: _Client) -> None:
        """Answer the queued requests in order: quick ones at once, the first that is not
        (and all after it) in a task."""
        while client.queue and not conn.closed:
            answer = self._try_quick(conn, client.queue[0])
            if answer is None:
                # The task forgets itself as it ends, not by a done callback: that would cost
                # every request one more loop iteration.
                client.task = asyncio.get_running_loop().create_task(
                    self._serve(conn, client), name=f"{self._name}-request")
                self._tasks.add(client.task)
                return
            client.queue.popleft()
            if isinstance(answer, Response):
                conn.send(answer)
                continue
            client.deferred = answer.future
            self._deferred.add(answer.future)
            answer.future.add_done_callback(partial(self._deferred_done, conn, client, answer))
            return

    def _try_quick(self, conn: Connection, raw: Request) -> Response | Deferred[Response] | None:
        if self._quick is None or raw.refusal is not None:
            return None
        request = self._view(conn, raw)
        try:
            return self._quick(request)
        except Exception:
            log.exception("%s: %s %s failed", self._name, request.method, request.path)
            return Response.text(500, "internal server error; see the core log")

    def _deferred_done(self, conn: Connection, client: _Client, deferred: Deferred[Response],
                       future: asyncio.Future[Any]) -> None:
        client.deferred = None
        self._deferred.discard(future)
        if future.cancelled():              # the server closes
            conn.respond(503, b"the server is shutting down", content_type=TEXT, close=True)
            return
        try:
            answer = deferred.answer(future)
        except Exception:
            log.exception("%s: a quick answer failed", self._name)
            answer = Response.text(500, "internal server error; see the core log")
        conn.send(answer)
        if self._closing:
            conn.close_when_idle()
        elif client.queue:
            self._next(conn, client)

    async def _serve(self, conn: Connection, client: _Client) -> None:
        try:
            while client.queue and not conn.closed:
                await self._answer(conn, client, client.queue.popleft())
        finally:
            if client.task is not None:
                self._tasks.discard(client.task)
            client.task = None
            client.streaming = False
            if self._closing:
                conn.close_when_idle()

    async def _answer(self, conn: Connection, client: _Client, raw: Request) -> None:
        if raw.refusal is not None:
            conn.send(raw.refusal)
            return
        request = self._view(conn, raw)
        try:
            answer = await self._app(request)
        except asyncio.CancelledError:
            conn.respond(503, b"the server is shutting down", content_type=TEXT, close=True)
            raise
        except Exception:
            log.exception("%s: %s %s failed", self._name, request.method, request.path)
            answer = Response.text(500, "internal server error; see the core log")
        if isinstance(answer, Response):
            conn.send(answer)
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
