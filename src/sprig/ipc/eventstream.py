"""The AWS event-stream binary framing (what awscrt's ``aws-c-event-stream`` speaks).

One message on the wire (client-protocols §4.3)::

    [total_len u32][headers_len u32][prelude_crc u32 = CRC32(first 8 bytes)]
    [headers ...][payload ...][message_crc u32 = CRC32(everything before it)]

    header = name_len u8 | name (1..255 B, UTF-8) | type u8 | value

All integers are big-endian; the CRC is the standard CRC-32 (``zlib.crc32``, which interoperates
with ``aws_checksums_crc32``). The limits below are the C library's; a peer that breaks one gets an
:class:`EventStreamError` naming the field, the value and what is allowed. The decoder is
incremental: feed it whatever byte chunks the socket gives and it returns whole messages; after an
error it stays broken (the stream position is lost), so the caller must drop the connection.

Everything here is pure: no I/O, no asyncio.
"""

from __future__ import annotations

import enum
import struct
import uuid
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from sprig.errors import SprigError

PRELUDE_LEN: Final = 12
CRC_LEN: Final = 4
MIN_MESSAGE_LEN: Final = PRELUDE_LEN + CRC_LEN
#: aws-c-event-stream: AWS_EVENT_STREAM_MAX_MESSAGE_SIZE.
MAX_MESSAGE_LEN: Final = 24 * 1024 * 1024
#: aws-c-event-stream: AWS_EVENT_STREAM_MAX_HEADERS_SIZE (the whole headers section).
MAX_HEADERS_LEN: Final = 128 * 1024
#: At most this many headers in one message.
MAX_HEADERS: Final = 1024
MAX_HEADER_NAME_LEN: Final = 255
#: String and bytes header values (u16 length, capped at INT16_MAX by the C library).
MAX_HEADER_VALUE_LEN: Final = 32767

_PRELUDE = struct.Struct(">III")
_U32 = struct.Struct(">I")


class EventStreamError(SprigError):
    """A frame breaks the event-stream format; the message names the field and the rule."""


class HeaderType(enum.IntEnum):
    BOOL_TRUE = 0
    BOOL_FALSE = 1
    BYTE = 2
    INT16 = 3
    INT32 = 4
    INT64 = 5
    BYTES = 6
    STRING = 7
    TIMESTAMP = 8      # int64 milliseconds since the epoch
    UUID = 9


HeaderValue = bool | int | bytes | str | uuid.UUID

_INT_FORMATS: Final[dict[HeaderType, struct.Struct]] = {
    HeaderType.BYTE: struct.Struct(">b"),
    HeaderType.INT16: struct.Struct(">h"),
    HeaderType.INT32: struct.Struct(">i"),
    HeaderType.INT64: struct.Struct(">q"),
    HeaderType.TIMESTAMP: struct.Struct(">q"),
}
_U16 = struct.Struct(">H")


@dataclass(frozen=True)
class Header:
    """One typed header. Value types: bool (BOOL_*), int (BYTE..INT64, TIMESTAMP in ms),
    bytes (BYTES), str (STRING), uuid.UUID (UUID)."""

    name: str
    value: HeaderValue
    type: HeaderType

    @classmethod
    def string(cls, name: str, value: str) -> Header:
        return cls(name, value, HeaderType.STRING)

    @classmethod
    def int32(cls, name: str, value: int) -> Header:
        return cls(name, value, HeaderType.INT32)

    @classmethod
    def boolean(cls, name: str, value: bool) -> Header:
        return cls(name, value, HeaderType.BOOL_TRUE if value else HeaderType.BOOL_FALSE)


@dataclass(frozen=True)
class Message:
    """One event-stream message: ordered headers (names may repeat) and a payload."""

    headers: tuple[Header, ...] = ()
    payload: bytes = b""
    _by_name: dict[str, Header] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        by_name: dict[str, Header] = {}
        for h in self.headers:
            by_name.setdefault(h.name.lower(), h)    # the first one wins, as in awscrt
        object.__setattr__(self, "_by_name", by_name)

    def header(self, name: str) -> Header | None:
        """The first header called ``name`` (case-insensitive), or None."""
        return self._by_name.get(name.lower())

    def get(self, name: str, kind: HeaderType) -> HeaderValue | None:
        """The value of header ``name`` if it is present with type ``kind``, else None."""
        h = self.header(name)
        return h.value if h is not None and h.type is kind else None


# --- encoding --------------------------------------------------------------------------------

def _bad(field_: str, message: str, value: object, allowed: str) -> EventStreamError:
    return EventStreamError(f"{field_}: {message} (got {value!r}); allowed: {allowed}")


