"""Bad input at every entrance, property-based (hypothesis, bounded for CI): the recipe parser,
MERGE/RESET, the invoke API (a real core: random headers and bodies, signed and unsigned), the
Runtime API (a real listener: random raw HTTP) and the IPC event-stream decoder. Every case ends
in a result or a clear error (a ValidationError naming a field, an HTTP 4xx with an AWS-shaped
message); never another exception, a 5xx or a hang. ``fuzz/run`` runs the same entry points
under atheris for as long as asked."""

from __future__ import annotations

import asyncio
import json
import socket
import string
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sprig._tests.reliability.support import function_component, public_dir
from sprig.config.merge import apply_update
from sprig.config.update import ConfigUpdate, parse_update_document
from sprig.errors import SprigError, ValidationError
from sprig.ipc import eventstream as es
from sprig.local_api.credentials import load_credentials
from sprig.recipe.parse import parse_recipe
from sprig.runtime_api import RuntimeSession
from sprig.testing import CoreProcess

EXAMPLES = settings(max_examples=200, deadline=None, derandomize=False,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])

# -- documents ---------------------------------------------------------------------------------

scalars = st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True) | \
    st.text(max_size=20)
RECIPE_KEYS = ["RecipeFormatVersion", "ComponentName", "ComponentVersion", "ComponentType",
               "ComponentDescription", "ComponentPublisher", "ComponentConfiguration",
               "DefaultConfiguration", "ComponentDependencies", "VersionRequirement",
               "DependencyType", "Manifests", "Platform", "os", "architecture", "Lifecycle",
               "Run", "Install", "Startup", "Shutdown", "Script", "RequiresPrivilege", "Setenv",
               "Timeout", "Skipif", "Artifacts", "Uri", "Unarchive", "Permission", "Read",
               "Digest", "Algorithm", "Selections", "linux", "all"]
keys = st.sampled_from(RECIPE_KEYS) | st.text(max_size=12)
documents = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5),
    max_leaves=25)


def recipe_like() -> st.SearchStrategy[dict[str, Any]]:
    """Mostly-valid recipes with random damage, so the parser's deeper paths are reached."""
    base = st.fixed_dictionaries({
        "RecipeFormatVersion": st.sampled_from(["2020-01-25", "2020-01-26", ""]) | scalars,
        "ComponentName": st.sampled_from(["com.example.A", "a", "", "x" * 200]) | scalars,
        "ComponentVersion": st.sampled_from(["1.0.0", "1.0", "v1", "1.0.0-rc.1+b"]) | scalars,
    }, optional={
        "ComponentConfiguration": st.fixed_dictionaries(
            {}, optional={"DefaultConfiguration": documents}) | documents,
        "ComponentDependencies": st.dictionaries(
            st.text(max_size=10), st.fixed_dictionaries({}, optional={
                "VersionRequirement": st.text(max_size=10) | scalars,
                "DependencyType": st.sampled_from(["HARD", "SOFT", "x"])}) | documents,
            max_size=3),
        "Manifests": st.lists(st.fixed_dictionaries({}, optional={
            "Platform": st.dictionaries(st.sampled_from(["os", "architecture", "x"]),
                                        st.text(max_size=8) | scalars, max_size=3),
            "Lifecycle": st.dictionaries(st.sampled_from(["Run", "Install", "Startup", "x"]),
                                         st.text(max_size=10) | documents, max_size=3),
            "Artifacts": st.lists(documents | st.fixed_dictionaries(
                {"Uri": st.text(max_size=20) | scalars}), max_size=2),
        }) | documents, max_size=3),
        "Lifecycle": documents,
        "ComponentType": st.text(max_size=30) | scalars,
    })
    return base


def _clear(e: ValidationError) -> None:
    text = str(e)
    assert text and len(text) < 20_000, text[:300]
    assert isinstance(e.path, str)


@EXAMPLES
@given(recipe_like() | st.dictionaries(keys, documents, max_size=6))
def test_recipe_parser_returns_a_recipe_or_a_clear_error(doc: dict[str, Any]) -> None:
    try:
        parse_recipe(doc, "fuzz.yaml")
    except ValidationError as e:
        _clear(e)
        assert "fuzz.yaml" in str(e)


updates = st.dictionaries(
    st.text(min_size=0, max_size=10),
    st.fixed_dictionaries({}, optional={
        "MERGE": documents, "RESET": st.lists(
            st.sampled_from(["", "/", "/a", "/a/b", "/a/0", "/~0~1", "/~2", "a"]) |
            st.text(max_size=8), max_size=4) | documents,
    }) | documents, max_size=3) | documents


