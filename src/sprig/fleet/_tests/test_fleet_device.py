"""One fleet device at a time, for what needs a broker of its own: mutual TLS with client
certificates (device and operator), a deployment to one thing, and a core killed in the
middle of a fleet deployment."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sprig._tests.reliability.support import generic_component, public_dir
from sprig.mqtt.mosquitto import BrokerTls
from sprig.testing.fleet import (
    AWS_ENV,
    Fleet,
    Seen,
    ThreadBroker,
    Watcher,
    make_pki,
    moto,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

if shutil.which("mosquitto") is None:
    pytest.skip("the mosquitto broker is not installed (Debian package mosquitto)",
                allow_module_level=True)


@pytest.fixture
def base() -> Iterator[Path]:
    with public_dir("sprig-fleet-device-") as path:
        yield path


def _publish(fleet: Fleet, base: Path, *components: tuple[str, str, str | None]) -> None:
    recipes = base / "recipes"
    for name, version, install in components:
        generic_component(recipes, name, version, marker=f"fleet-{name}", install=install)
    r = fleet.sprig("publish", "--recipe-dir", str(recipes))
    assert r.returncode == 0, r.stderr


def test_a_device_and_an_operator_over_mutual_tls_deploy_to_one_thing(base: Path) -> None:
    pki = make_pki(base / "pki")
    broker = ThreadBroker(base / "broker", persistent=False, tls=BrokerTls(
        pki.ca, pki.server_cert, pki.server_key, require_certificate=True)).start()
    try:
        with moto(base) as s3:
            fleet = Fleet(base, broker.port, s3.url)
            for who in ("solo", "operator"):
                cert, key = pki.client(who)
                fleet.mqtt_extra[who] = {"tls": {"caPath": str(pki.ca), "certPath": str(cert),
                                                 "keyPath": str(key)}}
            try:
                core = fleet.add("solo", [])
                _publish(fleet, base, ("com.example.Solo", "1.0.0", None))
                r = fleet.sprig("deploy", "--thing", "solo", "--merge",
                                "com.example.Solo=1.0.0", "--wait")
                assert r.returncode == 0, r.stdout + r.stderr
                assert "thing/solo: COMPLETED: 1 succeeded" in r.stdout
                assert "com.example.Solo" in {c["name"] for c in core.call("component.list")}
                st = json.loads(fleet.sprig("status", "--json").stdout)
                ex = st["devices"][0]["executions"]["thing/solo"]["status"]
                assert ex["status"] == "SUCCEEDED"
                # Without a client certificate the operator does not even connect.
                fleet.mqtt_extra["operator"] = {"tls": {"caPath": str(pki.ca)}}
                refused = fleet.sprig("status")
                assert refused.returncode == 1 and "cannot connect" in refused.stderr
                # At once and saying why (not the CONNACK timeout's "Operation timed out").
                assert "certificate required" in refused.stderr, refused.stderr
            finally:
                fleet.stop_all()
    finally:
        broker.close()


def test_a_core_killed_during_a_fleet_deployment_finishes_and_reports_it(base: Path) -> None:
    broker = ThreadBroker(base / "broker").start()
    try:
        with moto(base) as s3:
            fleet = Fleet(base, broker.port, s3.url)
            try:
                core = fleet.add("phoenix", ["g"])
                # Its Install waits for a file the test creates after the kill.
                gate = base / "gate"
                _publish(fleet, base, ("com.example.Slow", "1.0.0",
                                       f"while [ ! -e {gate} ]; do sleep 0.1; done"))
                updates = "sprig/things/phoenix/jobs/thinggroup/g/update"
                watcher = Watcher(fleet.broker_port, updates)
                presence = Watcher(fleet.broker_port, "sprig/things/phoenix/presence")
                operator = subprocess.Popen(
                    [sys.executable, "-m", "sprig", "fleet", "deploy", "--config",
                     str(fleet.operator_config()), "--group", "g", "--merge",
                     "com.example.Slow=1.0.0", "--wait"], stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT, text=True, env=_env())
                try:
                    assert watcher.wait(lambda ms: any(b'"IN_PROGRESS"' in m.payload
                                                       for m in ms), 60)
                    core.wait_state("com.example.Slow", "NEW")     # installing: gate closed
                    core.kill()
                    # The broker publishes the core's last will: the device is OFFLINE.
                    assert presence.wait(lambda ms: any(
                        json.loads(m.payload) == {"thing": "phoenix", "status": "OFFLINE",
                                                  "thingGroups": ["g"], "reason": "lost"}
                        for m in ms if not m.retained), 60)
                    gate.touch()
                    core.start(timeout_s=120)
                    assert presence.wait(lambda ms: b'"ONLINE"' in ms[-1].payload, 60)
                    out, _ = operator.communicate(timeout=120)
                finally:
                    if operator.poll() is None:
                        operator.kill()
                    watcher.close()
                    presence.close()
                assert operator.returncode == 0, out
                assert "phoenix: SUCCEEDED" in out and "COMPLETED: 1 succeeded" in out, out
                states = {c["name"]: c["state"] for c in core.call("component.list")}
                assert states["com.example.Slow"] == "RUNNING"
                jobs = {json.loads(m.payload)["jobId"] for m in watcher.messages if m.payload}
                assert len(jobs) == 1            # the same execution, finished, not a new one
            finally:
                fleet.stop_all()
    finally:
        broker.close()


def _env() -> dict[str, str]:
    import os

    return {**os.environ, **AWS_ENV}


def test_a_component_breaking_later_is_reported_and_an_interrupted_execution_is_retaken(
        base: Path) -> None:
    from sprig.fleet.device_state import DeviceFleetState, ExecutionRecord
    from sprig.state.db import StateDB
    from sprig.testing import write_recipe

    broker = ThreadBroker(base / "broker").start()
    try:
        with moto(base) as s3:
            fleet = Fleet(base, broker.port, s3.url)
            try:
                core = fleet.add("flaky", ["g"])
                gate = base / "gate"
                write_recipe(base / "recipes", {
                    "RecipeFormatVersion": "2020-01-25", "ComponentName": "com.example.Flaky",
                    "ComponentVersion": "1.0.0", "Manifests": [{"Lifecycle": {
                        "Run": f"while [ ! -e {gate} ]; do sleep 0.1; done; exit 1"}}]})
                _publish(fleet, base, ("com.example.Ok", "1.0.0", None))
                health = Watcher(fleet.broker_port, "sprig/things/flaky/greengrassv2/health/json")
                try:
                    r = fleet.sprig("deploy", "--group", "g", "--merge",
                                    "com.example.Flaky=1.0.0", "--wait")
                    assert r.returncode == 0, r.stdout + r.stderr
                    gate.touch()                  # its Run now fails at once: BROKEN soon

                    def unhealthy(ms: list[Seen]) -> bool:
                        docs = [json.loads(m.payload) for m in ms]
                        return any(d["trigger"] == "COMPONENT_STATUS_CHANGE"
                                   and d["overallDeviceStatus"] == "UNHEALTHY" for d in docs)

                    assert health.wait(unhealthy, 60)
                finally:
                    health.close()
                msg = json.loads(next(m.payload for m in reversed(health.messages)))
                flaky = next(c for c in msg["components"]
                             if c["componentName"] == "com.example.Flaky")
                assert flaky["status"] == "BROKEN"
                assert flaky["componentStatusDetails"]["statusCodes"] == ["BROKEN"]
                # A core stopped after it took an execution up but before it queued the
                # local deployment: the next core takes the same execution up again.
                r = fleet.sprig("deploy", "--group", "g", "--remove", "com.example.Flaky",
                                "--merge", "com.example.Ok=1.0.0")
                assert r.returncode == 0, r.stdout + r.stderr
                job = json.loads(fleet.sprig("status", "--json").stdout)["targets"][
                    "thinggroup/g"]["deploymentId"]
                updates = Watcher(fleet.broker_port, "sprig/things/flaky/jobs/thinggroup/g/update")
                try:
                    assert updates.wait(lambda ms: any(b'"SUCCEEDED"' in m.payload
                                                       and job.encode() in m.payload
                                                       for m in ms), 60)
                finally:
                    updates.close()
                core.stop()
                db = StateDB(core.layout.state_db)
                try:
                    state = DeviceFleetState.load(db)
                    rec = state.executions["thinggroup/g"]
                    state.record("thinggroup/g", ExecutionRecord(
                        rec.job_id, rec.creation_timestamp, "IN_PROGRESS",
                        configuration_arn=rec.configuration_arn, components=rec.components))
                finally:
                    db.close()
                updates = Watcher(fleet.broker_port, "sprig/things/flaky/jobs/thinggroup/g/update")
                try:
                    core.start(timeout_s=120)
                    assert updates.wait(lambda ms: any(
                        not m.retained and b'"SUCCEEDED"' in m.payload for m in ms), 60)
                    assert not any(b'"FAILED"' in m.payload for m in updates.messages)
                finally:
                    updates.close()
                assert {"com.example.Ok"} <= {c["name"] for c in core.call("component.list")}
            finally:
                fleet.stop_all()
    finally:
        broker.close()
