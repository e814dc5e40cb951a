"""The local publish/subscribe bus.

Every subscriber gets its own bounded FIFO and exactly one delivery task, so a slow subscriber
never blocks a publisher or the other subscribers, and messages from one publisher reach each
subscriber in the order they were published (``publish`` enqueues synchronously, in call order).
A full queue drops the *new* message for that subscriber only; every drop is counted on the
:class:`Subscription` and logged (first drop, then at 10, 100, 1000... so a flood cannot flood the
log too). The bus owns its delivery tasks: ``aclose()`` (or leaving ``async with``) cancels and
awaits them all, so no task outlives it.

A subscriber either passes a ``deliver`` coroutine function, or passes none and reads messages
itself with ``await sub.get()`` / ``async for m in sub`` (a sink, e.g. the CLI or an IPC stream).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json as _json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType

from sprig.errors import SprigError, ValidationError
from sprig.pubsub.topic import Topic, TopicFilter, match_levels

log = logging.getLogger(__name__)

DEFAULT_MAX_QUEUE = 1000


@dataclass(frozen=True)
class Message:
    """One published message. ``is_json`` says the payload is a UTF-8 JSON document."""

    topic: str
    payload: bytes
    source: str
    is_json: bool = False

    def json(self) -> object:
        """The decoded JSON payload (raises ``ValueError`` if it is not JSON)."""
        return _json.loads(self.payload)


Deliver = Callable[[Message], Awaitable[None]]


class BusClosed(SprigError):
    """The bus is not running (not started yet, or closed)."""


class SubscriptionClosed(SprigError):
    """``get()`` on a subscription that was closed (by its owner or by the bus shutting down)."""


def should_log_drop(count: int) -> bool:
    """Log the 1st drop, then the 10th, 100th, 1000th...: visible, never a log flood."""
    while count % 10 == 0 and count >= 10:
        count //= 10
    return count == 1


class Subscription:
    """One subscriber's filter, queue and counters. ``close()`` unsubscribes."""

    _ids = itertools.count(1)

    def __init__(self, bus: Bus, topic_filter: TopicFilter, deliver: Deliver | None, *,
                 owner: str, max_queue: int) -> None:
        self.id = next(self._ids)
        self.filter = topic_filter
        self.owner = owner
        self.max_queue = max_queue
        self.dropped = 0
        self.delivered = 0
        self.errors = 0
        self.closed = False
        self._bus = bus
        self._deliver = deliver
        self._queue: asyncio.Queue[Message] = asyncio.Queue(max_queue)
        self._task: asyncio.Task[None] | None = None
        self._closed_event = asyncio.Event()

    def __repr__(self) -> str:
        return f"<Subscription {self.id} {self.filter.value!r} owner={self.owner!r}>"

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    def _offer(self, message: Message) -> bool:
        try:
            self._queue.put_nowait(message)
            return True
        except asyncio.QueueFull:
            self.dropped += 1
            if should_log_drop(self.dropped):
                log.warning(
                    "pubsub: dropped a message on topic %r for subscriber %s (filter %r): its "
                    "queue is full (max %d); %d dropped so far",
                    message.topic, self.owner, self.filter.value, self.max_queue, self.dropped)
            return False

    async def _run(self) -> None:
        assert self._deliver is not None
        while True:
            message = await self._queue.get()
            try:
                await self._deliver(message)
                self.delivered += 1
            except asyncio.CancelledError:
                raise
            except Exception:
                self.errors += 1
                log.exception("pubsub: subscriber %s failed to handle a message on %r",
                              self.owner, message.topic)
            finally:
                self._queue.task_done()

    async def get(self) -> Message:
        """The next message (sink subscriptions only).

        Raises :class:`SubscriptionClosed` once the subscription is closed and drained.
        """
        if self._deliver is not None:
            raise TypeError("this subscription delivers to a callback; get() is for sinks")
        if self._queue.empty():
            if self.closed:
                raise SubscriptionClosed(f"subscription to {self.filter.value!r} is closed")
            getter = asyncio.ensure_future(self._queue.get())
            closer = asyncio.ensure_future(self._closed_event.wait())
            try:
                await asyncio.wait({getter, closer}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                closer.cancel()
                if not getter.done():
                    getter.cancel()
            if getter.cancelled() or not getter.done():
                raise SubscriptionClosed(f"subscription to {self.filter.value!r} is closed")
            message = getter.result()
        else:
            message = self._queue.get_nowait()
        self._queue.task_done()
        self.delivered += 1
        return message

    def __aiter__(self) -> AsyncIterator[Message]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Message]:
        while True:
            try:
                yield await self.get()
            except SubscriptionClosed:
                return

    async def join(self) -> None:
        """Wait until every message queued so far has been delivered."""
        await self._queue.join()

    def close(self) -> None:
        """Unsubscribe. Idempotent. A callback subscription discards what is still queued; a
        sink hands out what was queued, then ``get()`` raises :class:`SubscriptionClosed`."""
        if self.closed:
            return
        self.closed = True
        self._closed_event.set()
        self._bus._remove(self)
        if self._task is not None:
            self._task.cancel()
            while not self._queue.empty():      # so join()/drain() never wait on them
                self._queue.get_nowait()
                self._queue.task_done()


