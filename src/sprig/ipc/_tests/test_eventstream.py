from __future__ import annotations

import struct
import uuid
import zlib

import pytest
from botocore.eventstream import EventStreamBuffer
from hypothesis import given, settings
from hypothesis import strategies as st

from sprig.ipc.eventstream import (
    MAX_HEADER_VALUE_LEN,
    Decoder,
    EventStreamError,
    Header,
    HeaderType,
    Message,
    decode,
    decode_all,
    encode,
)

names = st.text(min_size=1, max_size=40).filter(lambda s: len(s.encode()) <= 255)


@st.composite
def headers(draw: st.DrawFn) -> Header:
    t = draw(st.sampled_from(list(HeaderType)))
    name = draw(names)
    value: object
    if t is HeaderType.BOOL_TRUE:
        value = True
    elif t is HeaderType.BOOL_FALSE:
        value = False
    elif t is HeaderType.BYTE:
        value = draw(st.integers(-128, 127))
    elif t is HeaderType.INT16:
        value = draw(st.integers(-(2**15), 2**15 - 1))
    elif t is HeaderType.INT32:
        value = draw(st.integers(-(2**31), 2**31 - 1))
    elif t in (HeaderType.INT64, HeaderType.TIMESTAMP):
        value = draw(st.integers(-(2**63), 2**63 - 1))
    elif t is HeaderType.BYTES:
        value = draw(st.binary(max_size=64))
    elif t is HeaderType.STRING:
        value = draw(st.text(max_size=64))
    else:
        value = uuid.UUID(bytes=draw(st.binary(min_size=16, max_size=16)))
    return Header(name, value, t)  # type: ignore[arg-type]


messages = st.builds(lambda hs, p: Message(tuple(hs), p),
                     st.lists(headers(), max_size=8), st.binary(max_size=512))


@given(messages)
def test_round_trip(m: Message) -> None:
    assert decode(encode(m)) == m


@given(st.lists(messages, min_size=1, max_size=5), st.data())
def test_streaming_decoder_any_chunking(ms: list[Message], data: st.DataObject) -> None:
    wire = b"".join(encode(m) for m in ms)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=10)))
    chunks = [wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True)]
    assert decode_all(chunks) == ms


@settings(max_examples=300)
@given(st.binary(max_size=200), st.integers(1, 50))
def test_random_bytes_only_raise_event_stream_error(blob: bytes, chunk: int) -> None:
    d = Decoder(max_message_len=1 << 20)
    try:
        for i in range(0, len(blob), chunk):
            d.feed(blob[i:i + chunk])
    except EventStreamError:
        pass


def _frame(headers_raw: bytes, payload: bytes = b"") -> bytes:
    """A frame with valid CRCs around arbitrary header bytes."""
    total = 16 + len(headers_raw) + len(payload)
    prelude = struct.pack(">II", total, len(headers_raw))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + headers_raw + payload
    return body + struct.pack(">I", zlib.crc32(body))


@settings(max_examples=300)
@given(st.binary(max_size=120), st.binary(max_size=20))
def test_random_headers_with_valid_crcs_only_raise_event_stream_error(raw: bytes,
                                                                      payload: bytes) -> None:
    try:
        m = decode(_frame(raw, payload))
    except EventStreamError:
        return
    assert encode(m) == _frame(raw, payload)      # whatever decodes re-encodes identically


unique_messages = st.builds(lambda hs, p: Message(tuple(hs), p),
                            st.lists(headers(), max_size=8, unique_by=lambda h: h.name),
                            st.binary(max_size=512))


@given(unique_messages)
def test_botocore_decoder_reads_our_frames(m: Message) -> None:
    buf = EventStreamBuffer()
    buf.add_data(encode(m))
    got = list(buf)
    assert len(got) == 1 and got[0].payload == m.payload
    assert set(got[0].headers) == {h.name for h in m.headers}
    for h in m.headers:
        if h.type in (HeaderType.STRING, HeaderType.INT32, HeaderType.BYTES):
            assert got[0].headers[h.name] == h.value


def test_known_frame_matches_reference_bytes() -> None:
    # The canonical empty message from the event-stream spec test vectors.
    assert encode(Message()) == bytes.fromhex("000000100000000005c248eb7d98c8ff")


def test_errors_name_the_problem() -> None:
    good = encode(Message((Header.string("a", "b"),), b"xy"))
    bad_crc = good[:-1] + bytes([good[-1] ^ 1])
    with pytest.raises(EventStreamError, match="message CRC mismatch"):
        Decoder().feed(bad_crc)
    bad_prelude = good[:9] + bytes([good[9] ^ 1]) + good[10:]
    with pytest.raises(EventStreamError, match="prelude CRC mismatch"):
        Decoder().feed(bad_prelude)
    with pytest.raises(EventStreamError, match="total_len: out of range"):
        Decoder(max_message_len=20).feed(good)
    with pytest.raises(EventStreamError, match="unknown header type"):
        decode(_frame(b"\x01a\x0c"))
    with pytest.raises(EventStreamError, match="header name: is empty"):
        decode(_frame(b"\x00\x07"))
    with pytest.raises(EventStreamError, match="runs past the end"):
        decode(_frame(b"\x01a\x07\x00\x09abc"))
    with pytest.raises(EventStreamError, match="at most 32767"):
        encode(Message((Header.string("s", "x" * (MAX_HEADER_VALUE_LEN + 1)),)))
    with pytest.raises(EventStreamError, match="out of range for INT32"):
        encode(Message((Header.int32("i", 2**31),)))
    with pytest.raises(EventStreamError, match="at most 1024"):
        encode(Message(tuple(Header.boolean("b", True) for _ in range(1025))))
    d = Decoder()
    with pytest.raises(EventStreamError):
        d.feed(bad_crc)
    with pytest.raises(EventStreamError, match="unusable after an earlier error"):
        d.feed(good)


def test_header_lookup_is_case_insensitive_and_typed() -> None:
    m = decode(encode(Message((Header.int32(":Stream-Id", 3), Header.string("op", "x")))))
    assert m.get(":stream-id", HeaderType.INT32) == 3
    assert m.get(":stream-id", HeaderType.STRING) is None
    assert m.header("OP") == Header.string("op", "x")
