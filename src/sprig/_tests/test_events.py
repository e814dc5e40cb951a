"""The core's event hub: nothing is built or queued while nobody listens; each subscriber gets
its kinds, in order, from its own bounded queue (the oldest dropped and counted)."""

from __future__ import annotations

import asyncio

import pytest

from sprig.events import EventHub, Kind, StreamClosed
from sprig.functions.stats import InvocationStats


def test_nobody_listening_means_nothing_wanted() -> None:
    hub = EventHub()
    assert not hub.wants(Kind.LOG)
    hub.publish(Kind.LOG, {"text": "lost"})          # no subscriber: a no-op
    stream = hub.subscribe([Kind.COMPONENT])
    assert hub.wants(Kind.COMPONENT) and not hub.wants(Kind.LOG)
    stream.close()
    assert not hub.wants(Kind.COMPONENT) and hub.subscribers == 0


async def test_subscribers_get_their_kinds_in_order_and_a_slow_one_drops_the_oldest() -> None:
    hub = EventHub()
    logs = hub.subscribe([Kind.LOG], max_queue=3)
    everything = hub.subscribe()
    for i in range(5):
        hub.publish(Kind.LOG, {"n": i})
    hub.publish(Kind.DEPLOYMENT, {"status": "SUCCEEDED"})
    got = [(await logs.get()).data["n"] for _ in range(3)]
    assert got == [2, 3, 4] and logs.dropped == 2
    kinds = [(await everything.get()).kind for _ in range(6)]
    assert kinds == [Kind.LOG] * 5 + [Kind.DEPLOYMENT]
    waiter = asyncio.ensure_future(everything.get())
    await asyncio.sleep(0)
    hub.publish(Kind.COMPONENT, {"name": "a"})
    assert (await asyncio.wait_for(waiter, 5)).data == {"name": "a"}
    everything.close()
    with pytest.raises(StreamClosed):
        await everything.get()


def test_invocation_figures_as_cloudwatch_names_them() -> None:
    stats = InvocationStats()
    assert stats.snapshot() == {"invocations": 0, "errors": 0, "throttles": 0,
                                "p50Ms": None, "p99Ms": None}
    heard: list[tuple[str, float | None, str | None]] = []
    stats.listener = lambda rid, ms, err: heard.append((rid, ms, err))
    for i in range(1, 101):
        stats.record(f"r{i}", float(i), "Handled" if i % 10 == 0 else None)
    stats.throttled("r101")
    snap = stats.snapshot()
    assert snap == {"invocations": 100, "errors": 10, "throttles": 1, "p50Ms": 50.0,
                    "p99Ms": 99.0}
    assert heard[-1] == ("r101", None, "Throttled") and len(heard) == 101
    assert stats.recent(2) == [(99.0, False), (100.0, True)]
