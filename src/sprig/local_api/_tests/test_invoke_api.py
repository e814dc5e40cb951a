"""The Invoke REST API driven by the real boto3 (and plain HTTP for what boto3 cannot send)."""

from __future__ import annotations

import asyncio
import base64
import json
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import botocore.auth
import botocore.compat
import botocore.crt.auth
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials as BotoCredentials
from botocore.exceptions import ClientError

from sprig.errors import ValidationError
from sprig.functions.errors import FunctionNotFound, FunctionNotRunnable, QueueFull
from sprig.functions.invocation import (
    EVENT_PAYLOAD_LIMIT,
    SYNC_PAYLOAD_LIMIT,
    FunctionErrorKind,
    Invocation,
    InvocationResult,
    InvocationType,
)
from sprig.local_api.credentials import Credentials, ensure_credentials
from sprig.local_api.invoke_api import loopback_host, start_invoke_api

REGION = "us-east-1"       # the core's awsRegion for these tests


@dataclass
class Call:
    function: str
    invocation: Invocation
    want_log_tail: bool


@dataclass
class FakeLambdaManager:
    """A real Invoker: resolves names and ARNs of a few functions and behaves as each one says.

    echo: returns {"echo": <payload>, "context": <client context>}; handled / unhandled: a function
    error; busy: queue full; broken: not runnable; crash: a bug in the manager.
    """

    calls: list[Call] = field(default_factory=list)
    submitted: int = 0               # calls that came through submit (RequestResponse)
    functions: tuple[str, ...] = ("echo", "handled", "unhandled", "busy", "broken", "crash")

    def resolve(self, name: str) -> str:
        # "echo", "echo:1", "arn:aws:lambda:r:123456789012:function:echo[:1]", "123:function:echo"
        parts = name.split(":")
        base = parts[parts.index("function") + 1] if "function" in parts else parts[0]
        if base not in self.functions:
            raise FunctionNotFound(name)
        return base

    async def invoke(self, function: str, invocation: Invocation, *,
                     want_log_tail: bool = False) -> InvocationResult:
        self.calls.append(Call(function, invocation, want_log_tail))
        base = self.resolve(function)
        if base == "busy":
            raise QueueFull(function, 2)
        if base == "broken":
            raise FunctionNotRunnable(f"function {function} is BROKEN")
        if base == "crash":
            raise RuntimeError("bug in the manager")
        if invocation.invocation_type is not InvocationType.REQUEST_RESPONSE:
            return InvocationResult(invocation.request_id, b"", executed_version="1")
        log_tail = b"x" * 5000 + b"START\nhello from echo\nEND\n" if want_log_tail else b""
        if base in ("handled", "unhandled"):
            document = {"errorMessage": "boom", "errorType": "ValueError", "stackTrace": []}
            kind = FunctionErrorKind.HANDLED if base == "handled" else FunctionErrorKind.UNHANDLED
            return InvocationResult(invocation.request_id, json.dumps(document).encode(),
                                    function_error=kind, executed_version="1")
        body = {"echo": json.loads(invocation.payload or b"null"),
                "context": invocation.client_context}
        return InvocationResult(invocation.request_id, json.dumps(body).encode(),
                                executed_version="1", log_tail=log_tail)

    def submit(self, function: str, invocation: Invocation, *,
               want_log_tail: bool = False) -> asyncio.Future[InvocationResult]:
        """:meth:`invoke` as the task-less entrance: raises at once, or a future."""
        self.submitted += 1
        if invocation.invocation_type is not InvocationType.REQUEST_RESPONSE:
            raise ValueError("submit takes RequestResponse invocations")
        running = self.invoke(function, invocation, want_log_tail=want_log_tail)
        try:
            running.send(None)           # this fake never waits: it returns or raises
        except StopIteration as finished:
            future = asyncio.get_running_loop().create_future()
            future.set_result(finished.value)
            return future
        raise AssertionError("the fake invoker waited")


