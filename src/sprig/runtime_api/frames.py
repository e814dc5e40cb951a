"""The Runtime API's framed lane: the same session, without HTTP, for Sprig's own runtimes.

A warm invocation through the HTTP Runtime API costs the core two requests to parse and two
answers to build (``POST /response`` answered 202, ``GET /next`` answered with the job), and
the worker a wake-up for the 202 it does not need. Sprig's own Python runtime speaks this lane
instead on the worker's Unix socket (the only place it is offered: the socket is served only to
the worker's own process tree, see :mod:`sprig.runtime_api.session`); the official clients
and custom ``provided`` bootstraps keep the HTTP API, on the same socket or on TCP.

A connection chooses the lane with its first byte: :data:`PREFACE` (which no HTTP request
can start with) selects frames; anything else is HTTP. After the preface, each message is one
frame: ``kind`` (1 byte), the header's length and the body's length (4 bytes each, big-endian),
a JSON object as header, then the body.

=====  ===========  =====================================  =====================================
kind   from         header                                 means (the HTTP route it stands for)
=====  ===========  =====================================  =====================================
``N``  worker       ``{}``                                 ``GET /next``: init done, ready
``R``  worker       ``{"id", "type"}`` (content type)      ``POST /invocation/<id>/response``,
                                                           then ``GET /next``
``E``  worker       ``{"id"}`` (+ ``"errorType"``)         ``POST /invocation/<id>/error``, then
                                                           ``GET /next``
``I``  worker       ``{"errorType"}``                      ``POST /init/error``
``J``  core         the ``/next`` headers, lower case,     the invocation (``/next``'s answer)
                    and ``content-type``
=====  ===========  =====================================  =====================================

The session's rules apply unchanged (it sees each frame as the request it stands for): what
HTTP would refuse (a stale or unknown request id, a second ``N``, a body over the limit) is
logged and the connection closed, which ends the worker's runtime: with frames there is no
answer to a refusal, only Sprig's own runtime speaks them, and it treats a refusal as fatal
anyway. Bounds: a header up to the HTTP head limit, a body up to the session's
``max_response_bytes`` (a larger one is never read: the invocation ends as
``Function.ResponseSizeTooLarge``, as over HTTP).
"""

from __future__ import annotations

import asyncio
import json
import struct
from typing import TYPE_CHECKING, Any, cast

from sprig.http1 import Headers, Request
from sprig.runtime_api import wire

if TYPE_CHECKING:
    from collections.abc import Iterable

    from sprig.runtime_api.session import RuntimeSession

#: The first bytes of a framed connection (a NUL never starts an HTTP request).
PREFACE = b"\x00sprig-frames/1\n"
#: kind, header length, body length.
FRAME_HEAD = struct.Struct(">cII")

NEXT, RESPONSE, ERROR, INIT_ERROR, JOB = b"N", b"R", b"E", b"I", b"J"


def encode(kind: bytes, header: dict[str, str], body: bytes = b"") -> bytes:
    """One frame (the runtimes' side writes the same layout)."""
    head = json.dumps(header, separators=(",", ":")).encode()
    return FRAME_HEAD.pack(kind, len(head), len(body)) + head + body


