"""Attacks on a fleet device, performed for real against a real core joined to a real broker
and a real S3 endpoint. Whoever can publish on the broker is the attacker here: each test
sends what a device must refuse and checks that nothing changed.

The rule (DESIGN.md, trust boundaries): another device or the broker may deliver deployments
only under the configured topic prefix and thing groups, and never an artifact whose digest
does not match.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sprig.testing import CoreProcess, write_recipe
from sprig.testing.fleet import BUCKET, Fleet, MotoServer, ThreadBroker, Watcher, moto

if shutil.which("mosquitto") is None:
    pytest.skip("the mosquitto broker is not installed (Debian package mosquitto)",
                allow_module_level=True)

ARN = "arn:aws:greengrass:us-east-1:000000000000:configuration:{target}:1"


@pytest.fixture
def device(public_tmp: Path) -> Iterator[tuple[Fleet, CoreProcess, MotoServer]]:
    broker = ThreadBroker(public_tmp / "broker", persistent=False).start()
    try:
        with moto(public_tmp) as s3:
            fleet = Fleet(public_tmp, broker.port, s3.url)
            try:        # a core that started is stopped whatever fails after
                core = fleet.add("victim", ["line-1"])
                recipes = public_tmp / "recipes"
                write_recipe(recipes, {"RecipeFormatVersion": "2020-01-25",
                                       "ComponentName": "com.example.Evil",
                                       "ComponentVersion": "1.0.0",
                                       "Manifests": [{"Lifecycle": {"Run": "sleep 600"}}]})
                assert fleet.sprig("publish", "--recipe-dir", str(recipes)).returncode == 0
                yield fleet, core, s3
            finally:
                fleet.stop_all()
    finally:
        broker.close()


def send(fleet: Fleet, topic: str, doc: dict[str, Any], job: str) -> dict[str, Any] | None:
    """Publish an execution on ``topic``, then a marker execution the device surely answers
    (REJECTED: not its group) on its own topic; the last answer for ``job`` seen before the
    marker's (the device takes executions one at a time, in order), or None when the device
    said nothing about it."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    watcher = Watcher(fleet.broker_port, "#")
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="attacker")
    client.connect("127.0.0.1", fleet.broker_port)
    client.loop_start()
    marker = {"deploymentId": "marker", "creationTimestamp": 1,
              "configurationArn": ARN.format(target="thinggroup/not-mine"), "components": {}}
    try:
        client.publish(topic, json.dumps({"execution": {
            "jobId": job, "status": "QUEUED", "jobDocument": doc}}), qos=1).wait_for_publish(10)
        client.publish("sprig/things/victim/jobs/thinggroup/not-mine/notify", json.dumps(
            {"execution": {"jobId": "marker", "status": "QUEUED", "jobDocument": marker}}),
            qos=1).wait_for_publish(10)

        def answered(msgs: list[Any]) -> bool:
            return any(m.topic.endswith("/update") and b'"marker"' in m.payload for m in msgs)

        assert watcher.wait(answered, 60), "the device answered nothing at all"
        answer: dict[str, Any] | None = None
        for m in watcher.messages:
            if m.topic.endswith("/update") and m.payload and json.loads(m.payload).get(
                    "jobId") == job:
                answer = json.loads(m.payload)
        return answer
    finally:
        client.loop_stop()
        client.disconnect()
        watcher.close()


def doc(target: str, job: str, **components: str) -> dict[str, Any]:
    return {"deploymentId": job, "creationTimestamp": 10, "configurationArn":
            ARN.format(target=target), "components": {n: {"version": v}
                                                       for n, v in components.items()}}


def names(core: CoreProcess) -> set[str]:
    return {c["name"] for c in core.call("component.list")}


def test_a_deployment_for_a_group_the_device_is_not_in_is_rejected(
        device: tuple[Fleet, CoreProcess, MotoServer]) -> None:
    fleet, core, _ = device
    answer = send(fleet, "sprig/things/victim/jobs/thinggroup/other/notify",
                  doc("thinggroup/other", "g1", **{"com.example.Evil": "1.0.0"}), "g1")
    assert answer is not None and answer["status"] == "REJECTED"
    assert "not in thing group other" in answer["statusDetails"]["deployment-failure-cause"]
    assert "com.example.Evil" not in names(core)


def test_a_document_for_another_target_smuggled_on_the_groups_topic_is_rejected(
        device: tuple[Fleet, CoreProcess, MotoServer]) -> None:
    fleet, core, _ = device
    for job, target in (("s1", "thinggroup/other"), ("s2", "thing/someone-else")):
        answer = send(fleet, "sprig/things/victim/jobs/thinggroup/line-1/notify",
                      doc(target, job, **{"com.example.Evil": "1.0.0"}), job)
        assert answer is not None and answer["status"] == "REJECTED", answer
    answer = send(fleet, "sprig/things/victim/jobs/thing/someone-else/notify",
                  doc("thing/someone-else", "s3", **{"com.example.Evil": "1.0.0"}), "s3")
    assert answer is not None and answer["status"] == "REJECTED"
    assert "com.example.Evil" not in names(core)


