"""The bridge to a real MQTT broker (AWS IoT Core, Mosquitto, EMQX...), using aiomqtt.

* **Subscriptions** are reference-counted per filter: the broker is asked for a filter when its
  first local subscriber (an IOT_CORE event source, an IPC SubscribeToIoTCore) appears and
  released when the last one closes. Incoming messages go through a private :class:`Bus`, so
  every local subscriber has its own bounded queue and delivery task, like on the local bus.
* **Publishes** go through one ordered spool, as Greengrass's spooler does: a sender task sends
  them in order while connected, removing a QoS 1 message only once the broker acknowledged it
  (at least once). While offline, QoS 1 messages wait in the spool, bounded in *bytes*
  (``spooler.maxSizeInBytes``, 2.5 MB); QoS 0 messages are dropped and counted unless
  ``keepQos0WhenOffline``. Oversize messages (``maxMessageSizeInBytes``, topic + payload) are
  refused with a clear error. A message whose sending fails ``maxPublishRetry`` times (the
  broker drops the connection each time) is dropped and logged, so it cannot block the spool.
* **Reconnects** use exponential backoff from ``reconnect.minSeconds`` doubling to
  ``reconnect.maxSeconds``; every reconnect resubscribes and resumes the spool.
* **Retained messages and a last will** (used by the fleet agent, :mod:`sprig.fleet`): a publish
  may ask the broker to retain it, and :meth:`MqttBridge.set_will` gives every connection a will
  the broker publishes when the core vanishes without disconnecting.

The bridge owns its tasks: ``aclose()`` cancels and awaits them all.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

from sprig.errors import SprigError
from sprig.mqtt.settings import MqttProtocol, MqttSettings
from sprig.pubsub.bus import DEFAULT_MAX_QUEUE, Bus, Message, Subscription
from sprig.pubsub.topic import Topic, TopicFilter

if TYPE_CHECKING:
    # Imported when a connection starts: aiomqtt and paho (with urllib.request, http.client
    # and email) cost the core ~4.7 MB of resident memory, wasted when no broker is configured.
    import aiomqtt

log = logging.getLogger(__name__)

SOURCE = "iotcore"


class MqttPublishError(SprigError):
    """A publish the bridge refuses (oversize, bad QoS, spool full)."""


class PublishOutcome(enum.StrEnum):
    QUEUED = "queued"      # in the spool; sent in order as soon as connected
    DROPPED = "dropped"    # QoS 0 while offline (keepQos0WhenOffline false)


@dataclass(frozen=True)
class _Outgoing:
    topic: str
    payload: bytes
    qos: int
    retain: bool = False

    @property
    def size(self) -> int:
        return len(self.topic.encode()) + len(self.payload)


class BridgeSubscription:
    """A local subscriber to broker messages; ``close()`` releases the broker filter."""

    def __init__(self, bridge: MqttBridge, inner: Subscription) -> None:
        self._bridge = bridge
        self.inner = inner
        self.closed = False

    @property
    def filter(self) -> TopicFilter:
        return self.inner.filter

    @property
    def dropped(self) -> int:
        return self.inner.dropped

    async def get(self) -> Message:
        return await self.inner.get()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.inner.close()
            self._bridge._release(self.inner.filter.value)


class MqttBridge:
    """One MQTT connection shared by everything in the core that talks to the broker."""

    def __init__(self, settings: MqttSettings) -> None:
        self.settings = settings
        self._incoming = Bus()
        self._wanted: collections.Counter[str] = collections.Counter()
        self._active: set[str] = set()
        self._spool: collections.deque[_Outgoing] = collections.deque()
        self._spool_bytes = 0
        self._changed = asyncio.Condition()
        self._connected = asyncio.Event()
        self._subs_dirty = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.connections = 0
        self.failures = 0
        self.sent = 0
        self.received = 0
        self.dropped_qos0 = 0
        self.dropped_after_retries = 0
        self._head: _Outgoing | None = None
        self._head_attempts = 0
        self.last_error: str | None = None
        self._will: _Outgoing | None = None

    def set_will(self, topic: str, payload: bytes, qos: int = 1, retain: bool = True) -> None:
        """The message the broker publishes if this connection ends without a DISCONNECT
        (the core killed, the network gone): set before :meth:`start`, used by every
        connection from then on."""
        self._will = self.check(topic, payload, qos, retain)

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        await self._incoming.start()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="mqtt-bridge")

    async def aclose(self) -> None:
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._connected.clear()
        await self._incoming.aclose()

    async def __aenter__(self) -> MqttBridge:
        await self.start()
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def wait_connected(self, timeout: float) -> None:
        await asyncio.wait_for(self._connected.wait(), timeout)

    @property
    def spooled(self) -> int:
        return len(self._spool)

    @property
    def spool_bytes(self) -> int:
        return self._spool_bytes

    async def wait_until(self, predicate: Callable[[], bool], timeout: float | None) -> None:
        """Wait until ``predicate()`` holds; it is re-checked whenever the bridge's state
        changes (connected, disconnected, spool, broker subscriptions)."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(predicate), timeout)

    async def flush(self, timeout: float) -> None:
        """Wait until every queued message was sent (and acknowledged for QoS 1)."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: not self._spool), timeout)

    # --- subscriptions ---------------------------------------------------------------------

    def subscribe(self, topic_filter: TopicFilter | str,
                  deliver: Callable[[Message], Awaitable[None]] | None = None, *,
                  owner: str, max_queue: int = DEFAULT_MAX_QUEUE) -> BridgeSubscription:
        """Receive broker messages matching ``topic_filter`` (see :meth:`Bus.subscribe`)."""
        inner = self._incoming.subscribe(topic_filter, deliver, owner=owner,
                                         max_queue=max_queue)
        self._wanted[inner.filter.value] += 1
        if self._wanted[inner.filter.value] == 1:
            self._poke()
        return BridgeSubscription(self, inner)

    def _release(self, filt: str) -> None:
        self._wanted[filt] -= 1
        if self._wanted[filt] <= 0:
            del self._wanted[filt]
            self._poke()

    def _poke(self) -> None:
        self._subs_dirty.set()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    @property
    def broker_filters(self) -> set[str]:
        """The filters currently subscribed at the broker."""
        return set(self._active)

    # --- publishing ------------------------------------------------------------------------

    def check(self, topic: str, payload: bytes, qos: int, retain: bool = False) -> _Outgoing:
        """Validate a publish (topic, QoS, size) without queuing it."""
        t = Topic.parse(topic)
        if qos not in (0, 1):
            raise MqttPublishError(f"qos: unsupported value {qos!r}; allowed: 0 "
                                   "(AT_MOST_ONCE), 1 (AT_LEAST_ONCE)")
        out = _Outgoing(t.value, bytes(payload), qos, retain)
        if out.size > self.settings.max_message_size:
            raise MqttPublishError(
                f"message on topic {t.value!r} is {out.size} bytes (topic + payload), over "
                f"mqtt.maxMessageSizeInBytes {self.settings.max_message_size}; allowed: at most "
                f"{self.settings.max_message_size} bytes")
        return out

    async def publish(self, topic: str, payload: bytes, qos: int = 0, *,
                      retain: bool = False) -> PublishOutcome:
        """Queue a message for the broker, in order; see the module docstring for offline.
        ``retain``: the broker keeps it as the topic's last message for later subscribers."""
        out = self.check(topic, payload, qos, retain)
        if not self.connected and qos == 0 and not self.settings.keep_qos0_when_offline:
            self._drop_qos0(1)
            return PublishOutcome.DROPPED
        if self._spool_bytes + out.size > self.settings.spool_max_bytes:
            if qos == 0:
                self._drop_qos0(1)
                return PublishOutcome.DROPPED
            raise MqttPublishError(
                f"the MQTT spool is full ({self._spool_bytes} of "
                f"mqtt.spooler.maxSizeInBytes {self.settings.spool_max_bytes} bytes used while "
                f"{'connected' if self.connected else 'offline'}); message on topic "
                f"{out.topic!r} refused")
        async with self._changed:
            self._spool.append(out)
            self._spool_bytes += out.size
            self._changed.notify_all()
        return PublishOutcome.QUEUED

    def _drop_qos0(self, n: int) -> None:
        self.dropped_qos0 += n
        log.warning("mqtt: dropped %d QoS 0 message(s) while offline (keepQos0WhenOffline is "
                    "false); %d so far", n, self.dropped_qos0)

    # --- the connection --------------------------------------------------------------------

    def _client(self) -> aiomqtt.Client:
        import aiomqtt

        s = self.settings
        tls_context: ssl.SSLContext | None = None
        if s.tls is not None:
            tls_context = ssl.create_default_context(
                cafile=str(s.tls.ca_path) if s.tls.ca_path else None)
            tls_context.minimum_version = ssl.TLSVersion.TLSv1_2
            if s.tls.cert_path and s.tls.key_path:
                tls_context.load_cert_chain(str(s.tls.cert_path), str(s.tls.key_path))
            if s.port == 443:
                # AWS IoT Core serves MQTT with client certificates on 443 only with this ALPN.
                tls_context.set_alpn_protocols(["x-amzn-mqtt-ca"])
        will = None if self._will is None else aiomqtt.Will(
            self._will.topic, self._will.payload, self._will.qos, self._will.retain)
        return aiomqtt.Client(
            s.host, s.port, identifier=s.client_id, keepalive=s.keep_alive_seconds, will=will,
            protocol=(aiomqtt.ProtocolVersion.V5 if s.protocol is MqttProtocol.V5
                      else aiomqtt.ProtocolVersion.V311),
            tls_context=tls_context, timeout=s.operation_timeout_seconds, clean_session=(
                True if s.protocol is MqttProtocol.V311 else None))

    async def _run(self) -> None:
        import aiomqtt

        delay = self.settings.reconnect_min_seconds
        while not self._stopping.is_set():
            try:
                async with self._client() as client:
                    self.connections += 1
                    self.last_error = None
                    delay = self.settings.reconnect_min_seconds
                    log.info("mqtt: connected to %s:%d as %s", self.settings.host,
                             self.settings.port, self.settings.client_id)
                    self._active.clear()
                    await self._sync_subscriptions(client)
                    self._connected.set()
                    await self._notify()
                    async with asyncio.TaskGroup() as tg:
                        tg.create_task(self._receive(client))
                        tg.create_task(self._send(client))
                        tg.create_task(self._keep_subscriptions(client))
            except (aiomqtt.MqttError, OSError, ssl.SSLError, ExceptionGroup) as e:
                self.last_error = _describe(e)
            finally:
                was = self._connected.is_set()
                self._connected.clear()
                self._active.clear()
            if self._stopping.is_set():
                return
            if not was:
                self.failures += 1
            await self._notify()
            if was:
                log.warning("mqtt: connection to %s:%d lost: %s", self.settings.host,
                            self.settings.port, self.last_error)
            else:
                log.warning("mqtt: cannot connect to %s:%d: %s; retrying in %.1f s",
                            self.settings.host, self.settings.port, self.last_error, delay)
            await self._offline()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            delay = next_delay(delay, self.settings)

    async def _offline(self) -> None:
        """Going offline: QoS 0 messages still queued are dropped unless kept."""
        if self.settings.keep_qos0_when_offline:
            return
        async with self._changed:
            kept = collections.deque(m for m in self._spool if m.qos == 1)
            dropped = len(self._spool) - len(kept)
            if dropped:
                self._spool = kept
                self._spool_bytes = sum(m.size for m in kept)
                self._drop_qos0(dropped)
                self._changed.notify_all()

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for m in client.messages:
            payload = m.payload if isinstance(m.payload, bytes) else (
                b"" if m.payload is None else str(m.payload).encode())
            self.received += 1
            try:
                self._incoming.publish(m.topic.value, payload, source=SOURCE)
            except SprigError as e:
                log.warning("mqtt: ignored a message from the broker: %s", e)

    async def _send(self, client: aiomqtt.Client) -> None:
        while True:
            async with self._changed:
                await self._changed.wait_for(lambda: bool(self._spool))
                head = self._spool[0]
                if head is self._head:
                    self._head_attempts += 1
                else:
                    self._head, self._head_attempts = head, 1
                retries = self.settings.max_publish_retry
                if retries >= 0 and self._head_attempts > retries + 1:
                    # A message the broker keeps refusing (it drops the connection each
                    # time) must not block the spool forever: mqtt.maxPublishRetry.
                    self._pop(head)
                    self.dropped_after_retries += 1
                    log.error("mqtt: gave up on a message to %r after %d attempts "
                              "(mqtt.maxPublishRetry %d)", head.topic, self._head_attempts - 1,
                              retries)
                    continue
            await client.publish(head.topic, head.payload, qos=head.qos, retain=head.retain)
            async with self._changed:
                self._pop(head)
                self.sent += 1

    def _pop(self, head: _Outgoing) -> None:
        """Remove ``head`` from the front of the spool (caller holds ``_changed``)."""
        if self._spool and self._spool[0] is head:
            self._spool.popleft()
            self._spool_bytes -= head.size
        self._changed.notify_all()

    async def _keep_subscriptions(self, client: aiomqtt.Client) -> None:
        while True:
            await self._subs_dirty.wait()
            self._subs_dirty.clear()
            await self._sync_subscriptions(client)

    async def _sync_subscriptions(self, client: aiomqtt.Client) -> None:
        self._subs_dirty.clear()
        wanted = set(self._wanted)
        for f in sorted(wanted - self._active):
            await client.subscribe(f, qos=1)
            self._active.add(f)
        for f in sorted(self._active - wanted):
            await client.unsubscribe(f)
            self._active.discard(f)
        if set(self._wanted) != self._active:
            self._subs_dirty.set()      # changed while we were talking to the broker
        await self._notify()


def next_delay(delay: float, settings: MqttSettings) -> float:
    """Exponential backoff: double the wait after each failed attempt, up to the cap."""
    return min(delay * 2, settings.reconnect_max_seconds)


def _describe(e: BaseException) -> str:
    if isinstance(e, ExceptionGroup):
        return "; ".join(_describe(x) for x in e.exceptions)
    cause = e.__cause__
    return f"{e} ({cause})" if cause else str(e) or type(e).__name__
