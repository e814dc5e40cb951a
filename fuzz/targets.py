"""The fuzz targets: one function per entrance, ``target(data: bytes) -> None``. Each returns
normally for any input it accepts or refuses with a clear error, and raises (an AssertionError
or whatever escaped) otherwise; atheris reports the latter as a crash.

Importable without atheris (the test suite runs each target on a few seeds: see
``src/sprig/_tests/reliability/test_fuzz_targets.py``)."""

from __future__ import annotations

import asyncio
import json
import string
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import yaml

from sprig.config.merge import apply_update
from sprig.config.update import parse_update_document
from sprig.errors import ValidationError
from sprig.http1 import Connection
from sprig.ipc import eventstream as es
from sprig.local_api import invoke_api, sigv4
from sprig.local_api.credentials import Credentials
from sprig.recipe.parse import parse_recipe
from sprig.runtime_api import Job, RuntimeSession

Target = Callable[[bytes], None]


def _clear(e: Exception) -> None:
    assert str(e), f"an empty error message: {e!r}"


def recipe(data: bytes) -> None:
    """YAML or JSON text → ``parse_recipe``."""
    try:
        doc = yaml.safe_load(data.decode("utf-8", "replace"))
    except yaml.YAMLError:
        return
    if not isinstance(doc, dict):
        return
    try:
        parse_recipe(doc, "fuzz.yaml")
    except ValidationError as e:
        _clear(e)
        assert "fuzz.yaml" in str(e)


def _json(data: bytes) -> Any:
    try:
        return json.loads(data.decode("utf-8", "replace"))
    except ValueError:
        return None


def config(data: bytes) -> None:
    """A ``--update-config`` document (JSON) → parse → RESET/MERGE over fixed configurations."""
    doc = _json(data)
    if doc is None:
        return
    current = {"a": {"b": [1, 2], "c": "x"}, "d": 1, "e~/f": {"g": None}}
    defaults = {"a": {"b": [0], "h": True}, "d": 0}
    try:
        updates = parse_update_document(doc, "fuzz")
    except ValidationError as e:
        _clear(e)
        return
    for update in updates.values():
        for strict in (True, False):
            try:
                json.dumps(apply_update(current, defaults, update, strict=strict))
            except ValidationError as e:
                assert strict, f"a non-strict replay raised {e}"
                _clear(e)


def eventstream(data: bytes) -> None:
    """Bytes in up to 4 chunks → the IPC event-stream decoder."""
    decoder = es.Decoder(max_message_len=1 << 16)
    cuts = sorted({b % (len(data) + 1) for b in data[:3]}) if data else []
    pieces, last = [], 0
    for cut in [*cuts, len(data)]:
        pieces.append(data[last:cut])
        last = cut
    for piece in pieces:
        try:
            for message in decoder.feed(piece):
                es.encode(message)            # what decodes re-encodes
        except es.EventStreamError as e:
            _clear(e)
            return


_CREDS = Credentials("SPRIGFUZZ0000000", "s" * 40)
_NOW = datetime(2026, 1, 1, tzinfo=UTC)
_HEADER_NAMES = ["Authorization", "X-Amz-Date", "Date", "X-Amz-Content-Sha256", "Host",
                 "X-Amz-Invocation-Type", "X-Amz-Log-Type", "X-Amz-Client-Context"]


def invoke_request(data: bytes) -> None:
    """The invoke API's request edge, in-process: SigV4 verification and the header parser
    over headers built from the input (the HTTP server is exercised by the property tests)."""
    text = data.decode("latin-1")
    fields = text.split("\n")
    method = fields[0][:8] or "POST"
    path = fields[1] if len(fields) > 1 else "/"
    query = fields[2] if len(fields) > 2 else ""
    headers = []
    for i, value in enumerate(fields[3:11]):
        headers.append((_HEADER_NAMES[i % len(_HEADER_NAMES)], value))
    body = data[-64:]
    try:
        sigv4.verify(method, path, query, headers, body, _CREDS, _NOW, region="us-east-1")
    except sigv4.AuthError as e:
        _clear(e)
    name = invoke_api.function_name_from_path(path) or path[:300]
    try:
        invoke_api.parse_invoke_headers(name, dict(q.partition("=")[::2] for q in
                                                   query.split("&")), dict(headers))
    except invoke_api.ApiError as e:
        assert 400 <= e.status < 500, e.status
    except ValidationError as e:
        _clear(e)


