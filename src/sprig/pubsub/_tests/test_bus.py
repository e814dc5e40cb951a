from __future__ import annotations

import asyncio
import logging

import pytest

from sprig.errors import ValidationError
from sprig.pubsub.bus import Bus, BusClosed, Message, SubscriptionClosed, should_log_drop
from sprig.pubsub.topic import InvalidTopic


async def test_fan_out_in_order_per_publisher() -> None:
    got: dict[str, list[bytes]] = {"a": [], "b": []}

    async def make(name: str, m: Message) -> None:
        got[name].append(m.payload)

    async with Bus() as bus:
        bus.subscribe("s/+", lambda m: make("a", m), owner="A")
        bus.subscribe("s/#", lambda m: make("b", m), owner="B")
        for i in range(200):
            assert bus.publish("s/x", str(i).encode(), source="p1") == 2
        await bus.drain()
    want = [str(i).encode() for i in range(200)]
    assert got["a"] == want and got["b"] == want


async def test_slow_subscriber_drops_are_counted_and_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    release = asyncio.Event()
    fast: list[bytes] = []

    async def slow(m: Message) -> None:
        await release.wait()

    async def quick(m: Message) -> None:
        fast.append(m.payload)

    async with Bus() as bus:
        s_slow = bus.subscribe("t", slow, owner="slow", max_queue=3)
        s_fast = bus.subscribe("t", quick, owner="fast", max_queue=100)
        with caplog.at_level(logging.WARNING):
            for i in range(20):
                bus.publish("t", bytes([i]), source="p")
        # the slow one holds 1 in its callback (once the task runs) + 3 queued; the rest dropped
        assert s_slow.dropped >= 20 - 4
        assert s_fast.dropped == 0
        assert any("dropped" in r.message and "slow" in r.message for r in caplog.records)
        release.set()
        await bus.drain()
    assert len(fast) == 20
    assert s_slow.delivered + s_slow.dropped == 20


async def test_sink_subscription_and_close() -> None:
    async with Bus() as bus:
        sub = bus.subscribe("a/+", owner="cli")
        bus.publish("a/1", b'{"x":1}', source="p", json=True)
        m = await asyncio.wait_for(sub.get(), 5)
        assert m == Message("a/1", b'{"x":1}', "p", True)
        assert m.json() == {"x": 1}
        sub.close()
        assert bus.publish("a/1", b"x", source="p") == 0
        assert bus.subscriptions() == []


async def test_failing_callback_does_not_stop_delivery() -> None:
    seen: list[bytes] = []

    async def cb(m: Message) -> None:
        if m.payload == b"boom":
            raise RuntimeError("boom")
        seen.append(m.payload)

    async with Bus() as bus:
        sub = bus.subscribe("t", cb, owner="x")
        for p in (b"1", b"boom", b"2"):
            bus.publish("t", p, source="s")
        await bus.drain()
    assert seen == [b"1", b"2"] and sub.errors == 1


async def test_bad_input() -> None:
    async with Bus() as bus:
        with pytest.raises(InvalidTopic):
            bus.publish("a/+", b"", source="s")
        with pytest.raises(InvalidTopic):
            bus.subscribe("a/#/b", owner="x")
        with pytest.raises(ValidationError, match="JSON"):
            bus.publish("a", b"{nope", source="s", json=True)
        with pytest.raises(ValidationError, match="bytes"):
            bus.publish("a", "text", source="s")  # type: ignore[arg-type]
        with pytest.raises(ValidationError, match="maxQueue"):
            bus.subscribe("a", owner="x", max_queue=0)
    with pytest.raises(BusClosed):
        bus.publish("a", b"", source="s")


async def test_aclose_leaves_no_tasks() -> None:
    async def cb(m: Message) -> None:
        await asyncio.Event().wait()

    bus = Bus()
    await bus.start()
    for i in range(5):
        bus.subscribe(f"t/{i}", cb, owner="o")
        bus.publish(f"t/{i}", b"", source="s")
    before = {t for t in asyncio.all_tasks() if t.get_name().startswith("pubsub-")}
    assert len(before) == 5
    await bus.aclose()
    assert all(t.done() for t in before)
    assert bus.subscriptions() == []


async def test_close_owner() -> None:
    async with Bus() as bus:
        bus.subscribe("a", owner="x")
        bus.subscribe("b/#", owner="x")
        bus.subscribe("a", owner="y")
        assert bus.close_owner("x") == 2
        assert [s.owner for s in bus.subscriptions()] == ["y"]


def test_drop_log_rate() -> None:
    assert [n for n in range(1, 2001) if should_log_drop(n)] == [1, 10, 100, 1000]


async def test_sink_iteration_ends_when_closed() -> None:
    bus = Bus()
    await bus.start()
    sub = bus.subscribe("a", owner="cli")
    got: list[bytes] = []

    async def consume() -> None:
        async for m in sub:
            got.append(m.payload)

    task = asyncio.create_task(consume())
    bus.publish("a", b"1", source="p")
    bus.publish("a", b"2", source="p")
    await bus.aclose()               # wakes the waiting consumer
    await asyncio.wait_for(task, 5)
    assert got == [b"1", b"2"]       # what was queued before close is still handed out
    with pytest.raises(SubscriptionClosed):
        await sub.get()


async def test_waiting_sink_is_woken_by_close() -> None:
    async with Bus() as bus:
        sub = bus.subscribe("a", owner="cli")
        waiting = asyncio.create_task(sub.get())
        await asyncio.sleep(0)       # let it block on the empty queue (a yield, not a wait)
        assert not waiting.done()
        sub.close()
        with pytest.raises(SubscriptionClosed):
            await asyncio.wait_for(waiting, 5)
