"""The operator's broker connection (``sprig fleet deploy|status|cancel``): a short-lived
client that mirrors the retained fleet state it subscribes to.

Fleet state is the last message of each topic, so the connection keeps exactly that: a dict
from topic to payload (an empty retained payload deletes), with a condition to wait on.
:meth:`BrokerSession.sync` is a barrier: it publishes a message to a topic of its own and waits
for it to come back; since the broker sends the retained messages of a subscription before it
handles the client's next packet, everything retained is in the mirror once ``sync`` returns.

The client id is ``sprig-operator-<random>``, never the configuration's ``clientId``: two
operator commands (or an operator on a device) must not take each other's connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import uuid
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

from sprig.errors import SprigError
from sprig.mqtt.settings import MqttProtocol, MqttSettings


class BrokerUnavailable(SprigError):
    pass


class BrokerSession:
    def __init__(self, settings: MqttSettings, prefix: str, *,
                 will: tuple[str, bytes] | None = None) -> None:
        self.settings = settings
        self.prefix = prefix
        self.client_id = f"sprig-operator-{uuid.uuid4().hex[:12]}"
        self.will = will
        self.state: dict[str, bytes] = {}
        self._parsed: dict[str, Any] = {}
        self.changed = asyncio.Condition()
        self.received = 0
        self.published = 0
        self._client: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._filters: list[str] = []
        self._sync_topic = f"{prefix}/operators/{self.client_id}/sync"
        self._sync_seen: set[str] = set()
        self.listeners: list[Callable[[str, bytes], None]] = []
        self.lost = asyncio.Event()

    async def __aenter__(self) -> BrokerSession:
        await self.connect()
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    def _make_client(self) -> Any:
        import aiomqtt

        s = self.settings
        tls_context = None
        if s.tls is not None:
            tls_context = ssl.create_default_context(
                cafile=str(s.tls.ca_path) if s.tls.ca_path else None)
            tls_context.minimum_version = ssl.TLSVersion.TLSv1_2
            if s.tls.cert_path and s.tls.key_path:
                tls_context.load_cert_chain(str(s.tls.cert_path), str(s.tls.key_path))
        will = None
        if self.will is not None:
            will = aiomqtt.Will(self.will[0], self.will[1], qos=1, retain=True)
        return aiomqtt.Client(
            s.host, s.port, identifier=self.client_id, keepalive=s.keep_alive_seconds,
            protocol=(aiomqtt.ProtocolVersion.V5 if s.protocol is MqttProtocol.V5
                      else aiomqtt.ProtocolVersion.V311),
            tls_context=tls_context, will=will, timeout=s.operation_timeout_seconds,
            max_inflight_messages=1000)

    async def connect(self) -> None:
        import aiomqtt

        self.lost.clear()
        self._client = self._make_client()
        _fail_before_connack(self._client)
        try:
            await self._client.__aenter__()
        except (aiomqtt.MqttError, OSError, ssl.SSLError) as e:
            self._client = None
            raise BrokerUnavailable(f"cannot connect to the broker {self.settings.host}:"
                                    f"{self.settings.port}: {e}") from None
        self._reader = asyncio.get_running_loop().create_task(self._read())
        await self._client.subscribe([(f, 1) for f in [self._sync_topic, *self._filters]])

    async def close(self, graceful: bool = True) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
            self._reader = None
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.__aexit__(None, None, None)
            self._client = None

    async def _read(self) -> None:
        import aiomqtt

        try:
            async for m in self._client.messages:
                topic = m.topic.value
                payload = m.payload if isinstance(m.payload, bytes) else (
                    b"" if m.payload is None else str(m.payload).encode())
                self.received += 1
                if topic == self._sync_topic:
                    self._sync_seen.add(payload.decode())
                elif payload:
                    self.state[topic] = payload
                    self._parsed.pop(topic, None)
                else:
                    self.state.pop(topic, None)
                    self._parsed.pop(topic, None)
                for listener in self.listeners:
                    listener(topic, payload)
                async with self.changed:
                    self.changed.notify_all()
        except aiomqtt.MqttError:
            pass
        self.lost.set()
        async with self.changed:
            self.changed.notify_all()

    async def subscribe(self, *filters: str) -> None:
        """Subscribe (QoS 1) to the filters not yet subscribed, in one SUBSCRIBE."""
        new = [f for f in dict.fromkeys(filters) if f not in self._filters]
        if new:
            self._filters += new
            await self._client.subscribe([(f, 1) for f in new])

    async def sync(self, timeout: float = 30.0) -> None:
        """Wait until every message the broker had for our subscriptions has arrived."""
        nonce = uuid.uuid4().hex
        await self._client.publish(self._sync_topic, nonce.encode(), qos=1)
        await self.wait_for(lambda: nonce in self._sync_seen, timeout)
        self._sync_seen.discard(nonce)

    async def wait_for(self, predicate: Callable[[], bool], timeout: float | None) -> bool:
        """Wait until ``predicate()`` (re-checked on each message); False on timeout or when
        the connection is lost."""
        try:
            async with asyncio.timeout(timeout), self.changed:
                await self.changed.wait_for(lambda: predicate() or self.lost.is_set())
        except TimeoutError:
            return predicate()
        return predicate()

    async def publish(self, topic: str, payload: bytes, *, retain: bool = True) -> None:
        self.published += 1
        await self._client.publish(topic, payload, qos=1, retain=retain)

    async def publish_json(self, topic: str, doc: Any, *, retain: bool = True) -> None:
        await self.publish(topic, json.dumps(doc, separators=(",", ":")).encode(), retain=retain)

    def json(self, topic: str) -> Any:
        """The topic's last message as JSON (None: none, or not JSON); parsed once."""
        if topic in self._parsed:
            return self._parsed[topic]
        raw = self.state.get(topic)
        if raw is None:
            return None
        try:
            value = json.loads(raw)
        except ValueError:
            value = None
        self._parsed[topic] = value
        return value

    def items(self, match: Callable[[str], bool]) -> Iterable[tuple[str, bytes]]:
        return [(t, p) for t, p in self.state.items() if match(t)]


def _fail_before_connack(client: Any) -> None:
    """Make a connection the broker drops before its CONNACK fail at once, saying why.

    aiomqtt (2.5) ignores a disconnection that comes before CONNACK, so a broker refusing the
    client (over TLS 1.3, its alert to a client without a certificate arrives only after the
    handshake) cost the whole ``operationTimeoutSeconds`` and read "Operation timed out"
    (measured: 11 s for ``sprig fleet status``). Here the pending connect fails as soon as
    paho sees the connection go, with paho's own words (``... certificate required``).
    """
    import aiomqtt
    import paho.mqtt.client as paho

    inner = client._client                      # the paho client aiomqtt drives
    chained = inner.on_disconnect
    errors: list[str] = []

    def on_log(_c: Any, _u: Any, level: int, buf: str) -> None:
        if level == paho.MQTT_LOG_ERR:
            errors.append(buf)

    def on_disconnect(c: Any, u: Any, flags: Any, rc: Any, props: Any = None) -> None:
        pending = client._connected
        if not pending.done():
            pending.set_exception(aiomqtt.MqttError(
                errors[-1] if errors else f"the broker closed the connection ({rc})"))
        chained(c, u, flags, rc, props)

    inner.on_log = on_log
    inner.on_disconnect = on_disconnect
