"""Greengrass's CLI IPC operations on a real core, from a component with awsiotsdk: a watchdog
lists the components, restarts one (a new process), stops it, and reads its own deployment's
status — each under its ``aws.greengrass.Cli`` policy."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from sprig._tests.e2e.test_core_components import _wait_for
from sprig._tests.e2e.test_messaging_e2e import subscribe
from sprig.testing import CoreProcess, write_recipe

pytestmark = pytest.mark.e2e

WATCHDOG = '''
import json, sys, time
from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
from awsiot.greengrasscoreipc.model import JsonMessage, PublishMessage
client = GreengrassCoreIPCClientV2()
listed = {c.component_name: c.state for c in client.list_components().components}
restarted = client.restart_component(component_name="com.example.Worker").restart_status
deployments = [d.status for d in client.list_local_deployments().local_deployments]
try:
    client.stop_component(component_name="com.example.Worker")
    stop = "allowed"
except Exception as e:
    stop = type(e).__name__
client.publish_to_topic(topic="watchdog/report", publish_message=PublishMessage(
    json_message=JsonMessage(message={"listed": listed, "restarted": restarted,
                                      "deployments": deployments, "stop": stop})))
while True:
    time.sleep(60)
'''


def test_a_watchdog_component_manages_another_through_cli_ipc(
        core: CoreProcess, tmp_path: Path, shared_dir: Path) -> None:
    watchdog, out = tmp_path / "watchdog.py", shared_dir / "pids.txt"
    watchdog.write_text(WATCHDOG)
    recipes = tmp_path / "recipes"
    write_recipe(recipes, {
        "RecipeFormatVersion": "2020-01-25", "ComponentName": "com.example.Worker",
        "ComponentVersion": "1.0.0",
        "Manifests": [{"Lifecycle": {"Run": f"echo $$ >> {out}; exec sleep 3600"}}]})
    write_recipe(recipes, {
        "RecipeFormatVersion": "2020-01-25", "ComponentName": "com.example.Watchdog",
        "ComponentVersion": "1.0.0",
        "ComponentDependencies": {"com.example.Worker": {"VersionRequirement": "1.0.0"}},
        "ComponentConfiguration": {"DefaultConfiguration": {"accessControl": {
            "aws.greengrass.Cli": {"watchdog:cli:1": {
                "operations": ["aws.greengrass#ListComponents",
                               "aws.greengrass#ListLocalDeployments",
                               "aws.greengrass#RestartComponent"],
                "resources": ["*"]},
                "watchdog:cli:2": {"operations": ["aws.greengrass#StopComponent"],
                                   "resources": ["com.example.Nothing"]}},
            "aws.greengrass.ipc.pubsub": {"watchdog:pubsub:1": {
                "operations": ["aws.greengrass#PublishToTopic"],
                "resources": ["watchdog/report"]}}}}},
        "Manifests": [{"Lifecycle": {"Run": f"exec {sys.executable} -u {watchdog}"}}]})
    report = subscribe(core, "watchdog/report", 1)
    result = core.deploy(recipe_dir=recipes, merge={"com.example.Watchdog": "1.0.0"},
                         run_with={"com.example.Watchdog": {"posixUser": "root"}})
    assert result["status"] == "SUCCEEDED", result
    text, _ = report.communicate(timeout=60)
    seen = json.loads(text.split(": ", 1)[1])
    assert seen["listed"]["com.example.Worker"] == "RUNNING", seen
    assert seen["restarted"] == "SUCCEEDED" and seen["deployments"], seen
    # The restarted Run writes its pid as it starts (a moment after RUNNING): wait for it.
    _wait_for(lambda: len(out.read_text().split()) >= 2)
    pids = out.read_text().split()
    assert len(pids) == 2 and pids[0] != pids[1], pids     # restarted: a new process
    # StopComponent only on the component its second policy names: refused, still running.
    assert seen["stop"] == "UnauthorizedError", seen
    assert core.states()["com.example.Worker"] == "RUNNING", core.states()