class _Transport(asyncio.Transport):
    """Collects what the connection writes; records pauses, half-closes and closes."""

    def __init__(self) -> None:
        super().__init__()
        self.out = bytearray()
        self.closed = False
        self.paused = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert not self.closed, "a write after close"
        self.out += data

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


_LOOP = asyncio.new_event_loop()
_ARN = "arn:aws:lambda:us-east-1:123456789012:function:fuzz:1"


def _answers(out: bytes) -> list[tuple[int, bytes]]:
    """Split what the server wrote into (status, body); every answer must be well formed."""
    found = []
    while out:
        assert out.startswith(b"HTTP/1.1 "), out[:100]
        head, sep, rest = out.partition(b"\r\n\r\n")
        assert sep, out[:200]
        status = int(head[9:12])
        if status == 100:
            out = rest
            continue
        length = next(int(h.split(b":", 1)[1]) for h in head.split(b"\r\n")
                      if h.lower().startswith(b"content-length:"))
        body, out = rest[:length], rest[length:]
        assert len(body) == length, (head, body)
        found.append((status, body))
    return found


async def _runtime_http(data: bytes) -> None:
    session = RuntimeSession(log=lambda line: None, max_response_bytes=4096)
    conn = Connection(session, session.limits)
    transport = _Transport()
    conn.connection_made(transport)
    step = 1 + (data[0] % 64 if data else 0)
    submitted = False
    try:
        for i in range(0, len(data), step):
            if transport.closed:
                break
            conn.data_received(data[i:i + step])
            if not submitted and session.ready and session.state == "IDLE":
                session.submit(Job.for_payload(b'{"fuzz": 1}', function_arn=_ARN,
                                               timeout_s=60, request_id="fuzz-id"))
                submitted = True          # a parked /next gets it, answers leave in order
    finally:
        conn.connection_lost(None)
        session.abort("fuzzing is over")
    for status, body in _answers(bytes(transport.out)):
        assert 200 <= status < 600, status
        if status >= 400:
            doc = json.loads(body)
            assert doc["errorType"] and doc["errorMessage"], doc


def runtime_http(data: bytes) -> None:
    """Raw bytes, fed in pieces, → the HTTP layer (sprig.http1) under a real Runtime API
    session, which hands a parked /next an invocation: every answer a well-formed response,
    every refusal a JSON error document, and nothing left running."""
    _LOOP.run_until_complete(_runtime_http(data))


TARGETS: dict[str, Target] = {
    "recipe": recipe,
    "config": config,
    "eventstream": eventstream,
    "invoke_request": invoke_request,
    "runtime_http": runtime_http,
}

SEEDS: dict[str, list[bytes]] = {
    "recipe": [b"RecipeFormatVersion: '2020-01-25'\nComponentName: a\nComponentVersion: 1.0.0\n"
               b"Manifests:\n- Lifecycle:\n    Run: echo hi\n", b"{}", b"- 1"],
    "config": [b'{"c": {"MERGE": {"a": {"b": 1}}, "RESET": ["/d", "/a/b"]}}', b'{"c": 5}',
               b'{"c": {"RESET": [""]}}'],
    "eventstream": [es.encode(es.Message((es.Header.string(":message-type", "0"),), b"{}")),
                    b"\0" * 16],
    "invoke_request": [b"POST\n/2015-03-31/functions/F/invocations\nQualifier=1\n"
                       b"AWS4-HMAC-SHA256 Credential=SPRIGFUZZ0000000/20260101/us-east-1/"
                       b"lambda/aws4_request, SignedHeaders=host;x-amz-date, Signature=00\n"
                       b"20260101T000000Z\n"],
    "runtime_http": [
        b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n"
        b"POST /2018-06-01/runtime/invocation/fuzz-id/response HTTP/1.1\r\nHost: x\r\n"
        b"Content-Length: 2\r\n\r\n{}GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\n"
        b"Host: x\r\n\r\n",
        b"POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;e=1\r\nhello\r\n"
        b"0\r\nT: v\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        b"POST /2018-06-01/runtime/init/error HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
        b"Content-Length: 9000\r\n\r\n",
    ],
}

ALPHABET = string.printable.encode()
