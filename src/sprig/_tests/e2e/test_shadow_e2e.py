"""Device shadows through a real core, as a new user tries them: a Greengrass Core SDK v1
function (the shape of the SDK's ``messageLambda.py`` example) updates a shadow through
``GGShadowService``; a V2 component reads it with awsiotsdk's ``GetThingShadow`` when the
``update/accepted`` message arrives on the local bus; ``sprig shadow get`` shows it; awsiotsdk
shadow operations work from functions in both container modes; an acknowledged update survives
``kill -9`` of the core."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import greengrasssdk
import pytest

from sprig._tests.e2e.test_messaging_e2e import subscribe
from sprig.lambda_import.importer import import_function
from sprig.lambda_import.params import ImportFlags
from sprig.testing import CoreProcess, write_recipe

pytestmark = pytest.mark.e2e

SHADOW_MANAGER = {"aws.greengrass.ShadowManager": "2.3.12"}

# The calls of the Greengrass Core SDK example "Storyline_MessageLambda/messageLambda.py".
MESSAGE_LAMBDA = '''
import logging, sys
import greengrasssdk
logger = logging.getLogger(__name__)
logging.basicConfig(stream=sys.stdout, level=logging.DEBUG)
client = greengrasssdk.client("iot-data")

def message_handler(event, context):
    if "state" in event:
        if event["state"] == "on":
            client.update_thing_shadow(thingName="RobotArm_Thing",
                                       payload='{"state":{"desired":{"myState":"on"}}}')
        elif event["state"] == "off":
            client.update_thing_shadow(thingName="RobotArm_Thing",
                                       payload='{"state":{"desired":{"myState":"off"}}}')
'''

READER = '''
import json, time
from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
from awsiot.greengrasscoreipc.model import PublishMessage, JsonMessage
client = GreengrassCoreIPCClientV2()
def on_event(event):
    doc = json.loads(client.get_thing_shadow(thing_name="RobotArm_Thing").payload)
    client.publish_to_topic(topic="shadow/seen", publish_message=PublishMessage(
        json_message=JsonMessage(message=doc["state"])))
client.subscribe_to_topic(topic="$aws/things/RobotArm_Thing/shadow/update/accepted",
                          on_stream_event=on_event)
client.publish_to_topic(topic="shadow/ready", publish_message=PublishMessage(
    json_message=JsonMessage(message={"ready": True})))
while True:
    time.sleep(60)
'''


def cli(core: CoreProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sprig", *args, "--root", str(core.root)],
                          capture_output=True, text=True, timeout=60)


def test_v1_function_updates_v2_component_reads_cli_shows(core: CoreProcess,
                                                           tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "messageLambda.py").write_text(MESSAGE_LAMBDA)
    shutil.copytree(Path(greengrasssdk.__file__).parent, code / "greengrasssdk")
    out = tmp_path / "out"
    import_function(code, out, ImportFlags(name="MessageLambda", runtime="python3.11",
                                           handler="messageLambda.message_handler",
                                           pinned=False, timeout="20"))
    script = tmp_path / "reader.py"
    script.write_text(READER)
    write_recipe(out / "recipes", {
        "RecipeFormatVersion": "2020-01-25", "ComponentName": "com.example.ShadowReader",
        "ComponentVersion": "1.0.0",
        "ComponentDependencies": {"aws.greengrass.ShadowManager": {
            "VersionRequirement": ">=2.0.0", "DependencyType": "HARD"}},
        "ComponentConfiguration": {"DefaultConfiguration": {"accessControl": {
            "aws.greengrass.ShadowManager": {"reader:shadow:1": {
                "operations": ["aws.greengrass#GetThingShadow"],
                "resources": ["$aws/things/RobotArm_Thing/shadow"]}},
            "aws.greengrass.ipc.pubsub": {"reader:pubsub:1": {
                "operations": ["aws.greengrass#SubscribeToTopic",
                               "aws.greengrass#PublishToTopic"],
                "resources": ["$aws/things/RobotArm_Thing/shadow/update/accepted",
                              "shadow/*"]}}}}},
        "Manifests": [{"Lifecycle": {"Run": f"exec {sys.executable} -u {script}"}}]})
    routes = {"subscriptions": {"toShadow": {
        "id": "toShadow", "source": "component:MessageLambda",
        "subject": "$aws/things/RobotArm_Thing/shadow/update", "target": "GGShadowService"}}}
    ready = subscribe(core, "shadow/ready", 1)
    result = core.deploy(
        recipe_dir=out / "recipes", artifact_dir=out / "artifacts",
        merge={**SHADOW_MANAGER, "aws.greengrass.LegacySubscriptionRouter": "2.1.8",
               "MessageLambda": "1.0.0", "com.example.ShadowReader": "1.0.0"},
        configuration_update={"aws.greengrass.LegacySubscriptionRouter": {"MERGE": routes}},
        run_with={"com.example.ShadowReader": {"posixUser": "root"}})
    assert result["status"] == "SUCCEEDED", result
    ready.communicate(timeout=60)
    seen = subscribe(core, "shadow/seen", 1)
    invoked = cli(core, "invoke", "MessageLambda", "--payload", '{"state": "on"}')
    assert invoked.returncode == 0, (invoked.stderr, core.log("MessageLambda")[-2000:])
    text, _ = seen.communicate(timeout=60)
    assert json.loads(text.split(": ", 1)[1]) == {"desired": {"myState": "on"},
                                                  "delta": {"myState": "on"}}
    shown = cli(core, "shadow", "get", "RobotArm_Thing")
    assert shown.returncode == 0, shown.stderr
    doc = json.loads(shown.stdout)
    assert doc["state"]["desired"] == {"myState": "on"} and doc["version"] == 1
    missing = cli(core, "shadow", "get", "RobotArm_Thing", "--name", "nope")
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr.strip().count("\n") == 0
    assert "404 No shadow exists with name: nope" in missing.stderr
    bad = cli(core, "shadow", "get", "bad/thing")
    assert bad.returncode == 1 and "ThingName must match pattern" in bad.stderr


FUNCTION_SHADOW_IPC = '''
import json
from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
client = GreengrassCoreIPCClientV2()

def handler(event, context):
    up = client.update_thing_shadow(thing_name="FnThing", shadow_name=event["name"],
                                    payload=json.dumps({"state": {"reported": event}}).encode())
    got = client.get_thing_shadow(thing_name="FnThing", shadow_name=event["name"])
    names = client.list_named_shadows_for_thing(thing_name="FnThing").results
    return {"version": json.loads(up.payload)["version"],
            "state": json.loads(got.payload)["state"], "names": names}
'''


@pytest.mark.parametrize("isolation", ["GreengrassContainer", "NoContainer"])
def test_function_uses_shadow_ipc(core: CoreProcess, tmp_path: Path, isolation: str) -> None:
    import awscrt
    import awsiot

    code = tmp_path / "code"
    code.mkdir()
    (code / "app.py").write_text(FUNCTION_SHADOW_IPC)
    for module in (awsiot, awscrt):
        shutil.copytree(Path(module.__file__).parent, code / module.__name__)
    for so in Path(awscrt.__file__).parent.parent.glob("_awscrt*.so"):
        shutil.copy(so, code / so.name)
    out = tmp_path / "out"
    name = f"ShadowFn{isolation[:2]}"
    import_function(code, out, ImportFlags(name=name, runtime="python3.11", handler="app.handler",
                                           pinned=True, isolation=isolation, memory_kb="262144",
                                           timeout="20"))
    policy = {"aws.greengrass.ShadowManager": {f"{name}:shadow:1": {
        "operations": ["*"], "resources": ["$aws/things/FnThing/shadow/name/*", "FnThing"]}}}
    result = core.deploy(recipe_dir=out / "recipes", artifact_dir=out / "artifacts",
                         merge={**SHADOW_MANAGER, name: "1.0.0"},
                         configuration_update={name: {"MERGE": {"accessControl": policy}}})
    assert result["status"] == "SUCCEEDED", result
    reply = cli(core, "invoke", name, "--payload", json.dumps({"name": isolation, "n": 7}))
    assert reply.returncode == 0, (reply.stdout, reply.stderr, core.log(name)[-3000:])
    answer = json.loads(reply.stdout)
    assert answer == {"version": 1, "state": {"reported": {"name": isolation, "n": 7}},
                      "names": [isolation]}


WRITER = '''
import json, os, sys
from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
if os.path.exists(sys.argv[2]):
    raise SystemExit(0)            # the test is over: do not write again after the restart
client = GreengrassCoreIPCClientV2()
acks = open(sys.argv[1], "w")
i = 0
while True:
    i += 1
    client.update_thing_shadow(thing_name="Durable",
                               payload=json.dumps({"state": {"reported": {"n": i}}}).encode())
    acks.write(f"{i}\\n")          # acknowledged by the core: it must survive kill -9
    acks.flush()
'''


def test_acknowledged_updates_survive_kill_9(core: CoreProcess, tmp_path: Path,
                                             shared_dir: Path) -> None:
    """A component updates a shadow as fast as it can, noting each acknowledged version in a
    FIFO; the core is SIGKILLed mid-stream; after a restart the shadow holds at least the last
    acknowledged update (WAL + synchronous=FULL, committed before the answer)."""
    fifo = shared_dir / "acks"
    os.mkfifo(fifo)
    done = shared_dir / "done"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    recipes = tmp_path / "recipes"
    write_recipe(recipes, {
        "RecipeFormatVersion": "2020-01-25", "ComponentName": "com.example.Writer",
        "ComponentVersion": "1.0.0",
        "ComponentConfiguration": {"DefaultConfiguration": {"accessControl": {
            "aws.greengrass.ShadowManager": {"w:1": {
                "operations": ["aws.greengrass#UpdateThingShadow"],
                "resources": ["$aws/things/Durable/shadow"]}}}}},
        "Manifests": [{"Lifecycle": {"Run": f"exec {sys.executable} -u {script} {fifo} {done}"}}]})
    acked: list[int] = []
    reading = threading.Event()

    def read() -> None:
        with open(fifo) as f:
            reading.set()
            for line in f:
                acked.append(int(line))
                if len(acked) == 200:
                    core.kill()         # mid-stream: the writer is still updating
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    result = core.deploy(recipe_dir=recipes, merge={**SHADOW_MANAGER,
                                                    "com.example.Writer": "1.0.0"},
                         run_with={"com.example.Writer": {"posixUser": "root"}}, wait=False,
                         configuration_update={"aws.greengrass.ShadowManager": {"MERGE": {
                             "rateLimits": {"maxLocalRequestsPerSecondPerThing": 100000,
                                            "maxTotalLocalRequestsRate": 100000}}}})
    assert result["status"] in ("QUEUED", "IN_PROGRESS", "SUCCEEDED"), result
    reader.join(120)
    assert not reader.is_alive() and len(acked) >= 200, (len(acked), core.output())
    done.touch()
    core.start()
    doc: dict[str, Any] = core.call("shadow.get", {"thing": "Durable"})
    assert doc["state"]["reported"]["n"] >= acked[-1]
    assert doc["version"] == doc["state"]["reported"]["n"]


async def test_with_a_broker_the_shadow_reaches_the_broker_topics(public_tmp: Path) -> None:
    """config.yaml names a broker and ShadowManager's synchronize.coreThing is set: a local
    update shows up on the broker's shadow topics (answered by a test shadow service written
    from AWS's MQTT API), and a cloud app's update comes back to the local shadow."""
    import asyncio

    from sprig.mqtt.mosquitto import Mosquitto
    from sprig.shadow._tests.cloud_shadow import CloudShadows

    if shutil.which("mosquitto") is None:
        pytest.skip("the mosquitto broker is not installed")
    async with Mosquitto(public_tmp / "broker") as broker, CloudShadows(broker.port) as cloud:
        core = CoreProcess(public_tmp / "root", config={
            "thingName": "CoreThing", "mqtt": {"host": "127.0.0.1", "port": broker.port}})
        await asyncio.to_thread(core.start)
        try:
            result = await asyncio.to_thread(
                core.deploy, merge=SHADOW_MANAGER, configuration_update={
                    "aws.greengrass.ShadowManager": {"MERGE": {"synchronize": {
                        "coreThing": {"classic": True, "namedShadows": ["settings"]}}}}})
            assert result["status"] == "SUCCEEDED", result
            await asyncio.to_thread(core.call, "pubsub.publish", {
                "topic": "$aws/things/CoreThing/shadow/update", "payload": __import__(
                    "base64").b64encode(b'{"state":{"reported":{"uptime":42}}}').decode()})
            await cloud.wait_for(lambda: cloud.docs.get(("CoreThing", "")) ==
                                 {"reported": {"uptime": 42}})
            back = await asyncio.to_thread(
                subscribe, core, "$aws/things/CoreThing/shadow/name/settings/update/accepted", 1)
            await cloud.app_update("CoreThing", "settings", {"desired": {"led": "blue"}})
            await asyncio.to_thread(back.communicate, timeout=60)
            doc = await asyncio.to_thread(core.call, "shadow.get",
                                          {"thing": "CoreThing", "name": "settings"})
            assert doc["state"]["desired"] == {"led": "blue"}
        finally:
            await asyncio.to_thread(core.stop)


def test_bad_shadow_manager_configuration_fails_the_deployment(core: CoreProcess) -> None:
    """A configuration Sprig cannot honour is refused when the deployment is created, naming
    the field, the value and what is allowed; nothing is deployed."""
    from sprig.cli.client import ManagementApiError

    with pytest.raises(ManagementApiError) as info:
        core.deploy(merge=SHADOW_MANAGER, configuration_update={
            "aws.greengrass.ShadowManager": {"MERGE": {"synchronize": {
                "direction": "sideways"}}}})
    assert "synchronize.direction: unknown direction (got 'sideways'); allowed: " \
           "betweenDeviceAndCloud, deviceToCloud, cloudToDevice" in str(info.value)
    assert "aws.greengrass.ShadowManager" not in core.states()