@EXAMPLES
@given(updates, st.dictionaries(st.text(max_size=4), documents, max_size=4),
       st.dictionaries(st.text(max_size=4), documents, max_size=4))
def test_merge_reset_apply_or_refuse_clearly(doc: Any, current: dict[str, Any],
                                            defaults: dict[str, Any]) -> None:
    try:
        parsed = parse_update_document(doc, "fuzz")
    except ValidationError as e:
        _clear(e)
        return
    for update in parsed.values():
        assert isinstance(update, ConfigUpdate)
        for strict in (True, False):
            try:
                after = apply_update(current, defaults, update, strict=strict)
            except ValidationError as e:
                assert strict, f"non-strict replay raised {e}"
                _clear(e)
                continue
            json.dumps(after)        # still a JSON document
            if update.merge:
                for key in update.merge:
                    assert key in after


# -- the IPC event-stream decoder ---------------------------------------------------------------

@EXAMPLES
@given(st.lists(st.binary(max_size=64), max_size=8))
def test_eventstream_decoder_on_random_bytes(chunks: list[bytes]) -> None:
    decoder = es.Decoder(max_message_len=4096)
    for chunk in chunks:
        try:
            for message in decoder.feed(chunk):
                assert isinstance(message, es.Message)
        except es.EventStreamError as e:
            assert str(e)
            with pytest.raises(es.EventStreamError):
                decoder.feed(b"\0")
            return
    assert decoder.buffered <= 4096


@EXAMPLES
@given(st.lists(st.tuples(st.text(string.ascii_letters + ":-", min_size=1, max_size=12),
                          st.text(max_size=20)), max_size=5),
       st.binary(max_size=300), st.integers(0, 400), st.integers(0, 255), st.data())
def test_eventstream_damaged_frames_are_refused(headers: list[tuple[str, str]], payload: bytes,
                                                at: int, flip: int, data: st.DataObject) -> None:
    frame = es.encode(es.Message(tuple(es.Header.string(n, v) for n, v in headers), payload))
    assert es.decode(frame).payload == payload
    damaged = bytearray(frame)
    if at < len(damaged) and flip:
        damaged[at] ^= flip
    cut = data.draw(st.integers(0, len(damaged)))
    try:
        out = es.decode_all([bytes(damaged[:cut]), bytes(damaged[cut:])])
        assert out == [] or bytes(damaged) == frame or len(out) == 1
    except es.EventStreamError as e:
        assert str(e)


# -- servers in a background loop ------------------------------------------------------------

class LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def exchange(address: tuple[str, int] | str, raw: bytes, timeout: float = 10.0,
             half_close: bool = True) -> bytes:
    """Send ``raw`` (then half-close, so a server waiting for more body sees the end), read
    everything the server answers until it closes; a hang (no answer, no close within
    ``timeout``) fails the test. ``address``: host and port, or a Unix socket's path."""
    if isinstance(address, str):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(timeout)
        s.connect(address)
    else:
        s = socket.create_connection(address, timeout=timeout)
    with s:
        s.sendall(raw)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except TimeoutError:
            raise AssertionError(
                f"no answer and no close within {timeout} s for {raw[:200]!r}") from None
        except ConnectionResetError:
            pass
    return out


methods = st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "G\0T",
                           "POST "])
header_names = st.sampled_from(["Content-Length", "Transfer-Encoding", "Content-Type", "Host",
                                "Lambda-Runtime-Function-Error-Type", "X-Amz-Date",
                                "Authorization", "X-Amz-Invocation-Type", "X-Amz-Log-Type",
                                "X-Amz-Client-Context", "Expect", "Connection"]) | \
    st.text(string.ascii_letters + "-", min_size=1, max_size=10)
header_values = st.sampled_from(["0", "-1", "99999999999", "chunked", "gzip, chunked",
                                 "application/json", "Event", "RequestResponse", "DryRun",
                                 "Tail", "100-continue", "close", "e30=", "!!", ""]) | \
    st.text(string.printable.replace("\r", "").replace("\n", ""), max_size=30) | \
    st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=["Cs"]),
            max_size=12)


