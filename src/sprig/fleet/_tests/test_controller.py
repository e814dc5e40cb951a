"""The controller's bookkeeping (no broker): a rollout's progress fed message by message, how
``deploy`` revises a target's deployment, the operator's option checks and the status table."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from sprig.errors import ValidationError
from sprig.fleet.controller import DeployRequest, build_components
from sprig.fleet.progress import FINISHED, QUEUED, RUNNING, WAITING, Progress
from sprig.fleet.topics import FleetTopics, Target
from sprig.fleet.view import render

T = FleetTopics("sprig")
G = Target("thinggroup", "g")


def feed(p: Progress, topic: str, doc: dict[str, Any] | None) -> None:
    p.feed(topic, json.dumps(doc).encode() if doc is not None else b"")


def member(p: Progress, thing: str, online: bool = True, groups: list[str] | None = None,
           ) -> None:
    feed(p, T.health(thing), {"thing": thing, "thingGroups": groups or ["g"]})
    feed(p, T.presence(thing), {"status": "ONLINE" if online else "OFFLINE"})


def test_progress_follows_each_device_and_the_counts() -> None:
    p = Progress(T, G, "d2", creation_timestamp=200)
    for thing, online in (("b", True), ("a", False), ("c", True)):
        member(p, thing, online)
    member(p, "x", groups=["other"])
    assert p.members == ["a", "b", "c"] and p.waiting == 3
    assert p.next_waiting() == "b"            # online first, then by name
    feed(p, T.notify("b", G), {"execution": {"jobId": "d2", "status": "QUEUED",
                                             "queuedAt": 1000}})
    assert p.devices["b"].state == QUEUED and p.next_waiting() == "c"
    assert p.last_queued_at == 1000 and p.queued() == ["b"]
    feed(p, T.update("b", G), {"jobId": "d2", "status": "IN_PROGRESS", "timestamp": 5000})
    assert p.devices["b"].state == RUNNING and p.running == {"b": 5.0}
    feed(p, T.update("b", G), {"jobId": "d2", "status": "FAILED"})
    assert p.devices["b"].state == FINISHED and p.counts["FAILED"] == 1 and not p.running
    # A retained status of an older deployment does not count; a newer one supersedes ours.
    feed(p, T.update("c", G), {"jobId": "d1", "status": "SUCCEEDED", "creationTimestamp": 100})
    assert p.devices["c"].state == WAITING
    feed(p, T.update("c", G), {"jobId": "d3", "status": "SUCCEEDED", "creationTimestamp": 300})
    assert p.devices["c"].result == "REJECTED"
    # Presence moves a device between the queues; a message of another target is ignored.
    feed(p, T.presence("a"), {"status": "ONLINE"})
    assert p.next_waiting() == "a" and p.pending() == 0
    feed(p, T.notify("a", Target("thinggroup", "other")), {"execution": {"jobId": "d2",
                                                                         "status": "QUEUED"}})
    assert p.devices["a"].state == WAITING
    feed(p, T.notify("a", G), {"execution": {"jobId": "d2", "status": "CANCELED"}})
    assert p.devices["a"].result == "CANCELED" and p.finished == 3 and p.waiting == 0
    assert sum(p.counts.values()) == p.finished


def test_a_thing_target_has_one_member() -> None:
    p = Progress(T, Target("thing", "solo"), "d1", 1)
    assert p.members == ["solo"] and p.next_waiting() == "solo"


def test_deploy_revises_the_targets_deployment() -> None:
    previous = {"A": {"version": "1.0.0", "configurationUpdate": {"merge": {"x": 1}}},
                "B": {"componentVersion": "2.0.0"}}
    req = DeployRequest(G, merge={"A": "1.1.0", "C": "3.0.0"}, remove=["B"],
                        config_updates={"C": {"MERGE": {"y": 2}, "RESET": ["/z"]}},
                        run_with={"C": {"posixUser": "app"}})
    assert build_components(previous, req) == {
        "A": {"version": "1.1.0", "configurationUpdate": {"merge": {"x": 1}}},
        "C": {"version": "3.0.0", "configurationUpdate": {"merge": {"y": 2}, "reset": ["/z"]},
              "runWith": {"posixUser": "app"}}}
    with pytest.raises(ValidationError, match="not in the target's deployment"):
        build_components(previous, DeployRequest(G, remove=["Nope"]))


@pytest.mark.parametrize(("args", "words"), [
    (["deploy", "--merge", "A=1.0.0"], "one of --group G"),
    (["deploy", "--group", "g", "--thing", "t", "--merge", "A=1.0.0"], "one of --group G"),
    (["deploy", "--group", "bad group", "--merge", "A=1.0.0"], "not a deployment target"),
    (["deploy", "--group", "g", "--merge", "A"], "NAME=VERSION"),
    (["deploy", "--group", "g", "--merge", "A=1.0.0", "--rate", "fast"], "N/min"),
    (["deploy", "--group", "g", "--merge", "A=1.0.0", "--rate", "2000/min"],
     "maximumPerMinute"),
    (["deploy", "--group", "g", "--merge", "A=1.0.0", "--abort-after-failures", "x"], "P%"),
    (["deploy", "--group", "g", "--merge", "A=1.0.0", "--min-executed", "5"],
     "goes with --abort-after-failures"),
    (["deploy", "--group", "g", "--merge", "A=1.0.0", "--timeout-per-device", "5"],
     "60 to 604800"),
    (["publish", "--recipe-dir", "/nonexistent", "--broker", "127.0.0.1:1"],
     "no component store"),
    (["status", "--store", "s3://b-1"], "no broker"),
])
def test_the_operators_mistakes_are_named_before_anything_is_sent(
        args: list[str], words: str, tmp_path: Any) -> None:
    cfg = tmp_path / "operator.yaml"
    cfg.write_text("mqtt: {host: 127.0.0.1, port: 1}\n" if args[0] == "deploy" else "{}\n")
    r = subprocess.run([sys.executable, "-m", "sprig", "fleet", args[0], "--config", str(cfg),
                        *args[1:]], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r.stdout + r.stderr
    assert words in r.stderr, r.stderr


def test_the_status_table_keeps_its_columns_whatever_the_values() -> None:
    def dev(thing: str, status: str, job: str) -> dict[str, Any]:
        return {"thing": thing, "online": True, "groups": ["g"], "health": "HEALTHY",
                "components": [{"name": "Hello", "version": "1.0.0", "state": "RUNNING"}],
                "executions": {"thinggroup/g": {"status": {"jobId": job, "status": status}}}}
    state = {"targets": {"thinggroup/g": {"deploymentId": "new", "status": "ABORTED",
                                          "revision": 2, "components": {"Hello": "1.0.1"}}},
             "devices": [dev("dev1", "FAILED", "new"), dev("dev3", "SUCCEEDED", "old"),
                         dev("a-device-with-a-name-longer-than-24", "SUCCEEDED", "new")]}
    lines: list[str] = []
    assert render(state, None, lines.append) == 0
    table = lines[1:]
    assert "SUCCEEDED (older deployment)" in table[2]
    starts = {line.index("Hello=1.0.0(RUNNING)") for line in table[1:]}
    assert starts == {table[0].index("COMPONENTS")}, "\n".join(table)
