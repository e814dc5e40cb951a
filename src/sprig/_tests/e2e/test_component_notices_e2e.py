"""A running component has its say before a deployment changes things, through awsiotsdk on a
real core: it defers an update (``SubscribeToComponentUpdates`` / ``DeferComponentUpdate``,
with ``componentUpdatePolicy`` NOTIFY_COMPONENTS) and rejects a configuration it cannot use
(``SubscribeToValidateConfigurationUpdates`` / ``SendConfigurationValidityReport``), which fails
the deployment with nothing changed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from sprig._tests.e2e.test_core_components import _wait_for
from sprig._tests.e2e.test_messaging_e2e import subscribe
from sprig.testing import CoreProcess, write_recipe

pytestmark = pytest.mark.e2e

CAREFUL = '''
import sys, time
from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
from awsiot.greengrasscoreipc.model import (ConfigurationValidityReport, JsonMessage,
                                            PublishMessage)
client = GreengrassCoreIPCClientV2()
OUT = sys.argv[1]
deferred = set()

def note(text):
    with open(OUT, "a") as f:
        f.write(f"{time.time():.3f} {text}\\n")

def on_update(event):
    if event.pre_update_event is not None:
        d = event.pre_update_event.deployment_id
        note(f"pre {d}")
        if d not in deferred:         # first notice: not now, ask again in 1.5 s
            deferred.add(d)
            client.defer_component_update(deployment_id=d, message="finishing a batch",
                                          recheck_after_ms=1500)
        else:
            client.defer_component_update(deployment_id=d, recheck_after_ms=0)
    elif event.post_update_event is not None:
        note(f"post {event.post_update_event.deployment_id}")

def on_validate(event):
    ev = event.validate_configuration_update_event
    threshold = ev.configuration.get("threshold", 0)
    note(f"validate {ev.deployment_id} {threshold}")
    ok = threshold <= 100
    client.send_configuration_validity_report(
        configuration_validity_report=ConfigurationValidityReport(
            status="ACCEPTED" if ok else "REJECTED", deployment_id=ev.deployment_id,
            message=None if ok else f"threshold {threshold} is over 100"))

client.subscribe_to_component_updates(on_stream_event=on_update)
client.subscribe_to_validate_configuration_updates(on_stream_event=on_validate)
client.publish_to_topic(topic="notices/ready", publish_message=PublishMessage(
    json_message=JsonMessage(message={"ready": True})))
while True:
    time.sleep(60)
'''

NEXT = "import sys, time; open(sys.argv[1], 'a').write(f'{time.time():.3f} next started\\n')"


def _lines(out: Path) -> list[tuple[float, str]]:
    return [(float(t), text) for t, _, text in
            (line.partition(" ") for line in out.read_text().splitlines())]


def test_a_component_defers_an_update_and_rejects_a_configuration(
        core: CoreProcess, tmp_path: Path) -> None:
    out = tmp_path / "notes.txt"
    out.touch()
    careful, nxt = tmp_path / "careful.py", tmp_path / "next.py"
    careful.write_text(CAREFUL)
    nxt.write_text(NEXT)
    recipes = tmp_path / "recipes"
    write_recipe(recipes, {
        "RecipeFormatVersion": "2020-01-25", "ComponentName": "com.example.Careful",
        "ComponentVersion": "1.0.0",
        "ComponentConfiguration": {"DefaultConfiguration": {
            "threshold": 10,
            "accessControl": {"aws.greengrass.ipc.pubsub": {"careful:pubsub:1": {
                "operations": ["aws.greengrass#PublishToTopic"],
                "resources": ["notices/ready"]}}}}},
        "Manifests": [{"Lifecycle": {"Run": f"exec {sys.executable} -u {careful} {out}"}}]})
    write_recipe(recipes, {
        "RecipeFormatVersion": "2020-01-25", "ComponentName": "com.example.Next",
        "ComponentVersion": "1.0.0",
        "Manifests": [{"Lifecycle": {"Run": f"{sys.executable} {nxt} {out}; exec sleep 3600"}}]})
    root = {"com.example.Careful": {"posixUser": "root"}, "com.example.Next":
            {"posixUser": "root"}}
    ready = subscribe(core, "notices/ready", 1)
    first = core.deploy(recipe_dir=recipes, merge={"com.example.Careful": "1.0.0"},
                        run_with={"com.example.Careful": root["com.example.Careful"]})
    assert first["status"] == "SUCCEEDED", first
    ready.communicate(timeout=60)

    # NOTIFY_COMPONENTS: asked, deferred 1.5 s, asked again, then the update, then told.
    second = core.deploy(recipe_dir=recipes, merge={"com.example.Next": "1.0.0"},
                         run_with={"com.example.Next": root["com.example.Next"]},
                         component_update_policy={"action": "NOTIFY_COMPONENTS",
                                                  "timeoutInSeconds": 30})
    assert second["status"] == "SUCCEEDED", second
    dep = second["deploymentId"]
    # The postUpdateEvent goes out as the deployment ends; the component writes it a moment later.
    _wait_for(lambda: f"post {dep}" in out.read_text())
    notes = _lines(out)
    texts = [t for _, t in notes]
    assert texts[:2] == [f"pre {dep}", f"pre {dep}"], texts
    assert "next started" in texts and f"post {dep}" in texts, texts
    assert texts.index("next started") > 1, texts        # only after the second notice
    assert notes[1][0] - notes[0][0] >= 1.4, notes        # the deferral was honoured
    core_log = core.layout.core_log.read_text()
    assert "deferred the update by 1500 ms (finishing a batch)" in core_log

    # A local deployment skips the notice, as Greengrass's local deployments do.
    third = core.deploy(remove=["com.example.Next"])
    assert third["status"] == "SUCCEEDED", third
    assert f"pre {third['deploymentId']}" not in out.read_text()

    # A configuration the running component rejects fails the deployment, nothing changed.
    before = core.call("component.details", {"name": "com.example.Careful"})["configuration"]
    rejected = core.deploy(configuration_update={"com.example.Careful": {
        "MERGE": {"threshold": 500}}})
    assert rejected["status"] == "FAILED", rejected
    assert "threshold 500 is over 100" in rejected["reason"], rejected
    assert "COMPONENT_CONFIGURATION_NOT_VALID" in rejected["reason"], rejected
    assert core.call("component.details",
                     {"name": "com.example.Careful"})["configuration"] == before
    accepted = core.deploy(configuration_update={"com.example.Careful": {
        "MERGE": {"threshold": 50}}})
    assert accepted["status"] == "SUCCEEDED", accepted
    assert core.call("component.details", {"name": "com.example.Careful"})[
        "configuration"]["threshold"] == 50
    assert f"validate {accepted['deploymentId']} 50" in out.read_text()