class Bus:
    """The local pub/sub bus. Use ``async with Bus() as bus`` or ``start()`` / ``aclose()``."""

    def __init__(self) -> None:
        self._exact: dict[str, list[Subscription]] = {}
        self._wild: list[Subscription] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._running = False
        self.published = 0

    async def start(self) -> None:
        self._running = True

    async def aclose(self) -> None:
        """Close every subscription and wait for the delivery tasks to end."""
        self._running = False
        for sub in self.subscriptions():
            sub.close()
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._tasks.clear()

    async def __aenter__(self) -> Bus:
        await self.start()
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    def subscribe(self, topic_filter: TopicFilter | str, deliver: Deliver | None = None, *,
                  owner: str, max_queue: int = DEFAULT_MAX_QUEUE) -> Subscription:
        """Subscribe ``owner`` to ``topic_filter``.

        With ``deliver``, one task calls it for each message, in order; without, read the
        messages with ``await sub.get()``. Raises :class:`InvalidTopic` for a bad filter.
        """
        if not self._running:
            raise BusClosed("the pub/sub bus is not running")
        if isinstance(max_queue, bool) or not isinstance(max_queue, int) or max_queue < 1:
            raise ValidationError("maxQueue", "must be a positive integer", value=max_queue,
                                  allowed="an integer >= 1")
        f = topic_filter if isinstance(topic_filter, TopicFilter) else TopicFilter.parse(
            topic_filter)
        sub = Subscription(self, f, deliver, owner=owner, max_queue=max_queue)
        if f.has_wildcards:
            self._wild.append(sub)
        else:
            self._exact.setdefault(f.value, []).append(sub)
        if deliver is not None:
            task = asyncio.get_running_loop().create_task(
                sub._run(), name=f"pubsub-deliver-{owner}-{sub.id}")
            sub._task = task
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return sub

    def _remove(self, sub: Subscription) -> None:
        if sub.filter.has_wildcards:
            with contextlib.suppress(ValueError):
                self._wild.remove(sub)
        else:
            subs = self._exact.get(sub.filter.value, [])
            with contextlib.suppress(ValueError):
                subs.remove(sub)
            if not subs:
                self._exact.pop(sub.filter.value, None)

    def subscriptions(self, owner: str | None = None) -> list[Subscription]:
        """The live subscriptions (of ``owner`` if given)."""
        subs = [s for group in self._exact.values() for s in group] + list(self._wild)
        return [s for s in subs if owner is None or s.owner == owner]

    def close_owner(self, owner: str) -> int:
        """Close every subscription of ``owner`` (a component that stopped); returns how many."""
        subs = self.subscriptions(owner)
        for s in subs:
            s.close()
        return len(subs)

    def matching(self, topic: Topic) -> list[Subscription]:
        """The subscriptions whose filter matches ``topic``."""
        found = list(self._exact.get(topic.value, ()))
        found.extend(s for s in self._wild if match_levels(s.filter.levels, topic.levels))
        return found

    def publish(self, topic: Topic | str, payload: bytes, *, source: str,
                json: bool = False) -> int:
        """Queue ``payload`` for every matching subscriber; returns how many accepted it.

        Synchronous on purpose: queuing happens in call order, which is what makes delivery
        in-order per publisher. Raises :class:`InvalidTopic` for a bad topic,
        :class:`ValidationError` for a payload that is not bytes (or not JSON with ``json``).
        """
        if not self._running:
            raise BusClosed("the pub/sub bus is not running")
        t = topic if isinstance(topic, Topic) else Topic.parse(topic)
        if not isinstance(payload, bytes | bytearray | memoryview):
            raise ValidationError("payload", "must be bytes", value=type(payload).__name__,
                                  allowed="bytes")
        data = bytes(payload)
        if json:
            try:
                _json.loads(data)
            except ValueError as e:
                raise ValidationError("payload", f"is not a JSON document: {e}",
                                      value=data[:64], allowed="UTF-8 JSON") from None
        message = Message(t.value, data, source, json)
        self.published += 1
        accepted = 0
        for sub in self.matching(t):
            if sub._offer(message):
                accepted += 1
        return accepted

    async def drain(self) -> None:
        """Wait until every message queued so far has been handled by its callback."""
        for sub in self.subscriptions():
            if sub._deliver is not None:
                await sub.join()