def test_a_deployment_under_another_prefix_never_reaches_the_device(
        device: tuple[Fleet, CoreProcess, MotoServer]) -> None:
    fleet, core, _ = device
    answer = send(fleet, "other-fleet/things/victim/jobs/thinggroup/line-1/notify",
                  doc("thinggroup/line-1", "p1", **{"com.example.Evil": "1.0.0"}), "p1")
    assert answer is None
    assert "com.example.Evil" not in names(core)


def test_a_store_recipe_that_walks_out_of_the_download_directory_is_refused(
        device: tuple[Fleet, CoreProcess, MotoServer]) -> None:
    fleet, core, s3 = device
    evil = {"RecipeFormatVersion": "2020-01-25", "ComponentName": "com.example.Walk",
            "ComponentVersion": "1.0.0",
            "ComponentDependencies": {"../../../../tmp/sprig-pwned": {
                "VersionRequirement": "1.0.0"}},
            "Manifests": [{"Lifecycle": {"Run": "sleep 600"}, "Artifacts": [
                {"URI": f"s3://{BUCKET}/store/../../x/..", "Digest": "AAAA"}]}]}
    s3.client().put_object(Bucket=BUCKET, Key="store/recipes/com.example.Walk/1.0.0.json",
                           Body=json.dumps(evil).encode())
    answer = send(fleet, "sprig/things/victim/jobs/thinggroup/line-1/notify",
                  doc("thinggroup/line-1", "w1", **{"com.example.Walk": "1.0.0"}), "w1")
    assert answer is not None and answer["status"] == "FAILED"
    assert answer["statusDetails"]["deployment-error-stack"] == ["DEPLOYMENT_FAILURE",
                                                                 "RECIPE_PARSE_ERROR"]
    assert not Path("/tmp/sprig-pwned").exists()
    assert "com.example.Walk" not in names(core)


def test_an_artifact_replaced_in_the_bucket_is_never_run(
        device: tuple[Fleet, CoreProcess, MotoServer], public_tmp: Path) -> None:
    fleet, core, s3 = device
    recipes, artifacts = public_tmp / "r2", public_tmp / "a2"
    (artifacts / "com.example.Tool" / "1.0.0").mkdir(parents=True)
    (artifacts / "com.example.Tool" / "1.0.0" / "tool.sh").write_text("exec sleep 600\n")
    write_recipe(recipes, {"RecipeFormatVersion": "2020-01-25",
                           "ComponentName": "com.example.Tool", "ComponentVersion": "1.0.0",
                           "Manifests": [{"Lifecycle": {"Run": "sh {artifacts:path}/tool.sh"},
                                          "Artifacts": [{"URI": "greengrass:tool.sh"}]}]})
    assert fleet.sprig("publish", "--recipe-dir", str(recipes), "--artifact-dir",
                       str(artifacts)).returncode == 0
    published = json.loads(s3.client().get_object(
        Bucket=BUCKET, Key="store/recipes/com.example.Tool/1.0.0.json")["Body"].read())
    key = published["Manifests"][0]["Artifacts"][0]["URI"].removeprefix(f"s3://{BUCKET}/")
    marker = public_tmp / "owned"
    s3.client().put_object(Bucket=BUCKET, Key=key, Body=f"touch {marker}\n".encode())
    answer = send(fleet, "sprig/things/victim/jobs/thinggroup/line-1/notify",
                  doc("thinggroup/line-1", "t1", **{"com.example.Tool": "1.0.0"}), "t1")
    assert answer is not None and answer["status"] == "FAILED"
    assert "ARTIFACT_CHECKSUM_MISMATCH" in answer["statusDetails"]["deployment-error-stack"]
    assert not marker.exists()
    assert not core.layout.artifact_dir("com.example.Tool", "1.0.0").exists()
    downloads = core.layout.run / "fleet"
    assert not downloads.exists() or not os.listdir(downloads)


def test_an_unreadable_document_cannot_open_the_door_to_an_older_one(
        device: tuple[Fleet, CoreProcess, MotoServer]) -> None:
    fleet, core, _ = device
    topic = "sprig/things/victim/jobs/thinggroup/line-1/notify"
    good = doc("thinggroup/line-1", "new-10", **{"com.example.Evil": "1.0.0"})
    assert (send(fleet, topic, good, "new-10") or {}).get("status") == "SUCCEEDED"
    broken = {k: v for k, v in good.items() if k != "creationTimestamp"}
    broken["deploymentId"] = "broken-1"
    answer = send(fleet, topic, broken, "broken-1")
    assert answer is not None and answer["status"] == "FAILED"
    assert answer["statusDetails"]["deployment-error-stack"] == [
        "DEPLOYMENT_FAILURE", "DEPLOYMENT_DOCUMENT_NOT_VALID"]
    old = {**doc("thinggroup/line-1", "old-5"), "creationTimestamp": 5}
    answer = send(fleet, topic, old, "old-5")
    assert answer is not None and answer["status"] == "REJECTED"
    assert "REJECTED_STALE_DEPLOYMENT" in answer["statusDetails"]["deployment-error-stack"]
    assert "com.example.Evil" in names(core)              # the newer deployment stands
