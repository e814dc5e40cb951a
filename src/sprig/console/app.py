"""The console's HTTP API and pages (loaded on the first request; see :mod:`sprig.console`).

Reads are ``GET /api/...``; every change is a ``POST`` with the session's CSRF token; the live
channel is ``GET /api/events``. Each answer is what a management API method answers (the same
commands the CLI uses), shaped for a page: secrets redacted, payloads as text. Errors are
``{"error": {"type", "message"}}``: 400 for the caller's mistakes (the message names the field,
the value and what is allowed), 401 without a session, 403 for a refused check, 429 when a
function's queue is full.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import unquote

from sprig.config.visibility import (
    readable_configuration,
    redact_deployment,
    redact_secrets,
)
from sprig.console.auth import (
    LinkRefused,
    Refused,
    Session,
    check_change,
    check_request,
    cookie_value,
    session_cookie,
)
from sprig.console.live import Channel, Channels
from sprig.errors import SprigError, ValidationError
from sprig.httpserver import Answer, HttpRequest, Response, Router, StreamResponse

if TYPE_CHECKING:
    from sprig.console.server import ConsoleServer

log = logging.getLogger("sprig.console")

STATIC: Final = Path(__file__).parent / "static"
_TYPES: Final = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml",
                 ".png": "image/png"}
#: every answer: no framing, no sniffing, no referrer (a login link must not leak), and a
#: content policy that allows only the console's own files
SECURITY_HEADERS: Final = (
    ("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; "
     "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; "
     "frame-ancestors 'none'"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
    ("Cache-Control", "no-store"),
)
LOG_LINES_MAX: Final = 5000
_REPORT = re.compile(r"^REPORT RequestId: .*$", re.MULTILINE)

Handler = Callable[[HttpRequest, Session], Awaitable[Answer]]


def _json(document: Any, status: int = 200) -> Response:
    return Response(status, json.dumps(document, default=str).encode(), "application/json",
                    SECURITY_HEADERS)


def _error(status: int, kind: str, message: str) -> Response:
    return _json({"error": {"type": kind, "message": message}}, status)


def _page(status: int, title: str, text: str, extra: tuple[tuple[str, str], ...] = (),
          refresh: bool = False) -> Response:
    """A small self-contained HTML page (sign-in outcomes), no script."""
    from html import escape

    meta = '<meta http-equiv="refresh" content="0;url=/">' if refresh else ""
    body = (f'<!doctype html><html lang="en"><head><meta charset="utf-8">{meta}'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{escape(title)} · Sprig console</title></head><body>'
            f'<h1>{escape(title)}</h1><p>{escape(text)}</p></body></html>')
    return Response(status, body.encode(), "text/html; charset=utf-8",
                    SECURITY_HEADERS + extra)


class ConsoleApp:
    def __init__(self, server: ConsoleServer) -> None:
        self.server = server
        self.commands = server.commands
        self.channels = Channels()
        self._assets: dict[str, bytes] = {}
        router = Router()
        router.add("GET", "/", self._index)
        router.add("GET", r"/static/(?P<path>[A-Za-z0-9_./-]+)", self._static)
        router.add("GET", "/login", self._login)
        self._api(router, "POST", "/api/logout", self._logout)
        self._api(router, "GET", "/api/session", self._session)
        self._api(router, "GET", "/api/device", self._device)
        self._api(router, "GET", "/api/components", self._components)
        self._api(router, "GET", "/api/graph", self._graph)
        self._api(router, "GET", r"/api/components/(?P<name>[^/]+)", self._component)
        self._api(router, "GET", r"/api/components/(?P<name>[^/]+)/logs", self._logs)
        self._api(router, "POST", r"/api/components/(?P<name>[^/]+)/(?P<action>restart|stop)",
                  self._component_action)
        self._api(router, "GET", "/api/functions", self._functions)
        self._api(router, "POST", r"/api/functions/(?P<name>[^/]+)/invoke", self._invoke)
        self._api(router, "GET", "/api/deployments", self._deployments)
        self._api(router, "POST", "/api/deployments", self._deploy)
        self._api(router, "POST", "/api/deployments/rollback", self._rollback)
        self._api(router, "POST", "/api/messaging/subscribe", self._subscribe)
        self._api(router, "POST", "/api/messaging/unsubscribe", self._unsubscribe)
        self._api(router, "POST", "/api/messaging/publish", self._publish)
        self._api(router, "GET", "/api/events", self._events)
        self._router = router

    async def __call__(self, request: HttpRequest) -> Answer:
        answer = await self._router(request)
        if isinstance(answer, Response) and not any(
                name == "Content-Security-Policy" for name, _ in answer.headers):
            # the router's own plain-text answers (404, 405, 413): the same headers as the rest
            return Response(answer.status, answer.body, answer.content_type,
                            (*answer.headers, *SECURITY_HEADERS))
        return answer

    def close(self) -> None:
        self.channels.close()

    # -- sessions and checks -----------------------------------------------------------------
    def _session_of(self, request: HttpRequest) -> Session | None:
        origin = self.server.origin
        assert origin is not None
        return self.server.sessions.find(cookie_value(request, origin.cookie))

    def _api(self, router: Router, method: str, pattern: str, handler: Handler) -> None:
        change = method == "POST"

        async def guarded(request: HttpRequest) -> Answer:
            origin = self.server.origin
            assert origin is not None
            try:
                check_request(request, origin)
                session = self._session_of(request)
                if session is None:
                    raise Refused(401, "no session: open the link `sprig console login` "
                                       "prints")
                if change:
                    check_change(request, session)
                return await handler(request, session)
            except Refused as e:
                return _error(e.status, "Unauthorized" if e.status == 401 else "Forbidden",
                              str(e))
            except SprigError as e:
                status = 429 if type(e).__name__ == "QueueFull" else 400
                return _error(status, type(e).__name__, str(e))

        router.add(method, pattern, guarded)

    # -- pages -------------------------------------------------------------------------------
    def _asset(self, name: str) -> bytes | None:
        data = self._assets.get(name)
        if data is None:
            path = (STATIC / name).resolve()
            if STATIC.resolve() not in path.parents or not path.is_file():
                return None
            data = path.read_bytes()
            self._assets[name] = data
        return data

    async def _index(self, request: HttpRequest) -> Answer:
        origin = self.server.origin
        assert origin is not None
        try:
            check_request(request, origin)
        except Refused as e:
            return _page(e.status, "Refused", str(e))
        if self._session_of(request) is None:
            return _page(401, "Not signed in", "Run `sprig console login` on the device and "
                                               "open the link it prints.")
        data = self._asset("index.html")
        assert data is not None
        return Response(200, data, _TYPES[".html"], SECURITY_HEADERS)

    async def _static(self, request: HttpRequest) -> Answer:
        origin = self.server.origin
        assert origin is not None
        try:
            check_request(request, origin)
        except Refused as e:
            return _error(e.status, "Forbidden", str(e))
        if self._session_of(request) is None:
            return _error(401, "Unauthorized", "no session")
        name = request.params["path"]
        data = self._asset(name)
        if data is None:
            return _error(404, "NotFound", f"no such file: {name}")
        return Response(200, data, _TYPES.get(Path(name).suffix, "application/octet-stream"),
                        SECURITY_HEADERS)

    async def _login(self, request: HttpRequest) -> Answer:
        origin = self.server.origin
        assert origin is not None
        try:
            check_request(request, origin)
            session_id, _ = self.server.sessions.redeem(request.query.get("token", ""))
        except Refused as e:
            return _page(e.status, "Refused", str(e))
        except LinkRefused as e:
            return _page(403, "Cannot sign in", str(e))
        # A page, not a redirect: after a link opened from another site, a same-site
        # navigation (this refresh) is what carries a SameSite=Strict cookie.
        return _page(200, "Signed in", "Opening the console…",
                     (("Set-Cookie", session_cookie(origin, session_id)),), refresh=True)

    async def _logout(self, request: HttpRequest, session: Session) -> Answer:
        self.server.sessions.end(session)
        for channel in self.channels.for_session(session):
            channel.close()
        origin = self.server.origin
        assert origin is not None
        return Response(200, b'{"signedOut": true}', "application/json",
                        (*SECURITY_HEADERS, ("Set-Cookie", session_cookie(origin, "", 0))))

    async def _session(self, request: HttpRequest, session: Session) -> Answer:
        status = await self.commands["status"]({})
        return _json({"csrfToken": session.csrf, "expiresAt": session.expires,
                      "thingName": status["thingName"], "version": status["version"]})

    # -- device and components ---------------------------------------------------------------
    async def _device(self, request: HttpRequest, session: Session) -> Answer:
        info = await self.commands["device.info"](
            {"recheck": request.query.get("recheck") == "1"})
        status = await self.commands["status"]({})
        info["endpoints"] = status["endpoints"]
        info["currentDeployment"] = status["currentDeployment"]
        return _json(info)

    async def _components(self, request: HttpRequest, session: Session) -> Answer:
        return _json((await self.commands["component.graph"]({}))["nodes"])

    async def _graph(self, request: HttpRequest, session: Session) -> Answer:
        return _json(await self.commands["component.graph"]({}))

    async def _component(self, request: HttpRequest, session: Session) -> Answer:
        name = unquote(request.params["name"])
        details = await self.commands["component.details"]({"name": name})
        # What an operator's screen shows: no secret value (SecretManager's), no Lambda
        # environment variable value (often credentials); the keys stay visible.
        details["configuration"] = readable_configuration(
            "sprig console", name, details.get("componentType"), details["configuration"])
        return _json(redact_secrets(details))

    async def _logs(self, request: HttpRequest, session: Session) -> Answer:
        from sprig.logs import tail_lines

        name = unquote(request.params["name"])
        await self.commands["component.details"]({"name": name})      # a component, or 400
        lines = _int(request.query.get("lines", "200"), "lines", 1, LOG_LINES_MAX)
        query = request.query.get("q", "")
        path = self.server.layout.component_log(name)
        found = tail_lines(path, LOG_LINES_MAX if query else lines) if path.exists() else []
        if query:
            needle = query.lower()
            found = [line for line in found if needle in line.lower()][-lines:]
        return _json({"component": name, "lines": found, "query": query,
                      "searched": LOG_LINES_MAX if query else len(found)})

    async def _component_action(self, request: HttpRequest, session: Session) -> Answer:
        name = unquote(request.params["name"])
        action = request.params["action"]
        return _json(await self.commands[f"component.{action}"]({"names": [name]}))

    # -- functions -------------------------------------------------------------------------------
    async def _functions(self, request: HttpRequest, session: Session) -> Answer:
        return _json(await self.commands["function.list"]({}))

    async def _invoke(self, request: HttpRequest, session: Session) -> Answer:
        name = unquote(request.params["name"])
        body = _body(request)
        payload = body.get("payload", "")
        if not isinstance(payload, str):
            raise ValidationError("payload", "must be text (JSON is sent as it is written)",
                                  value=type(payload).__name__, allowed="a string")
        result = await self.commands["invoke"]({
            "function": name, "payload": base64.b64encode(payload.encode()).decode(),
            "invocationType": body.get("invocationType", "RequestResponse"),
            "logTail": True})
        tail = base64.b64decode(result.get("logTail") or "").decode("utf-8", "replace")
        out = base64.b64decode(result.get("payload") or "").decode("utf-8", "replace")
        report = _REPORT.findall(tail)
        return _json({"statusCode": result["statusCode"], "requestId": result.get("requestId"),
                      "functionError": result.get("functionError"), "payload": out,
                      "logTail": tail, "report": report[-1] if report else None})

    # -- deployments -----------------------------------------------------------------------------
    async def _deployments(self, request: HttpRequest, session: Session) -> Answer:
        limit = _int(request.query.get("limit", "20"), "limit", 1, 100)
        found = await self.commands["deployment.list"]({"limit": limit})
        return _json([redact_deployment(d) for d in found])

    async def _deploy(self, request: HttpRequest, session: Session) -> Answer:
        body = _body(request)
        allowed = {"merge", "remove", "configurationUpdate", "failureHandlingPolicy",
                   "runWith", "systemLimits", "recipeDir", "artifactDir"}
        unknown = sorted(set(body) - allowed)
        if unknown:
            raise ValidationError(unknown[0], "unknown key", allowed=", ".join(sorted(allowed)))
        document = {k: v for k, v in body.items() if k not in ("recipeDir", "artifactDir")}
        params = {"deployment": document, "recipeDir": body.get("recipeDir") or None,
                  "artifactDir": body.get("artifactDir") or None}
        return _json(redact_deployment(await self.commands["deployment.create"](params)))

    async def _rollback(self, request: HttpRequest, session: Session) -> Answer:
        return _json(redact_deployment(await self.commands["deployment.rollback"]({})))

    # -- messaging ---------------------------------------------------------------------------------
    async def _subscribe(self, request: HttpRequest, session: Session) -> Answer:
        body = _body(request)
        channel = self.channels.get(str(body.get("stream", "")), session)
        topic_filter = body.get("filter")
        if not isinstance(topic_filter, str) or not topic_filter:
            raise ValidationError("filter", "must be a topic filter", value=topic_filter,
                                  allowed="an MQTT topic filter, e.g. demo/# or sensors/+/t")
        sub_id = await channel.subscribe(topic_filter, bool(body.get("broker")))
        return _json({"subscription": sub_id, "filter": topic_filter,
                      "broker": bool(body.get("broker"))})

    async def _unsubscribe(self, request: HttpRequest, session: Session) -> Answer:
        body = _body(request)
        channel = self.channels.get(str(body.get("stream", "")), session)
        return _json({"unsubscribed": channel.unsubscribe(str(body.get("subscription", "")))})

    async def _publish(self, request: HttpRequest, session: Session) -> Answer:
        body = _body(request)
        payload = body.get("payload", "")
        if not isinstance(payload, str):
            raise ValidationError("payload", "must be text", value=type(payload).__name__,
                                  allowed="a string (JSON is sent as a JSON message)")
        broker = bool(body.get("broker"))
        qos = body.get("qos", 0)
        if broker and qos not in (0, 1):
            raise ValidationError("qos", "unsupported QoS", value=qos,
                                  allowed="0 (AT_MOST_ONCE), 1 (AT_LEAST_ONCE)")
        return _json(await self.commands["pubsub.publish"]({
            "topic": str(body.get("topic", "")), "cloud": broker, "qos": qos,
            "payload": base64.b64encode(payload.encode()).decode()}))

    # -- live channel ------------------------------------------------------------------------------
    async def _events(self, request: HttpRequest, session: Session) -> Answer:
        channel = Channel(self.server.events, session, self.server.sessions.alive,
                          self.server.streams.get("pubsub.subscribe"))
        self.channels.add(channel)

        async def frames() -> Any:
            try:
                async for chunk in channel.frames():
                    yield chunk
            finally:
                self.channels.discard(channel)

        return StreamResponse(frames(), content_type="text/event-stream",
                              headers=(*SECURITY_HEADERS, ("X-Accel-Buffering", "no")))


def _body(request: HttpRequest) -> dict[str, Any]:
    try:
        body = request.json()
    except (ValueError, UnicodeDecodeError) as e:
        raise ValidationError("", f"the request body is not JSON: {e}",
                              allowed="a JSON object") from None
    if not isinstance(body, dict):
        raise ValidationError("", "the request body must be a JSON object", value=body,
                              allowed="a JSON object")
    return body


def _int(text: str, name: str, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise ValidationError(name, "out of range", value=text, allowed=f"{low}..{high}")
    return value