@dataclass
class Api:
    url: str
    credentials: Credentials
    manager: FakeLambdaManager

    def client(self, secret: str | None = None) -> Any:
        return boto3.client(
            "lambda", endpoint_url=self.url, region_name="us-east-1",
            aws_access_key_id=self.credentials.access_key_id,
            aws_secret_access_key=secret or self.credentials.secret_access_key,
            config=Config(retries={"total_max_attempts": 1}),
        )

    async def invoke(self, **kwargs: Any) -> dict[str, Any]:
        """boto3 is synchronous: run it in a thread while the server runs on this loop."""
        client = self.client(kwargs.pop("secret", None))
        response: dict[str, Any] = await asyncio.to_thread(client.invoke, **kwargs)
        response["Body"] = await asyncio.to_thread(response["Payload"].read)
        return response

    async def invoke_error(self, **kwargs: Any) -> ClientError:
        with pytest.raises(ClientError) as info:
            await self.invoke(**kwargs)
        return info.value


@pytest.fixture(autouse=True)
def isolated_aws_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No ~/.aws or AWS_* variables of this machine may leak into boto3."""
    monkeypatch.setenv("HOME", str(tmp_path))
    for var in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_LAMBDA",
                "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    yield


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    credentials = ensure_credentials(tmp_path / "root" / "credentials")
    manager = FakeLambdaManager()
    runner, url = await start_invoke_api(manager, credentials, region=REGION)
    try:
        yield Api(url, credentials, manager)
    finally:
        await runner.cleanup()


def error_of(exc: ClientError) -> tuple[int, str, str]:
    response: Any = exc.response
    return (response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"],
            response["Error"]["Message"])


async def test_signed_invoke_with_log_tail_and_client_context(api: Api) -> None:
    context = {"custom": {"k": "v"}, "env": {"a": "b"}}
    r = await api.invoke(FunctionName="echo", Payload=json.dumps({"a": 1}), LogType="Tail",
                         ClientContext=base64.b64encode(json.dumps(context).encode()).decode())
    assert r["StatusCode"] == 200
    assert json.loads(r["Body"]) == {"echo": {"a": 1}, "context": context}
    assert "FunctionError" not in r
    assert r["ExecutedVersion"] == "1"
    tail = base64.b64decode(r["LogResult"])
    assert tail.endswith(b"hello from echo\nEND\n") and len(tail) == 4096
    (call,) = api.manager.calls
    assert call.want_log_tail
    assert call.invocation.client_context == context
    assert call.invocation.invocation_type is InvocationType.REQUEST_RESPONSE
    assert call.invocation.source == "api"
    assert r["ResponseMetadata"]["RequestId"] == call.invocation.request_id
    assert api.manager.submitted == 1          # queued without a task: the hot path


async def test_arn_with_qualifier_reaches_the_invoker_decoded(api: Api) -> None:
    arn = "arn:aws:lambda:us-east-1:123456789012:function:echo:1"
    r = await api.invoke(FunctionName=arn, Qualifier="1", Payload=b"{}")
    assert r["StatusCode"] == 200
    assert "LogResult" not in r
    assert api.manager.calls[0].function == arn
    assert not api.manager.calls[0].want_log_tail


async def test_event_invocation_is_accepted_with_202_and_no_body(api: Api) -> None:
    r = await api.invoke(FunctionName="echo", InvocationType="Event", Payload=b'{"e": 1}',
                         LogType="Tail")
    assert r["StatusCode"] == 202
    assert r["Body"] == b""
    (call,) = api.manager.calls
    assert call.invocation.invocation_type is InvocationType.EVENT
    assert call.invocation.payload == b'{"e": 1}'
    assert not call.want_log_tail      # Tail applies to synchronous invocations only
    assert api.manager.submitted == 0          # awaited: only RequestResponse goes task-less


async def test_dry_run_is_204_and_checks_the_function_exists(api: Api) -> None:
    r = await api.invoke(FunctionName="echo", InvocationType="DryRun")
    assert r["StatusCode"] == 204
    assert api.manager.calls[0].invocation.invocation_type is InvocationType.DRY_RUN
    status, code, _ = error_of(await api.invoke_error(FunctionName="nope",
                                                      InvocationType="DryRun"))
    assert (status, code) == (404, "ResourceNotFoundException")


async def test_unknown_function_is_resource_not_found(api: Api) -> None:
    client = api.client()
    with pytest.raises(client.exceptions.ResourceNotFoundException) as info:
        await asyncio.to_thread(client.invoke, FunctionName="nope", Payload=b"{}")
    assert info.value.response["Error"]["Message"] == "Function not found: nope"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


async def test_full_queue_is_throttled_with_reason_and_retry_after(api: Api) -> None:
    client = api.client()
    with pytest.raises(client.exceptions.TooManyRequestsException) as info:
        await asyncio.to_thread(client.invoke, FunctionName="busy", Payload=b"{}")
    response: Any = info.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert response["Reason"] == "ConcurrentInvocationLimitExceeded"
    assert response["ResponseMetadata"]["HTTPHeaders"]["retry-after"] == "1"
    assert "maxQueueSize 2" in response["Error"]["Message"]
    assert len(api.manager.calls) == 1


@pytest.mark.parametrize(("kind", "size", "limit"), [
    ("RequestResponse", SYNC_PAYLOAD_LIMIT + 1, SYNC_PAYLOAD_LIMIT),
    ("Event", EVENT_PAYLOAD_LIMIT + 1, EVENT_PAYLOAD_LIMIT),
])
async def test_too_large_payloads_are_refused(api: Api, kind: str, size: int,
                                              limit: int) -> None:
    status, code, message = error_of(await api.invoke_error(
        FunctionName="echo", InvocationType=kind, Payload=b"x" * size))
    assert (status, code) == (413, "RequestTooLargeException")
    assert f"smaller than {limit} bytes" in message and f"got {size} bytes" in message
    assert api.manager.calls == []
    # The oversized body was drained: the next call goes through normally.
    assert (await api.invoke(FunctionName="echo", Payload=b"{}"))["StatusCode"] == 200


async def test_too_large_chunked_body_is_refused(api: Api) -> None:
    """Without a Content-Length the limit still holds while the body streams in (with
    credentials: a request without them is refused before its body, see below)."""
    url = f"{api.url}/2015-03-31/functions/echo/invocations"
    headers = {k: v for k, v in signed_headers(url, api.credentials).items()
               if k.lower() != "content-length"}
    chunks = (b"x" * 65536 for _ in range(SYNC_PAYLOAD_LIMIT // 65536 + 2))
    request = urllib.request.Request(url, data=chunks, method="POST",
                                     headers={**headers, "Transfer-Encoding": "chunked"})
    with pytest.raises(urllib.error.HTTPError) as info:
        await asyncio.to_thread(urllib.request.urlopen, request, timeout=10)
    assert info.value.code == 413
    assert info.value.headers["x-amzn-ErrorType"] == "RequestTooLargeException"
    assert f"smaller than {SYNC_PAYLOAD_LIMIT} bytes" in json.loads(info.value.read())["message"]
    info.value.close()
    assert api.manager.calls == []


@pytest.mark.parametrize("authorization", [
    None, "Bearer x", "AWS4-HMAC-SHA256 Credential=AKIDNOTSPRIG/20260101/us-east-1/lambda/"
    "aws4_request, SignedHeaders=host;x-amz-date, Signature=00"])
async def test_a_body_without_valid_credentials_is_refused_before_it_is_read(
        api: Api, authorization: str | None) -> None:
    """Missing, malformed or another key's Authorization: 403 at the end of the head, while
    the client has sent none of its (announced 6 MB) body; then the connection is closed."""
    host, port = api.url.split("//", 1)[1].split(":")
    head = (f"POST /2015-03-31/functions/echo/invocations HTTP/1.1\r\nHost: {host}\r\n"
            f"Content-Length: {SYNC_PAYLOAD_LIMIT}\r\n")
    if authorization is not None:
        head += f"Authorization: {authorization}\r\nX-Amz-Date: 20260101T000000Z\r\n"
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head.encode() + b"\r\n" + b"x" * 1000)    # 1000 of the bytes announced
        answer = await asyncio.wait_for(reader.read(), 10)      # answered, then EOF
    finally:
        writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 403 Forbidden", answer[:300]
    assert b"Connection: close\r\n" in rest
    assert b"x-amzn-ErrorType: UnrecognizedClientException" in rest, answer[:500]
    assert api.manager.calls == []


async def test_payload_of_exactly_the_event_limit_is_accepted(api: Api) -> None:
    r = await api.invoke(FunctionName="echo", InvocationType="Event",
                         Payload=b"x" * EVENT_PAYLOAD_LIMIT)
    assert r["StatusCode"] == 202


@pytest.mark.parametrize("kind", ["Handled", "Unhandled"])
async def test_function_errors_are_200_with_the_error_header_and_document(api: Api,
                                                                         kind: str) -> None:
    """Current AWS runtimes answer ``FunctionError: Unhandled`` whoever reported the error."""
    r = await api.invoke(FunctionName=kind.lower(), Payload=b"{}")
    assert r["StatusCode"] == 200
    assert r["FunctionError"] == "Unhandled"
    assert json.loads(r["Body"])["errorType"] == "ValueError"


@pytest.mark.parametrize(("context", "expected"), [
    ("not base64!", "valid Base64-encoded JSON object"),
    (base64.b64encode(b"not json").decode(), "valid Base64-encoded JSON object"),
    (base64.b64encode(b"[1, 2]").decode(), "got a JSON list"),
    (base64.b64encode(json.dumps({"k": "v" * 3000}).encode()).decode(), "up to 3583 bytes"),
])
async def test_bad_client_context_is_invalid_request_content(api: Api, context: str,
                                                             expected: str) -> None:
    status, code, message = error_of(await api.invoke_error(
        FunctionName="echo", Payload=b"{}", ClientContext=context))
    assert (status, code) == (400, "InvalidRequestContentException")
    assert expected in message
    assert api.manager.calls == []


async def test_unknown_invocation_type_names_the_allowed_values(api: Api) -> None:
    status, code, message = error_of(await api.invoke_error(FunctionName="echo",
                                                            InvocationType="Later"))
    assert (status, code) == (400, "InvalidParameterValueException")
    assert "'Later'" in message and "[Event, RequestResponse, DryRun]" in message


async def test_broken_function_is_a_conflict(api: Api) -> None:
    status, code, message = error_of(await api.invoke_error(FunctionName="broken"))
    assert (status, code) == (409, "ResourceConflictException")
    assert "BROKEN" in message


async def test_manager_bug_is_a_service_exception_without_internals(api: Api) -> None:
    status, code, message = error_of(await api.invoke_error(FunctionName="crash"))
    assert (status, code) == (500, "ServiceException")
    assert "bug in the manager" not in message and "core log" in message
    assert api.manager.submitted == 1          # the task-less entrance words it alike


async def test_wrong_secret_is_invalid_signature(api: Api) -> None:
    status, code, message = error_of(await api.invoke_error(FunctionName="echo",
                                                            secret="w" * 40))
    assert (status, code) == (403, "InvalidSignatureException")
    assert "signature we calculated does not match" in message
    assert api.manager.calls == []


async def test_unknown_access_key_is_unrecognized_client(api: Api) -> None:
    client = boto3.client("lambda", endpoint_url=api.url, region_name="us-east-1",
                          aws_access_key_id="AKIAIOSFODNN7EXAMPLE", aws_secret_access_key="x",
                          config=Config(retries={"total_max_attempts": 1}))
    with pytest.raises(ClientError) as info:
        await asyncio.to_thread(client.invoke, FunctionName="echo")
    status, code, message = error_of(info.value)
    assert (status, code) == (403, "UnrecognizedClientException")
    assert "AKIAIOSFODNN7EXAMPLE" in message and str(api.credentials.source) in message


async def test_expired_request_date_is_refused(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """A request signed 10 minutes ago (a replay, or a clock far off) is refused.

    The client's clock is set back: boto3 signs with the CRT signer when awscrt is installed (it
    is, for awsiotsdk) and with the pure-Python one otherwise, so both are set back.
    """
    real: Callable[..., datetime] = botocore.compat.get_current_datetime

    def ten_minutes_ago(remove_tzinfo: bool = True) -> datetime:
        return real(remove_tzinfo) - timedelta(minutes=10)

    monkeypatch.setattr(botocore.auth, "get_current_datetime", ten_minutes_ago)
    monkeypatch.setattr(botocore.crt.auth, "get_current_datetime", ten_minutes_ago)
    status, code, message = error_of(await api.invoke_error(FunctionName="echo"))
    assert (status, code) == (403, "InvalidSignatureException")
    assert message.startswith("Signature expired:")
    assert api.manager.calls == []


def http(url: str, *, method: str = "POST", data: bytes | None = b"{}",
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """A plain HTTP request (urllib): whatever the server says, as (status, headers, body)."""
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def signed_headers(url: str, credentials: Credentials, *, method: str = "POST",
                   body: bytes = b"") -> dict[str, str]:
    request = AWSRequest(method, url, data=body)
    SigV4Auth(BotoCredentials(credentials.access_key_id, credentials.secret_access_key),
              "lambda", "us-east-1").add_auth(request)
    return dict(request.headers.items())


async def test_unsigned_request_is_refused_before_reaching_the_function(api: Api) -> None:
    url = f"{api.url}/2015-03-31/functions/echo/invocations"
    status, headers, body = await asyncio.to_thread(http, url)
    assert status == 403
    assert headers["x-amzn-ErrorType"] == "UnrecognizedClientException"
    assert "Missing Authentication Token" in json.loads(body)["message"]
    assert api.manager.calls == []


async def test_signed_request_to_an_unknown_route_is_a_json_404(api: Api) -> None:
    url = f"{api.url}/2015-03-31/functions/echo/policy"       # GetPolicy: not served
    headers = signed_headers(url, api.credentials, method="GET")
    status, got, body = await asyncio.to_thread(http, url, method="GET", data=None,
                                                headers=headers)
    assert status == 404
    assert got["x-amzn-ErrorType"] == "UnknownOperationException"
    assert "/2015-03-31/functions/<FunctionName>/invocations" in json.loads(body)["message"]


async def test_wrong_method_on_the_invoke_route_is_a_json_405(api: Api) -> None:
    url = f"{api.url}/2015-03-31/functions/echo/invocations"
    headers = signed_headers(url, api.credentials, method="GET")
    status, got, body = await asyncio.to_thread(http, url, method="GET", data=None,
                                                headers=headers)
    assert status == 405
    assert got["x-amzn-ErrorType"] == "UnknownOperationException"
    assert "allowed: POST" in json.loads(body)["message"]


async def test_unsigned_unknown_route_is_refused_too(api: Api) -> None:
    status, headers, _ = await asyncio.to_thread(http, f"{api.url}/anything", method="GET",
                                                 data=None)
    assert status == 403
    assert headers["x-amzn-ErrorType"] == "UnrecognizedClientException"


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::", "example.com", ""])
async def test_non_loopback_hosts_are_refused(tmp_path: Path, host: str) -> None:
    credentials = ensure_credentials(tmp_path / "credentials")
    with pytest.raises(ValidationError) as info:
        await start_invoke_api(FakeLambdaManager(), credentials, host=host, region=REGION)
    assert info.value.path == "host" and "loopback only" in str(info.value)
    assert "127.0.0.1" in str(info.value)


def test_loopback_hosts_are_accepted() -> None:
    assert loopback_host("127.0.0.1") == "127.0.0.1"
    assert loopback_host("127.3.4.5") == "127.3.4.5"
    assert loopback_host("::1") == "::1"
    assert loopback_host("[::1]") == "::1"
    assert loopback_host("localhost") == "127.0.0.1"


async def test_boto3_finds_the_api_through_the_environment_alone(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """Unmodified code calling boto3.client("lambda") reaches Sprig through AWS_* variables."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", api.url)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)      # as the core sets it for functions
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", api.credentials.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", api.credentials.secret_access_key)
    client = boto3.client("lambda")
    r = await asyncio.to_thread(client.invoke, FunctionName="echo", Payload=b'"hi"')
    assert json.loads(r["Payload"].read())["echo"] == "hi"


