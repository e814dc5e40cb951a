"""Event sources: a function's ``pubsubTopics`` turned into invocations (reference §7.1).

Each entry is a topic filter (wildcards allowed) and a type: ``PUB_SUB`` (the local bus) or
``IOT_CORE`` (the MQTT bridge). Every matching message becomes exactly one ``Event`` invocation
whose payload is the raw message bytes (the runtime decodes JSON when the function's
``inputPayloadEncodingType`` is ``json``) and whose client context carries the topic the V1 way:
``{"custom": {"subject": <topic>}}`` → ``context.client_context.custom['subject']``.

A full function queue (``QueueFull``) drops that message for that function; drops are counted
per function and logged. ``set_function_sources`` replaces a function's wiring atomically
(new subscriptions are made before the old ones are closed), so a redeployment never leaves a
function subscribed twice or not at all.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sprig.errors import ValidationError
from sprig.functions.errors import FunctionError, QueueFull
from sprig.functions.invocation import Invocation, InvocationType, Invoker
from sprig.lambda_params import EventSourceType, PayloadEncoding
from sprig.pubsub.bus import Bus, Message, should_log_drop
from sprig.pubsub.topic import TopicFilter

log = logging.getLogger(__name__)


# One home for these words: the Lambda configuration keys (pubsubTopics type,
# inputPayloadEncodingType) are defined with the Lambda manager's configuration.
SourceType = EventSourceType


class Closeable(Protocol):
    def close(self) -> None: ...


class MessageSource(Protocol):
    """What event sources need from the bus or the MQTT bridge."""

    def subscribe(self, topic_filter: TopicFilter | str,
                  deliver: Callable[[Message], Awaitable[None]] | None = None, *,
                  owner: str, max_queue: int = ...) -> Closeable: ...


@dataclass(frozen=True)
class EventSource:
    topic: TopicFilter
    type: SourceType


@dataclass
class FunctionSources:
    """The live wiring and counters of one function."""

    function: str
    sources: tuple[EventSource, ...]
    encoding: PayloadEncoding
    subscriptions: list[Closeable] = field(default_factory=list)
    invoked: int = 0
    dropped: int = 0
    failed: int = 0


def parse_sources(sources: Sequence[Any] | Mapping[str, Mapping[str, Any]],
                  *, path: str = "pubsubTopics") -> tuple[EventSource, ...]:
    """Validate event sources given as ``(filter, type)`` pairs, objects with ``topic`` and
    ``type`` attributes (the Lambda manager's ``EventSource``), or as the recipe's
    ``pubsubTopics`` (a list, or an object keyed by index, of ``{topic, type}``)."""
    items: list[tuple[str, Any]]
    if isinstance(sources, Mapping):
        items = [(f"{path}.{k}", v) for k, v in sources.items()]
    else:
        items = [(f"{path}[{i}]", v) for i, v in enumerate(sources)]
    out: list[EventSource] = []
    for where, item in items:
        if isinstance(item, Mapping):
            topic, kind = item.get("topic"), item.get("type", SourceType.PUB_SUB.value)
        elif isinstance(item, tuple | list) and len(item) == 2:
            topic, kind = item
        elif hasattr(item, "topic") and hasattr(item, "type"):   # functions.config.EventSource
            topic, kind = item.topic, item.type
        else:
            raise ValidationError(where, "must be {topic, type}", value=item,
                                  allowed="{topic: <filter>, type: PUB_SUB|IOT_CORE}")
        if not isinstance(topic, str):
            raise ValidationError(f"{where}.topic", "must be a topic filter string", value=topic,
                                  allowed="an MQTT topic filter such as 'sensors/+/temp'")
        if kind not in SourceType.__members__.values():
            raise ValidationError(f"{where}.type", "unknown event source type", value=kind,
                                  allowed="PUB_SUB, IOT_CORE")
        out.append(EventSource(TopicFilter.parse(topic, path=f"{where}.topic"),
                               SourceType(kind)))
    return tuple(out)


def parse_encoding(value: str, *, path: str = "inputPayloadEncodingType") -> PayloadEncoding:
    if value not in PayloadEncoding.__members__.values():
        raise ValidationError(path, "unknown payload encoding", value=value,
                              allowed="json, binary")
    return PayloadEncoding(value)


class EventSources:
    """Wires functions' event sources to the bus and the bridge, and invokes them."""

    def __init__(self, bus: Bus, bridge: MessageSource | None, invoker: Invoker) -> None:
        self._bus = bus
        self._bridge = bridge
        self._invoker = invoker
        self._functions: dict[str, FunctionSources] = {}

    def get(self, function_name: str) -> FunctionSources | None:
        return self._functions.get(function_name)

    def set_function_sources(self, function_name: str,
                             sources: Sequence[Any] | Mapping[str, Mapping[str, Any]],
                             encoding: str = "json") -> FunctionSources:
        """(Re)wire ``function_name``'s event sources; validates everything first."""
        parsed = parse_sources(sources)
        enc = parse_encoding(encoding)
        state = FunctionSources(function_name, parsed, enc)
        old = self._functions.get(function_name)
        if old is not None:         # keep the counters across a redeployment
            state.invoked, state.dropped, state.failed = old.invoked, old.dropped, old.failed
        try:
            for src in parsed:
                state.subscriptions.append(self._wire(state, src))
        except BaseException:
            for s in state.subscriptions:
                s.close()
            raise
        self._functions[function_name] = state
        if old is not None:
            for s in old.subscriptions:
                s.close()
        return state

    def _wire(self, state: FunctionSources, src: EventSource) -> Closeable:
        origin = "pubsub" if src.type is SourceType.PUB_SUB else "iotcore"

        async def deliver(message: Message) -> None:
            await self._invoke(state, message, origin)

        owner = f"function:{state.function}"
        if src.type is SourceType.PUB_SUB:
            return self._bus.subscribe(src.topic, deliver, owner=owner)
        if self._bridge is None:
            log.warning("function %s: IOT_CORE event source %r is inactive: no MQTT broker is "
                        "configured (set mqtt.host in config.yaml)", state.function,
                        src.topic.value)
            return _Inactive()
        return self._bridge.subscribe(src.topic, deliver, owner=owner)

    async def _invoke(self, state: FunctionSources, message: Message, origin: str) -> None:
        invocation = Invocation(
            payload=message.payload,
            invocation_type=InvocationType.EVENT,
            client_context={"custom": {"subject": message.topic}},
            source=origin,
        )
        try:
            await self._invoker.invoke(state.function, invocation)
            state.invoked += 1
        except QueueFull as e:
            state.dropped += 1
            if should_log_drop(state.dropped):
                log.warning("function %s: dropped a message on topic %r (%s); %d dropped so "
                            "far", state.function, message.topic, e, state.dropped)
        except FunctionError as e:
            state.failed += 1
            log.warning("function %s: could not invoke for a message on topic %r: %s",
                        state.function, message.topic, e)

    def remove_function(self, function_name: str) -> None:
        """Unsubscribe every event source of ``function_name`` (idempotent)."""
        state = self._functions.pop(function_name, None)
        if state is not None:
            for s in state.subscriptions:
                s.close()

    def close(self) -> None:
        for name in list(self._functions):
            self.remove_function(name)


class _Inactive:
    def close(self) -> None:
        return None
