"""End to end with real workers: a message on a topic triggers an unmodified V1 function, which
invokes another function and publishes its result back through the legacy router."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import greengrasssdk
import pytest

from sprig.functions.config import LambdaConfig
from sprig.functions.function import Function
from sprig.functions.manager import FunctionManager
from sprig.functions.worker import FunctionSpec
from sprig.lambda_params import ContainerMode
from sprig.sdk_ipc.env import shim_paths
from sprig.sdk_ipc.messaging import Messaging

PY = f"python{sys.version_info[0]}.{sys.version_info[1]}"
ARN = "arn:aws:lambda:us-east-1:123456789012:function:{}:1"
SDK_SITE = Path(greengrasssdk.__file__).resolve().parent.parent   # bundled with the function

PUB = """
import json
import greengrasssdk

iot = greengrasssdk.client('iot-data')
lam = greengrasssdk.client('lambda')

def handler(event, context):
    subject = context.client_context.custom['subject']
    r = lam.invoke(FunctionName=ECHO_ARN, Payload=json.dumps({'x': event['n'] * 2}))
    doubled = json.loads(r['Payload'].read())
    iot.publish(topic='out/result', payload=json.dumps({'subject': subject, 'echo': doubled}))
    return {'ok': True}
""".replace("ECHO_ARN", repr(ARN.format("echo")))

ECHO = """
def handler(event, context):
    return event
"""


def spec(tmp: Path, name: str, code: str, env: dict[str, str]) -> FunctionSpec:
    d = tmp / name
    (d / "code").mkdir(parents=True)
    (d / "work").mkdir()
    (d / "code" / "app.py").write_text(code)
    config = dataclasses.replace(LambdaConfig(container_mode=ContainerMode.NO_CONTAINER))
    return FunctionSpec(
        component_name=name, component_version="1.0.0", function_name=name.split(".")[-1],
        function_version="1", function_arn=ARN.format(name.split(".")[-1]), runtime=PY,
        handler="app.handler", code_dir=d / "code", config=config, work_dir=d / "work",
        core_env={**env, "PYTHONPATH": f"{shim_paths()[0]}:{SDK_SITE}"})


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[tuple[Messaging, FunctionManager]]:
    manager = FunctionManager()
    async with Messaging(invoker=manager) as messaging:
        try:
            yield messaging, manager
        finally:
            await manager.stop_all()


async def test_topic_triggers_v1_function_that_invokes_and_publishes(
        tmp_path: Path, stack: tuple[Messaging, FunctionManager]) -> None:
    messaging, manager = stack
    for name, code, sources in (("com.example.Pub", PUB, [("in/+", "PUB_SUB")]),
                                ("com.example.echo", ECHO, [])):
        env = messaging.add_function(component=name, function_arn=ARN.format(
            name.split(".")[-1]), sources=sources)
        fn = Function(spec(tmp_path, name, code, env))
        manager.add(fn)
        await asyncio.wait_for(fn.start(), 60)
    messaging.configure_router({"subscriptions": {"back": {
        "id": "back", "source": "component:com.example.Pub", "subject": "out/#",
        "target": "component:com.example.Listener"}}})
    results = messaging.bus.subscribe("out/#", owner="test")

    messaging.bus.publish("in/sensor1", b'{"n": 21}', source="test", json=True)

    m = await asyncio.wait_for(results.get(), 60)
    assert m.topic == "out/result" and m.source == "com.example.Pub"
    assert json.loads(m.payload) == {"subject": "in/sensor1", "echo": {"x": 42}}
    state = messaging.event_sources.get("com.example.Pub")
    assert state is not None and state.invoked == 1 and state.dropped == 0
