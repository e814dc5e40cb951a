"""The Lambda ``Invoke`` REST API on loopback: ``boto3.client("lambda", endpoint_url=...)`` works.

``POST /2015-03-31/functions/{FunctionName}/invocations`` as AWS Lambda serves it (protocol
``rest-json``): the same headers, status codes and error shapes, so boto3 and the AWS CLI raise
their usual modelled exceptions (``c.exceptions.ResourceNotFoundException`` ...). Every request,
including one for an unknown route, must be signed (SigV4) with the key pair the core generated
(:mod:`sprig.local_api.credentials`).

Before any body is read, at the end of the head: a request without valid credentials (no
``Authorization``, malformed, another access key, another region, too old) is refused (403), and
one whose declared body is over the limit of its invocation type (6 MB RequestResponse, 256 KB
Event) gets 413 at once; the signature itself covers the body's hash, so it is checked once the
body is in. Malformed HTTP is refused in AWS's shape too.

The edge stays thin: parsing and validation are pure functions (:func:`parse_invoke_headers`,
:func:`decode_client_context`), the work is the :class:`~sprig.functions.invocation.Invoker`'s, and
Sprig's errors are mapped to AWS's here (:func:`map_function_error`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import enum
import ipaddress
import json
import logging
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from sprig.errors import SprigError, ValidationError
from sprig.functions.errors import (
    FunctionNotFound,
    FunctionNotRunnable,
    PayloadTooLarge,
    QueueFull,
)
from sprig.functions.invocation import (
    EVENT_PAYLOAD_LIMIT,
    SYNC_PAYLOAD_LIMIT,
    Invocation,
    InvocationResult,
    InvocationType,
    Invoker,
)
from sprig.httpserver import (
    Deferred,
    Handler,
    HttpRequest,
    HttpServer,
    NoRoute,
    Response,
    Router,
)
from sprig.local_api import sigv4
from sprig.local_api.credentials import Credentials

log = logging.getLogger(__name__)

API_VERSION = "2015-03-31"
INVOKE_ROUTE = rf"/{API_VERSION}/functions/(?P<function_name>[^/]+)/invocations/?"
_INVOKE_PATH = re.compile(rf"^/{API_VERSION}/functions/(?P<name>[^/?]+)/invocations/?$")

CLIENT_CONTEXT_LIMIT = 3583      # bytes of base64, as AWS documents for X-Amz-Client-Context
LOG_TAIL_LIMIT = 4096            # X-Amz-Log-Result carries the last 4 KB of the log
FUNCTION_NAME_MAX = 256
_QUALIFIER = re.compile(r"[a-zA-Z0-9$_-]{1,128}")
RETRY_AFTER_S = 1
#: What the API answers, for the UnknownOperationException of any other route.
OPERATIONS = (f"Invoke (POST /{API_VERSION}/functions/<FunctionName>/invocations), "
              f"ListFunctions (GET /{API_VERSION}/functions/), GetFunction (GET "
              f"/{API_VERSION}/functions/<FunctionName>), GetFunctionConfiguration (GET "
              f"/{API_VERSION}/functions/<FunctionName>/configuration)")


class ErrorType(enum.StrEnum):
    """``x-amzn-ErrorType`` values; botocore maps them to its modelled exceptions."""

    RESOURCE_NOT_FOUND = "ResourceNotFoundException"
    TOO_MANY_REQUESTS = "TooManyRequestsException"
    INVALID_REQUEST_CONTENT = "InvalidRequestContentException"
    INVALID_PARAMETER_VALUE = "InvalidParameterValueException"
    REQUEST_TOO_LARGE = "RequestTooLargeException"
    RESOURCE_CONFLICT = "ResourceConflictException"
    SERVICE = "ServiceException"
    UNKNOWN_OPERATION = "UnknownOperationException"


# AWS's error shapes differ in the case of their message member (service-2.json).
_UPPER_MESSAGE = {ErrorType.RESOURCE_NOT_FOUND, ErrorType.SERVICE}


class InvokeApiError(SprigError):
    """An error answered in AWS's shape: status, ``x-amzn-ErrorType`` and a JSON body."""

    def __init__(self, status: int, error_type: str, message: str, *,
                 body: Mapping[str, str] | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        self.status = status
        self.error_type = error_type
        self.message = message
        self.body = dict(body or {})
        self.headers = dict(headers or {})
        super().__init__(message)

    def response(self, request_id: str) -> Response:
        key = "Message" if self.error_type in _UPPER_MESSAGE else "message"
        kind = "Service" if self.status >= 500 else "User"
        document = {"Type": kind, key: self.message, **self.body}
        headers = {"x-amzn-ErrorType": self.error_type, "x-amzn-RequestId": request_id,
                   **self.headers}
        return Response(self.status, json.dumps(document).encode(), "application/json",
                        tuple(headers.items()))


def too_large(size: int | None, limit: int) -> InvokeApiError:
    """RequestTooLargeException; ``size`` is None when a chunked body was cut off unmeasured."""
    if size is None:
        message = (f"Request must be smaller than {limit} bytes for the InvokeFunction "
                   "operation (the chunked body went over it)")
    else:
        message = str(PayloadTooLarge(size, limit))
    return InvokeApiError(413, ErrorType.REQUEST_TOO_LARGE, message)


def map_function_error(exc: SprigError) -> InvokeApiError:
    """Sprig's Lambda-manager errors as the AWS errors boto3 knows."""
    if isinstance(exc, FunctionNotFound):
        return InvokeApiError(404, ErrorType.RESOURCE_NOT_FOUND, str(exc))
    if isinstance(exc, QueueFull):
        return InvokeApiError(429, ErrorType.TOO_MANY_REQUESTS, str(exc),
                        body={"Reason": "ConcurrentInvocationLimitExceeded"},
                        headers={"Retry-After": str(RETRY_AFTER_S)})
    if isinstance(exc, PayloadTooLarge):
        return too_large(exc.size, exc.limit)
    if isinstance(exc, FunctionNotRunnable):
        return InvokeApiError(409, ErrorType.RESOURCE_CONFLICT, str(exc))
    if isinstance(exc, InvokeApiError):
        return exc
    return InvokeApiError(500, ErrorType.SERVICE, str(exc))


def invalid_parameter(name: str, value: str, allowed: str) -> InvokeApiError:
    return InvokeApiError(
        400, ErrorType.INVALID_PARAMETER_VALUE,
        f"1 validation error detected: Value {value!r} at '{name}' failed to satisfy "
        f"constraint: {allowed}",
    )


@dataclass(frozen=True)
class InvokeRequest:
    """An Invoke call after validation of its URI, query and headers."""

    function_name: str
    invocation_type: InvocationType = InvocationType.REQUEST_RESPONSE
    log_tail: bool = False
    client_context: dict[str, Any] | None = field(default=None, hash=False)
    qualifier: str | None = None


def function_name_from_path(raw_path: str) -> str | None:
    """The URL-decoded ``FunctionName`` of an invoke path, or None for another route."""
    match = _INVOKE_PATH.match(raw_path.partition("?")[0])
    return unquote(match["name"]) if match else None


def decode_client_context(value: str) -> dict[str, Any]:
    """``X-Amz-Client-Context``: base64 of a JSON object, at most 3583 bytes of base64."""
    if len(value.encode()) > CLIENT_CONTEXT_LIMIT:
        raise InvokeApiError(
            400, ErrorType.INVALID_REQUEST_CONTENT,
            f"X-Amz-Client-Context is {len(value.encode())} bytes; allowed: up to "
            f"{CLIENT_CONTEXT_LIMIT} bytes of base64-encoded JSON",
        )
    try:
        decoded = json.loads(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError) as exc:
        raise InvokeApiError(
            400, ErrorType.INVALID_REQUEST_CONTENT,
            "Client context must be a valid Base64-encoded JSON object "
            f"(X-Amz-Client-Context: {value[:64]!r})",
        ) from exc
    if not isinstance(decoded, dict):
        raise InvokeApiError(
            400, ErrorType.INVALID_REQUEST_CONTENT,
            "Client context must be a valid Base64-encoded JSON object "
            f"(got a JSON {type(decoded).__name__})",
        )
    return decoded


def parse_invoke_headers(function_name: str, query: Mapping[str, str],
                         headers: Mapping[str, str]) -> InvokeRequest:
    """Validate the Invoke inputs; raise :class:`InvokeApiError` naming the field, value and
    what is allowed."""
    if not 1 <= len(function_name) <= FUNCTION_NAME_MAX:
        raise invalid_parameter("functionName", function_name,
                                 f"Member must have length between 1 and {FUNCTION_NAME_MAX}")
    kind = headers.get("X-Amz-Invocation-Type", InvocationType.REQUEST_RESPONSE.value)
    try:
        invocation_type = InvocationType(kind)
    except ValueError:
        raise invalid_parameter(
            "invocationType", kind,
            "Member must satisfy enum value set: [Event, RequestResponse, DryRun]",
        ) from None
    log_type = headers.get("X-Amz-Log-Type", "None")
    if log_type not in ("None", "Tail"):
        raise invalid_parameter("logType", log_type,
                                 "Member must satisfy enum value set: [None, Tail]")
    qualifier = query.get("Qualifier")
    if qualifier is not None and not _QUALIFIER.fullmatch(qualifier):
        raise invalid_parameter(
            "qualifier", qualifier,
            "Member must have length between 1 and 128 and match [a-zA-Z0-9$_-]+",
        )
    context_header = headers.get("X-Amz-Client-Context")
    client_context = decode_client_context(context_header) if context_header else None
    return InvokeRequest(
        function_name=function_name,
        invocation_type=invocation_type,
        # AWS: "Applies to synchronously invoked functions only".
        log_tail=log_type == "Tail" and invocation_type is InvocationType.REQUEST_RESPONSE,
        client_context=client_context,
        qualifier=qualifier,
    )


def check_payload_size(size: int, invocation_type: InvocationType) -> None:
    limit = EVENT_PAYLOAD_LIMIT if invocation_type is InvocationType.EVENT else \
        SYNC_PAYLOAD_LIMIT
    if size > limit:
        raise too_large(size, limit)


def result_response(result: InvocationResult, request: InvokeRequest) -> Response:
    """The HTTP answer for a finished invocation (200, 202 or 204)."""
    headers = {"x-amzn-RequestId": result.request_id,
               "X-Amz-Executed-Version": result.executed_version}
    if request.invocation_type is InvocationType.EVENT:
        return Response(202, b"", "application/json", tuple(headers.items()))
    if request.invocation_type is InvocationType.DRY_RUN:
        return Response(204, b"", None, tuple(headers.items()))
    if result.function_error is not None:
        headers["X-Amz-Function-Error"] = result.function_error.lambda_api
    if request.log_tail:
        tail = result.log_tail[-LOG_TAIL_LIMIT:]
        headers["X-Amz-Log-Result"] = base64.b64encode(tail).decode("ascii")
    return Response(200, result.payload, "application/json", tuple(headers.items()))


def malformed_request(status: int, reason: str) -> Response:
    """HTTP the server refuses (malformed, too large a head, too slow), answered in AWS's
    shape (the connection is closed after it)."""
    return InvokeApiError(status, ErrorType.INVALID_REQUEST_CONTENT,
                    f"Malformed HTTP request: {reason}" if status == 400 else
                    f"HTTP request refused: {reason}").response(str(uuid.uuid4()))


def body_limit(request: HttpRequest) -> int:
    """The payload limit of the request's invocation type (read from its head)."""
    kind = request.headers.get("X-Amz-Invocation-Type")
    return EVENT_PAYLOAD_LIMIT if kind == InvocationType.EVENT.value else SYNC_PAYLOAD_LIMIT


class _InvokeApi:
    """The handlers, bound to one invoker and one key pair."""

    def __init__(self, invoker: Invoker, credentials: Credentials, region: str,
                 extra_routes: Sequence[Callable[[Router], None]] = ()) -> None:
        self.invoker = invoker
        self.credentials = credentials
        self.region = region
        self.router = Router()
        self.router.add("POST", INVOKE_ROUTE, self.invoke)
        for register in extra_routes:     # the read operations (sprig.local_api.functions_api)
            register(self.router)

    def screen(self, request: HttpRequest) -> Response | None:
        """At the end of the head: refuse a request without valid credentials (403) before
        its body is read."""
        try:
            sigv4.check_head(request.query_string, request.headers.fields, self.credentials,
                             datetime.now(UTC), region=self.region)
        except sigv4.AuthError as exc:
            return InvokeApiError(403, exc.failure.value, exc.reason).response(str(uuid.uuid4()))
        return None

    async def authenticate(self, request: HttpRequest) -> Response:
        """Size check, then SigV4, then the route; every error leaves in AWS's shape.

        A body over the limit was never read (the request arrives truncated, and the
        connection closes after the 413).
        """
        try:
            handler, request = self._admit(request)
            answer = await handler(request)
            assert isinstance(answer, Response)
            return answer
        except InvokeApiError as exc:
            return exc.response(str(uuid.uuid4()))

    def quick(self, request: HttpRequest) -> Response | Deferred[Response] | None:
        """A RequestResponse invocation without a task (the hot path of every synchronous
        call): the same checks as :meth:`authenticate` and :meth:`invoke`, the invocation
        queued at once and answered from its future. Anything else: None (awaited)."""
        if (request.method != "POST" or request.truncated or request.headers.get(
                "X-Amz-Invocation-Type", "RequestResponse") != "RequestResponse"):
            return None
        try:
            handler, request = self._admit(request)
            if handler != self.invoke:
                return None
            parsed, invocation = self._invocation(request)
            try:
                future = self.invoker.submit(parsed.function_name, invocation,
                                             want_log_tail=parsed.log_tail)
            except Exception as exc:
                raise self._failure(parsed, invocation, exc) from exc
        except InvokeApiError as exc:
            return exc.response(str(uuid.uuid4()))

        def answer(done: asyncio.Future[InvocationResult]) -> Response:
            try:
                result = done.result()
            except Exception as exc:
                return self._failure(parsed, invocation, exc).response(str(uuid.uuid4()))
            return result_response(result, parsed)

        return Deferred(future, answer)

    def _admit(self, request: HttpRequest) -> tuple[Handler, HttpRequest]:
        """Size, SigV4 and route checks: the handler and the request with its params.
        Raises InvokeApiError."""
        if request.truncated:
            raise too_large(None if request.length is None else request.size,
                            request.limit)
        try:
            sigv4.verify(request.method, request.path, request.query_string,
                         request.headers.fields, request.body, self.credentials,
                         datetime.now(UTC), region=self.region)
        except sigv4.AuthError as exc:
            raise InvokeApiError(403, exc.failure.value, exc.reason) from None
        try:
            return self.router.resolve(request)
        except NoRoute as exc:
            if not exc.allowed:
                raise InvokeApiError(404, ErrorType.UNKNOWN_OPERATION,
                               f"No such operation: {request.method} {request.path}; "
                               f"allowed: {OPERATIONS}") from None
            raise InvokeApiError(405, ErrorType.UNKNOWN_OPERATION,
                           f"Method {request.method} is not allowed on {request.path}; "
                           f"allowed: {', '.join(exc.allowed)}") from None

    async def invoke(self, request: HttpRequest) -> Response:
        parsed, invocation = self._invocation(request)
        try:
            result = await self.invoker.invoke(parsed.function_name, invocation,
                                               want_log_tail=parsed.log_tail)
        except Exception as exc:
            raise self._failure(parsed, invocation, exc) from exc
        return result_response(result, parsed)

    @staticmethod
    def _invocation(request: HttpRequest) -> tuple[InvokeRequest, Invocation]:
        """The request's parameters and invocation; raises InvokeApiError."""
        name = function_name_from_path(request.path)
        if name is None:     # an encoded "/" in the name: not a function name AWS allows
            name = unquote(request.params["function_name"])
        parsed = parse_invoke_headers(name, request.query, request.headers)
        body = request.body
        if parsed.invocation_type is not InvocationType.DRY_RUN:
            check_payload_size(len(body), parsed.invocation_type)
        return parsed, Invocation(
            payload=b"" if parsed.invocation_type is InvocationType.DRY_RUN else body,
            invocation_type=parsed.invocation_type,
            client_context=parsed.client_context,
            source="api",
        )

    @staticmethod
    def _failure(parsed: InvokeRequest, invocation: Invocation,
                 exc: Exception) -> InvokeApiError:
        """The AWS-shaped error for an invocation that raised ``exc`` (logged when it is
        Sprig's fault)."""
        if isinstance(exc, SprigError):
            error = map_function_error(exc)
            if error.status >= 500:
                log.error("invoke %s failed: %s", parsed.function_name, exc, exc_info=exc)
            return error
        log.error("invoke %s failed unexpectedly", parsed.function_name, exc_info=exc)
        return InvokeApiError(500, ErrorType.SERVICE,
                              f"Internal error while invoking {parsed.function_name}; "
                              f"see the core log (request {invocation.request_id})")


def create_invoke_app(invoker: Invoker, credentials: Credentials, *,
                      region: str,
                      extra_routes: Sequence[Callable[[Router], None]] = ()) -> HttpServer:
    """The server of the Invoke API (not yet listening anywhere).

    Requests must be signed for ``region`` (the core's ``awsRegion``), as AWS accepts only
    its own region in a credential scope. A body over its invocation type's limit is never
    read; a payload of exactly the limit is allowed.
    """
    api = _InvokeApi(invoker, credentials, region, extra_routes)
    return HttpServer(api.authenticate, max_body=body_limit, name="invoke-api",
                      on_error=malformed_request, screen=api.screen, quick=api.quick)


class InvokeApiRunner:
    """The listening Invoke API; ``await cleanup()`` stops it (as aiohttp's runner did)."""

    def __init__(self, server: HttpServer, port: int) -> None:
        self.server = server
        self.port = port

    async def cleanup(self) -> None:
        await self.server.aclose()


def loopback_host(host: str) -> str:
    """``host`` if it is a loopback address (``localhost`` becomes 127.0.0.1), else an error."""
    if host == "localhost":
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        address = None
    if address is None or not address.is_loopback:
        raise ValidationError(
            "host", "the invoke API listens on loopback only", value=host,
            allowed="a loopback address: 127.0.0.1 (any 127.x.y.z), ::1 or localhost",
        )
    return str(address)


async def start_invoke_api(invoker: Invoker, credentials: Credentials,
                           host: str = "127.0.0.1",
                           port: int = 0, *, region: str,
                           extra_routes: Sequence[Callable[[Router], None]] = (),
                           ) -> tuple[InvokeApiRunner, str]:
    """Serve the Invoke API on ``host:port`` (0 = any free port), for requests signed for
    ``region``; return the runner and URL.

    The caller stops it with ``await runner.cleanup()``.

    Raises:
        ValidationError: ``host`` is not a loopback address or ``port`` is out of range.
        SprigError: the address cannot be bound (in use, permission).
    """
    address = loopback_host(host)
    if not 0 <= port <= 65535:
        raise ValidationError("port", "not a TCP port", value=port, allowed="0..65535 (0: any)")
    server = create_invoke_app(invoker, credentials, region=region, extra_routes=extra_routes)
    try:
        bound = await server.listen_tcp(address, port)
    except OSError as exc:
        await server.aclose()
        raise SprigError(
            f"cannot listen for the invoke API on {address}:{port}: {exc.strerror or exc}"
        ) from exc
    shown = f"[{address}]" if ":" in address else address
    return InvokeApiRunner(server, bound), f"http://{shown}:{bound}"
