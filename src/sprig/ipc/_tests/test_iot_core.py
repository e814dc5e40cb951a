"""PublishToIoTCore / SubscribeToIoTCore through the real MqttBridge and a real Mosquitto."""

from __future__ import annotations

import base64
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from sprig.ipc._tests.conftest import DictCore, IpcError
from sprig.ipc.server import IpcServer
from sprig.mqtt.bridge import MqttBridge
from sprig.mqtt.mosquitto import Mosquitto
from sprig.mqtt.settings import MqttSettings

pytestmark = pytest.mark.skipif(shutil.which("mosquitto") is None,
                                reason="the mosquitto broker is not installed")


@pytest.fixture
async def bridge(tmp_path: Path) -> AsyncIterator[MqttBridge]:
    async with Mosquitto(tmp_path / "broker") as broker:
        settings = MqttSettings(host="127.0.0.1", port=broker.port, client_id="sprig-ipc-test",
                                reconnect_min_seconds=0.05, reconnect_max_seconds=0.2,
                                operation_timeout_seconds=3)
        async with MqttBridge(settings) as b:
            await b.wait_connected(10)
            yield b


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def test_iot_core_round_trip_and_cleanup(server: IpcServer, core: DictCore,
                                               bridge: MqttBridge, drivers: Any) -> None:
    core.bridge = bridge
    core.add("com.iot", "tok-iot", {"accessControl": {"aws.greengrass.ipc.mqttproxy": {
        "com.iot:mqttproxy:1": {"operations": ["*"], "resources": ["dev/+/temp"]}}}})
    d = await drivers(server.socket_path, "tok-iot")
    sub = await d("subscribe_iot", topic="dev/+/temp", qos="1")
    await bridge.wait_until(lambda: bridge.broker_filters == {"dev/+/temp"}, 10)

    await d("publish_iot", topic="dev/7/temp", qos="1", b64=b64(b"\x0021.5"))
    await d("publish_iot", topic="dev/8/temp", qos="0", b64=b64(b"{}"))
    assert await d.events(sub, 2) == [{"topic": "dev/7/temp", "payload": b64(b"\x0021.5")},
                                      {"topic": "dev/8/temp", "payload": b64(b"{}")}]
    with pytest.raises(IpcError) as e:
        await d("subscribe_iot", topic="dev/#")      # broader than the policy's dev/+/temp
    assert e.value.kind == "UnauthorizedError"
    with pytest.raises(IpcError) as e:
        await d("publish_iot", topic="dev/1/temp", qos="2", b64=b64(b"x"))
    assert e.value.kind == "InvalidArgumentsError" and "qos" in e.value.message

    await d.close()                                 # the broker subscription is released
    await bridge.wait_until(lambda: not bridge.broker_filters, 10)
