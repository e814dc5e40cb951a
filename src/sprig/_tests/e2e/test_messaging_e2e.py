"""Messaging through a real core: the Greengrass IPC v2 (awsiotsdk) from a component, the local
bus from the CLI, and an event source invoking a function."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sprig.lambda_import.importer import import_function
from sprig.lambda_import.params import ImportFlags
from sprig.testing import CoreProcess, write_recipe

pytestmark = pytest.mark.e2e

IPC_CLIENT = '''
import json, sys, time
from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
from awsiot.greengrasscoreipc.model import PublishMessage, JsonMessage
client = GreengrassCoreIPCClientV2()
greeting = client.get_configuration(key_path=["greeting"]).value["greeting"]
def on_event(event):
    msg = event.json_message.message
    client.publish_to_topic(topic="ipc/out", publish_message=PublishMessage(
        json_message=JsonMessage(message={"greeting": greeting, "got": msg})))
client.subscribe_to_topic(topic="ipc/in", on_stream_event=on_event)
client.publish_to_topic(topic="ipc/ready", publish_message=PublishMessage(
    json_message=JsonMessage(message={"ready": True})))
try:
    client.publish_to_topic(topic="forbidden/topic", publish_message=PublishMessage(
        json_message=JsonMessage(message={})))
    print("FORBIDDEN PUBLISH WAS ALLOWED", flush=True)
except Exception as e:
    print("refused:", type(e).__name__, flush=True)
while True:
    time.sleep(60)
'''


def subscribe(core: CoreProcess, topic: str, count: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "sprig", "pubsub", "subscribe", topic, "--count", str(count),
         "--root", str(core.root)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    line = proc.stderr.readline()           # "Subscribed to ..." once the subscription exists
    assert "Subscribed" in line, line
    return proc


def test_component_uses_greengrass_ipc_v2(core: CoreProcess, tmp_path: Path) -> None:
    script = tmp_path / "client.py"
    script.write_text(IPC_CLIENT)
    recipes = tmp_path / "recipes"
    write_recipe(recipes, {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": "com.example.IpcUser",
        "ComponentVersion": "1.0.0",
        "ComponentConfiguration": {"DefaultConfiguration": {
            "greeting": "hi",
            "accessControl": {"aws.greengrass.ipc.pubsub": {"com.example.IpcUser:pubsub:1": {
                "policyDescription": "its own topics",
                "operations": ["aws.greengrass#PublishToTopic",
                               "aws.greengrass#SubscribeToTopic"],
                "resources": ["ipc/*"]}}}}},
        "Manifests": [{"Lifecycle": {"Run": f"exec {sys.executable} -u {script}"}}],
    })
    ready = subscribe(core, "ipc/ready", 1)
    # The test's interpreter lives in a private home here, so this component runs as root.
    result = core.deploy(recipe_dir=recipes, merge={"com.example.IpcUser": "1.0.0"},
                         run_with={"com.example.IpcUser": {"posixUser": "root"}})
    assert result["status"] == "SUCCEEDED", result
    out, _ = ready.communicate(timeout=60)
    assert json.loads(out.split(": ", 1)[1]) == {"ready": True}
    replies = subscribe(core, "ipc/out", 1)
    subprocess.run([sys.executable, "-m", "sprig", "pubsub", "publish", "ipc/in",
                    "--payload", '{"n": 1}', "--root", str(core.root)], check=True)
    out, _ = replies.communicate(timeout=60)
    assert json.loads(out.split(": ", 1)[1]) == {"greeting": "hi", "got": {"n": 1}}
    deadline = time.monotonic() + 30
    while "refused: UnauthorizedError" not in core.log("com.example.IpcUser"):
        assert "WAS ALLOWED" not in core.log("com.example.IpcUser")
        assert time.monotonic() < deadline, core.log("com.example.IpcUser")
        time.sleep(0.05)


def test_pubsub_event_source_invokes_a_function(core: CoreProcess, tmp_path: Path,
                                                shared_dir: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "app.py").write_text(
        "import json\n"
        f"OUT = {str(shared_dir / 'events.jsonl')!r}\n"
        "def handler(event, context):\n"
        "    with open(OUT, 'a') as f:\n"
        "        topic = context.client_context.custom['subject']\n"
        "        f.write(json.dumps({'event': event, 'topic': topic}) + '\\n')\n")
    out = tmp_path / "out"
    import_function(code, out, ImportFlags(
        name="OnEvent", runtime="python3.11", handler="app.handler", pinned=True,
        isolation="NoContainer", event_sources=("sensors/+/temp:PUB_SUB",)))
    result = core.deploy(recipe_dir=out / "recipes", artifact_dir=out / "artifacts",
                         merge={"OnEvent": "1.0.0"})
    assert result["status"] == "SUCCEEDED", result
    for room, value in (("kitchen", 21), ("garage", 9)):
        core.call("pubsub.publish", {"topic": f"sensors/{room}/temp",
                                     "payload": __import__("base64").b64encode(
                                         json.dumps({"c": value}).encode()).decode()})
    core.call("pubsub.publish", {"topic": "sensors/kitchen/humidity", "payload": "e30="})
    events_file = shared_dir / "events.jsonl"
    deadline = time.monotonic() + 30
    events: list[Any] = []
    while len(events) < 2:
        assert time.monotonic() < deadline, events
        time.sleep(0.05)
        if events_file.exists():
            events = [json.loads(line) for line in events_file.read_text().splitlines()]
    assert events == [{"event": {"c": 21}, "topic": "sensors/kitchen/temp"},
                      {"event": {"c": 9}, "topic": "sensors/garage/temp"}]


FUNCTION_USING_IPC = '''
import json
from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
from awsiot.greengrasscoreipc.model import PublishMessage, JsonMessage
client = GreengrassCoreIPCClientV2()

def handler(event, context):
    client.publish_to_topic(topic="fn/ipc", publish_message=PublishMessage(
        json_message=JsonMessage(message={"from": context.function_name, "event": event})))
    return {"published": True}
'''


@pytest.mark.parametrize("isolation", ["GreengrassContainer", "NoContainer"])
def test_function_uses_greengrass_ipc_v2(core: CoreProcess, tmp_path: Path,
                                         isolation: str) -> None:
    import awscrt
    import awsiot

    code = tmp_path / "code"
    code.mkdir()
    (code / "app.py").write_text(FUNCTION_USING_IPC)
    # Bundle the SDK with the function, as a user's deployment package would.
    import shutil

    for module in (awsiot, awscrt):
        shutil.copytree(Path(module.__file__).parent, code / module.__name__)
    for so in Path(awscrt.__file__).parent.parent.glob("_awscrt*.so"):
        shutil.copy(so, code / so.name)
    out = tmp_path / "out"
    name = f"IpcFn{isolation[:2]}"
    import_function(code, out, ImportFlags(name=name, runtime="python3.11", handler="app.handler",
                                           pinned=True, isolation=isolation, memory_kb="262144",
                                           timeout="20"))
    policy = {"aws.greengrass.ipc.pubsub": {f"{name}:pubsub:1": {
        "policyDescription": "publish", "operations": ["aws.greengrass#PublishToTopic"],
        "resources": ["fn/ipc"]}}}
    result = core.deploy(recipe_dir=out / "recipes", artifact_dir=out / "artifacts",
                         merge={name: "1.0.0"},
                         configuration_update={name: {"MERGE": {"accessControl": policy}}})
    assert result["status"] == "SUCCEEDED", result
    sub = subscribe(core, "fn/ipc", 1)
    reply = subprocess.run([sys.executable, "-m", "sprig", "invoke", name, "--payload", '{"x": 1}',
                            "--root", str(core.root)], capture_output=True, text=True, timeout=60)
    assert reply.returncode == 0, (reply.stdout, reply.stderr, core.log(name)[-3000:])
    out_text, _ = sub.communicate(timeout=60)
    assert json.loads(out_text.split(": ", 1)[1]) == {"from": name, "event": {"x": 1}}
