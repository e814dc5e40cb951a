"""The unmodified Greengrass Core SDK v1 (``greengrasssdk`` from PyPI and
``aws-greengrass-core-sdk`` from npm) calling ``GGShadowService`` through Sprig's shims and
V1 IPC server, against the real shadow service on a real ``state.db``.

Sources: the SDK's ``IoTDataPlane._shadow_op`` (RequestResponse to ``SHADOW_FUNCTION_ARN`` with
``custom.subject`` ``$aws/things/<thing>/shadow/<get|update|delete>``; a result with ``code`` and
``message`` raises ``ShadowError``); Greengrass V1 subscriptions name the local shadow service
``GGShadowService`` as a target of requests and a source of ``…/accepted``, ``…/delta``,
``…/documents`` messages ("Configure subscriptions": Local Shadow Service → Lambda on
``$aws/things/GG_TrafficLight/shadow/update/documents``).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import greengrasssdk
import pytest

from sprig.functions.errors import FunctionNotFound
from sprig.functions.invocation import Invocation, InvocationResult
from sprig.pubsub.bus import Bus
from sprig.sdk_ipc.env import sdk_env, shim_paths
from sprig.sdk_ipc.server import SdkIpcServer
from sprig.shadow.service import ShadowService
from sprig.state.db import StateDB

ME = "arn:aws:lambda:us-east-1:123456789012:function:messageLambda:1"
TOKEN = "tok-message"
SDK_SITE = Path(greengrasssdk.__file__).resolve().parent.parent
NODE = shutil.which("node")
NODE_COMPAT = Path(__file__).resolve().parents[4] / ".compat" / "node" / "node_modules"

PY_CALL = """
import json, sys
import greengrasssdk
from greengrasssdk.IoTDataPlane import ShadowError
client = greengrasssdk.client('iot-data')
op, thing, payload = sys.argv[1], sys.argv[2], sys.argv[3]
try:
    if op == 'update':
        r = client.update_thing_shadow(thingName=thing, payload=payload)
    elif op == 'get':
        r = client.get_thing_shadow(thingName=thing)
    else:
        r = client.delete_thing_shadow(thingName=thing)
    print(json.dumps({'payload': json.loads(r['payload'] or b'null')}))
except ShadowError as e:
    print(json.dumps({'ShadowError': str(e)}))
