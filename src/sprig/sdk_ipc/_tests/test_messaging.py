"""Messaging assembled: a function wired once, then driven by the real greengrasssdk."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from pathlib import Path

import aiomqtt
import pytest

from sprig.functions.errors import FunctionNotFound
from sprig.functions.invocation import Invocation, InvocationResult
from sprig.mqtt.mosquitto import Mosquitto
from sprig.mqtt.settings import MqttSettings
from sprig.paths import RootLayout
from sprig.sdk_ipc.env import shim_paths
from sprig.sdk_ipc.messaging import Messaging
from sprig.sdk_ipc.secrets import SecretStore

PUB_ARN = "arn:aws:lambda:us-east-1:123456789012:function:pub:2"


class Recorder:
    """A real Invoker for two deployed functions; anything else is FunctionNotFound."""

    known = ("com.example.Pub", "com.example.Consumer")

    def __init__(self) -> None:
        self.calls: list[tuple[str, Invocation]] = []
        self.changed = asyncio.Condition()

    async def invoke(self, function: str, invocation: Invocation, *,
                     want_log_tail: bool = False) -> InvocationResult:
        if function not in self.known:
            raise FunctionNotFound(function)
        async with self.changed:
            self.calls.append((function, invocation))
            self.changed.notify_all()
        return InvocationResult(invocation.request_id, b"")

    async def wait(self, n: int) -> None:
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(lambda: len(self.calls) >= n), 10)


async def run_function_code(env: dict[str, str], code: str) -> str:
    environ = {**os.environ, **env, "PYTHONPATH": str(shim_paths()[0])}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import json, greengrasssdk\n" + code, env=environ,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def test_local_only(tmp_path: Path) -> None:
    inv = Recorder()
    layout = RootLayout(tmp_path)
    async with Messaging(invoker=inv, secrets=SecretStore.for_root(layout)) as m:
        assert m.bridge is None
        env = m.add_function(component="com.example.Pub", function_arn=PUB_ARN,
                             sources=[("in/+", "PUB_SUB")], access_control={
                                 "aws.greengrass.SecretManager": {"p:1": {
                                     "operations": ["*"], "resources": ["*"]}}})
        m.add_function(component="com.example.Consumer",
                       function_arn="arn:aws:lambda:us-east-1:123456789012:function:c:1",
                       sources={"0": {"topic": "out/#", "type": "PUB_SUB"}})
        m.configure_router({"subscriptions": {"s1": {
            "id": "s1", "source": "component:com.example.Pub", "subject": "out/#",
            "target": "component:com.example.Generic"}}}, source="deployment d1")
        m.configure_secrets({"secrets": {"token": {"secretString": "s3cr3t"}}})
        assert b"s3cr3t" not in (tmp_path / "secrets.enc").read_bytes()

        m.bus.publish("in/1", b'{"x": 1}', source="test")
        await inv.wait(1)
        assert inv.calls[0][0] == "com.example.Pub"

        out = await run_function_code(env, """
greengrasssdk.client('iot-data').publish(topic='out/result', payload=b'{"ok": true}')
print(greengrasssdk.client('secretsmanager').get_secret_value(SecretId='token')['SecretString'])
""")
        assert out.strip() == "s3cr3t"
        # the router delivered to component:com.example.Generic, which reads the bus; the
        # Consumer function's PUB_SUB source on out/# sees that bus message too
        await inv.wait(2)
        fn, invocation = inv.calls[1]
        assert fn == "com.example.Consumer" and invocation.payload == b'{"ok": true}'
        assert invocation.client_context == {"custom": {"subject": "out/result"}}

        m.remove_function("com.example.Pub")
        out = await run_function_code(env, """
try:
    greengrasssdk.client('iot-data').publish(topic='out/x', payload=b'')
except Exception as e:
    print(e)
""")
        assert "403" in out        # its token is gone


@pytest.mark.skipif(shutil.which("mosquitto") is None, reason="mosquitto is not installed")
async def test_with_broker(tmp_path: Path) -> None:
    inv = Recorder()
    async with Mosquitto(tmp_path / "broker") as broker, aiomqtt.Client(
            "127.0.0.1", broker.port, identifier="cloud") as cloud:
        settings = MqttSettings(host="127.0.0.1", port=broker.port, client_id="core")
        async with Messaging(invoker=inv, mqtt=settings) as m:
            assert m.bridge is not None
            await m.bridge.wait_connected(10)
            env = m.add_function(component="com.example.Pub", function_arn=PUB_ARN,
                                 sources=[("cmd/#", "IOT_CORE")])
            m.configure_router({"subscriptions": {"up": {
                "id": "up", "source": PUB_ARN, "subject": "telemetry", "target": "cloud"}}})
            await m.bridge.wait_until(lambda: m.bridge is not None and
                                      m.bridge.broker_filters == {"cmd/#"}, 10)
            await cloud.subscribe("telemetry", qos=1)
            await cloud.publish("cmd/go", b"{}", qos=1)
            await inv.wait(1)
            assert inv.calls[0][1].source == "iotcore"
            await run_function_code(env, """
greengrasssdk.client('iot-data').publish(topic='telemetry', payload=b'42')
""")
            async with asyncio.timeout(10):
                msg = await anext(aiter(cloud.messages))
            assert (msg.topic.value, msg.payload) == ("telemetry", b"42")
