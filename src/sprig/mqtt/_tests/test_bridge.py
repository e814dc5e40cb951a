"""The bridge against a real Mosquitto broker (plain, TLS with client certificates, MQTT 5,
and a broker restart while QoS 1 messages are published)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from pathlib import Path

import aiomqtt
import pytest

from sprig.mqtt.bridge import MqttBridge, MqttPublishError, PublishOutcome, next_delay
from sprig.mqtt.mosquitto import BrokerTls, Mosquitto, free_port
from sprig.mqtt.settings import MqttProtocol, MqttSettings, TlsSettings
from sprig.pubsub.bus import Message


def settings(port: int, **kw: object) -> MqttSettings:
    base = MqttSettings(host="127.0.0.1", port=port, client_id="sprig-test",
                        reconnect_min_seconds=0.05, reconnect_max_seconds=0.2,
                        operation_timeout_seconds=3)
    return replace(base, **kw)  # type: ignore[arg-type]


async def test_round_trip_and_outside_client(broker: Mosquitto) -> None:
    async with MqttBridge(settings(broker.port)) as bridge, \
            aiomqtt.Client("127.0.0.1", broker.port, identifier="outside") as outside:
        await bridge.wait_connected(10)
        sub = bridge.subscribe("rt/+", owner="t")
        await bridge.wait_until(lambda: bridge.broker_filters == {"rt/+"}, 10)
        await outside.subscribe("out/#", qos=1)
        # outside → broker → bridge
        await outside.publish("rt/1", b"from-outside", qos=1)
        m = await asyncio.wait_for(sub.get(), 10)
        assert (m.topic, m.payload, m.source) == ("rt/1", b"from-outside", "iotcore")
        # bridge → broker → outside, in order, QoS 0 and 1 mixed
        for i in range(20):
            assert await bridge.publish("out/x", str(i).encode(), qos=i % 2) is \
                PublishOutcome.QUEUED
        got: list[bytes] = []
        async with asyncio.timeout(10):
            async for om in outside.messages:
                got.append(om.payload)  # type: ignore[arg-type]
                if len(got) == 20:
                    break
        assert got == [str(i).encode() for i in range(20)]
        await bridge.flush(10)
        assert bridge.sent == 20


async def test_ref_counted_dynamic_subscriptions(broker: Mosquitto) -> None:
    received: list[str] = []

    async def cb(m: Message) -> None:
        received.append(m.topic)

    async with MqttBridge(settings(broker.port)) as bridge:
        await bridge.wait_connected(10)
        a = bridge.subscribe("dyn/#", cb, owner="a")
        b = bridge.subscribe("dyn/#", owner="b")
        c = bridge.subscribe("other", owner="c")
        await bridge.wait_until(lambda: bridge.broker_filters == {"dyn/#", "other"}, 10)
        a.close()
        c.close()
        await bridge.wait_until(lambda: bridge.broker_filters == {"dyn/#"}, 10)
        await bridge.publish("dyn/1", b"x", qos=1)
        m = await asyncio.wait_for(b.get(), 10)
        assert m.topic == "dyn/1" and received == []
        b.close()
        await bridge.wait_until(lambda: bridge.broker_filters == set(), 10)


async def test_bad_publishes_are_refused_clearly(broker: Mosquitto) -> None:
    async with MqttBridge(settings(broker.port, max_message_size=100)) as bridge:
        with pytest.raises(MqttPublishError, match=r"maxMessageSizeInBytes 100"):
            await bridge.publish("t", b"x" * 100, qos=1)
        with pytest.raises(MqttPublishError, match=r"qos: unsupported value 2"):
            await bridge.publish("t", b"x", qos=2)
        with pytest.raises(Exception, match=r"wildcards"):
            await bridge.publish("t/#", b"x", qos=0)


async def test_offline_spool_and_broker_restart(broker: Mosquitto,
                                                caplog: pytest.LogCaptureFixture) -> None:
    async with MqttBridge(settings(broker.port, spool_max_bytes=2000)) as bridge:
        await bridge.wait_connected(10)
        sub = bridge.subscribe("spool/#", owner="t")
        await bridge.wait_until(lambda: bridge.broker_filters == {"spool/#"}, 10)
        await broker.stop()
        await bridge.wait_until(lambda: not bridge.connected, 10)
        with caplog.at_level(logging.WARNING):
            for i in range(30):
                assert await bridge.publish("spool/q1", b"%03d" % i, qos=1) is \
                    PublishOutcome.QUEUED
            assert await bridge.publish("spool/q0", b"lost", qos=0) is PublishOutcome.DROPPED
        assert bridge.dropped_qos0 == 1 and "dropped 1 QoS 0" in caplog.text
        assert bridge.spooled == 30 and bridge.spool_bytes == 30 * (8 + 3)
        with pytest.raises(MqttPublishError, match=r"spool is full .*maxSizeInBytes 2000"):
            await bridge.publish("spool/big", b"x" * 1800, qos=1)
        await broker.start()          # same port
        await bridge.wait_connected(10)
        await bridge.flush(10)
        got = [(await asyncio.wait_for(sub.get(), 10)).payload for _ in range(30)]
        assert got == [b"%03d" % i for i in range(30)]
        assert bridge.connections == 2


async def test_unreachable_broker_backs_off_and_connects_later(tmp_path: Path) -> None:
    port = free_port()
    async with MqttBridge(settings(port)) as bridge:
        await bridge.wait_until(lambda: bridge.failures >= 2, 10)
        assert not bridge.connected and bridge.last_error
        assert await bridge.publish("t", b"x", qos=1) is PublishOutcome.QUEUED
        async with Mosquitto(tmp_path / "late", port=port):
            await bridge.wait_connected(10)
            await bridge.flush(10)


async def test_mqtt5(broker: Mosquitto) -> None:
    async with MqttBridge(settings(broker.port, protocol=MqttProtocol.V5)) as bridge:
        await bridge.wait_connected(10)
        sub = bridge.subscribe("v5", owner="t")
        await bridge.wait_until(lambda: bridge.broker_filters == {"v5"}, 10)
        await bridge.publish("v5", b"five", qos=1)
        assert (await asyncio.wait_for(sub.get(), 10)).payload == b"five"


async def test_mutual_tls(tmp_path: Path, pki: object) -> None:
    p = pki
    tls = BrokerTls(p.ca, p.server_cert, p.server_key)  # type: ignore[attr-defined]
    async with Mosquitto(tmp_path / "tls", tls=tls) as broker:
        good = settings(broker.port, tls=TlsSettings(p.ca, p.client_cert,  # type: ignore[attr-defined]
                                                     p.client_key))  # type: ignore[attr-defined]
        async with MqttBridge(good) as bridge:
            await bridge.wait_connected(10)
            sub = bridge.subscribe("secure/#", owner="t")
            await bridge.wait_until(lambda: bridge.broker_filters == {"secure/#"}, 10)
            await bridge.publish("secure/1", b"tls", qos=1)
            assert (await asyncio.wait_for(sub.get(), 10)).payload == b"tls"
        # no client certificate: the broker refuses the handshake
        anon_settings = settings(broker.port, tls=TlsSettings(p.ca),  # type: ignore[attr-defined]
                                 operation_timeout_seconds=1)
        async with MqttBridge(anon_settings) as anon:
            await anon.wait_until(lambda: anon.failures >= 1, 10)
            assert not anon.connected
        # a CA that did not sign the server's certificate: we refuse the broker
        bad_ca = settings(broker.port, tls=TlsSettings(p.other_ca, p.client_cert,  # type: ignore[attr-defined]
                                                       p.client_key))  # type: ignore[attr-defined]
        async with MqttBridge(bad_ca) as wrong:
            await wrong.wait_until(lambda: wrong.failures >= 1, 10)
            assert "certificate verify failed" in (wrong.last_error or "")


def test_backoff_doubles_up_to_the_cap() -> None:
    s = MqttSettings(host="h", port=1, client_id="c", reconnect_min_seconds=1,
                     reconnect_max_seconds=10)
    delays = [1.0]
    for _ in range(6):
        delays.append(next_delay(delays[-1], s))
    assert delays == [1, 2, 4, 8, 10, 10, 10]


async def test_keep_qos0_when_offline(broker: Mosquitto) -> None:
    async with MqttBridge(settings(broker.port, keep_qos0_when_offline=True)) as bridge:
        await bridge.wait_connected(10)
        sub = bridge.subscribe("k", owner="t")
        await bridge.wait_until(lambda: bridge.broker_filters == {"k"}, 10)
        await broker.stop()
        await bridge.wait_until(lambda: not bridge.connected, 10)
        assert await bridge.publish("k", b"kept", qos=0) is PublishOutcome.QUEUED
        await broker.start()
        await bridge.flush(10)
        assert (await asyncio.wait_for(sub.get(), 10)).payload == b"kept"
        assert bridge.dropped_qos0 == 0


async def test_a_message_the_broker_keeps_refusing_is_dropped_after_retries(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    broker = Mosquitto(tmp_path / "small", extra_config=("max_packet_size 200",))
    async with broker, MqttBridge(settings(broker.port, max_publish_retry=2)) as bridge:
        await bridge.wait_connected(10)
        sub = bridge.subscribe("p/#", owner="t")
        await bridge.wait_until(lambda: bridge.broker_filters == {"p/#"}, 10)
        with caplog.at_level(logging.ERROR):
            await bridge.publish("p/big", b"x" * 1000, qos=1)   # the broker disconnects us
            await bridge.publish("p/small", b"ok", qos=1)
            await bridge.flush(20)
        assert bridge.dropped_after_retries == 1
        assert "gave up on a message to 'p/big' after 3 attempts" in caplog.text
        m = await asyncio.wait_for(sub.get(), 10)
        assert (m.topic, m.payload) == ("p/small", b"ok")
