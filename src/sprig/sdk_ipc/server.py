"""The Greengrass Core SDK v1 local HTTP IPC on ``127.0.0.1:<port>`` (client-protocols §3.4).

Two endpoints, as the SDK's ``IPCClient`` calls them:

* ``POST /2016-11-01/functions/{arn}`` (the ARN raw, colons included) with
  ``X-Amz-Invocation-Type``, ``X-Amz-Client-Context`` (base64 JSON or empty) and the payload as
  body → ``X-Amz-InvocationId``.
* ``GET /2016-11-01/functions/{arn}`` with ``X-Amz-InvocationId`` → the result body and
  ``X-Amz-Function-Error`` (always present: ``''`` on success, else ``Handled``/``Unhandled``).

Every request carries ``Authorization: <token>``; the core gives each function its own token
(:meth:`SdkIpcServer.register_function`), which tells us *who* is calling: the SDK's own claim
(``custom.source``) is never trusted. Targets:

* ``GGRouter`` — a publish, routed by the legacy subscriptions (:mod:`sprig.sdk_ipc.router`) to
  the cloud (the MQTT bridge, QoS 0 as the V1 SDK), a component (a Lambda component is invoked
  as an Event; any other component gets the message on the local bus) or a function ARN
  (invoked). No route → 400 with Greengrass's text.
* ``GGSecretManager`` — ``get_secret_value`` from the local secret store.
* ``GGShadowService`` — ``get``/``update``/``delete_thing_shadow``: the subject
  ``$aws/things/<thing>/shadow[/name/<name>]/<op>`` is served by the local shadow service of
  ``aws.greengrass.ShadowManager`` (:mod:`sprig.shadow.service`) when the caller may: a legacy
  subscription from it (its ARN or ``component:<name>``) to ``GGShadowService`` whose subject
  matches, as Greengrass V1 required, or an ``accessControl`` policy for
  ``aws.greengrass.ShadowManager`` as V2 components have. The result is the AWS document, or
  ``{"code", "message"}`` (the SDK raises ``ShadowError`` with them). Publishes routed to
  ``GGShadowService`` are shadow requests too, and the service's ``accepted``/``rejected``/
  ``delta``/``documents`` messages go to the subscriptions whose source is ``GGShadowService``.
* any other function ARN — a Lambda invoke (RequestResponse or Event) through the Invoker.

Errors the caller causes are 4xx with a plain-text sentence (the SDK raises ``IPCException``
with it); they never disturb the core or other callers.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import unquote

from sprig.errors import SprigError
from sprig.functions.errors import (
    FunctionError,
    FunctionNotFound,
    FunctionNotRunnable,
    PayloadTooLarge,
    QueueFull,
)
from sprig.functions.invocation import (
    Invocation,
    InvocationResult,
    InvocationType,
    Invoker,
)
from sprig.httpserver import HttpRequest, HttpServer, Response, Router
from sprig.launcher.registry import Refusals
from sprig.pubsub.authorization import GET_SECRET_VALUE, IpcService, authorize
from sprig.pubsub.bus import Bus, Message
from sprig.pubsub.topic import InvalidTopic, Topic
from sprig.sdk_ipc.router import (
    SHADOW_SERVICE,
    FunctionArn,
    LegacySubscription,
    TargetKind,
    no_subscription_message,
    parse_subscriptions,
    route,
)
from sprig.sdk_ipc.secrets import SecretNotFoundError, SecretStoreError
from sprig.shadow.document import ShadowError, parse_topic, topic_prefix
from sprig.shadow.service import SHADOW_MANAGER, ShadowService

log = logging.getLogger(__name__)

BASE = "/2016-11-01/functions/"
RESULT_WAIT_SECONDS = 60.0       # LambdaManager's get-result timeout (reference §9)
RESULT_TTL_SECONDS = 300.0       # an RR result nobody fetched is forgotten after this
MAX_BODY = 7 * 1024 * 1024
_ROUTE = BASE + "(?P<arn>.+)"
_BINARY = "application/octet-stream"


class CloudPublisher(Protocol):
    """What the router needs from the MQTT bridge."""

    async def publish(self, topic: str, payload: bytes, qos: int = 0) -> object: ...


class SecretSource(Protocol):
    """What ``GGSecretManager`` needs from the secret store (raises
    :class:`~sprig.sdk_ipc.secrets.SecretNotFoundError` for unknown ids or stages)."""

    def get_secret_value(self, secret_id: str, version_stage: str | None = None
                         ) -> dict[str, Any]: ...



PeerCheck = Callable[[str, socket.socket | None], str | None]

@dataclass(frozen=True)
class Caller:
    arn: str
    component: str
    access_control: Mapping[str, Any] | None


@dataclass
class _Pending:
    caller_token: str
    task: asyncio.Future[InvocationResult]     # a running invoke, or an already known result
    created: float


def _text(status: int, message: str) -> Response:
    return Response.text(status, message, (("X-Amz-Function-Error", ""),) if status < 400 else ())


def _answer(status: int, headers: Mapping[str, str], body: bytes = b"") -> Response:
    return Response(status, body, _BINARY, tuple(headers.items()))


def _arn(request: HttpRequest) -> str:
    """The target ARN of the path, percent-decoded."""
    return unquote(request.params["arn"])


class SdkIpcServer:
    """The V1 IPC HTTP server. ``await start()``, then read :attr:`port`; ``await aclose()``."""

    def __init__(self, *, invoker: Invoker, bus: Bus | None = None,
                 cloud: CloudPublisher | None = None, secrets: SecretSource | None = None,
                 host: str = "127.0.0.1", port: int = 0,
                 verify_peer: PeerCheck | None = None,
                 shadows: Callable[[], ShadowService | None] | None = None) -> None:
        """``verify_peer(component, sock)``: None when the connection comes from a process of
        that component, else who it comes from (the request is refused); None: no check.
        ``shadows()``: the local shadow service, None while ShadowManager is not deployed."""
        self._verify_peer = verify_peer
        self._shadows = shadows or (lambda: None)
        self._shadow_events: Any = None
        self._invoker = invoker
        self._bus = bus
        self._cloud = cloud
        self._secrets = secrets
        self._host = host
        self._port = port
        self._callers: dict[str, Caller] = {}
        self._subscriptions: tuple[LegacySubscription, ...] = ()
        self._pending: dict[str, _Pending] = {}
        self._server: HttpServer | None = None
        self.published = 0
        self.cloud_unavailable = 0
        self._refusals = Refusals()

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        router = Router()
        router.add("POST", _ROUTE, self._post)
        router.add("GET", _ROUTE, self._get)
        router.add("PUT", _ROUTE, self._unsupported)
        server = HttpServer(router, max_body=MAX_BODY, name="sdk-ipc",
                            screen=lambda r: router.screen(r) or self._token_refusal(r))
        self._port = await server.listen_tcp(self._host, self._port)
        self._server = server
        if self._bus is not None:
            self._shadow_events = self._bus.subscribe(
                "$aws/things/+/shadow/#", self._shadow_event, owner=SHADOW_SERVICE)
        log.info("V1 SDK IPC listening on %s:%d", self._host, self._port)

    async def aclose(self) -> None:
        if self._shadow_events is not None:
            self._shadow_events.close()
            self._shadow_events = None
        for p in self._pending.values():
            p.task.cancel()
        for p in list(self._pending.values()):
            with contextlib.suppress(BaseException):
                await p.task
        self._pending.clear()
        if self._server is not None:
            await self._server.aclose()
            self._server = None

    @property
    def port(self) -> int:
        return self._port

    # --- configuration ---------------------------------------------------------------------

    def register_function(self, arn: str, token: str, component_name: str,
                          access_control: Mapping[str, Any] | None = None) -> None:
        """Let the function ``arn`` (component ``component_name``) call in with ``token``."""
        self._callers[token] = Caller(arn, component_name, access_control)

    def unregister_function(self, token: str) -> None:
        self._callers.pop(token, None)

    def set_subscriptions(self, subscriptions: Any, *, source: str | None = None) -> None:
        """Replace the legacy router subscriptions (the router component's ``subscriptions``)."""
        self._subscriptions = parse_subscriptions(subscriptions, source=source)

    # --- handlers --------------------------------------------------------------------------

    def _token_refusal(self, request: HttpRequest) -> Response | None:
        """No token, or one of no function: refused at the end of the head, before the body
        is read (the check of the peer's process waits for the handler)."""
        token = request.headers.get("Authorization", "")
        if not token:
            return _text(401, "Missing Authorization header: the Greengrass SDK sends "
                              "AWS_CONTAINER_AUTHORIZATION_TOKEN; run the code as a Sprig function")
        if token not in self._callers:
            return _text(403, "Invalid Authorization token: it belongs to no running function")
        return None

    def _caller(self, request: HttpRequest) -> Caller | Response:
        refusal = self._token_refusal(request)
        if refusal is not None:
            return refusal
        caller = self._callers[request.headers["Authorization"]]
        if self._verify_peer is not None:
            stranger = self._verify_peer(caller.component, request.sock)
            if stranger is not None:
                n = self._refusals.count(stranger)
                if n is not None:
                    log.warning("V1 SDK: the token of %s refused: presented by %s, not by a "
                                "process of %s (refusal %d)", caller.component, stranger,
                                caller.component, n)
                return _text(403, "Invalid Authorization token: it belongs to another "
                                  "function's process")
        return caller

    async def _unsupported(self, request: HttpRequest) -> Response:
        return _text(404, f"{request.method} {request.path} is not served: Sprig runs functions "
                          "with its own runtime, not the Greengrass V1 worker protocol")

    async def _post(self, request: HttpRequest) -> Response:
        caller = self._caller(request)
        if isinstance(caller, Response):
            return caller
        target = _arn(request)
        if "/" in target:
            return await self._unsupported(request)
        kind = request.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        if kind not in (InvocationType.REQUEST_RESPONSE, InvocationType.EVENT):
            return _text(400, f"X-Amz-Invocation-Type: unsupported value {kind!r}; allowed: "
                              "RequestResponse, Event")
        context = _decode_context(request.headers.get("X-Amz-Client-Context", ""))
        if isinstance(context, Response):
            return context
        payload = request.body
        arn = FunctionArn.parse(target)
        if arn is None:
            return _text(400, f"function ARN: {target!r} is not a Lambda function ARN; allowed: "
                              "arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]")
        system = arn.name if not arn.region and not arn.account else None
        if system == "GGRouter":
            return await self._publish(caller, context, payload)
        if system == SHADOW_SERVICE:
            result = self._shadow(caller, context, payload)
            if isinstance(result, Response):
                return result
            return self._remember(request, InvocationResult(str(uuid.uuid4()), result))
        if system == "GGSecretManager":
            result = self._secret(caller, payload)
            return self._remember(request, InvocationResult(str(uuid.uuid4()), result))
        return await self._invoke(request, caller, target, InvocationType(kind), context,
                                  payload)

    async def _get(self, request: HttpRequest) -> Response:
        caller = self._caller(request)
        if isinstance(caller, Response):
            return caller
        if "/" in _arn(request):
            return await self._unsupported(request)
        self._expire()
        inv_id = request.headers.get("X-Amz-InvocationId", "")
        pending = self._pending.get(inv_id)
        if not inv_id or pending is None or pending.caller_token != request.headers[
                "Authorization"]:
            return _text(404, f"X-Amz-InvocationId: no pending result for {inv_id!r}")
        try:
            result = await asyncio.wait_for(asyncio.shield(pending.task), RESULT_WAIT_SECONDS)
        except TimeoutError:
            return _text(504, f"the result of invocation {inv_id} is not ready after "
                              f"{RESULT_WAIT_SECONDS:.0f} s; fetch it again")
        except FunctionError as e:
            self._pending.pop(inv_id, None)
            return _function_error_response(e)
        except Exception as e:
            self._pending.pop(inv_id, None)
            log.exception("V1 IPC: invocation %s failed inside Sprig", inv_id)
            return _text(500, f"invocation {inv_id} failed inside Sprig: {e!r}")
        self._pending.pop(inv_id, None)
        return _answer(200, {
            "X-Amz-Function-Error": str(result.function_error or ""),
            "X-Amz-InvocationId": inv_id,
            "X-Amz-Executed-Version": result.executed_version,
        }, result.payload)

    # --- targets ---------------------------------------------------------------------------

    async def _invoke(self, request: HttpRequest, caller: Caller, target: str,
                      kind: InvocationType, context: dict[str, Any] | None,
                      payload: bytes) -> Response:
        invocation = Invocation(payload=payload, invocation_type=kind, client_context=context,
                                source="sdk")
        if kind is InvocationType.EVENT:
            try:
                await self._invoker.invoke(target, invocation)
            except FunctionError as e:
                return _function_error_response(e)
            return _answer(202, {"X-Amz-InvocationId": invocation.request_id})
        task = asyncio.get_running_loop().create_task(
            self._invoker.invoke(target, invocation), name=f"sdk-invoke-{invocation.request_id}")
        # Unknown functions, full queues and oversize payloads are known at once: report
        # them on the POST, as Lambda does, rather than on the later GET.
        done, _ = await asyncio.wait({task}, timeout=0)
        if done and task.exception() is not None:
            exc = task.exception()
            if isinstance(exc, FunctionError):
                return _function_error_response(exc)
        self._pending[invocation.request_id] = _Pending(
            request.headers["Authorization"], task, time.monotonic())
        task.add_done_callback(_consume)
        return _answer(200, {"X-Amz-InvocationId": invocation.request_id})

    def _remember(self, request: HttpRequest, result: InvocationResult) -> Response:
        fut: asyncio.Future[InvocationResult] = asyncio.get_running_loop().create_future()
        fut.set_result(result)
        self._pending[result.request_id] = _Pending(request.headers["Authorization"], fut,
                                                    time.monotonic())
        return _answer(200, {"X-Amz-InvocationId": result.request_id})

    async def _publish(self, caller: Caller, context: dict[str, Any] | None,
                       payload: bytes) -> Response:
        custom = (context or {}).get("custom")
        subject = custom.get("subject") if isinstance(custom, dict) else None
        if not isinstance(subject, str):
            return _text(400, "X-Amz-Client-Context: a publish needs custom.subject (the topic)")
        try:
            topic = Topic.parse(subject, path="topic")
        except InvalidTopic as e:
            return _text(400, str(e))
        policy = custom.get("queueFullPolicy", "") if isinstance(custom, dict) else ""
        routes = route(self._subscriptions, source_arn=caller.arn,
                       source_component=caller.component, topic=topic)
        if not routes:
            return _text(400, no_subscription_message(caller.arn, topic.value))
        errors: list[str] = []
        for sub in routes:
            try:
                await self._deliver(caller, sub, topic, payload)
            except SprigError as e:
                log.warning("V1 publish from %s on %r to %s failed: %s", caller.component,
                            topic.value, sub.target, e)
                errors.append(f"{sub.target}: {e}")
        self.published += 1
        if errors and (policy == "AllOrError" or len(errors) == len(routes)):
            return _text(429 if policy == "AllOrError" else 400,
                         "publish not delivered to every target: " + "; ".join(errors))
        return _answer(202, {"X-Amz-InvocationId": str(uuid.uuid4())})

    async def _deliver(self, caller: Caller, sub: LegacySubscription, topic: Topic,
                       payload: bytes) -> None:
        kind = sub.target_kind
        context = {"custom": {"source": caller.arn, "subject": topic.value}}
        if kind is TargetKind.SHADOW:
            self._shadow_request(topic.value, payload)
            return
        if kind is TargetKind.CLOUD:
            if self._cloud is None:
                self.cloud_unavailable += 1
                log.warning("V1 publish from %s on %r to the cloud dropped: no MQTT broker is "
                            "configured (%d so far)", caller.component, topic.value,
                            self.cloud_unavailable)
                return
            await self._cloud.publish(topic.value, payload, 0)
        else:
            invocation = Invocation(payload=payload, invocation_type=InvocationType.EVENT,
                                    client_context=context, source="pubsub")
            try:
                await self._invoker.invoke(sub.target_name, invocation)
                return
            except FunctionNotFound:
                if kind is TargetKind.FUNCTION:
                    raise
            # component:NAME that is not a Lambda: a generic component reads the local bus
            if self._bus is None:
                log.warning("V1 publish to %s dropped: no local bus", sub.target)
                return
            self._bus.publish(topic, payload, source=caller.component)

    def _secret(self, caller: Caller, payload: bytes) -> bytes:
        try:
            request = json.loads(payload)
            secret_id = request["SecretId"]
            stage = request.get("VersionStage") or None
            if not isinstance(secret_id, str) or not (stage is None or isinstance(stage, str)):
                raise TypeError
        except (ValueError, KeyError, TypeError, AttributeError):
            return _secret_error(400, "the request must be JSON {\"SecretId\": <string>"
                                      "[, \"VersionStage\": <string>]}")
        if self._secrets is None:
            return _secret_error(404, "no secret store: deploy secrets with the "
                                      "aws.greengrass.SecretManager component")
        try:
            value = self._secrets.get_secret_value(secret_id, stage)
        except SecretNotFoundError as e:
            return _secret_error(404, str(e))
        except SecretStoreError as e:
            log.error("secret store: %s", e)
            return _secret_error(500, f"the local secret store cannot be read: {e}")
        arn = str(value.get("ARN", secret_id))
        if not any(authorize(caller.access_control, IpcService.SECRET_MANAGER,
                             GET_SECRET_VALUE, r) for r in {arn, secret_id}):
            return _secret_error(403, f"Principal {caller.component} is not authorized to "
                                      f"perform {IpcService.SECRET_MANAGER}:{GET_SECRET_VALUE} "
                                      f"on resource {arn}")
        return json.dumps(value).encode()

    # --- GGShadowService ------------------------------------------------------------------

    def _shadow(self, caller: Caller, context: dict[str, Any] | None,
                payload: bytes) -> bytes | Response:
        """A V1 shadow call: the result document, or ``{code, message}`` as AWS words it."""
        custom = (context or {}).get("custom")
        subject = custom.get("subject") if isinstance(custom, dict) else None
        target = parse_topic(subject) if isinstance(subject, str) else None
        if target is None or not target.is_request:
            return _text(400, "X-Amz-Client-Context: a shadow call needs custom.subject "
                              "$aws/things/<thing>/shadow[/name/<name>]/get|update|delete "
                              f"(got {subject!r})")
        service = self._shadows()
        if service is None:
            return _text(404, f"GGShadowService: {SHADOW_MANAGER} is not deployed on this "
                              "core; deploy it to use local shadows")
        if not self._may_use_shadow(caller, str(subject), target.operation,
                                    topic_prefix(target.thing, target.name)):
            error = ShadowError(401, "Unauthorized", f"{caller.arn} has no subscription to "
                                f"{SHADOW_SERVICE} for {subject} and no {SHADOW_MANAGER} policy")
            log.warning("V1 shadow call from %s on %r refused: no subscription to %s and no "
                        "%s policy", caller.component, subject, SHADOW_SERVICE, SHADOW_MANAGER)
            return json.dumps(error.payload(service.now())).encode()
        try:
            if target.operation == "update":
                answer = service.update(target.thing, target.name, payload)
            elif target.operation == "get":
                answer = service.get(target.thing, target.name)
            else:
                answer = service.delete(target.thing, target.name)
        except ShadowError as e:
            return json.dumps(e.payload(service.now())).encode()
        return json.dumps(answer).encode()

    def _may_use_shadow(self, caller: Caller, subject: str, operation: str,
                        resource: str) -> bool:
        """A subscription from the caller to GGShadowService for ``subject`` (Greengrass V1),
        or an accessControl policy on aws.greengrass.ShadowManager (V2)."""
        topic = Topic.parse(subject)
        routes = route(self._subscriptions, source_arn=caller.arn,
                       source_component=caller.component, topic=topic)
        if any(r.target_kind is TargetKind.SHADOW for r in routes):
            return True
        op = f"aws.greengrass#{operation.capitalize()}ThingShadow"
        return authorize(caller.access_control, SHADOW_MANAGER, op, resource)

    def _shadow_request(self, topic: str, payload: bytes) -> None:
        """A publish routed to GGShadowService: served like a request on the local topic; the
        outcome goes out as the service's messages (routed by :meth:`_shadow_event`)."""
        service = self._shadows()
        target = parse_topic(topic)
        if service is None or target is None or not target.is_request:
            log.warning("V1 publish on %r to %s dropped: %s", topic, SHADOW_SERVICE,
                        "no shadow manager deployed" if service is None
                        else "not a shadow request topic")
            return
        try:
            if target.operation == "update":
                service.update(target.thing, target.name, payload)
            elif target.operation == "get":
                service.get(target.thing, target.name)
            else:
                service.delete(target.thing, target.name)
        except ShadowError as e:
            log.info("V1 shadow request on %r refused: %s", topic, e.text)

    async def _shadow_event(self, message: Message) -> None:
        """The shadow service's messages go to the subscriptions whose source is
        GGShadowService, as Greengrass V1 routed them."""
        if message.source != SHADOW_MANAGER:
            return
        topic = Topic.parse(message.topic)
        shadow_caller = Caller(SHADOW_SERVICE, SHADOW_SERVICE, None)
        for sub in self._subscriptions:
            if sub.source != SHADOW_SERVICE or not sub.subject.matches(topic) \
                    or sub.target_kind is TargetKind.SHADOW:
                continue
            try:
                if sub.target_kind is TargetKind.COMPONENT:
                    # A Lambda component is invoked; any other component already reads the
                    # shadow topics on the local bus itself.
                    with contextlib.suppress(FunctionNotFound):
                        await self._invoker.invoke(sub.target_name, Invocation(
                            payload=message.payload, invocation_type=InvocationType.EVENT,
                            client_context={"custom": {"source": SHADOW_SERVICE,
                                                       "subject": topic.value}},
                            source="pubsub"))
                    continue
                await self._deliver(shadow_caller, sub, topic, message.payload)
            except SprigError as e:
                log.warning("shadow message on %r to %s not delivered: %s", topic.value,
                            sub.target, e)

    def _expire(self) -> None:
        now = time.monotonic()
        for inv_id, p in list(self._pending.items()):
            if p.task.done() and now - p.created > RESULT_TTL_SECONDS:
                del self._pending[inv_id]


def _consume(task: asyncio.Task[InvocationResult]) -> None:
    """Mark a background invocation's exception as retrieved (it is reported on GET)."""
    if not task.cancelled():
        task.exception()


def _secret_error(status: int, message: str) -> bytes:
    """A GGSecretManager error as the SDK expects it: ``Status`` + ``Message`` in the body."""
    return json.dumps({"Status": status, "Message": message}).encode()


def _decode_context(header: str) -> dict[str, Any] | Response | None:
    if not header:
        return None
    try:
        value = json.loads(base64.b64decode(header, validate=True))
    except (binascii.Error, ValueError):
        return _text(400, "X-Amz-Client-Context: must be base64-encoded JSON")
    if not isinstance(value, dict):
        return _text(400, "X-Amz-Client-Context: must be a base64-encoded JSON object")
    return value


def _function_error_response(e: FunctionError) -> Response:
    status = 500
    if isinstance(e, FunctionNotFound):
        status = 404
    elif isinstance(e, QueueFull):
        status = 429
    elif isinstance(e, PayloadTooLarge):
        status = 413
    elif isinstance(e, FunctionNotRunnable):
        status = 409
    return _text(status, str(e))