async def test_a_client_of_another_region_gets_aws_answer(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """Signed for eu-west-1, sent to a core whose awsRegion is us-east-1: what Lambda answers
    (InvalidSignatureException, 403), and the function is not run."""
    client = boto3.client("lambda", endpoint_url=api.url, region_name="eu-west-1",
                          aws_access_key_id=api.credentials.access_key_id,
                          aws_secret_access_key=api.credentials.secret_access_key,
                          config=Config(retries={"total_max_attempts": 1}))
    with pytest.raises(ClientError) as info:
        await asyncio.to_thread(client.invoke, FunctionName="echo", Payload=b"{}")
    status, code, message = error_of(info.value)
    assert (status, code) == (403, "InvalidSignatureException")
    assert message.startswith("Credential should be scoped to a valid region. ")
    assert "'eu-west-1'" in message and f"'{REGION}'" in message
    assert api.manager.calls == []


def signed_raw(url: str, credentials: Credentials, body: bytes,
               headers: dict[str, str]) -> dict[str, str]:
    """Headers of a request signed exactly as boto3 signs it (with its CRT signer)."""
    request = AWSRequest("POST", url, data=body, headers=headers)
    botocore.crt.auth.CrtSigV4Auth(
        BotoCredentials(credentials.access_key_id, credentials.secret_access_key),
        "lambda", REGION).add_auth(request)
    return dict(request.headers.items())


async def test_unsigned_payload_is_refused_and_not_run(api: Api) -> None:
    url = f"{api.url}/2015-03-31/functions/echo/invocations"
    headers = signed_raw(url, api.credentials, b'{"n": 1}',
                         {"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    assert "x-amz-content-sha256" in headers["Authorization"]   # really signed that way
    status, got, body = await asyncio.to_thread(http, url, data=b'{"n": 1000}',
                                                headers=headers)
    assert status == 403
    assert got["x-amzn-ErrorType"] == "InvalidSignatureException"
    assert "'UNSIGNED-PAYLOAD' is not supported" in json.loads(body)["message"]
    assert api.manager.calls == []


async def test_an_unsigned_invocation_type_added_to_a_signed_request_is_refused(
        api: Api) -> None:
    url = f"{api.url}/2015-03-31/functions/echo/invocations"
    headers = signed_raw(url, api.credentials, b"{}", {})
    status, _, _ = await asyncio.to_thread(http, url, headers=headers)
    assert status == 200 and len(api.manager.calls) == 1     # as signed: accepted
    for kind in ("Event", "RequestResponse"):     # awaited, and task-less: refused alike
        headers["X-Amz-Invocation-Type"] = kind
        status, got, body = await asyncio.to_thread(http, url, headers=headers)
        assert status == 403
        assert got["x-amzn-ErrorType"] == "InvalidSignatureException"
        assert "x-amz-invocation-type" in json.loads(body)["message"]
        assert len(api.manager.calls) == 1
