"""HTTP/1.1 connections for every server of the core: llhttp parses, this module frames,
bounds and answers.

Every listener of the core serves its clients through :class:`Connection`: the invoke API, the
management socket and the V1 SDK endpoints (through :mod:`sprig.httpserver`) and each worker's
Runtime API (:mod:`sprig.runtime_api.session`). The HTTP grammar is llhttp's, through
``httptools`` (the parser of Node.js, and of uvicorn), strict as shipped: a single
Content-Length of digits only, no Transfer-Encoding together with Content-Length, ``chunked``
exact and last, CRLF line ends everywhere (after chunk data too), known methods, valid tokens and
versions. On top of it, this module refuses what llhttp lets through but no client of Sprig needs
(400): HTTP versions other than 1.0 and 1.1 (505), a missing or repeated ``Host`` (RFC 9112
§3.2), transfer codings other than ``chunked``, Transfer-Encoding in HTTP/1.0, CONNECT and
upgrades with a body, expectations other than ``100-continue`` (417).

Why httptools, not h11 (the other strict, maintained parser): measured on this project's 2-core
machine, one Runtime API request parsed and answered costs ~2.5-6 µs with httptools and ~57-70
µs with h11 (the hand-written parser it replaces: ~5-11 µs); the Runtime API is the hot path of
every invocation (a ``/response`` and a ``/next`` each). Both import in under 0.5 MB.

What this module adds around the parser, and why:

* **exact message boundaries**: llhttp is fed a request head only once its blank line has
  arrived (whole lines before that, so a header is never rebuilt from many small pieces: that
  would cost quadratic time), a Content-Length body byte-exactly, and a chunked body up to each
  place it may end (after a CRLFCRLF). So requests pipelined behind one are parsed only in their
  turn, and a client that pipelines more than ``max_pipelined`` unanswered requests, or does not
  read its answers, is simply not read until answers go out;
* **bounds before buffering**: a head is refused past ``max_head_bytes`` or ``max_headers``
  (431); at the end of each head the server decides (:meth:`Server.on_head`) whether to read the
  body at all (a refusal is answered at once, e.g. a request without credentials) and up to
  which size. A body over that size is never buffered: the request is handed over truncated at
  once (Content-Length) or as soon as it passes the size (chunked), answered, and the connection
  closed. Chunked framing (sizes, extensions, trailers) is bounded too;
* **timeouts**: a head must arrive within ``head_timeout_s`` of its first byte and a body within
  ``body_timeout_s`` of its head (else 408 and close); a connection with nothing in progress is
  closed after ``idle_timeout_s`` (``head_timeout_s`` if it never sent a request, so silent
  connections cannot hold a listener's slots). A request waiting for its answer (a worker's
  parked ``/next``) is never idle;
* **lingering close**: when the server closes while the client may still be sending (a refused
  body, a malformed request), it half-closes and discards what arrives for up to ``linger_s``,
  so the client reads the answer instead of a connection reset;
* **a connection cap** per listener (:class:`ConnectionCap`): beyond it new connections are
  closed at once, counted, and reported in one line a minute at most.

Answers: :meth:`Connection.respond` (or :meth:`Connection.start_stream` for a chunked stream),
in request order, now or later (a parked ``/next``). Corking: while a request that arrived in the
same read is unanswered (the ``/next`` a runtime pipelines behind its ``/response``), earlier
answers wait and leave with its answer in one write.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Protocol, cast

import httptools

JSON = "application/json"
TEXT = "text/plain; charset=utf-8"
_dumps = json.dumps
_PHRASES = {s.value: s.phrase for s in HTTPStatus}
_BLANK = re.compile(rb"\n\r?\n")     # the end of a head: a line end, then an empty line
_END = b"\r\n\r\n"                   # a chunked body can only end right after one of these
_HOLD = 16 * 1024                    # a partial line of chunked data is held up to this size
_CHUNK_FRAMING = 32                  # bytes of framing allowed per chunk ("ffff;x\r\n"..."\r\n")
_HEAD, _BODY, _CHUNKED, _DISCARD = range(4)
_FRAMING = frozenset({"content-length", "transfer-encoding", "expect"})


@dataclass(frozen=True, slots=True)
class Limits:
    """What one listener allows; all but ``max_connections`` are per connection."""

    max_connections: int = 128      # open at once; more are closed at once
    max_head_bytes: int = 64 * 1024  # request line and headers (and chunked framing, trailers)
    max_headers: int = 100
    max_pipelined: int = 8          # requests received and not answered yet; then not read
    head_timeout_s: float = 10.0    # from a request's first byte to the end of its head
    body_timeout_s: float = 30.0    # from the end of the head to the end of the body
    idle_timeout_s: float = 75.0    # nothing in progress (the keep-alive idle close)
    linger_s: float = 2.0           # closing: how long input is still read and dropped


class Headers(Mapping[str, str]):
    """Request headers: names case-insensitive; a repeated header's first value wins for
    ``[]``/``get``, :meth:`getall` and :attr:`fields` keep every one."""

    __slots__ = ("_first", "fields")

    def __init__(self, fields: list[tuple[str, str]],
                 first: dict[str, str] | None = None) -> None:
        self.fields = fields                 # (lower-case name, value) as received, in order
        if first is None:                    # (the parser gives both, built as it goes)
            first = {}
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


@dataclass(slots=True)
class Request:
    """One request; the same object is shown to :meth:`Server.on_head` (without its body)."""

    method: str
    target: str                  # the request-target as sent: raw path and query
    headers: Headers
    length: int | None           # the declared Content-Length (0: none); None: chunked
    body: bytes = b""
    size: int = 0                # the body's size; for a truncated one, what is known of it
    truncated: bool = False      # over ``limit``: not read (``body`` is empty); closes after
    limit: int = 0               # the body size limit the server gave for this request
    refusal: Response | None = None   # the server's answer given at the end of the head


class Server(Protocol):
    """What a :class:`Connection` asks of the server it belongs to."""

    def on_head(self, conn: Connection, head: Request) -> int | Response:
        """The end of a head: the body size limit for this request, or a refusal answered
        without reading the body (the request is handed over with ``refusal`` set)."""

    def on_request(self, conn: Connection, request: Request) -> None:
        """A request to answer with :meth:`Connection.respond`, now or later, in order."""

    def on_error(self, status: int, reason: str) -> Response:
        """The answer to a request the HTTP layer refuses (malformed, too large a head, too
        slow); the connection is closed after it."""

    def on_lost(self, conn: Connection) -> None:
        """The connection is gone."""


class _Refusal(Exception):
    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(reason)


class _Sink:
    """What llhttp reports of the message being parsed (its callbacks only record)."""

    __slots__ = ("body", "chunks", "done", "fields", "first", "framing", "head_done",
                 "hosts", "keep_alive", "limit", "max_headers", "method", "parser", "size",
                 "upgrade", "url", "version")

    def __init__(self, max_headers: int) -> None:
        self.max_headers = max_headers
        self.parser: httptools.HttpRequestParser | None = None
        self.reset()

    def reset(self) -> None:
        self.head_done = False
        self.done = False
        self.url: list[bytes] = []
        self.fields: list[tuple[str, str]] = []
        self.first: dict[str, str] = {}          # each name's first value
        self.framing: dict[str, str] = {}        # the headers this module checks
        self.hosts = 0
        self.body: list[bytes] = []
        self.size = 0
        self.limit = 0
        self.chunks = 0
        self.method = b""
        self.version = ""
        self.keep_alive = False
        self.upgrade = False

    def on_url(self, url: bytes) -> None:
        self.url.append(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.head_done:
            return                   # a trailer: read (and bounded), not kept
        if len(self.fields) >= self.max_headers:
            raise _Refusal(431, f"more than {self.max_headers} header fields")
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1").strip(" \t")
        self.fields.append((key, text))
        if key not in self.first:
            self.first[key] = text
            if key in _FRAMING:
                self.framing[key] = text
        elif key in _FRAMING:
            raise _Refusal(400, f"a repeated {name.decode('latin-1')} header")
        if key == "host":
            self.hosts += 1

    def on_headers_complete(self) -> None:
        # llhttp's flags are reset when the message completes: read them now
        parser = self.parser
        assert parser is not None
        self.head_done = True
        self.method = parser.get_method()
        self.version = parser.get_http_version()
        self.keep_alive = parser.should_keep_alive()
        self.upgrade = parser.should_upgrade()

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size <= self.limit:
            self.body.append(body)

    def on_message_complete(self) -> None:
        self.done = True

    def on_chunk_header(self) -> None:
        self.chunks += 1


class Connection(asyncio.Protocol):
    """One client connection of ``server``, within ``limits``."""

    def __init__(self, server: Server, limits: Limits) -> None:
        self._server = server
        self._limits = limits
        self._sink = _Sink(limits.max_headers)
        self._parser = httptools.HttpRequestParser(self._sink)
        self._sink.parser = self._parser
        self._transport: asyncio.Transport | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._state = _HEAD
        self._line = bytearray()         # input not fed yet: a partial line
        self._started = False            # a request's first byte arrived
        self._served = False             # a request was handed over
        self._head_bytes = 0             # of its head, fed so far
        self._request: Request | None = None   # the request whose body is being read
        self._keep = True                # that request allows the connection to go on
        self._remaining = 0              # its Content-Length bytes still to come
        self._fed = 0                    # its chunked bytes fed (framing included)
        self._tail = b""                 # the last 3 of them: a CRLFCRLF may straddle reads
        self._held: bytearray | None = None    # input kept while reading is paused
        self._resuming = False
        self._unanswered = 0             # requests handed over and not answered yet
        self._close_after: deque[bool] = deque()   # per unanswered request: close after it
        self._out: list[bytes] = []      # answers waiting for the next write
        self._parsing = False
        self._streaming = False
        self._stream_close = False
        self._closing = False            # close_when_idle() was called
        self._writable: asyncio.Event | None = None    # set while the transport takes writes
        self._error: bytes | None = None     # a refusal waiting for the answers before it
        self._unread = False             # closing with input still coming: linger
        self._eof = False                # the client will send nothing more
        self._linger_over = False
        self._since = 0.0                # when the head, body or lingering began (loop time)
        self._idle_since = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self.closed = False

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (asyncio's, or uvloop's, which is not an asyncio.Transport
        # subclass but has its methods).
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        self._loop = asyncio.get_running_loop()
        self._idle_since = self._loop.time()
        self._arm()

    def socket(self) -> socket.socket | None:
        """The connection's socket (to ask the kernel who the peer is)."""
        # asyncio hands out a TransportSocket: the socket's read-only methods, all we need
        sock: socket.socket | None = (self._transport.get_extra_info("socket")
                                      if self._transport else None)
        return sock

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._writable is not None:
            self._writable.set()             # wake a writer: it sees ``closed`` and stops
        self._server.on_lost(self)

    def pause_writing(self) -> None:
        if self._writable is None:
            self._writable = asyncio.Event()
        self._writable.clear()

    def resume_writing(self) -> None:
        if self._writable is not None:
            self._writable.set()
        self._wake()

    def eof_received(self) -> bool:
        """The client sent all it will: close. (Keeping a half-closed connection open to answer
        would hand a parked ``/next``'s invocation, or a stream, to a client that is gone.)"""
        self._eof = True
        return False

    def data_received(self, data: bytes) -> None:
        if self._held is not None:
            self._held += data               # reading is paused; asyncio had this already
            return
        self._receive(data)

    # -- input -----------------------------------------------------------------------------
    def _receive(self, data: bytes) -> None:
        if self._state == _DISCARD or self.closed:
            return
        assert self._loop is not None
        now = self._loop.time()
        self._parsing = True
        try:
            self._feed(data, now)
        except _Refusal as refusal:
            self._fail(refusal.status, refusal.reason)
        finally:
            self._parsing = False
        # Corking: when the client pipelined a request that is still unanswered (a parked
        # /next behind its /response), its earlier answers wait and leave with that one's, in
        # one write. The client is blocked on the parked request anyway, and it saves a
        # syscall and a wake-up per invocation. Clients that do not pipeline are never held.
        if self._out and not self._unanswered:
            self._flush()
        self._arm()

    def _feed(self, data: bytes, now: float) -> None:
        state = self._state
        if self._line:
            if b"\n" not in data and (state == _HEAD or len(self._line) + len(data) < _HOLD):
                self._line += data               # still no line end: nothing to feed yet
                if state == _HEAD:
                    self._check_head_size(len(self._line))
                return
            data = bytes(self._line) + data
            self._line.clear()
        pos, end = 0, len(data)
        while pos < end:
            if self._unanswered >= self._limits.max_pipelined or (
                    self._writable is not None and not self._writable.is_set()):
                self._hold(data[pos:])           # answers first: the client is not reading
                return
            state = self._state
            if state == _HEAD:
                pos = self._head_step(data, pos, now)
            elif state == _BODY:
                pos = self._body_step(data, pos, now)
            elif state == _CHUNKED:
                pos = self._chunked_step(data, pos, now)
            else:
                return                           # discarding

    def _head_step(self, data: bytes, pos: int, now: float) -> int:
        """Feed the head up to its blank line, or the whole lines that arrived."""
        if not self._started:
            self._started = True
            self._since = now                    # the first byte of a request
        if data.startswith(b"\r\n", pos):        # ``pos`` is always at a line start
            stop = pos + 2
        elif data.startswith(b"\n", pos):
            stop = pos + 1
        else:
            match = _BLANK.search(data, pos)
            if match is None:
                lines = data.rfind(b"\n", pos) + 1
                if lines > pos:
                    self._feed_head(data[pos:lines], now)
                    pos = lines
                self._line += data[pos:]
                self._check_head_size(len(self._line))
                return len(data)
            stop = match.end()
        part = data[pos:stop] if pos or stop < len(data) else data
        self._head_bytes += stop - pos
        if self._head_bytes > self._limits.max_head_bytes:
            raise _Refusal(431, f"the request head is over {self._limits.max_head_bytes} bytes")
        done = self._execute(part)
        if self._sink.head_done:
            self._head_complete(now, done)
        return stop

    def _check_head_size(self, pending: int) -> None:
        if self._head_bytes + pending > self._limits.max_head_bytes:
            raise _Refusal(431, f"the request head is over {self._limits.max_head_bytes} bytes")

    def _feed_head(self, part: bytes, now: float) -> None:
        self._check_head_size(len(part))
        self._head_bytes += len(part)
        done = self._execute(part)
        if self._sink.head_done:
            self._head_complete(now, done)

    def _body_step(self, data: bytes, pos: int, now: float) -> int:
        end = len(data)
        take = min(self._remaining, end - pos)
        self._execute(data if take == end else memoryview(data)[pos:pos + take])
        self._remaining -= take
        if not self._remaining:
            self._complete(now)
        return pos + take

    def _chunked_step(self, data: bytes, pos: int, now: float) -> int:
        """Feed a chunked body up to the next place it may end, else its whole lines."""
        end = len(data)
        stop = self._possible_end(data, pos)
        if stop < 0:
            stop = data.rfind(b"\n", pos) + 1
            if stop <= pos:
                if end - pos < _HOLD:
                    self._line += data[pos:]     # a partial line, held to the next read
                    return end
                stop = end
        part = memoryview(data)[pos:stop]
        self._fed += stop - pos
        self._execute(part)
        self._tail = (self._tail + bytes(part[-3:]))[-3:]
        sink = self._sink
        request = self._request
        assert request is not None
        if sink.size > sink.limit:
            request.size = sink.size
            self._truncate(request)
            return end
        if self._fed - sink.size > self._limits.max_head_bytes + _CHUNK_FRAMING * sink.chunks:
            raise _Refusal(400, "the chunked framing (chunk sizes, extensions, trailers) is "
                                f"over {self._limits.max_head_bytes} bytes")
        if sink.done:
            self._complete(now)
        return stop

    def _possible_end(self, data: bytes, pos: int) -> int:
        """Just after the next CRLFCRLF (one that began in the previous read included)."""
        tail = self._tail
        if tail:
            for k in (3, 2, 1):
                if tail.endswith(_END[:k]) and data.startswith(_END[k:], pos):
                    return pos + 4 - k
        found = data.find(_END, pos)
        return -1 if found < 0 else found + 4

    def _execute(self, part: bytes | memoryview) -> bool:
        """Feed llhttp; False if it stopped for an upgrade after the message."""
        try:
            self._parser.feed_data(part)
        except httptools.HttpParserCallbackError as e:
            inner = e.__context__
            if isinstance(inner, _Refusal):
                raise inner from None
            raise _Refusal(400, f"malformed request: {e}") from None
        except httptools.HttpParserUpgrade:
            if not self._sink.done:
                raise _Refusal(400, "protocol upgrades are not supported") from None
            return False
        except httptools.HttpParserError as e:
            raise _Refusal(400, f"malformed request: {e}") from None
        return True

    def _head_complete(self, now: float, parser_usable: bool) -> None:
        sink = self._sink
        version = sink.version
        if version not in ("1.1", "1.0"):
            if version == "0.9":
                raise _Refusal(400, "malformed request line: no HTTP version; allowed: "
                                    "HTTP/1.1, HTTP/1.0")
            raise _Refusal(505, f"HTTP/{version} is not supported; allowed: HTTP/1.1, "
                                "HTTP/1.0")
        hosts = sink.hosts
        framing = sink.framing
        length: int | None = 0
        coding = expect = None
        if framing:
            if "content-length" in framing:
                length = int(framing["content-length"])   # llhttp allows one, digits only
            coding = framing.get("transfer-encoding")       # llhttp allows one (or a list
            expect = framing.get("expect")                  # ending in chunked: refused)
        if hosts > 1 or (hosts == 0 and version == "1.1"):
            raise _Refusal(400, f"{hosts} Host headers; an HTTP/1.1 request has exactly one "
                                "(RFC 9112 section 3.2)")
        if coding is not None:
            if coding.lower() != "chunked":
                raise _Refusal(400, f"Transfer-Encoding {coding!r} is not supported; allowed: "
                                    "chunked")
            if version == "1.0":
                raise _Refusal(400, "Transfer-Encoding is not allowed in an HTTP/1.0 request")
            length = None
        method = sink.method.decode("ascii")
        has_body = length != 0
        keep = sink.keep_alive
        if sink.upgrade:
            if method == "CONNECT" or has_body:
                raise _Refusal(400, "protocol upgrades (CONNECT, Upgrade) are not supported")
            keep = False                     # served as HTTP/1.1; llhttp stopped reading
        if not parser_usable:
            keep = False
        if expect is not None and expect.lower() != "100-continue":
            raise _Refusal(417, f"Expect {expect!r} cannot be met; allowed: 100-continue")
        url = sink.url
        request = Request(method, (url[0] if len(url) == 1 else b"".join(url)).decode("latin-1"),
                          Headers(sink.fields, sink.first), length, size=length or 0)
        decision = self._server.on_head(self, request)
        if isinstance(decision, Response):
            request.refusal = decision
            if has_body:                     # answered without reading the body
                self._reset()
                self._enter_discard(unread=True)
                self._hand_over(request, close=True)
                return
        else:
            request.limit = decision
            if length is not None and length > decision:
                self._truncate(request)
                return
        self._request = request
        self._keep = keep
        if not has_body:
            self._complete(now)
            return
        sink.limit = request.limit
        self._since = now
        if length is None:
            self._state = _CHUNKED
            self._fed = 0
            self._tail = b""
        else:
            self._state = _BODY
            self._remaining = length
        if expect is not None and not self._unanswered:
            self._out.append(b"HTTP/1.1 100 Continue\r\n\r\n")   # after corked answers
            self._flush()

    def _complete(self, now: float) -> None:
        request = self._request
        assert request is not None
        sink = self._sink
        parts = sink.body
        request.body = parts[0] if len(parts) == 1 else b"".join(parts)
        request.size = sink.size
        keep = self._keep
        self._reset()
        if not keep:
            self._enter_discard(unread=False)
        self._hand_over(request, close=not keep)

    def _truncate(self, request: Request) -> None:
        """The body is over the limit: hand the request over now, never read the body."""
        request.truncated = True
        self._reset()
        self._enter_discard(unread=True)
        self._hand_over(request, close=True)

    def _reset(self) -> None:
        self._sink.reset()
        self._request = None
        self._started = False
        self._head_bytes = 0
        self._state = _HEAD

    def _hand_over(self, request: Request, *, close: bool) -> None:
        self._served = True
        self._unanswered += 1
        self._close_after.append(close)
        self._server.on_request(self, request)

    def _hold(self, rest: bytes) -> None:
        """Stop reading until answers go out (or the client reads them)."""
        self._held = bytearray(rest)
        if self._transport is not None:
            self._transport.pause_reading()

    def _wake(self) -> None:
        """Go on reading held input once the reason to hold it is gone."""
        if (self._held is None or self._resuming or self.closed
                or self._unanswered >= self._limits.max_pipelined
                or (self._writable is not None and not self._writable.is_set())):
            return
        self._resuming = True
        assert self._loop is not None
        self._loop.call_soon(self._resume)

    def _resume(self) -> None:
        self._resuming = False
        held, self._held = self._held, None
        if held is None or self.closed:
            return
        if self._transport is not None and self._state != _DISCARD:
            self._transport.resume_reading()
        self._receive(bytes(held))

    # -- refusals, timeouts and closing ----------------------------------------------------
    def _fail(self, status: int, reason: str) -> None:
        """Refuse what the client sent (after the answers it is owed), then close."""
        answer = self._server.on_error(status, reason)
        data = _head(status, answer.content_type, answer.headers, True,
                     f"Content-Length: {len(answer.body)}") + answer.body
        self._enter_discard(unread=True)
        if self._unanswered or self._streaming:
            self._error = data
        else:
            self._out.append(data)
            self._flush()
            self._end()

    def _enter_discard(self, *, unread: bool) -> None:
        """Read no more requests; with ``unread``, what still comes is read and dropped."""
        if self._state != _DISCARD:
            self._state = _DISCARD
            assert self._loop is not None
            self._since = self._loop.time()
            self._line.clear()
            if self._held is not None:       # what was held is dropped; read on, to drop
                self._held = None
                if self._transport is not None:
                    self._transport.resume_reading()
        self._unread = self._unread or unread

    def _end(self) -> None:
        """The last answer is written: close, lingering if the client may still send."""
        self._enter_discard(unread=False)
        transport = self._transport
        if transport is None or self.closed:
            return
        if not self._unread or self._eof or self._linger_over or not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        assert self._loop is not None
        self._since = self._loop.time()      # lingering from now
        self._arm()

    def _deadline(self) -> float | None:
        state = self._state
        limits = self._limits
        if state == _HEAD:
            if self._started:
                return self._since + limits.head_timeout_s
            if self._unanswered or self._streaming or self._held is not None:
                return None                  # waiting for us, not for the client
            if not self._served:             # connected and silent: as slow as a head
                return self._idle_since + limits.head_timeout_s
            return self._idle_since + limits.idle_timeout_s
        if state == _DISCARD:
            return None if self._linger_over else self._since + limits.linger_s
        return self._since + limits.body_timeout_s

    def _arm(self) -> None:
        if self.closed or self._loop is None:
            return
        deadline = self._deadline()
        if deadline is None:
            return                           # a pending timer finds nothing to do
        if self._timer is not None:
            if self._timer_at <= deadline:
                return                       # it fires first and re-arms for this one
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self.closed or self._loop is None:
            return
        deadline = self._deadline()
        if deadline is None:
            return
        if deadline > self._loop.time():
            self._arm()
            return
        state = self._state
        if state == _DISCARD:
            self._linger_over = True
            if self._unanswered or self._streaming:
                if self._transport is not None:
                    self._transport.pause_reading()   # closed once the answer is written
            else:
                self.close()
        elif state == _HEAD and not self._started:
            self.close()                     # idle
        else:
            what = "head" if state == _HEAD else "body"
            limit = (self._limits.head_timeout_s if state == _HEAD
                     else self._limits.body_timeout_s)
            self._linger_over = True         # a client this slow is not waited for again
            self._fail(408, f"the request {what} did not arrive within {limit:g} s")

    # -- responses -------------------------------------------------------------------------
    def respond(self, status: int, body: bytes, *, content_type: str | None = JSON,
                headers: Iterable[tuple[str, str]] = (), close: bool = False) -> None:
        """Answer the oldest unanswered request; ``Content-Type`` is set unless None (the
        Runtime API's clients crash without it). A 204 has neither body nor
        ``Content-Length`` (RFC 9110)."""
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
            self._end()
            return
        if not self._parsing or status >= 300:      # refusals are never held back
            self._flush()
        self._settled()

    def send(self, response: Response, *, close: bool = False) -> None:
        self.respond(response.status, response.body, content_type=response.content_type,
                     headers=response.headers, close=close)

    def _answered(self) -> bool:
        """Count one request as answered; True if the connection closes after it."""
        self._unanswered = max(0, self._unanswered - 1)
        return self._close_after.popleft() if self._close_after else False

    def _settled(self) -> None:
        """An answer went out: write what waited for it, or close, or read on."""
        if self._unanswered or self._streaming:
            self._wake()
            return
        if self._error is not None:
            self._out.append(self._error)
            self._error = None
            self._flush()
            self._end()
            return
        if self._eof or self._linger_over or (self._closing and self.idle):
            self._flush()
            self._end()
            return
        assert self._loop is not None
        self._idle_since = self._loop.time()
        self._wake()
        self._arm()

    # -- streamed responses ----------------------------------------------------------------
    def start_stream(self, status: int, *, content_type: str | None = JSON,
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
            self._end()
            return
        self._settled()

    # -- graceful close --------------------------------------------------------------------
    @property
    def idle(self) -> bool:
        """No request being received, handled or answered: closing now loses nothing."""
        if self._unanswered or self._streaming or self._held is not None:
            return False
        return self._state == _DISCARD or not self._started

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


class _Refused(asyncio.Protocol):
    """A connection over the cap: closed as soon as it is accepted."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (asyncio's, or uvloop's, which is not an asyncio.Transport
        # subclass but has its methods).
        transport = cast(asyncio.Transport, transport)
        transport.abort()


class ConnectionCap:
    """At most ``limit`` connections open at once on one listener. A connection over it is
    closed at once (nothing read, nothing answered) and counted; the refusals are reported
    through ``log`` in one line per ``interval_s`` at most (the first at once, then the count
    of each interval once it is over, and on :meth:`flush`), so a flood costs the log a line a
    minute, not one per attempt."""

    def __init__(self, name: str, limit: int, log: Callable[[str], None], *,
                 interval_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.limit = limit
        self.open = 0
        self.refused = 0                 # in all
        self._log = log
        self._interval_s = interval_s
        self._clock = clock
        self._reported_at: float | None = None
        self._unreported = 0
        self._flush_timer: asyncio.TimerHandle | None = None

    def protocol(self, make: Callable[[], asyncio.Protocol]) -> asyncio.Protocol:
        """``make()`` if there is room (the caller calls :meth:`release` when it is lost),
        else a protocol that closes the connection at once."""
        return make() if self.admit() else _Refused()

    def admit(self) -> bool:
        """Count one more open connection if there is room (then :meth:`release` it when it
        is lost); else count and report a refusal: the caller closes it at once."""
        if self.open < self.limit:
            self.open += 1
            return True
        self.refused += 1
        self._unreported += 1
        now = self._clock()
        if self._reported_at is None or now - self._reported_at >= self._interval_s:
            self.flush()
        elif self._flush_timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None              # no loop (a test's clock): reported on the next one
            if loop is not None:
                self._flush_timer = loop.call_later(
                    self._reported_at + self._interval_s - now, self.flush)
        return False

    def flush(self) -> None:
        """Report the refusals not reported yet, if any."""
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        if not self._unreported:
            return
        now = self._clock()
        since = "" if self._reported_at is None else \
            f" in the last {now - self._reported_at:.0f} s"
        self._log(f"{self.name}: {self.open} connections open, the most allowed; closed "
                  f"{self._unreported} new connection(s) at once{since} "
                  f"({self.refused} in all)")
        self._reported_at = now
        self._unreported = 0

    def release(self) -> None:
        self.open = max(0, self.open - 1)