"""


class NoFunctions:
    async def invoke(self, function: str, invocation: Invocation, *,
                     want_log_tail: bool = False) -> InvocationResult:
        raise FunctionNotFound(function)


class Cloud:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []
        self.changed = asyncio.Condition()

    async def publish(self, topic: str, payload: bytes, qos: int = 0) -> None:
        async with self.changed:
            self.sent.append((topic, payload))
            self.changed.notify_all()


@dataclass
class Stack:
    server: SdkIpcServer
    service: ShadowService
    cloud: Cloud

    def subscribe(self, subs: dict[str, tuple[str, str, str]]) -> None:
        self.server.set_subscriptions({k: {"id": k, "source": s, "subject": t, "target": d}
                                       for k, (s, t, d) in subs.items()})

    async def python(self, op: str, thing: str, payload: str = "") -> dict[str, Any]:
        env = dict(os.environ, PYTHONPATH=f"{shim_paths()[0]}:{SDK_SITE}",
                   **sdk_env(ME, TOKEN, self.server.port))
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", PY_CALL, op, thing, payload, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
        return result


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    db = StateDB(tmp_path / "state.db")
    cloud = Cloud()
    async with Bus() as bus:
        service = ShadowService(db, bus)
        service.start()
        server = SdkIpcServer(invoker=NoFunctions(), bus=bus, cloud=cloud,
                              shadows=lambda: service)
        await server.start()
        server.register_function(ME, TOKEN, "messageLambda")
        try:
            yield Stack(server, service, cloud)
        finally:
            await server.aclose()
            service.close()
            db.close()


async def test_python_sdk_update_get_delete(stack: Stack) -> None:
    """update_thing_shadow / get_thing_shadow / delete_thing_shadow unmodified, allowed by a
    subscription from the function to GGShadowService (as in Greengrass V1); the shadow
    service's accepted message goes to a GGShadowService-sourced subscription's target."""
    stack.subscribe({
        "req": (ME, "$aws/things/RobotArm_Thing/shadow/#", "GGShadowService"),
        "up": ("GGShadowService", "$aws/things/RobotArm_Thing/shadow/update/accepted", "cloud")})
    r = await stack.python("update", "RobotArm_Thing", '{"state":{"desired":{"myState":"on"}}}')
    assert r["payload"]["state"] == {"desired": {"myState": "on"}}
    assert r["payload"]["version"] == 1
    got = await stack.python("get", "RobotArm_Thing")
    assert got["payload"]["state"] == {"desired": {"myState": "on"}, "delta": {"myState": "on"}}
    async with stack.cloud.changed:
        await asyncio.wait_for(stack.cloud.changed.wait_for(lambda: stack.cloud.sent), 10)
    topic, payload = stack.cloud.sent[0]
    assert topic == "$aws/things/RobotArm_Thing/shadow/update/accepted"
    assert json.loads(payload)["version"] == 1
    gone = await stack.python("delete", "RobotArm_Thing")
    assert gone["payload"]["version"] == 1
    missing = await stack.python("get", "RobotArm_Thing")
    assert "error code 404" in missing["ShadowError"]
    assert "No shadow exists with name: Unnamed Shadow" in missing["ShadowError"]


async def test_python_sdk_errors(stack: Stack) -> None:
    """Bad documents come back as ShadowError with AWS's code and words; without a
    subscription to GGShadowService (nor a ShadowManager policy) the call is refused 401."""
    stack.subscribe({"req": (ME, "$aws/things/Mine/shadow/#", "GGShadowService")})
    bad = await stack.python("update", "Mine", '{"state": 5}')
    assert "error code 400" in bad["ShadowError"]
    assert "State node must be an object" in bad["ShadowError"]
    denied = await stack.python("update", "Theirs", '{"state":{"reported":{"a":1}}}')
    assert "error code 401" in denied["ShadowError"] and "Unauthorized" in denied["ShadowError"]
    assert stack.service.document("Theirs") is None


@pytest.mark.skipif(NODE is None or not (NODE_COMPAT / "aws-greengrass-core-sdk").is_dir(),
                    reason="node or aws-greengrass-core-sdk (scripts/setup-compat) is missing")
async def test_node_sdk_update_and_get(stack: Stack) -> None:
    """aws-greengrass-core-sdk's IotData.updateThingShadow / getThingShadow, unmodified."""
    assert NODE is not None
    stack.subscribe({"req": (ME, "$aws/things/+/shadow/#", "GGShadowService")})
    script = """
const gg = require('aws-greengrass-core-sdk');
const iot = new gg.IotData();
iot.updateThingShadow({thingName: 'NodeThing', payload: '{"state":{"reported":{"js":1}}}'},
  (err, up) => {
    if (err) { console.log(JSON.stringify({err: err.message})); return; }
    iot.getThingShadow({thingName: 'NodeThing'}, (err2, got) => {
      console.log(JSON.stringify({up: JSON.parse(up.Payload), got: err2 ? err2.message
                                  : JSON.parse(got.Payload)}));
    });
  });
"""
    env = dict(os.environ, NODE_PATH=f"{shim_paths()[1]}:{NODE_COMPAT}",
               **sdk_env(ME, TOKEN, stack.server.port))
    proc = await asyncio.create_subprocess_exec(
        NODE, "-e", script, env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    result = json.loads(out.decode().strip().splitlines()[-1])
    assert result["up"]["version"] == 1, result
    assert result["got"]["state"] == {"reported": {"js": 1}}
