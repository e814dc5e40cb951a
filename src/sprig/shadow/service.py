"""The local shadow service of ``aws.greengrass.ShadowManager``: one home for every shadow
operation, whoever asks (IPC, the local ``$aws/things/.../shadow/...`` topics, the V1 SDK's
``GGShadowService``, the cloud sync, the CLI).

Each operation runs to completion on the event loop without awaiting (SQLite in WAL with
``synchronous=FULL``), so two writers of one shadow are serialized and a ``version`` check and
its write can never interleave with another request. A write is committed before anything is
answered or published: an acknowledged update survives ``kill -9``.

Like Greengrass, every outcome is also published on the local bus, on the topics AWS IoT uses:
``…/get/accepted``, ``…/update/accepted``, ``…/update/documents``, ``…/update/delta``,
``…/delete/accepted`` and ``…/<op>/rejected`` (``{code, message, timestamp, clientToken?}``).
Requests published on ``…/shadow[/name/N]/get|update|delete`` are served as if the shadow
manager itself asked (the publisher's ``aws.greengrass.ipc.pubsub`` policy already allowed the
publish), answered on those topics.

Authorization is the callers' business (each knows its principal); the rate limits
(``rateLimits.maxLocalRequestsPerSecondPerThing`` / ``maxTotalLocalRequestsRate``) are checked
here for every local request: over them, 429 ``Too Many Requests``.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from sprig.errors import SprigError
from sprig.pubsub.bus import Bus, Message, Subscription
from sprig.shadow.config import ShadowId, ShadowManagerConfig
from sprig.shadow.document import (
    INTERNAL_FAILURE,
    TOO_MANY_REQUESTS,
    ShadowDocument,
    ShadowError,
    UpdateRequest,
    apply_update,
    client_token_of,
    current_version,
    delete_response,
    not_found,
    parse_json,
    parse_topic,
    parse_update,
    topic_prefix,
    validate_shadow_name,
    validate_thing_name,
)
from sprig.state.db import StateDB

log = logging.getLogger("sprig.shadow")

SHADOW_MANAGER: Final = "aws.greengrass.ShadowManager"
#: Only the request topics: the service never queues its own answers for itself.
REQUEST_FILTERS: Final = tuple(f"$aws/things/+/shadow{named}/{op}" for named in ("", "/name/+")
                               for op in ("get", "update", "delete"))
DEFAULT_PAGE_SIZE: Final = 25
MAX_PAGE_SIZE: Final = 100

#: Who changed a shadow: a local client, or the cloud sync applying the broker's copy.
LOCAL: Final = "local"
CLOUD: Final = "cloud"
#: (shadow, new document or None when deleted, the update's state patch or None, origin)
ChangeListener = Callable[[ShadowId, ShadowDocument | None, dict[str, Any] | None, str], None]


class _Bucket:
    """At most ``rate`` requests in any one-second window (a token bucket refilled evenly)."""

    def __init__(self, rate: int, clock: Callable[[], float]) -> None:
        self.rate = rate
        self.tokens = float(rate)
        self.clock = clock
        self.stamp = clock()

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(float(self.rate), self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


@dataclass(frozen=True)
class NamedShadowsPage:
    results: list[str]
    timestamp: int
    next_token: str | None


class ShadowService:
    """Local shadows on the core's ``state.db``. ``start()`` subscribes to the request topics;
    ``configure()`` applies a (validated) ShadowManager configuration."""

    def __init__(self, db: StateDB, bus: Bus, *, deployed: Callable[[], bool] = lambda: True,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.db = db
        self.bus = bus
        self.deployed = deployed
        self.clock = clock
        self._monotonic = monotonic
        self.config = ShadowManagerConfig()
        self.listeners: list[ChangeListener] = []
        self._total = _Bucket(self.config.max_local_total, monotonic)
        self._per_thing: dict[str, _Bucket] = {}
        self._subscriptions: list[Subscription] = []
        self.throttled = 0

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._subscriptions = [self.bus.subscribe(f, self._on_request, owner=SHADOW_MANAGER)
                               for f in REQUEST_FILTERS]

    def close(self) -> None:
        for sub in self._subscriptions:
            sub.close()
        self._subscriptions = []

    def configure(self, config: ShadowManagerConfig) -> None:
        self.config = config
        self._total = _Bucket(config.max_local_total, self._monotonic)
        self._per_thing.clear()

    def now(self) -> int:
        return int(self.clock())

    # --- operations ------------------------------------------------------------------------

    def _check_rate(self, thing: str) -> None:
        bucket = self._per_thing.get(thing)
        if bucket is None:
            bucket = self._per_thing[thing] = _Bucket(self.config.max_local_per_thing,
                                                      self._monotonic)
        if not bucket.take() or not self._total.take():
            self.throttled += 1
            raise ShadowError(429, TOO_MANY_REQUESTS,
                              f"over rateLimits.maxLocalRequestsPerSecondPerThing "
                              f"{self.config.max_local_per_thing} for {thing} or "
                              f"maxTotalLocalRequestsRate {self.config.max_local_total}")

    def _document(self, thing: str, name: str) -> tuple[ShadowDocument | None, int]:
        """The current document (None: none) and the version an update must match."""
        rec = self.db.shadow(thing, name)
        if rec is None:
            return None, 0
        if rec.document is not None:
            doc = ShadowDocument.from_json(rec.document)
            return doc, doc.version
        return None, current_version(None, rec.version, rec.updated, self.now())

    def document(self, thing: str, name: str = "") -> ShadowDocument | None:
        """The current document without side effects (the CLI and the sync read it)."""
        return self._document(thing, name)[0]

    def get(self, thing: Any, name: Any = None, *, client_token: str | None = None,
            rate_limited: bool = True) -> dict[str, Any]:
        """GetThingShadow: the document with its delta; 404 when there is none."""
        def run(t: str, n: str) -> dict[str, Any]:
            if rate_limited:
                self._check_rate(t)
            doc = self.document(t, n)
            if doc is None:
                raise not_found(n)
            answer = doc.get_response(self.now(), client_token)
            self._publish(f"{topic_prefix(t, n)}/get/accepted", answer)
            return answer

        return self._run("get", thing, name, client_token, run)

    def update(self, thing: Any, name: Any, payload: bytes, *, origin: str = LOCAL,
               rate_limited: bool = True) -> dict[str, Any]:
        """UpdateThingShadow: merge ``payload``; returns ``update/accepted``."""
        token = _token_in(payload)

        def run(t: str, n: str) -> dict[str, Any]:
            if rate_limited:
                self._check_rate(t)
            request = parse_update(payload)
            return self._apply(ShadowId(t, n), request, origin)

        return self._run("update", thing, name, token, run)

    def apply(self, shadow: ShadowId, request: UpdateRequest, origin: str) -> dict[str, Any]:
        """An update already parsed (the cloud sync's), published like any other."""
        return self._run("update", shadow.thing, shadow.name, request.client_token,
                         lambda t, n: self._apply(ShadowId(t, n), request, origin))

    def _apply(self, shadow: ShadowId, request: UpdateRequest, origin: str) -> dict[str, Any]:
        current, base = self._document(shadow.thing, shadow.name)
        result = apply_update(current, base, request, self.now(), self.config.size_limit)
        self.db.put_shadow(shadow.thing, shadow.name, result.document.to_json(),
                           result.document.version)
        prefix = topic_prefix(shadow.thing, shadow.name)
        if result.delta is not None:
            self._publish(f"{prefix}/update/delta", result.delta)
        self._publish(f"{prefix}/update/documents", result.documents)
        self._publish(f"{prefix}/update/accepted", result.accepted)
        log.info("shadow %s updated to version %d (%s)", shadow, result.document.version, origin)
        self._changed(shadow, result.document, request.state, origin)
        return result.accepted

    def delete(self, thing: Any, name: Any = None, *, client_token: str | None = None,
               origin: str = LOCAL, rate_limited: bool = True) -> dict[str, Any]:
        """DeleteThingShadow: the document goes, its version stays for a new one; 404 when
        there is none. Returns ``delete/accepted``."""
        def run(t: str, n: str) -> dict[str, Any]:
            if rate_limited:
                self._check_rate(t)
            doc = self.document(t, n)
            if doc is None:
                raise not_found(n)
            self.db.put_shadow(t, n, None, doc.version)
            answer = delete_response(doc.version, self.now(), client_token)
            self._publish(f"{topic_prefix(t, n)}/delete/accepted", answer)
            log.info("shadow %s deleted at version %d (%s)", ShadowId(t, n), doc.version, origin)
            self._changed(ShadowId(t, n), None, None, origin)
            return answer

        return self._run("delete", thing, name, client_token, run)

    def list_named(self, thing: Any, page_size: Any = None, next_token: Any = None
                   ) -> NamedShadowsPage:
        """ListNamedShadowsForThing: names in pages of ``pageSize`` (1-100, default 25)."""
        t = validate_thing_name(thing)
        self._check_rate(t)
        size = DEFAULT_PAGE_SIZE if page_size is None else page_size
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_PAGE_SIZE:
            raise ShadowError(400, "pageSize argument must be between 1 and 100",
                              f"pageSize: {page_size!r}")
        offset = _offset(next_token, t)
        names = self.db.named_shadows(t, offset, size + 1)
        more = len(names) > size
        return NamedShadowsPage(names[:size], self.now(),
                                _token(offset + size, t) if more else None)

    # --- shared plumbing -------------------------------------------------------------------

    def _run(self, op: str, thing: Any, name: Any, token: str | None,
             body: Callable[[str, str], dict[str, Any]]) -> dict[str, Any]:
        try:
            t = validate_thing_name(thing)
            n = validate_shadow_name(name)
        except ShadowError as e:
            self._reject(thing, name, op, e, token)
            raise
        try:
            return body(t, n)
        except ShadowError as e:
            self._reject(t, n, op, e, token)
            raise
        except (SprigError, OSError, ValueError) as e:
            log.exception("shadow %s of %s failed inside Sprig", op, ShadowId(t, n))
            error = ShadowError(500, INTERNAL_FAILURE, str(e))
            self._reject(t, n, op, error, token)
            raise error from e

    def _reject(self, thing: Any, name: Any, op: str, error: ShadowError,
                token: str | None) -> None:
        if not isinstance(thing, str) or not thing or (name is not None
                                                        and not isinstance(name, str)):
            return
        self._publish(f"{topic_prefix(thing, name or '')}/{op}/rejected",
                      error.payload(self.now(), token))

    def _publish(self, topic: str, message: dict[str, Any]) -> None:
        try:
            self.bus.publish(topic, json.dumps(message).encode(), source=SHADOW_MANAGER,
                             json=True)
        except SprigError as e:          # a name the bus refuses as a topic; the bus closed
            log.debug("shadow: not published on %r: %s", topic, e)

    def _changed(self, shadow: ShadowId, doc: ShadowDocument | None,
                 patch: dict[str, Any] | None, origin: str) -> None:
        for listener in list(self.listeners):
            try:
                listener(shadow, doc, patch, origin)
            except Exception:
                log.exception("shadow change listener failed")

    async def _on_request(self, message: Message) -> None:
        """A request on ``…/shadow[/name/N]/get|update|delete``: served as the shadow manager
        itself, answered on the ``accepted``/``rejected`` topics (responses are ignored)."""
        if message.source == SHADOW_MANAGER or not self.deployed():
            return
        topic = parse_topic(message.topic)
        if topic is None or not topic.is_request:
            return
        try:
            if topic.operation == "update":
                self.update(topic.thing, topic.name, message.payload)
            else:
                token = None
                if message.payload.strip():
                    try:
                        token = client_token_of(parse_json(message.payload))
                    except ShadowError:
                        token = None
                if topic.operation == "get":
                    self.get(topic.thing, topic.name, client_token=token)
                else:
                    self.delete(topic.thing, topic.name, client_token=token)
        except ShadowError as e:
            log.info("shadow request on %s from %s refused: %s", message.topic,
                     message.source, e.text)


def _token_in(payload: bytes) -> str | None:
    try:
        return client_token_of(json.loads(payload))
    except (ValueError, UnicodeDecodeError):
        return None


def _token(offset: int, thing: str) -> str:
    raw = json.dumps({"thing": thing, "offset": offset}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _offset(token: Any, thing: str) -> int:
    if token is None or token == "":
        return 0
    try:
        data = json.loads(base64.urlsafe_b64decode(str(token).encode()))
        if data["thing"] != thing or not isinstance(data["offset"], int) or data["offset"] < 0:
            raise ValueError
        return int(data["offset"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise ShadowError(400, "Invalid nextToken argument",
                          f"nextToken: {str(token)[:64]!r} was not returned by "
                          f"ListNamedShadowsForThing for {thing}") from None
