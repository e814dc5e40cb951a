from __future__ import annotations

import asyncio
import logging

import pytest

from sprig.errors import ValidationError
from sprig.functions.errors import FunctionNotFound, QueueFull
from sprig.functions.event_sources import EventSources
from sprig.functions.invocation import Invocation, InvocationResult, InvocationType
from sprig.pubsub.bus import Bus
from sprig.pubsub.topic import InvalidTopic


class QueueingInvoker:
    """A real Invoker: a bounded queue per function, like the Lambda manager's maxQueueSize."""

    def __init__(self, functions: dict[str, int]) -> None:
        self.queues: dict[str, list[Invocation]] = {f: [] for f in functions}
        self.limits = functions
        self.changed = asyncio.Condition()

    async def invoke(self, function: str, invocation: Invocation, *,
                     want_log_tail: bool = False) -> InvocationResult:
        if function not in self.queues:
            raise FunctionNotFound(function)
        q = self.queues[function]
        if len(q) >= self.limits[function]:
            raise QueueFull(function, self.limits[function])
        async with self.changed:
            q.append(invocation)
            self.changed.notify_all()
        return InvocationResult(invocation.request_id, b"")

    async def wait_for(self, function: str, n: int) -> list[Invocation]:
        async with self.changed:
            await asyncio.wait_for(
                self.changed.wait_for(lambda: len(self.queues[function]) >= n), 5)
        return self.queues[function]


async def test_pubsub_and_iotcore_sources_with_wildcards() -> None:
    inv = QueueingInvoker({"f": 100})
    async with Bus() as bus, Bus() as iot:   # a second Bus stands in for the MQTT bridge
        es = EventSources(bus, iot, inv)
        es.set_function_sources("f", [("sensors/+/temp", "PUB_SUB"), ("cloud/#", "IOT_CORE")],
                                "json")
        bus.publish("sensors/k/temp", b'{"t": 1}', source="x")
        bus.publish("sensors/k/hum", b"{}", source="x")          # no match
        bus.publish("cloud/a", b"{}", source="x")                 # local bus: not IOT_CORE
        iot.publish("cloud/a/b", b"\x00\x01", source="mqtt")
        got = await inv.wait_for("f", 2)
        await bus.drain()
        await iot.drain()
    assert len(got) == 2
    by_source = {i.source: i for i in got}
    assert by_source["pubsub"].payload == b'{"t": 1}'
    assert by_source["pubsub"].client_context == {"custom": {"subject": "sensors/k/temp"}}
    assert by_source["pubsub"].invocation_type is InvocationType.EVENT
    assert by_source["iotcore"].payload == b"\x00\x01"
    assert by_source["iotcore"].client_context == {"custom": {"subject": "cloud/a/b"}}


async def test_one_invocation_per_message_in_order() -> None:
    inv = QueueingInvoker({"f": 1000})
    async with Bus() as bus:
        es = EventSources(bus, None, inv)
        es.set_function_sources("f", [{"topic": "t/#", "type": "PUB_SUB"}])
        for i in range(50):
            bus.publish(f"t/{i}", str(i).encode(), source="p")
        got = await inv.wait_for("f", 50)
    assert [i.payload for i in got] == [str(i).encode() for i in range(50)]
    assert es.get("f") is not None and es.get("f").invoked == 50  # type: ignore[union-attr]


async def test_queue_full_drops_are_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    inv = QueueingInvoker({"f": 3})
    async with Bus() as bus:
        es = EventSources(bus, None, inv)
        state = es.set_function_sources("f", [("t", "PUB_SUB")])
        with caplog.at_level(logging.WARNING):
            for _ in range(10):
                bus.publish("t", b"{}", source="p")
            await bus.drain()
    assert state.invoked == 3 and state.dropped == 7
    assert any("dropped" in r.getMessage() and "maxQueueSize 3" in r.getMessage()
               for r in caplog.records)


async def test_rewire_and_remove() -> None:
    inv = QueueingInvoker({"f": 100})
    async with Bus() as bus:
        es = EventSources(bus, None, inv)
        es.set_function_sources("f", [("a", "PUB_SUB")])
        es.set_function_sources("f", [("b", "PUB_SUB")])
        assert [s.filter.value for s in bus.subscriptions()] == ["b"]
        bus.publish("a", b"1", source="p")
        bus.publish("b", b"2", source="p")
        got = await inv.wait_for("f", 1)
        await bus.drain()
        assert [i.payload for i in got] == [b"2"]
        es.remove_function("f")
        assert bus.subscriptions() == []
        es.remove_function("f")


async def test_bad_sources_fail_before_anything_changes() -> None:
    inv = QueueingInvoker({"f": 100})
    async with Bus() as bus:
        es = EventSources(bus, None, inv)
        es.set_function_sources("f", [("a", "PUB_SUB")])
        with pytest.raises(InvalidTopic, match=r"pubsubTopics\[1\]\.topic"):
            es.set_function_sources("f", [("b", "PUB_SUB"), ("c/#/d", "PUB_SUB")])
        with pytest.raises(ValidationError, match=r"pubsubTopics\.0\.type.*allowed: PUB_SUB"):
            es.set_function_sources("f", {"0": {"topic": "x", "type": "MQTT"}})
        with pytest.raises(ValidationError, match="inputPayloadEncodingType"):
            es.set_function_sources("f", [("b", "PUB_SUB")], "xml")
        assert [s.filter.value for s in bus.subscriptions()] == ["a"]


async def test_iot_core_without_broker_is_inactive_not_fatal(
        caplog: pytest.LogCaptureFixture) -> None:
    inv = QueueingInvoker({"f": 100})
    async with Bus() as bus:
        es = EventSources(bus, None, inv)
        with caplog.at_level(logging.WARNING):
            es.set_function_sources("f", [("x/#", "IOT_CORE")])
        assert "no MQTT broker" in caplog.text
        es.remove_function("f")


async def test_accepts_the_lambda_managers_event_sources() -> None:
    from sprig.lambda_params import EventSource, EventSourceType, PayloadEncoding

    inv = QueueingInvoker({"f": 10})
    async with Bus() as bus:
        es = EventSources(bus, None, inv)
        state = es.set_function_sources(
            "f", (EventSource("a/+", EventSourceType.PUB_SUB),), PayloadEncoding.BINARY)
        assert [s.topic.value for s in state.sources] == ["a/+"]
        bus.publish("a/b", b"\xff", source="p")
        got = await inv.wait_for("f", 1)
    assert got[0].payload == b"\xff"