def encode_header(h: Header) -> bytes:
    """The wire form of one header; raises :class:`EventStreamError` for a value out of range."""
    name = h.name.encode("utf-8")
    if not 1 <= len(name) <= MAX_HEADER_NAME_LEN:
        raise _bad("header name", f"is {len(name)} bytes long", h.name[:64],
                   f"1 to {MAX_HEADER_NAME_LEN} bytes of UTF-8")
    t = HeaderType(h.type)
    out = bytearray((len(name),)) + name + bytes((t,))
    v = h.value
    if t in (HeaderType.BOOL_TRUE, HeaderType.BOOL_FALSE):
        if v is not (t is HeaderType.BOOL_TRUE):
            raise _bad(f"header {h.name}", "boolean value disagrees with its type", v,
                       "True with BOOL_TRUE, False with BOOL_FALSE")
    elif t in _INT_FORMATS:
        if isinstance(v, bool) or not isinstance(v, int):
            raise _bad(f"header {h.name}", f"{t.name} needs an int", v, "an int")
        try:
            out += _INT_FORMATS[t].pack(v)
        except struct.error:
            raise _bad(f"header {h.name}", f"out of range for {t.name}", v,
                       f"a signed {_INT_FORMATS[t].size * 8}-bit int") from None
    elif t in (HeaderType.BYTES, HeaderType.STRING):
        if t is HeaderType.STRING:
            if not isinstance(v, str):
                raise _bad(f"header {h.name}", "STRING needs a str", v, "a str")
            data = v.encode("utf-8")
        else:
            if not isinstance(v, bytes | bytearray):
                raise _bad(f"header {h.name}", "BYTES needs bytes", v, "bytes")
            data = bytes(v)
        if len(data) > MAX_HEADER_VALUE_LEN:
            raise _bad(f"header {h.name}", f"value is {len(data)} bytes long", data[:32],
                       f"at most {MAX_HEADER_VALUE_LEN} bytes")
        out += _U16.pack(len(data)) + data
    else:   # UUID
        if not isinstance(v, uuid.UUID):
            raise _bad(f"header {h.name}", "UUID needs a uuid.UUID", v, "a uuid.UUID")
        out += v.bytes
    return bytes(out)


def encode(message: Message) -> bytes:
    """The wire form of ``message`` (prelude, headers, payload, both CRCs)."""
    if len(message.headers) > MAX_HEADERS:
        raise _bad("headers", f"{len(message.headers)} headers", len(message.headers),
                   f"at most {MAX_HEADERS}")
    headers = b"".join(encode_header(h) for h in message.headers)
    if len(headers) > MAX_HEADERS_LEN:
        raise _bad("headers", f"section is {len(headers)} bytes", len(headers),
                   f"at most {MAX_HEADERS_LEN} bytes")
    total = MIN_MESSAGE_LEN + len(headers) + len(message.payload)
    if total > MAX_MESSAGE_LEN:
        raise _bad("message", f"is {total} bytes long", total, f"at most {MAX_MESSAGE_LEN} bytes")
    prelude = struct.pack(">II", total, len(headers))
    prelude += _U32.pack(zlib.crc32(prelude))
    body = prelude + headers + bytes(message.payload)
    return body + _U32.pack(zlib.crc32(body))


# --- decoding --------------------------------------------------------------------------------

def decode_headers(data: bytes) -> tuple[Header, ...]:
    """Parse a whole headers section; raises :class:`EventStreamError` if it is malformed."""
    headers: list[Header] = []
    i, n = 0, len(data)

    def need(count: int, what: str) -> None:
        if i + count > n:
            raise EventStreamError(f"headers: {what} runs past the end of the headers section "
                                   f"(needs {count} bytes at offset {i}, section is {n} bytes)")

    while i < n:
        if len(headers) >= MAX_HEADERS:
            raise _bad("headers", "too many headers", f">{MAX_HEADERS}", f"at most {MAX_HEADERS}")
        name_len = data[i]
        i += 1
        if name_len == 0:
            raise _bad("header name", "is empty", "", f"1 to {MAX_HEADER_NAME_LEN} bytes")
        need(name_len + 1, "a header name and type")
        try:
            name = data[i:i + name_len].decode("utf-8")
        except UnicodeDecodeError:
            raise _bad("header name", "is not UTF-8", data[i:i + name_len], "UTF-8") from None
        i += name_len
        code = data[i]
        i += 1
        try:
            t = HeaderType(code)
        except ValueError:
            raise _bad(f"header {name}", "unknown header type", code,
                       "0-9 (bool true/false, byte, int16, int32, int64, bytes, string, "
                       "timestamp, uuid)") from None
        value: HeaderValue
        if t is HeaderType.BOOL_TRUE:
            value = True
        elif t is HeaderType.BOOL_FALSE:
            value = False
        elif t in _INT_FORMATS:
            fmt = _INT_FORMATS[t]
            need(fmt.size, f"the {t.name} value of header {name}")
            value = fmt.unpack_from(data, i)[0]
            i += fmt.size
        elif t in (HeaderType.BYTES, HeaderType.STRING):
            need(2, f"the length of header {name}")
            length = _U16.unpack_from(data, i)[0]
            i += 2
            if length > MAX_HEADER_VALUE_LEN:
                raise _bad(f"header {name}", f"value length is {length} bytes", length,
                           f"at most {MAX_HEADER_VALUE_LEN}")
            need(length, f"the value of header {name}")
            raw = bytes(data[i:i + length])
            i += length
            if t is HeaderType.STRING:
                try:
                    value = raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise _bad(f"header {name}", "string value is not UTF-8", raw[:32],
                               "UTF-8") from None
            else:
                value = raw
        else:
            need(16, f"the UUID value of header {name}")
            value = uuid.UUID(bytes=bytes(data[i:i + 16]))
            i += 16
        headers.append(Header(name, value, t))
    return tuple(headers)