def raw_request(method: str, path: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    head += "".join(f"{n}: {v}\r\n" for n, v in headers)
    return head.encode("utf-8", "surrogateescape") + b"\r\n" + body


RUNTIME_PATHS = ["/2018-06-01/runtime/invocation/next", "/2018-06-01/runtime/init/error",
                 "/2018-06-01/runtime/invocation/{rid}/response",
                 "/2018-06-01/runtime/invocation/{rid}/error",
                 "/2018-06-01/runtime/invocation/other-id/response",
                 "/2018-06-01/runtime/invocation//response", "/", "/2018-06-01/runtime/",
                 "/2018-06-01/runtime/invocation/{rid}/response/../../next", "*", "%"]


@pytest.fixture(scope="module")
def loop_thread() -> Iterator[LoopThread]:
    lt = LoopThread()
    yield lt
    lt.close()


def round_trip(lt: LoopThread, session: RuntimeSession) -> None:
    """A normal /next + /response exchange on ``session`` works."""
    from sprig.runtime_api import Job
    job = Job.for_payload(b'{"x": 1}', function_arn="arn:aws:lambda:us-east-1:0:function:F:1",
                          timeout_s=10)

    async def submit() -> asyncio.Future[Any]:
        return session.submit(job)

    future = lt.run(submit())
    host, port = session.address.split(":")
    nxt = exchange((host, int(port)), raw_request(
        "GET", "/2018-06-01/runtime/invocation/next", [], b""))
    assert b" 200 " in nxt.split(b"\r\n", 1)[0], nxt[:300]
    rid = next(line.split(b":", 1)[1].strip().decode() for line in nxt.split(b"\r\n")
               if line.lower().startswith(b"lambda-runtime-aws-request-id"))
    done = exchange((host, int(port)), raw_request(
        "POST", f"/2018-06-01/runtime/invocation/{rid}/response",
        [("Content-Length", "7")], b'"fine"\n'))
    assert b" 202 " in done.split(b"\r\n", 1)[0], done[:300]

    async def outcome() -> Any:
        return await asyncio.wait_for(future, 10)

    assert lt.run(outcome()).body.strip() == b'"fine"'


@EXAMPLES
@given(methods, st.sampled_from(RUNTIME_PATHS) | st.text(max_size=30),
       st.lists(st.tuples(header_names, header_values), max_size=5), st.binary(max_size=512))
def test_runtime_api_answers_random_requests_and_keeps_working(
        loop_thread: LoopThread, method: str, path: str,
        headers: list[tuple[str, str]], body: bytes) -> None:
    """Each example: a fresh worker listener gets one random request, must answer it (or
    close) with a status line and no 5xx, and must then still serve a normal invocation --
    unless the request was a well-formed ``/init/error``, which ends the session by design."""
    lt = loop_thread
    if "next" in path and method == "GET":
        return     # a valid /next parks until an invocation arrives: the round trip covers it

    async def open_() -> RuntimeSession:
        return await RuntimeSession.open(log=lambda line: None, max_response_bytes=1 << 16)

    session = lt.run(open_())
    try:
        host, port = session.address.split(":")
        raw = raw_request(method, path.replace("{rid}", "rid-1").replace(" ", "%20") or "/",
                          headers, body)
        answer = exchange((host, int(port)), raw)
        while answer.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"):   # interim, then final
            answer = answer[len(b"HTTP/1.1 100 Continue\r\n\r\n"):]
        if answer:
            status_line = answer.split(b"\r\n", 1)[0]
            assert status_line.startswith(b"HTTP/1.1 "), answer[:200]
            code = int(status_line.split()[1])
            assert 200 <= code < 500, answer[:300]
        if session.state != "FAILED":
            round_trip(lt, session)
        else:
            assert "init/error" in path, (raw[:300], session.state)
    finally:
        lt.run(session.aclose())


frame_kinds = st.sampled_from([b"N", b"R", b"E", b"I", b"J", b"X", b"\x00"]) | st.binary(
    min_size=1, max_size=1)
frame_headers = st.dictionaries(st.sampled_from(["id", "type", "errorType", "x"]),
                                st.sampled_from(["rid-1", "", "application/json", "Boom"])
                                | st.integers() | st.none(), max_size=3).map(
    lambda d: json.dumps(d).encode()) | st.binary(max_size=40)


@EXAMPLES
@given(st.lists(st.tuples(frame_kinds, frame_headers, st.binary(max_size=200),
                          st.integers(-3, 3)), min_size=1, max_size=3),
       st.booleans())
def test_the_framed_lane_survives_random_frames_and_keeps_working(
        loop_thread: LoopThread, frames: list[tuple[bytes, bytes, bytes, int]],
        with_preface: bool) -> None:
    """Each example: a fresh worker session's Unix socket gets random frames (declared
    lengths sometimes off by a few bytes), after the preface or not (then the first byte
    makes it HTTP, or a bad preface); the framed lane may drop the connection but never
    answers (frames have no refusal), and the session must then still serve a normal framed
    invocation on a new connection -- unless a well-formed init error ended it."""
    from sprig.runtime_api.frames import FRAME_HEAD, PREFACE, encode

    lt = loop_thread
    with public_dir("sprig-frames-") as base:
        path = str(base / "w.sock")

        async def open_() -> RuntimeSession:
            return await RuntimeSession.open(log=lambda line: None, unix_path=path,
                                             max_response_bytes=1 << 16)

        session = lt.run(open_())
        try:
            raw = PREFACE if with_preface else b""
            for kind, header, body, skew in frames:
                raw += FRAME_HEAD.pack(kind, len(header), max(0, len(body) + skew))
                raw += header + body
            answer = exchange(path, raw)
            if raw[:1] == PREFACE[:1]:                       # the framed lane: never answers
                assert answer == b"", answer[:300]
            else:                                            # HTTP, chosen by the first byte
                assert answer == b"" or answer.startswith(b"HTTP/1.1 4"), answer[:300]
            if session.state == "FAILED":
                assert any(k == b"I" for k, *_ in frames), (raw[:300], session.state)
                return
            from sprig.runtime_api import Job
            job = Job.for_payload(b'{"x": 1}',
                                  function_arn="arn:aws:lambda:us-east-1:0:function:F:1",
                                  timeout_s=10)

            async def submit() -> asyncio.Future[Any]:
                return session.submit(job)

            future = lt.run(submit())
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(10)
                s.connect(path)
                s.sendall(PREFACE + encode(b"N", {}))
                got = b""
                while len(got) < FRAME_HEAD.size or len(got) < FRAME_HEAD.size + sum(
                        FRAME_HEAD.unpack_from(got)[1:]):
                    chunk = s.recv(65536)
                    assert chunk, "the session closed a well-formed worker"
                    got += chunk
                assert FRAME_HEAD.unpack_from(got)[0] == b"J"
                s.sendall(encode(b"R", {"id": job.request_id}, b'"fine"'))

                async def outcome() -> Any:
                    return await asyncio.wait_for(future, 10)

                assert lt.run(outcome()).body == b'"fine"'
        finally:
            lt.run(session.aclose())


# -- the invoke API of a real core -------------------------------------------------------------

ECHO = "import json\ndef handler(event, context):\n    return {'echo': event}\n"


@pytest.fixture(scope="module")
def echo_core() -> Iterator[CoreProcess]:
    with public_dir("sprig-badin-") as base:
        function_component(base / "out", "Echo", ECHO, pinned=True)
        core = CoreProcess(base / "root").start()
        try:
            result = core.deploy(recipe_dir=base / "out" / "recipes",
                                 artifact_dir=base / "out" / "artifacts", merge={"Echo": "1.0.0"})
            assert result["status"] == "SUCCEEDED", result
            yield core
        finally:
            core.stop()


INVOKE_PATHS = ["/2015-03-31/functions/Echo/invocations", "/2015-03-31/functions/Nope/invocations",
                "/2015-03-31/functions/Echo/invocations?Qualifier=$LATEST",
                "/2015-03-31/functions/Echo/invocations?Qualifier=%00",
                "/2015-03-31/functions/Echo%2FX/invocations", "/2015-03-31/functions//invocations",
                "/2015-03-31/functions/arn:aws:lambda:us-east-1:000000000000:function:Echo/"
                "invocations", "/", "/2015-03-31/functions/Echo"]


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.sampled_from(["POST", "GET", "PUT"]), st.sampled_from(INVOKE_PATHS),
       st.lists(st.tuples(header_names, header_values), max_size=4),
       st.binary(max_size=300) | documents.map(lambda d: json.dumps(d).encode()),
       st.booleans())
