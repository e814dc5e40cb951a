"""A function that hears of a deployment tries to decide another component's fate.

Every component that subscribes to component updates is told each NOTIFY_COMPONENTS
deployment's id, so a hostile function learns it for free. With it, it tries to fail the
deployment by rejecting the configuration another component is validating
(``SendConfigurationValidityReport`` with ``REJECTED``, again and again through the validation
window), to stop or restart that component, and to read the deployment's status, all without an
``aws.greengrass.Cli`` policy. Each must be refused and the deployment must succeed. The test
fails if any of it works.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from sprig._tests.e2e.test_messaging_e2e import subscribe
from sprig._tests.hostile.test_configuration_attacks import sdk_function
from sprig._tests.reliability.support import invoke
from sprig.testing import CoreProcess, write_recipe

ATTACKER = '''
import threading, time
from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
from awsiot.greengrasscoreipc.model import ConfigurationValidityReport

client = GreengrassCoreIPCClientV2()
outcomes = {}
done = threading.Event()

def _try(name, call):
    try:
        call()
        outcomes.setdefault(name, []).append("ALLOWED")
    except Exception as e:
        outcomes.setdefault(name, []).append(type(e).__name__)

def attack(dep):
    _try("stop", lambda: client.stop_component(component_name="com.example.Victim"))
    _try("restart", lambda: client.restart_component(component_name="com.example.Victim"))
    _try("status", lambda: client.get_local_deployment_status(deployment_id=dep))
    end = time.monotonic() + 6
    while time.monotonic() < end:      # through the victim's validation window
        _try("reject", lambda: client.send_configuration_validity_report(
            configuration_validity_report=ConfigurationValidityReport(
                status="REJECTED", deployment_id=dep, message="the attacker says no")))
        time.sleep(0.05)
    done.set()

def on_update(event):
    if event.pre_update_event is not None:
        dep = event.pre_update_event.deployment_id
        outcomes["heard"] = dep
        client.defer_component_update(deployment_id=dep, recheck_after_ms=0)
        threading.Thread(target=attack, args=(dep,), daemon=True).start()

def handler(event, context):
    if event["action"] == "listen":
        client.subscribe_to_component_updates(on_stream_event=on_update)
        return "listening"
    done.wait(60)
    return outcomes
'''

VICTIM = '''
import sys, time
from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
from awsiot.greengrasscoreipc.model import (ConfigurationValidityReport, JsonMessage,
                                            PublishMessage)
client = GreengrassCoreIPCClientV2()

def on_validate(event):
    ev = event.validate_configuration_update_event
    time.sleep(3)                      # a careful component takes its time
    client.send_configuration_validity_report(
        configuration_validity_report=ConfigurationValidityReport(
            status="ACCEPTED", deployment_id=ev.deployment_id))

client.subscribe_to_validate_configuration_updates(on_stream_event=on_validate)
client.publish_to_topic(topic="victim/ready", publish_message=PublishMessage(
    json_message=JsonMessage(message={"ready": True})))
while True:
    time.sleep(60)
'''


def test_a_function_cannot_reject_or_stop_what_is_not_its_own(core: CoreProcess,
                                                               public_tmp: Path) -> None:
    out = public_tmp / "out"
    sdk_function(out, "Eavesdropper", ATTACKER)
    victim = public_tmp / "victim.py"
    victim.write_text(VICTIM)
    victim.chmod(0o644)
    write_recipe(out / "recipes", {
        "RecipeFormatVersion": "2020-01-25", "ComponentName": "com.example.Victim",
        "ComponentVersion": "1.0.0",
        "ComponentConfiguration": {"DefaultConfiguration": {
            "level": 1,
            "accessControl": {"aws.greengrass.ipc.pubsub": {"victim:pubsub:1": {
                "operations": ["aws.greengrass#PublishToTopic"],
                "resources": ["victim/ready"]}}}}},
        "Manifests": [{"Lifecycle": {"Run": f"exec {sys.executable} -u {victim}"}}]})
    ready = subscribe(core, "victim/ready", 1)
    first = core.deploy(recipe_dir=out / "recipes", artifact_dir=out / "artifacts",
                        merge={"Eavesdropper": "1.0.0", "com.example.Victim": "1.0.0"},
                        run_with={"com.example.Victim": {"posixUser": "root"}})
    assert first["status"] == "SUCCEEDED", first
    ready.communicate(timeout=60)
    assert invoke(core, "Eavesdropper", {"action": "listen"})["payload"] == "listening"
    victim_pid_before = core.call("component.details", {"name": "com.example.Victim"})

    second = core.deploy(configuration_update={"com.example.Victim": {"MERGE": {"level": 2}}},
                         component_update_policy={"action": "NOTIFY_COMPONENTS",
                                                  "timeoutInSeconds": 10})
    assert second["status"] == "SUCCEEDED", second
    outcomes = invoke(core, "Eavesdropper", {"action": "report"})["payload"]
    print("the eavesdropper's attempts:", json.dumps(
        {k: (sorted(set(v)), len(v)) if isinstance(v, list) else v
         for k, v in outcomes.items()}))
    assert outcomes["heard"] == second["deploymentId"], outcomes
    assert set(outcomes["stop"]) == {"UnauthorizedError"}, outcomes
    assert set(outcomes["restart"]) == {"UnauthorizedError"}, outcomes
    assert set(outcomes["status"]) == {"UnauthorizedError"}, outcomes
    assert len(outcomes["reject"]) >= 20 and set(outcomes["reject"]) == {
        "InvalidArgumentsError"}, outcomes
    details = core.call("component.details", {"name": "com.example.Victim"})
    assert details["configuration"]["level"] == 2
    assert details["state"] == "RUNNING" == victim_pid_before["state"]
