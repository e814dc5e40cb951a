"""The management API the ``sprig`` CLI talks to: JSON over HTTP on an owner-only Unix socket.

One route, ``POST /rpc`` with ``{"method": "...", "params": {...}}``; the answer is the method's
JSON result, or ``{"error": {"type": ..., "message": ...}}`` with status 400 (the caller's fault)
or 500 (Sprig's). ``POST /stream`` answers with JSON lines for streaming methods.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from sprig.errors import SprigError

log = logging.getLogger("sprig.api")

Handler = Callable[[dict[str, Any]], Awaitable[Any]]
StreamHandler = Callable[[dict[str, Any]], AsyncIterator[Any]]


class ManagementServer:
    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path
        self.handlers: dict[str, Handler] = {}
        self.stream_handlers: dict[str, StreamHandler] = {}
        self._runner: web.AppRunner | None = None

    def method(self, name: str, handler: Handler) -> None:
        self.handlers[name] = handler

    def stream(self, name: str, handler: StreamHandler) -> None:
        self.stream_handlers[name] = handler

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/rpc", self._rpc)
        app.router.add_post("/stream", self._stream)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        if self.socket_path.exists() or self.socket_path.is_symlink():
            self.socket_path.unlink()
        old = os.umask(0o177)   # the socket is created owner-only, never briefly open
        try:
            site = web.UnixSite(self._runner, str(self.socket_path))
            await site.start()
        finally:
            os.umask(old)
        os.chmod(self.socket_path, 0o600)

    async def aclose(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @staticmethod
    async def _body(request: web.Request) -> tuple[str, dict[str, Any]]:
        try:
            doc = await request.json()
        except (ValueError, UnicodeDecodeError) as e:
            raise SprigError(f"request body is not JSON: {e}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("method"), str):
            raise SprigError('request must be {"method": str, "params": {...}}')
        params = doc.get("params") or {}
        if not isinstance(params, dict):
            raise SprigError("params must be an object")
        return doc["method"], params

    async def _rpc(self, request: web.Request) -> web.Response:
        try:
            method, params = await self._body(request)
            handler = self.handlers.get(method)
            if handler is None:
                raise SprigError(f"unknown method {method!r}; allowed: "
                                 + ", ".join(sorted(self.handlers)))
            result = await handler(params)
        except SprigError as e:
            return web.json_response(
                {"error": {"type": type(e).__name__, "message": str(e)}}, status=400)
        except Exception as e:
            log.exception("management API: internal error")
            return web.json_response(
                {"error": {"type": "InternalError", "message": f"{type(e).__name__}: {e}"}},
                status=500)
        return web.json_response({"result": result}, dumps=_dumps)

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        try:
            method, params = await self._body(request)
            handler = self.stream_handlers.get(method)
            if handler is None:
                raise SprigError(f"unknown stream {method!r}; allowed: "
                                 + ", ".join(sorted(self.stream_handlers)))
            items = handler(params)
        except SprigError as e:
            return web.json_response(
                {"error": {"type": type(e).__name__, "message": str(e)}}, status=400)
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        try:
            async for item in items:
                await response.write(_dumps(item).encode() + b"\n")
        except SprigError as e:
            await response.write(_dumps({"error": {"type": type(e).__name__,
                                                   "message": str(e)}}).encode() + b"\n")
        except (ConnectionResetError, ConnectionError):
            pass
        return response


def _dumps(obj: Any) -> str:
    return json.dumps(obj, default=str)
