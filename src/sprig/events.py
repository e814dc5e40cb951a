"""The core's events: one hub the core's parts publish to, and observers subscribe to.

Publishers (each a small, additive hook where the fact is known):

* the kernel: a component's state changed (``component``), a component's configuration changed
  (``configuration``), a component wrote a log line (``log``);
* the deployment queue: a deployment was queued, started or finished (``deployment``);
* the Lambda manager: an invocation ended or was throttled (``invocation``).

Observers: the console's live channel (``sprig.console``); later the fleet agent's health
reports. Why a hub rather than one more listener list per part: the kernel's interface is
meant to narrow into *events* (these) and *commands* (the management API's methods), so every
observer needs one place to listen, and every publisher one place to tell.

Cost when nobody listens: nothing on the hot path. A publisher asks :meth:`EventHub.wants`
(one set look-up) before it builds an event, and :meth:`EventHub.publish` returns at once when
no subscriber wants that kind. Messages on the pub/sub bus are *not* copied here: the bus is
itself a hub with topic filters, and an observer subscribes to it for the topics it shows.

Each subscriber has its own bounded queue (as on the pub/sub bus): a slow reader never blocks a
publisher or another reader. When its queue is full the oldest event is dropped and counted;
the reader learns how many it missed from :attr:`EventStream.dropped`. Everything here runs on
the event loop's thread.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

DEFAULT_MAX_QUEUE: Final = 1000


class Kind(enum.StrEnum):
    """What an event is about; its ``data`` keys are listed beside each kind."""

    COMPONENT = "component"            # name, version, state, previous, reason, lastError
    CONFIGURATION = "configuration"    # name, keys (the top-level keys that changed)
    DEPLOYMENT = "deployment"          # a deployment's summary (deploymentId, status, reason…)
    LOG = "log"                        # component, stream, level, text, time
    INVOCATION = "invocation"          # function, requestId, durationMs, error, throttled, …
    #: a pub/sub message for one observer's own subscription: queued on that observer's
    #: stream by the observer itself, never published on the hub (see the module docstring)
    MESSAGE = "message"                # subscription, topic, source, payload


@dataclass(frozen=True, slots=True)
class Event:
    kind: Kind
    data: Mapping[str, Any]
    time: float


class StreamClosed(Exception):
    """``get()`` on a stream that was closed and has nothing left."""


class EventStream:
    """One subscriber: the kinds it wants and its bounded queue. ``close()`` unsubscribes."""

    def __init__(self, hub: EventHub, kinds: frozenset[Kind], max_queue: int) -> None:
        self.kinds = kinds
        self.dropped = 0
        self.closed = False
        self._hub = hub
        self._queue: deque[Event] = deque()
        self._max = max_queue
        self._ready = asyncio.Event()

    def offer(self, event: Event) -> None:
        """Queue ``event`` (the hub calls this; an observer may add its own events too)."""
        if self.closed:
            return
        if len(self._queue) >= self._max:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(event)
        self._ready.set()

    async def get(self) -> Event:
        """The next event; raises :class:`StreamClosed` once closed and drained."""
        while not self._queue:
            if self.closed:
                raise StreamClosed("the event stream is closed")
            self._ready.clear()
            await self._ready.wait()
        return self._queue.popleft()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._hub._remove(self)
            self._ready.set()


class EventHub:
    """Publish/subscribe for the core's own events (see the module docstring)."""

    def __init__(self) -> None:
        self._streams: list[EventStream] = []
        self._wanted: dict[Kind, int] = {}        # kind -> how many streams want it

    def wants(self, kind: Kind) -> bool:
        """True when some subscriber wants ``kind``: only then is an event worth building."""
        return kind in self._wanted

    @property
    def subscribers(self) -> int:
        return len(self._streams)

    def publish(self, kind: Kind, data: Mapping[str, Any]) -> None:
        if kind not in self._wanted:
            return
        event = Event(kind, data, time.time())
        for stream in self._streams:
            if kind in stream.kinds:
                stream.offer(event)

    def subscribe(self, kinds: Iterable[Kind] | None = None, *,
                  max_queue: int = DEFAULT_MAX_QUEUE) -> EventStream:
        """A new stream of ``kinds`` (default: every kind)."""
        wanted = frozenset(Kind) if kinds is None else frozenset(kinds)
        stream = EventStream(self, wanted, max_queue)
        self._streams.append(stream)
        for kind in wanted:
            self._wanted[kind] = self._wanted.get(kind, 0) + 1
        return stream

    def _remove(self, stream: EventStream) -> None:
        if stream not in self._streams:
            return
        self._streams.remove(stream)
        for kind in stream.kinds:
            left = self._wanted.get(kind, 0) - 1
            if left > 0:
                self._wanted[kind] = left
            else:
                self._wanted.pop(kind, None)
