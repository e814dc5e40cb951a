"""``kill -9`` of the core in the middle of a deployment loses nothing it acknowledged."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

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
