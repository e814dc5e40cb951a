"""A minimal HTTP/1.1 server connection for the Runtime API.

Why not aiohttp here: this is the hot path of every invocation (one ``/response`` and one
``/next`` per call) and the Runtime API needs only a sliver of HTTP: keep-alive, Content-Length
and chunked request bodies, and responses written whenever the invocation arrives (a parked
``/next``). A bare :class:`asyncio.Protocol` does that with a fraction of a framework's overhead.

Bodies larger than ``max_body`` are read and discarded (the client is sending them anyway), and
the request is handed over with ``truncated=True`` and its real size, so the server can answer 413.

The other servers of the core (:mod:`sprig.httpserver`) use it too, which is why it can also
stream a chunked response (with write back-pressure), answer without a ``Content-Type``, hand
malformed requests to the caller, and close gracefully (:meth:`Connection.close_when_idle`).
"""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus

_MAX_HEAD = 64 * 1024
_PHRASES = {s.value: s.phrase for s in HTTPStatus}


@dataclass(slots=True)
class Request:
    """One parsed request; header names are lower case."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    size: int
    truncated: bool
    fields: list[tuple[str, str]] = field(default_factory=list)   # every header, repeats kept


class Connection(asyncio.Protocol):
    """One client connection; calls ``on_request(conn, request)`` for each complete request.

    The handler answers with :meth:`respond`, now or later (a parked ``/next``). Requests are
    handled one at a time, as HTTP/1.1 clients without pipelining send them.
    """

    def __init__(self, on_request: Callable[[Connection, Request], None],
                 on_lost: Callable[[Connection], None], max_body: int, *,
                 on_bad_request: Callable[[Connection, str], None] | None = None) -> None:
        self._on_request = on_request
        self._on_lost = on_lost
        self._on_bad_request = on_bad_request
        self._max_body = max_body
        self._buf = bytearray()
        self._transport: asyncio.Transport | None = None
        self._head: tuple[str, str, dict[str, str], bool] | None = None
        self._fields: list[tuple[str, str]] = []
        self._body = bytearray()
        self._size = 0
        self._remaining = 0          # Content-Length bytes still to read
        self._chunked = False
        self._chunk_crlf = False
        self._close_after: deque[bool] = deque()   # per unanswered request: close after it
        self._stream_close = False
        self._parsing = False
        self._unanswered = 0                 # requests handed over and not answered yet
        self._out: list[bytes] = []          # answers waiting for the next write
        self._streaming = False
        self._closing = False                # close_when_idle() was called
        self._writable: asyncio.Event | None = None    # set while the transport takes writes
        self.closed = False

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def socket(self) -> socket.socket | None:
        """The connection's socket (to ask the kernel who the peer is)."""
        # asyncio hands out a TransportSocket: the socket's read-only methods, all we need
        sock: socket.socket | None = (self._transport.get_extra_info("socket")
                                      if self._transport else None)
        return sock

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._writable is not None:
            self._writable.set()             # wake a writer: it sees ``closed`` and stops
        self._on_lost(self)

    def pause_writing(self) -> None:
        if self._writable is None:
            self._writable = asyncio.Event()
        self._writable.clear()

    def resume_writing(self) -> None:
        if self._writable is not None:
            self._writable.set()

    def data_received(self, data: bytes) -> None:
        if self._transport is not None and self._transport.is_closing():
            return                           # answered with "Connection: close": no more
        self._buf += data
        self._parsing = True
        try:
            self._parse()
        except _BadRequest as e:
            self._parsing = False
            self._head = None
            self._unanswered += 1
            if self._on_bad_request is not None:
                self._on_bad_request(self, str(e))     # it answers with close=True
            else:
                self.respond(400, b'{"errorMessage":"%s","errorType":"InvalidRequest"}'
                             % str(e).encode(), close=True)
            self._buf.clear()
        finally:
            self._parsing = False
        # Corking: when the client pipelined a request that is still unanswered (a parked
        # /next behind its /response), its earlier answers wait and leave with that one's, in
        # one write. The client is blocked on the parked request anyway, and it saves a
        # syscall and a wake-up per invocation. Clients that do not pipeline are never held.
        if self._out and not self._unanswered:
            self._flush()

    # -- parsing ---------------------------------------------------------------------------
    def _parse(self) -> None:
        while True:
            if self._head is None:
                end = self._buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(self._buf) > _MAX_HEAD:
                        raise _BadRequest("request head too large")
                    return
                self._start(bytes(self._buf[:end]))
                del self._buf[:end + 4]
            if self._chunked:
                if not self._read_chunks():
                    return
            else:
                take = min(self._remaining, len(self._buf))
                if take:
                    self._add(self._buf[:take])
                    del self._buf[:take]
                    self._remaining -= take
                if self._remaining:
                    return
            self._finish()
            if self._transport is None or self.closed or self._transport.is_closing():
                return

    def _start(self, head: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            raise _BadRequest("malformed request line")
        method, path, version = parts
        headers: dict[str, str] = {}
        fields: list[tuple[str, str]] = []
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise _BadRequest("malformed header line")
            headers[name.strip().lower()] = value.strip()
            fields.append((name.strip().lower(), value.strip()))
        conn = headers.get("connection", "").lower()
        close = conn == "close" or (version == "HTTP/1.0" and conn != "keep-alive")
        self._head = (method, path, headers, close)
        self._fields = fields
        self._body = bytearray()
        self._size = 0
        self._chunk_crlf = False
        self._chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        try:
            self._remaining = 0 if self._chunked else int(headers.get("content-length", "0"))
        except ValueError:
            raise _BadRequest("bad Content-Length") from None
        if self._remaining < 0:
            raise _BadRequest("bad Content-Length")
        if headers.get("expect", "").lower() == "100-continue" and self._transport is not None:
            self._out.append(b"HTTP/1.1 100 Continue\r\n\r\n")
            self._flush()

    def _add(self, data: bytes | bytearray) -> None:
        self._size += len(data)
        if self._size <= self._max_body:
            self._body += data

    def _read_chunks(self) -> bool:
        """Consume chunked data; True when the last chunk (and trailers) arrived."""
        while True:
            if self._remaining:
                take = min(self._remaining, len(self._buf))
                self._add(self._buf[:take])
                del self._buf[:take]
                self._remaining -= take
                if self._remaining:
                    return False
                self._chunk_crlf = True
            if self._chunk_crlf:
                if len(self._buf) < 2:
                    return False
                del self._buf[:2]            # CRLF after chunk data
                self._chunk_crlf = False
            end = self._buf.find(b"\r\n")
            if end < 0:
                return False
            size_text = bytes(self._buf[:end]).split(b";")[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise _BadRequest("bad chunk size") from None
            if size == 0:
                trailer_end = self._buf.find(b"\r\n\r\n", end)
                if trailer_end == end:       # no trailers: "0\r\n\r\n"
                    del self._buf[:end + 4]
                    return True
                if trailer_end < 0:
                    return False
                del self._buf[:trailer_end + 4]
                return True
            del self._buf[:end + 2]
            self._remaining = size

    def _finish(self) -> None:
        assert self._head is not None
        method, path, headers, close = self._head
        self._head = None
        self._close_after.append(close)
        req = Request(method, path, headers, bytes(self._body), self._size,
                      self._size > self._max_body, self._fields)
        self._body = bytearray()
        self._unanswered += 1
        self._on_request(self, req)

    # -- responses -------------------------------------------------------------------------
    def respond(self, status: int, body: bytes, *, content_type: str | None = "application/json",
                headers: Iterable[tuple[str, str]] = (), close: bool = False) -> None:
        """Write one response; ``Content-Type`` is set unless None (the Runtime API's clients
        crash without it). A 204 has neither body nor ``Content-Length`` (RFC 9110)."""
        if self._transport is None or self.closed:
            return
        close = self._answered() or close or self._closing
        if status == 204:
            body = b""
        self._out.append(_head(status, content_type, headers, close,
                               None if status == 204 else f"Content-Length: {len(body)}")
                         + body)
        if close:
            self._flush()
            self._transport.close()
        elif not self._parsing or status >= 300:      # refusals are never held back
            self._flush()

    def _answered(self) -> bool:
        """Count one request as answered; True if it asked to close the connection."""
        self._unanswered = max(0, self._unanswered - 1)
        return self._close_after.popleft() if self._close_after else False

    # -- streamed responses ----------------------------------------------------------------
    def start_stream(self, status: int, *, content_type: str | None = "application/json",
                     headers: Iterable[tuple[str, str]] = ()) -> None:
        """Send the head of a chunked response; then :meth:`write_chunk`, :meth:`end_stream`."""
        if self._transport is None or self.closed:
            return
        self._stream_close = self._answered()
        self._streaming = True
        self._out.append(_head(status, content_type, headers, False,
                               "Transfer-Encoding: chunked"))
        self._flush()

    async def write_chunk(self, data: bytes) -> None:
        """Write one chunk, waiting while the client does not read (back-pressure)."""
        if self._transport is None or self.closed or not data:
            return
        self._transport.write(b"%x\r\n%b\r\n" % (len(data), data))
        if self._writable is not None and not self._writable.is_set():
            await self._writable.wait()

    def end_stream(self) -> None:
        """The last chunk; the connection is kept open unless the request or a close asked."""
        self._streaming = False
        if self._transport is None or self.closed:
            return
        self._transport.write(b"0\r\n\r\n")
        if self._stream_close or self._closing:
            self._transport.close()

    # -- graceful close --------------------------------------------------------------------
    @property
    def idle(self) -> bool:
        """No request being received, handled or answered: closing now loses nothing."""
        return (not self._unanswered and not self._streaming and self._head is None
                and not self._buf)

    def close_when_idle(self) -> None:
        """Close now if idle, else right after the answer in progress (no more requests)."""
        self._closing = True
        if self.idle:
            self.close()

    def _flush(self) -> None:
        if self._transport is not None and not self.closed and self._out:
            self._transport.write(self._out[0] if len(self._out) == 1 else b"".join(self._out))
        self._out.clear()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


def _head(status: int, content_type: str | None, headers: Iterable[tuple[str, str]],
          close: bool, framing: str | None) -> bytes:
    reason = _PHRASES.get(status) or HTTPStatus(status).phrase
    head = [f"HTTP/1.1 {status} {reason}\r\n"]
    if content_type is not None:
        head.append(f"Content-Type: {content_type}\r\n")
    if framing is not None:
        head.append(f"{framing}\r\n")
    head.extend(f"{k}: {v}\r\n" for k, v in headers)
    if close:
        head.append("Connection: close\r\n")
    head.append("\r\n")
    return "".join(head).encode()


class _BadRequest(Exception):
    pass