class FrameConnection(asyncio.Protocol):
    """One worker connection on the framed lane of ``session``."""

    def __init__(self, session: RuntimeSession, max_head_bytes: int,
                 max_body_bytes: int) -> None:
        self._session = session
        self._max_head = max_head_bytes
        self._max_body = max_body_bytes
        self._buf = bytearray()
        self._greeted = False
        self._transport: asyncio.Transport | None = None
        self.closed = False

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._session.on_lost(self)

    def eof_received(self) -> bool:
        return False

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        buf = self._buf
        buf += data
        if not self._greeted:
            if len(buf) < len(PREFACE):
                if not PREFACE.startswith(buf):
                    self._violation("not a frame preface")
                return
            if buf[:len(PREFACE)] != PREFACE:
                self._violation("not a frame preface")
                return
            del buf[:len(PREFACE)]
            self._greeted = True
        while not self.closed and len(buf) >= FRAME_HEAD.size:
            kind, head_len, body_len = FRAME_HEAD.unpack_from(buf)
            if head_len > self._max_head:
                self._violation(f"a frame header of {head_len} bytes is over the "
                                f"{self._max_head} bytes allowed")
                return
            if body_len > self._max_body:
                self._too_large(kind, buf, head_len, body_len)
                return
            end = FRAME_HEAD.size + head_len + body_len
            if len(buf) < end:
                return
            start = FRAME_HEAD.size + head_len
            header = bytes(buf[FRAME_HEAD.size:start])
            body = bytes(buf[start:end])
            del buf[:end]
            self._dispatch(kind, header, body)

    # -- what the session calls (the subset of sprig.http1.Connection it uses) --------------
    def respond(self, status: int, body: bytes, *, content_type: str | None = wire.CT_JSON,
                headers: Iterable[tuple[str, str]] = (), close: bool = False) -> None:
        """200 sends the job (a ``J`` frame); 202 needs no answer on this lane; a refusal
        (already logged by the session) closes the connection."""
        if self._transport is None or self.closed:
            return
        if status == 200:
            header = {name.lower(): value for name, value in headers}
            header["content-type"] = content_type or wire.CT_JSON
            self._transport.write(encode(JOB, header, body))
        elif status >= 300:
            self.close()

    def close(self) -> None:
        if self._transport is not None and not self.closed:
            self._transport.close()
        self.closed = True

    # -- input -----------------------------------------------------------------------------
    def _dispatch(self, kind: bytes, raw_header: bytes, body: bytes) -> None:
        header = self._header(raw_header)
        if header is None:
            return
        session = self._session
        if kind == NEXT:
            session.on_frame_next(self)
        elif kind in (RESPONSE, ERROR):
            request_id = header.get("id")
            if not isinstance(request_id, str):
                self._violation(f"a {kind.decode()} frame without a request id")
                return
            session.on_frame_answer(self, kind == RESPONSE, request_id,
                                    _request(header, body, len(body)))
        elif kind == INIT_ERROR:
            session.on_frame_init_error(self, _request(header, body, len(body)))
        else:
            self._violation(f"unknown frame kind {kind!r}")

    def _header(self, raw: bytes) -> dict[str, Any] | None:
        try:
            header = json.loads(raw) if raw else {}
        except ValueError:
            header = None
        if not isinstance(header, dict) or not all(isinstance(v, str) for v in header.values()):
            self._violation("a frame header that is not a JSON object of strings")
            return None
        return header

    def _too_large(self, kind: bytes, buf: bytearray, head_len: int, body_len: int) -> None:
        """A body over the limit is never read: an answer ends the invocation as too large
        (the session refuses it, which closes the connection); anything else is a violation."""
        if kind not in (RESPONSE, ERROR) or len(buf) < FRAME_HEAD.size + head_len:
            if kind not in (RESPONSE, ERROR):
                self._violation(f"a {kind!r} frame body of {body_len} bytes is over the "
                                f"{self._max_body} bytes allowed")
            return                       # an answer's header not all here yet: wait for it
        header = self._header(bytes(buf[FRAME_HEAD.size:FRAME_HEAD.size + head_len]))
        buf.clear()
        if header is None:
            return
        request = _request(header, b"", body_len)
        request.truncated = True
        request.limit = self._max_body
        self._session.on_frame_answer(self, kind == RESPONSE, str(header.get("id", "")),
                                      request)
        self.close()

    def _violation(self, what: str) -> None:
        self._session.log(f"runtime API refused a frame: {what}; closing the connection")
        self._buf.clear()
        self.close()


def _request(header: dict[str, str], body: bytes, size: int) -> Request:
    """The frame as the HTTP request it stands for (what the session's handlers read)."""
    fields = [("content-type", header.get("type", wire.CT_JSON))]
    if "errorType" in header:
        fields.append((wire.H_FUNCTION_ERROR_TYPE, header["errorType"]))
    return Request("POST", "", Headers(fields), size, body, size)