def test_invoke_api_answers_random_requests_with_aws_shaped_errors(
        echo_core: CoreProcess, method: str, path: str, headers: list[tuple[str, str]],
        body: bytes, signed: bool) -> None:
    url = echo_core.endpoints()["lambda"]
    host, port = url.split("//", 1)[1].rstrip("/").split(":")
    hdrs = [(n, v) for n, v in headers if n.lower() not in ("host", "content-length",
                                                              "transfer-encoding", "expect",
                                                              "connection")]
    if signed:
        creds = load_credentials(echo_core.layout.credentials)
        req = AWSRequest(method=method, url=url.rstrip("/") + path, data=body,
                         headers=dict(hdrs))
        SigV4Auth(BotoCredentials(creds.access_key_id, creds.secret_access_key),
                  "lambda", "us-east-1").add_auth(req)
        hdrs = [(k, v) for k, v in req.headers.items() if k.lower() != "host"]
    hdrs.append(("Content-Length", str(len(body))))
    hdrs.append(("Connection", "close"))
    answer = exchange((host, int(port)), raw_request(method, path, hdrs, body), timeout=20,
                      half_close=False)
    head, _, payload = answer.partition(b"\r\n\r\n")
    status = int(head.split(b"\r\n", 1)[0].split()[1])
    assert status < 500, answer[:500]
    if status >= 400:
        lower = head.lower()
        if status == 400 and b"text/plain" in lower:
            assert payload.strip(), answer[:500]   # malformed HTTP: aiohttp's parser says why
            return
        assert b"x-amzn-errortype" in lower, answer[:500]
        doc = json.loads(payload) if payload else {}
        assert doc.get("message") or doc.get("Message"), answer[:500]
    elif not signed:
        raise AssertionError(f"an unsigned request was served: {answer[:300]!r}")


