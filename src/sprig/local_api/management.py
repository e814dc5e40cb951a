"""The management API the ``sprig`` CLI talks to: JSON over HTTP on an owner-only Unix socket.

One route, ``POST /rpc`` with ``{"method": "...", "params": {...}}``; the answer is the method's
JSON result, or ``{"error": {"type": ..., "message": ...}}`` with status 400 (the caller's fault),
507 (``DiskFull``: no space left, naming the path; the request was not carried out) or 500
(Sprig's).
``POST /stream`` answers with JSON lines for streaming methods (chunked; a
stream ends when the method's iterator does, or when the client goes away).

A method may also have a *quick* handler (:meth:`ManagementServer.method`'s ``quick``): called
at once, it starts the call and returns a :class:`~sprig.httpserver.Deferred` (or None: await
the method's handler instead). ``invoke`` uses it: a warm invocation then costs the core three
loop iterations (the request, the worker's answer, the reply) and no task.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from sprig.disk import DiskFull, disk_full_error, is_disk_full
from sprig.errors import SprigError
from sprig.httpserver import (
    Deferred,
    HttpRequest,
    HttpServer,
    Response,
    Router,
    StreamResponse,
)

log = logging.getLogger("sprig.api")

Handler = Callable[[dict[str, Any]], Awaitable[Any]]
QuickHandler = Callable[[dict[str, Any]], Deferred[Any] | None]
StreamHandler = Callable[[dict[str, Any]], AsyncIterator[Any]]


class ManagementServer:
    """``root``: the core's root, named in a ``DiskFull`` error when a full disk's failed write
    has no file name."""

    def __init__(self, socket_path: Path, *, root: Path | None = None) -> None:
        self.socket_path = socket_path
        self.root = root if root is not None else socket_path.parent
        self.handlers: dict[str, Handler] = {}
        self.quick_handlers: dict[str, QuickHandler] = {}
        self.stream_handlers: dict[str, StreamHandler] = {}
        self._server: HttpServer | None = None

    def method(self, name: str, handler: Handler, *, quick: QuickHandler | None = None) -> None:
        """``handler`` answers ``name``; ``quick``, if given, is tried first (see the module's
        doc) and must raise and answer exactly as ``handler`` would."""
        self.handlers[name] = handler
        if quick is not None:
            self.quick_handlers[name] = quick

    def stream(self, name: str, handler: StreamHandler) -> None:
        self.stream_handlers[name] = handler

    async def start(self) -> None:
        """Listen on :attr:`socket_path` (replaced if present), owner-only from birth."""
        router = Router()
        router.add("POST", "/rpc", self._rpc, quick=self._quick_rpc)
        router.add("POST", "/stream", self._stream)
        server = HttpServer(router, max_body=MAX_BODY, name="management")
        await server.listen_unix(self.socket_path)
        self._server = server

    async def aclose(self) -> None:
        """Stop: calls in progress may finish; streams end; the socket file is removed."""
        if self._server is not None:
            await self._server.aclose()
            self._server = None

    @staticmethod
    def _body(request: HttpRequest) -> tuple[str, dict[str, Any]]:
        try:
            doc = request.json()
        except (ValueError, UnicodeDecodeError) as e:
            raise SprigError(f"request body is not JSON: {e}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("method"), str):
            raise SprigError('request must be {"method": str, "params": {...}}')
        params = doc.get("params") or {}
        if not isinstance(params, dict):
            raise SprigError("params must be an object")
        return doc["method"], params

    async def _rpc(self, request: HttpRequest) -> Response:
        method = "the call"
        try:
            method, params = self._body(request)
            handler = self.handlers.get(method)
            if handler is None:
                raise SprigError(f"unknown method {method!r}; allowed: "
                                 + ", ".join(sorted(self.handlers)))
            result = await handler(params)
        except Exception as e:
            return self._failed(method, e)
        return Response.json({"result": result}, dumps=_dumps)

    def _quick_rpc(self, request: HttpRequest) -> Response | Deferred[Response] | None:
        try:
            method, params = self._body(request)
        except SprigError:
            return None                  # _rpc words it
        quick = self.quick_handlers.get(method)
        if quick is None:
            return None
        try:
            started = quick(params)
        except Exception as e:
            return self._failed(method, e)
        if started is None:
            return None

        def answer(future: asyncio.Future[Any]) -> Response:
            try:
                result = started.answer(future)
            except Exception as e:
                return self._failed(method, e)
            return Response.json({"result": result}, dumps=_dumps)

        return Deferred(started.future, answer)

    def _failed(self, method: str, e: Exception) -> Response:
        """The answer to a call that raised ``e``: 400 (SprigError), 507 (a full disk), 500."""
        if isinstance(e, DiskFull):
            return _disk_full(e)
        if isinstance(e, SprigError):
            return Response.json(
                {"error": {"type": type(e).__name__, "message": str(e)}}, status=400)
        if is_disk_full(e):
            # A write deep inside (a recipe, an artifact) hit ENOSPC: say where, not how.
            cause = e if isinstance(e, OSError) and (e.filename or e.filename2) else None
            return _disk_full(disk_full_error(cause, self.root) if cause is not None
                              else DiskFull(self.root, f"{method} failed: {e}"))
        log.error("management API: internal error", exc_info=e)
        return Response.json(
            {"error": {"type": "InternalError", "message": f"{type(e).__name__}: {e}"}},
            status=500)

    async def _stream(self, request: HttpRequest) -> Response | StreamResponse:
        try:
            method, params = self._body(request)
            handler = self.stream_handlers.get(method)
            if handler is None:
                raise SprigError(f"unknown stream {method!r}; allowed: "
                                 + ", ".join(sorted(self.stream_handlers)))
            items = handler(params)
        except SprigError as e:
            return Response.json(
                {"error": {"type": type(e).__name__, "message": str(e)}}, status=400)
        return StreamResponse(_json_lines(items), content_type="application/x-ndjson")


MAX_BODY = 64 * 1024 * 1024


def _disk_full(e: DiskFull) -> Response:
    return Response.json({"error": {"type": "DiskFull", "message": str(e)}}, status=507)


async def _json_lines(items: AsyncIterator[Any]) -> AsyncIterator[bytes]:
    """Each item as one JSON line; a SprigError ends the stream with an error line."""
    try:
        async for item in items:
            yield _dumps(item).encode() + b"\n"
    except SprigError as e:
        yield _dumps({"error": {"type": type(e).__name__, "message": str(e)}}).encode() + b"\n"
    finally:
        aclose = getattr(items, "aclose", None)
        if aclose is not None:
            await aclose()


def _dumps(obj: Any) -> str:
    return json.dumps(obj, default=str)
