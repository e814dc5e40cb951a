"""The bridge wired to the rest: IOT_CORE event sources and V1 publishes to the cloud."""

from __future__ import annotations

import asyncio
import base64
import json

import aiohttp
import aiomqtt

from sprig.functions.event_sources import EventSources
from sprig.functions.invocation import Invocation, InvocationResult
from sprig.mqtt.bridge import MqttBridge
from sprig.mqtt.mosquitto import Mosquitto
from sprig.mqtt.settings import MqttSettings
from sprig.pubsub.bus import Bus
from sprig.sdk_ipc.env import ROUTER_FUNCTION_ARN
from sprig.sdk_ipc.server import SdkIpcServer

ME = "arn:aws:lambda:us-east-1:123456789012:function:me:1"


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Invocation]] = []
        self.changed = asyncio.Condition()

    async def invoke(self, function: str, invocation: Invocation, *,
                     want_log_tail: bool = False) -> InvocationResult:
        async with self.changed:
            self.calls.append((function, invocation))
            self.changed.notify_all()
        return InvocationResult(invocation.request_id, b"")


async def test_iot_core_event_source_and_v1_publish_to_cloud(broker: Mosquitto) -> None:
    settings = MqttSettings(host="127.0.0.1", port=broker.port, client_id="core",
                            reconnect_min_seconds=0.05)
    inv = Recorder()
    async with Bus() as bus, MqttBridge(settings) as bridge, \
            aiomqtt.Client("127.0.0.1", broker.port, identifier="cloud") as cloud:
        await bridge.wait_connected(10)
        es = EventSources(bus, bridge, inv)
        es.set_function_sources("f", [("devices/+/cmd", "IOT_CORE")])
        await bridge.wait_until(lambda: bridge.broker_filters == {"devices/+/cmd"}, 10)
        await cloud.publish("devices/d1/cmd", b'{"go": true}', qos=1)
        async with inv.changed:
            await asyncio.wait_for(inv.changed.wait_for(lambda: len(inv.calls) == 1), 10)
        fn, invocation = inv.calls[0]
        assert fn == "f" and invocation.source == "iotcore"
        assert invocation.payload == b'{"go": true}'
        assert invocation.client_context == {"custom": {"subject": "devices/d1/cmd"}}
        es.remove_function("f")
        await bridge.wait_until(lambda: bridge.broker_filters == set(), 10)

        server = SdkIpcServer(invoker=inv, bus=bus, cloud=bridge)
        await server.start()
        try:
            server.register_function(ME, "tok", "com.example.Me")
            server.set_subscriptions({"up": {"id": "up", "source": ME, "subject": "telemetry/#",
                                             "target": "cloud"}})
            await cloud.subscribe("telemetry/#", qos=1)
            ctx = base64.b64encode(json.dumps(
                {"custom": {"source": ME, "subject": "telemetry/t1"}}).encode()).decode()
            url = f"http://127.0.0.1:{server.port}/2016-11-01/functions/{ROUTER_FUNCTION_ARN}"
            async with aiohttp.ClientSession() as s, s.post(url, data=b'{"v": 1}', headers={
                    "Authorization": "tok", "X-Amz-Client-Context": ctx,
                    "X-Amz-Invocation-Type": "Event"}) as r:
                assert r.status == 202, await r.text()
            async with asyncio.timeout(10):
                m = await anext(aiter(cloud.messages))
            assert (m.topic.value, m.payload) == ("telemetry/t1", b'{"v": 1}')
            # oversize for the broker: a clear error back to the function
            big = b"x" * (settings.max_message_size + 1)
            async with aiohttp.ClientSession() as s, s.post(url, data=big, headers={
                    "Authorization": "tok", "X-Amz-Client-Context": ctx,
                    "X-Amz-Invocation-Type": "Event"}) as r:
                assert r.status == 400 and "maxMessageSizeInBytes" in await r.text()
        finally:
            await server.aclose()