def test_invoke_api_core_still_serves_after_the_garbage(echo_core: CoreProcess) -> None:
    from sprig._tests.reliability.support import invoke
    assert invoke(echo_core, "Echo", {"a": 1})["payload"] == {"echo": {"a": 1}}
    assert echo_core.call("status")["states"]["Echo"] == "RUNNING"


def test_errors_are_sprig_errors() -> None:
    """The decoder's and validators' errors are SprigErrors (the API layer maps them)."""
    assert issubclass(es.EventStreamError, SprigError)
    assert issubclass(ValidationError, SprigError)


def test_json_paths_are_reported(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as e:
        parse_recipe({"RecipeFormatVersion": "2020-01-25", "ComponentName": "a",
                      "ComponentVersion": "1.0.0", "Manifests": [{"Lifecycle": 5}]}, "r.yaml")
    assert "Manifests" in str(e.value) and "r.yaml" in str(e.value)


# -- the Greengrass Core SDK v1 endpoint of a real core ----------------------------------------

SDK_PATHS = ["/2016-11-01/functions/arn:aws:lambda:us-east-1:000000000000:function:Echo:1",
             "/2016-11-01/functions/arn:aws:greengrass:::function:GGRouter",
             "/2016-11-01/functions/arn:aws:greengrass:::function:GGSecretManager",
             "/2016-11-01/functions/arn:aws:greengrass:::function:GGShadowService",
             "/2016-11-01/functions/", "/2016-11-01/functions/%ff%00", "/"]


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.sampled_from(["POST", "GET", "PUT", "DELETE"]), st.sampled_from(SDK_PATHS),
       st.lists(st.tuples(header_names | st.sampled_from(["X-Amz-InvocationId"]),
                          header_values), max_size=4),
       st.sampled_from([None, "", "not-a-token", "x" * 300]), st.binary(max_size=300))
def test_sdk_v1_endpoint_refuses_random_and_unauthenticated_requests(
        echo_core: CoreProcess, method: str, path: str, headers: list[tuple[str, str]],
        token: str | None, body: bytes) -> None:
    url = echo_core.endpoints().get("sdk_v1")
    if url is None:
        pytest.skip("this core has no V1 SDK endpoint")
    host, port = url.split("//", 1)[1].rstrip("/").split(":")
    hdrs = [(n, v) for n, v in headers if n.lower() not in (
        "host", "content-length", "transfer-encoding", "expect", "connection", "authorization")]
    if token is not None:
        hdrs.append(("Authorization", token))
    hdrs += [("Content-Length", str(len(body))), ("Connection", "close")]
    answer = exchange((host, int(port)), raw_request(method, path, hdrs, body), timeout=20,
                      half_close=False)
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1."), answer[:300]
    status = int(head.split(b"\r\n", 1)[0].split()[1])
    assert 400 <= status < 500, answer[:500]      # no valid token: never served, never a 5xx
    assert payload.strip(), answer[:500]            # and a sentence saying why
