"""``kill -9`` of the core in the middle of a deployment loses nothing it acknowledged."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from sprig._tests.reliability.support import wait_deployment
from sprig.state.db import StateDB
from sprig.testing import CoreProcess, write_recipe

pytestmark = pytest.mark.e2e


def _pids_of(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if marker in cmdline and "pytest" not in cmdline:
            found.append(int(entry))
    return found


def test_kill_9_during_a_deployment_then_restart_is_consistent(tmp_path: Path,
                                                               shared_dir: Path) -> None:
    import random

    recipes = tmp_path / "recipes"
    started = shared_dir / "install-started"
    # Unique durations identify this test's processes among everything else on the machine.
    slow_cmd = f"sleep {random.randint(100000, 999999)}.5"
    base_cmd = f"sleep {random.randint(100000, 999999)}.25"
    write_recipe(recipes, {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": "com.example.Slow",
        "ComponentVersion": "1.0.0",
        "ComponentConfiguration": {"DefaultConfiguration": {"tag": "slow-marker-1"}},
        "Manifests": [{"Lifecycle": {
            "Install": f"touch {started}; sleep 2",
            "Run": f"exec {slow_cmd} # {{configuration:/tag}}",
        }}],
    })
    write_recipe(recipes, {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": "com.example.Base",
        "ComponentVersion": "1.0.0",
        "Manifests": [{"Lifecycle": {"Run": f"exec {base_cmd}"}}],
    })
    core = CoreProcess(tmp_path / "root").start()
    try:
        assert core.deploy(recipe_dir=recipes, merge={"com.example.Base": "1.0.0"})[
            "status"] == "SUCCEEDED"
        pending = core.deploy(recipe_dir=recipes, merge={"com.example.Slow": "1.0.0"},
                              wait=False)
        deadline = time.monotonic() + 30
        while not started.exists():      # the deployment is applying: Install is running
            assert time.monotonic() < deadline
            time.sleep(0.02)
        core.kill()
        # The acknowledged deployment is in the database, mid-way.
        db = StateDB(core.layout.state_db)
        record = db.deployment(pending["deploymentId"])
        assert record is not None and record.status in ("QUEUED", "IN_PROGRESS")
        db.close()
        core.start()
        final = core.call("deployment.status", {"deploymentId": pending["deploymentId"]})
        if final["status"] not in ("SUCCEEDED", "FAILED"):
            core.call("component.wait", {"name": "com.example.Slow", "states": ["RUNNING"]})
            deadline = time.monotonic() + 60
            while final["status"] not in ("SUCCEEDED", "FAILED"):
                assert time.monotonic() < deadline
                time.sleep(0.05)
                final = core.call("deployment.status",
                                  {"deploymentId": pending["deploymentId"]})
        assert final["status"] == "SUCCEEDED", final
        assert core.states() == {"com.example.Base": "RUNNING", "com.example.Slow": "RUNNING"}
        # Exactly one of each process: nothing left over from the killed core.
        assert len(_pids_of(base_cmd)) == 1
        assert len(_pids_of(slow_cmd)) == 1
    finally:
        core.stop()
    assert _pids_of(base_cmd) == [] and _pids_of(slow_cmd) == []


def test_a_version_broken_before_the_kill_fails_its_resumed_deployment(
        tmp_path: Path, shared_dir: Path) -> None:
    """The new version went BROKEN (persisted) and the core was killed before the deployment
    recorded FAILED (found by the rollback crash trials, seed 525941664 trial 18). The next core
    starts that component BROKEN "from before"; the resumed deployment must still count it as
    its failure and roll back, not call the broken version SUCCEEDED."""
    import random

    recipes = tmp_path / "recipes"
    started = shared_dir / "install-started"
    run_cmd = f"sleep {random.randint(100000, 999999)}.75"
    install_cmd = f"sleep {random.randint(100000, 999999)}.5"
    for version, lifecycle in (("1.0.0", {"Run": f"exec {run_cmd}"}),
                               ("2.0.0", {"Install": f"touch {started}; exec {install_cmd}",
                                          "Run": f"exec {run_cmd}"})):
        write_recipe(recipes, {"RecipeFormatVersion": "2020-01-25",
                               "ComponentName": "com.example.App", "ComponentVersion": version,
                               "Manifests": [{"Lifecycle": lifecycle}]})
    core = CoreProcess(tmp_path / "root").start()
    try:
        assert core.deploy(recipe_dir=recipes, merge={"com.example.App": "1.0.0"})[
            "status"] == "SUCCEEDED"
        pending = core.deploy(recipe_dir=recipes, merge={"com.example.App": "2.0.0"},
                              wait=False)
        deadline = time.monotonic() + 30
        while not started.exists():      # the deployment is applying 2.0.0
            assert time.monotonic() < deadline
            time.sleep(0.02)
        core.kill()
        db = StateDB(core.layout.state_db)
        record = db.deployment(pending["deploymentId"])
        assert record is not None and record.status == "IN_PROGRESS", record
        # What the killed core had persisted: 2.0.0 BROKEN (its third failure).
        db.set_health("com.example.App", broken=True,
                      last_error="Install script exited with code 1 (third error)")
        db.close()
        core.start()
        final = wait_deployment(core, pending["deploymentId"])
        assert final["status"] == "FAILED", final
        assert "BROKEN" in final["reason"] and "rolled back" in final["reason"], final
        core.call("component.wait", {"name": "com.example.App", "states": ["RUNNING"]})
        assert {c["name"]: c["version"] for c in core.call("component.list")} == {
            "com.example.App": "1.0.0"}
    finally:
        core.stop()
    for pid in _pids_of(install_cmd) + _pids_of(run_cmd):
        os.kill(pid, 9)


def test_waiting_for_a_failed_deployment_returns_once_it_is_rolled_back(
        tmp_path: Path, shared_dir: Path) -> None:
    """A deployment is written FAILED, then its rollback runs: a client that waits for it
    during the rollback must not be answered before the device is back (a crash trial saw
    the new version still running after ``deployment.wait`` returned). The new version takes
    seconds to stop and says through a FIFO when its stop began, so the wait lands inside
    the rollback every time."""
    import threading

    recipes = tmp_path / "recipes"
    fifo = shared_dir / "stopping"
    os.mkfifo(fifo)
    fifo.chmod(0o666)
    marker = f"sleep {random_marker()}"
    for version, run in (
            ("1.0.0", f"exec {marker}"),
            ("2.0.0", f"trap 'echo stopping > {fifo}; sleep 3; exit 0' TERM; "
                      f"{marker} & wait $!")):
        write_recipe(recipes, {
            "RecipeFormatVersion": "2020-01-25", "ComponentName": "com.example.Keep",
            "ComponentVersion": version, "Manifests": [{"Lifecycle": {"Run": run}}]})
    write_recipe(recipes, {
        "RecipeFormatVersion": "2020-01-25", "ComponentName": "com.example.Bad",
        "ComponentVersion": "1.0.0",
        "Manifests": [{"Lifecycle": {"Install": "exit 1", "Run": "sleep 600"}}]})
    core = CoreProcess(tmp_path / "root").start()
    try:
        assert core.deploy(recipe_dir=recipes, merge={"com.example.Keep": "1.0.0"})[
            "status"] == "SUCCEEDED"
        stopping: list[str] = []
        reader = threading.Thread(target=lambda: stopping.append(fifo.read_text()))
        reader.start()
        dep_id = core.call("deployment.create", {
            "deployment": {"merge": {"com.example.Keep": "2.0.0", "com.example.Bad": "1.0.0"},
                           "failureHandlingPolicy": "ROLLBACK"},
            "recipeDir": str(recipes), "wait": False})["deploymentId"]
        reader.join(120)                 # the rollback is stopping version 2.0.0
        assert stopping == ["stopping\n"]
        final = wait_deployment(core, dep_id)
        assert final["status"] == "FAILED", final
        versions = {c["name"]: c["version"] for c in core.call("component.list")}
        assert versions.get("com.example.Keep") == "1.0.0", versions
        assert "com.example.Bad" not in versions, versions
    finally:
        core.stop()


def random_marker() -> str:
    import random
    return f"{random.randint(100000, 999999)}.75"
