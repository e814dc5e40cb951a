"""Attacks on another thing's shadow through a real core: real components calling the real
awsiotsdk ``GreengrassCoreIPCClientV2`` shadow operations, publishing on the local shadow
topics, and trying to grant themselves a policy.

The rules (Greengrass "Interact with local shadows", authorization): a shadow operation needs an
``aws.greengrass.ShadowManager`` policy listing it, on ``$aws/things/<thing>/shadow`` or
``…/shadow/name/<name>``; a publish on ``$aws/things/<thing>/shadow/update`` needs an
``aws.greengrass.ipc.pubsub`` policy for that topic. The test fails if the victim's shadow
changes, or if anything of it is read.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from sprig._tests.e2e.test_messaging_e2e import subscribe
from sprig.testing import CoreProcess, write_recipe

SECRET_STATE = "victim-state-3a9f"

ATTEMPTS = '''
import json, sys
from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
from awsiot.greengrasscoreipc.model import PublishMessage, JsonMessage, BinaryMessage
client = GreengrassCoreIPCClientV2()
def outcome(fn, **kw):
    try:
        r = fn(**kw)
    except Exception as e:
        return {"error": type(e).__name__, "message": getattr(e, "message", None) or str(e)}
    return {"ok": repr(r)}
evil = json.dumps({"state": {"reported": {"owned": True}}}).encode()
results = [
    outcome(client.get_thing_shadow, thing_name="Victim"),
    outcome(client.get_thing_shadow, thing_name="Victim", shadow_name="config"),
    outcome(client.update_thing_shadow, thing_name="Victim", payload=evil),
    outcome(client.update_thing_shadow, thing_name="Victim", shadow_name="config", payload=evil),
    outcome(client.delete_thing_shadow, thing_name="Victim"),
    outcome(client.list_named_shadows_for_thing, thing_name="Victim"),
    # a look-alike thing name that a careless prefix match would let through
    outcome(client.update_thing_shadow, thing_name="Attacker2", payload=evil),
    # the local shadow topics: a request published for the shadow manager to serve
    outcome(client.publish_to_topic, topic="$aws/things/Victim/shadow/update",
            publish_message=PublishMessage(binary_message=BinaryMessage(message=evil))),
    outcome(client.publish_to_topic, topic="$aws/things/Victim/shadow/delete",
            publish_message=PublishMessage(binary_message=BinaryMessage(message=b"{}"))),
    outcome(client.subscribe_to_topic, topic="$aws/things/Victim/shadow/#",
            on_stream_event=lambda e: None),
    # grant itself every shadow, then try again
    outcome(client.update_configuration, key_path=["accessControl"], value_to_merge={
        "aws.greengrass.ShadowManager": {"grab": {"operations": ["*"], "resources": ["*"]}}}),
    outcome(client.update_thing_shadow, thing_name="Victim", payload=evil),
    # its own shadow works
    outcome(client.update_thing_shadow, thing_name="Attacker", payload=evil),
]
with open(sys.argv[1], "w") as f:
    json.dump(results, f)
client.close()
'''


def attacker(recipes: Path, name: str, out: Path, access: dict[str, Any] | None) -> None:
    script = recipes.parent / f"{name}.py"
    script.write_text(ATTEMPTS)
    write_recipe(recipes, {
        "RecipeFormatVersion": "2020-01-25", "ComponentName": name, "ComponentVersion": "1.0.0",
        "ComponentConfiguration": {"DefaultConfiguration": {"accessControl": access or {}}},
        "Manifests": [{"Lifecycle": {"Run": f"exec {sys.executable} -u {script} {out}"}}],
    })


def test_components_cannot_read_or_write_another_things_shadow(core: CoreProcess,
                                                                public_tmp: Path) -> None:
    recipes = public_tmp / "recipes"
    results = public_tmp / "results"
    results.mkdir()
    attacker(recipes, "com.example.NoPolicy", results / "none.json", None)
    attacker(recipes, "com.example.OwnThing", results / "own.json", {
        "aws.greengrass.ShadowManager": {"own:1": {
            "operations": ["*"], "resources": ["$aws/things/Attacker/shadow",
                                               "$aws/things/Attacker/shadow/name/*"]}},
        "aws.greengrass.ipc.pubsub": {"own:2": {
            "operations": ["*"], "resources": ["$aws/things/Attacker/shadow/#"]}}})
    result = core.deploy(merge={"aws.greengrass.ShadowManager": "2.3.12"})
    assert result["status"] == "SUCCEEDED", result
    victim = json.dumps({"state": {"reported": {"secret": SECRET_STATE}}}).encode()
    service_update = {"thing": "Victim"}
    # each update publishes update/documents and update/accepted: wait for all four
    answers = subscribe(core, "$aws/things/Victim/shadow/#", 4)
    for name in ("", "config"):
        core.call("pubsub.publish", {"topic": "$aws/things/Victim/shadow" + (
            f"/name/{name}" if name else "") + "/update",
            "payload": __import__("base64").b64encode(victim).decode()})
    answers.communicate(timeout=60)
    before = core.call("shadow.get", service_update)
    assert before["state"]["reported"] == {"secret": SECRET_STATE}
    as_root = {"posixUser": "root"}     # the test's interpreter lives in a private home
    result = core.deploy(recipe_dir=recipes,
                         merge={"com.example.NoPolicy": "1.0.0", "com.example.OwnThing": "1.0.0"},
                         run_with={"com.example.NoPolicy": as_root,
                                   "com.example.OwnThing": as_root})
    assert result["status"] == "SUCCEEDED", result
    for name in ("com.example.NoPolicy", "com.example.OwnThing"):
        core.wait_state(name, "FINISHED", "ERRORED", "BROKEN")
        assert core.states()[name] == "FINISHED", core.log(name)[-3000:]
    for f in ("none.json", "own.json"):
        got = json.loads((results / f).read_text())
        print(f, json.dumps(got, indent=1))
        assert all(r.get("error") == "UnauthorizedError" for r in got[:10]), got
        assert got[10]["error"] == "UnauthorizedError", got[10]     # accessControl is locked
        assert got[11]["error"] == "UnauthorizedError", got[11]
        assert SECRET_STATE not in (results / f).read_text()
    assert "error" in json.loads((results / "none.json").read_text())[12]
    assert "ok" in json.loads((results / "own.json").read_text())[12]
    after = core.call("shadow.get", service_update)
    assert after["state"] == before["state"] and after["version"] == before["version"]
    named = core.call("shadow.get", {"thing": "Victim", "name": "config"})
    assert named["version"] == 1 and "owned" not in json.dumps(named)
