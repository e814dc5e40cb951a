"""The live channel: one Server-Sent Events stream per open page, fed by the core's events.

Why SSE and not WebSocket: every change the pages make goes through the JSON API (with its CSRF
check), so the channel only ever flows from the core to the browser; SSE is that, over the
core's own HTTP server, with no extra library, and browsers reconnect it by themselves.

A stream carries, as ``event: <kind>`` frames of one JSON line each:

* ``hello`` (first): the stream's id, which the page names when it subscribes to topics;
* the :mod:`sprig.events` kinds: ``component``, ``configuration``, ``deployment``, ``log``,
  ``invocation``;
* ``message``: a pub/sub message for a subscription this page made (:meth:`subscribe`: the
  bus, or the MQTT bridge for broker topics; nothing is subscribed that no page asked for);
* ``device``: the core's memory and CPU time, every :data:`TICK_S` (the only sampled figure:
  nothing announces a change of resident memory); the same frame keeps the stream alive;
* ``dropped``: the page fell behind and missed events (it reloads what it shows);
* ``bye``: the session ended or expired.

Each stream ends when its page goes away, its session ends, or the core stops; its
subscriptions end with it. While no page is open, none of this exists.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

from sprig.console.auth import Session
from sprig.core.observe import process_usage
from sprig.errors import SprigError, ValidationError
from sprig.events import Event, EventHub, EventStream, Kind

log = logging.getLogger("sprig.console")

TICK_S: Final = 5.0
MAX_SUBSCRIPTIONS: Final = 16          # per stream
StreamCommand = Callable[[dict[str, Any]], AsyncIterator[Any]]


def frame(kind: str, data: Any) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data, default=str)}\n\n".encode()


class Channel:
    """One page's stream: its hub subscription and its topic subscriptions."""

    def __init__(self, hub: EventHub, session: Session, alive: Callable[[Session], bool],
                 subscribe_command: StreamCommand | None) -> None:
        self.id = secrets.token_urlsafe(12)
        self.session = session
        self._alive = alive
        self._hub = hub
        self._subscribe_command = subscribe_command
        self._events: EventStream = hub.subscribe(set(Kind) - {Kind.MESSAGE})
        self._topics: dict[str, asyncio.Task[None]] = {}

    async def frames(self) -> AsyncIterator[bytes]:
        try:
            yield frame("hello", {"stream": self.id})
            yield frame("device", process_usage())
            seen_dropped = 0
            loop = asyncio.get_running_loop()
            next_tick = loop.time() + TICK_S
            while True:
                try:
                    event = await asyncio.wait_for(self._events.get(),
                                                   max(0.0, next_tick - loop.time()))
                except TimeoutError:
                    if not self._alive(self.session):
                        yield frame("bye", {"reason": "the session ended or expired"})
                        return
                    next_tick = loop.time() + TICK_S
                    yield frame("device", process_usage())
                    continue
                if self._events.dropped != seen_dropped:
                    seen_dropped = self._events.dropped
                    yield frame("dropped", {"dropped": seen_dropped})
                yield frame(str(event.kind), {**event.data, "at": event.time})
        finally:
            self.close()

    async def subscribe(self, topic_filter: str, cloud: bool) -> str:
        """Forward messages on ``topic_filter`` (broker topics with ``cloud``) to this page;
        returns the subscription's id. Raises SprigError (a bad filter, no broker…)."""
        if self._subscribe_command is None:
            raise SprigError("pub/sub is not available in this core")
        if len(self._topics) >= MAX_SUBSCRIPTIONS:
            raise ValidationError("filter", "too many subscriptions on this page",
                                  value=len(self._topics),
                                  allowed=f"at most {MAX_SUBSCRIPTIONS}; unsubscribe first")
        items = self._subscribe_command({"topic": topic_filter, "cloud": cloud})
        await items.__anext__()                        # {"subscribed": …} or the error
        sub_id = secrets.token_urlsafe(6)
        self._topics[sub_id] = asyncio.create_task(
            self._forward(sub_id, topic_filter, cloud, items), name=f"console-sub-{sub_id}")
        return sub_id

    async def _forward(self, sub_id: str, topic_filter: str, cloud: bool,
                       items: AsyncIterator[Any]) -> None:
        try:
            async for item in items:
                payload = base64.b64decode(item.get("payload", ""))
                try:
                    text: str | None = payload.decode("utf-8")
                except UnicodeDecodeError:
                    text = None
                data = {"subscription": sub_id, "filter": topic_filter,
                        "broker": cloud, "topic": item.get("topic"),
                        "source": item.get("source"), "payload": text,
                        "payloadBase64": None if text is not None else item.get("payload")}
                self._events.offer(Event(Kind.MESSAGE, data, time.time()))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("console: subscription to %r failed", topic_filter)
        finally:
            aclose = getattr(items, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()

    def unsubscribe(self, sub_id: str) -> bool:
        task = self._topics.pop(sub_id, None)
        if task is None:
            return False
        task.cancel()
        return True

    def subscriptions(self) -> list[str]:
        return list(self._topics)

    def close(self) -> None:
        self._events.close()
        for task in self._topics.values():
            task.cancel()
        self._topics.clear()


class Channels:
    """The open streams, by id (a page names its stream when it subscribes to topics)."""

    def __init__(self) -> None:
        self._open: dict[str, Channel] = {}

    def add(self, channel: Channel) -> None:
        self._open[channel.id] = channel

    def discard(self, channel: Channel) -> None:
        self._open.pop(channel.id, None)

    def get(self, stream_id: str, session: Session) -> Channel:
        channel = self._open.get(stream_id)
        if channel is None or channel.session is not session:
            raise ValidationError("stream", "no such live stream for this session",
                                  value=stream_id, allowed="the id of this page's stream "
                                  "(its hello event)")
        return channel

    def for_session(self, session: Session) -> list[Channel]:
        return [c for c in self._open.values() if c.session is session]

    def close(self) -> None:
        for channel in list(self._open.values()):
            channel.close()
        self._open.clear()

    def __len__(self) -> int:
        return len(self._open)