def check_prelude(prelude: bytes, *, max_message_len: int = MAX_MESSAGE_LEN) -> tuple[int, int]:
    """Validate a 12-byte prelude; returns ``(total_len, headers_len)``."""
    total, headers_len, crc = _PRELUDE.unpack_from(prelude)
    actual = zlib.crc32(prelude[:8])
    if crc != actual:
        raise EventStreamError(f"prelude CRC mismatch: the frame says {crc:#010x}, the first 8 "
                               f"bytes give {actual:#010x} (corrupt or not an event-stream frame)")
    if not MIN_MESSAGE_LEN <= total <= max_message_len:
        raise _bad("total_len", "out of range", total,
                   f"{MIN_MESSAGE_LEN} to {max_message_len} bytes")
    if headers_len > MAX_HEADERS_LEN:
        raise _bad("headers_len", "too large", headers_len, f"at most {MAX_HEADERS_LEN} bytes")
    if headers_len > total - MIN_MESSAGE_LEN:
        raise _bad("headers_len", f"does not fit in a {total}-byte message", headers_len,
                   f"at most total_len - {MIN_MESSAGE_LEN} = {total - MIN_MESSAGE_LEN}")
    return total, headers_len


def decode(frame: bytes, *, max_message_len: int = MAX_MESSAGE_LEN) -> Message:
    """Decode exactly one whole frame."""
    if len(frame) < PRELUDE_LEN:
        raise _bad("frame", "shorter than a prelude", len(frame), f">= {PRELUDE_LEN} bytes")
    total, headers_len = check_prelude(frame[:PRELUDE_LEN], max_message_len=max_message_len)
    if len(frame) != total:
        raise _bad("frame", f"length differs from total_len {total}", len(frame), f"{total} bytes")
    body_end = total - CRC_LEN
    crc = _U32.unpack_from(frame, body_end)[0]
    actual = zlib.crc32(frame[:body_end])
    if crc != actual:
        raise EventStreamError(f"message CRC mismatch: the frame says {crc:#010x}, its bytes "
                               f"give {actual:#010x}")
    headers = decode_headers(frame[PRELUDE_LEN:PRELUDE_LEN + headers_len])
    return Message(headers, bytes(frame[PRELUDE_LEN + headers_len:body_end]))


class Decoder:
    """Incremental decoder: :meth:`feed` bytes, get the messages completed so far.

    A prelude is checked as soon as its 12 bytes arrive, so a bogus length is refused before
    anything is buffered for it. After an error the decoder refuses further input.
    """

    def __init__(self, *, max_message_len: int = MAX_MESSAGE_LEN) -> None:
        self.max_message_len = max_message_len
        self._buf = bytearray()
        self._need: int | None = None     # total_len of the frame being collected
        self._broken: EventStreamError | None = None

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[Message]:
        if self._broken is not None:
            raise EventStreamError(f"the stream is unusable after an earlier error: "
                                   f"{self._broken}")
        self._buf += data
        out: list[Message] = []
        try:
            while True:
                if self._need is None:
                    if len(self._buf) < PRELUDE_LEN:
                        break
                    self._need, _ = check_prelude(bytes(self._buf[:PRELUDE_LEN]),
                                                  max_message_len=self.max_message_len)
                if len(self._buf) < self._need:
                    break
                frame = bytes(self._buf[:self._need])
                del self._buf[:self._need]
                self._need = None
                out.append(decode(frame, max_message_len=self.max_message_len))
        except EventStreamError as e:
            self._broken = e
            raise
        return out


def decode_all(chunks: Iterable[bytes], *, max_message_len: int = MAX_MESSAGE_LEN
               ) -> list[Message]:
    """Decode a whole byte stream given as chunks (a convenience for tests and tools)."""
    d = Decoder(max_message_len=max_message_len)
    out: list[Message] = []
    for c in chunks:
        out.extend(d.feed(c))
    if d.buffered:
        raise EventStreamError(f"stream ends inside a frame ({d.buffered} bytes left over)")
    return out
