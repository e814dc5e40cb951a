"""How deployments end, as the nucleus decides them: at once when a component breaks, never
blocking the queue behind; a Run step that dies right after it starts; errorResetTime; the
Bootstrap exit codes 100 and 101."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from sprig._tests.reliability.support import wait_deployment
from sprig.testing import CoreProcess, write_recipe

#: Generous: the deployment timeout is 300 s; these must end in seconds.
DECIDED_WITHIN_S = 60


def recipe(name: str, lifecycle: dict[str, Any], *, version: str = "1.0.0",
           deps: dict[str, Any] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "RecipeFormatVersion": "2020-01-25", "ComponentName": name, "ComponentVersion": version,
        "Manifests": [{"Platform": {"os": "all"}, "Lifecycle": lifecycle}]}
    if deps:
        doc["ComponentDependencies"] = deps
    return doc


def test_a_broken_component_fails_its_deployment_at_once_and_the_queue_moves_on(
        core: CoreProcess, public_tmp: Path) -> None:
    """Nucleus ``DeploymentConfigMerger.areAllServiceInDesiredState``: a tracked service BROKEN
    after the merge ends the deployment (``COMPONENT_BROKEN``) without waiting for the others —
    here a HARD dependent that would wait for ever for its dependency to run."""
    recipes = public_tmp / "recipes"
    write_recipe(recipes, recipe("com.example.Broken", {"Startup": "echo no >&2; exit 1"}))
    write_recipe(recipes, recipe("com.example.Dependent", {"Run": "exec sleep 600"}, deps={
        "com.example.Broken": {"VersionRequirement": "1.0.0", "DependencyType": "HARD"}}))
    write_recipe(recipes, recipe("com.example.Fine", {"Run": "exec sleep 600"}))
    started = time.monotonic()
    broken = core.deploy(recipe_dir=recipes, wait=False,
                         merge={"com.example.Dependent": "1.0.0"})
    queued = core.deploy(recipe_dir=recipes, wait=False, merge={"com.example.Fine": "1.0.0"})
    first = wait_deployment(core, broken["deploymentId"])
    elapsed = time.monotonic() - started
    assert first["status"] == "FAILED", first
    assert "com.example.Broken BROKEN" in first["reason"]
    assert "exited with code 1" in first["reason"]
    assert elapsed < DECIDED_WITHIN_S, f"took {elapsed:.1f} s"
    second = wait_deployment(core, queued["deploymentId"])
    assert second["status"] == "SUCCEEDED", second      # not failed for the stale reason
    assert core.states() == {"com.example.Fine": "RUNNING"}   # the first was rolled back
    print(f"\nBROKEN deployment decided in {elapsed:.2f} s; the queued one "
          f"{second['updatedAt'] - second['createdAt']:.2f} s after it was created")


def test_a_run_step_failing_two_seconds_after_start_fails_its_deployment(
        core: CoreProcess, public_tmp: Path) -> None:
    """A Run process is RUNNING the moment it starts (the nucleus's check sees RUNNING and
    reports success). Sprig watches a Run process the deployment started for
    ``deploymentStabilitySeconds`` (3 s): one that dies after 2 s, three times, is BROKEN and
    fails the deployment, which rolls back."""
    recipes = public_tmp / "recipes"
    write_recipe(recipes, recipe("com.example.Flaky", {"Run": "sleep 2; exit 3"}))
    started = time.monotonic()
    result = core.deploy(recipe_dir=recipes, merge={"com.example.Flaky": "1.0.0"})
    elapsed = time.monotonic() - started
    assert result["status"] == "FAILED", result
    assert "com.example.Flaky BROKEN" in result["reason"] and "code 3" in result["reason"]
    assert "rolled back" in result["reason"] and core.states() == {}
    assert elapsed < DECIDED_WITHIN_S


def test_error_reset_time_from_the_recipe_is_honoured(core: CoreProcess, public_tmp: Path,
                                                      shared: Path) -> None:
    """Nucleus ``Lifecycle``: three errors within ``errorResetTime`` (the service's
    ``lifecycle.errorResetTime``, default 3600 s) make a component BROKEN; an error that comes
    later than that after the previous one starts the count again."""
    recipes = public_tmp / "recipes"
    fifo = shared / "starts"
    os.mkfifo(fifo)
    fifo.chmod(0o666)
    crash = "sleep 1.5; exit 2"
    write_recipe(recipes, recipe("com.example.Patient", {
        "Run": f"echo start > {fifo}; {crash}", "errorResetTime": 1}))
    write_recipe(recipes, recipe("com.example.Default", {"Run": crash}))
    result = core.deploy(recipe_dir=recipes, failure_handling="DO_NOTHING", merge={
        "com.example.Patient": "1.0.0", "com.example.Default": "1.0.0"})
    # The default count: BROKEN on the third error within the hour.
    assert result["status"] == "FAILED" and "com.example.Default BROKEN" in result["reason"]
    # Each start of the patient one writes a line (an event to wait on, not a clock): its
    # fifth start comes after four errors, each more than errorResetTime after the previous.
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    keep_open = os.open(fifo, os.O_WRONLY)          # so reads block instead of seeing EOF
    os.set_blocking(reader, True)
    try:
        with os.fdopen(reader, "r") as lines:
            for _ in range(5):
                assert lines.readline() == "start\n"
                assert core.states()["com.example.Patient"] != "BROKEN"
    finally:
        os.close(keep_open)
    assert core.states()["com.example.Default"] == "BROKEN"


def test_bootstrap_exit_100_restarts_the_components_and_101_is_refused(
        core: CoreProcess, public_tmp: Path, shared: Path) -> None:
    """Nucleus ``BootstrapManager``: Bootstrap exit 100 asks for a nucleus restart (every
    component stops and starts again), 101 for a device reboot. Sprig restarts every component
    for 100, once the deployment's components are up, and never reboots: 101 makes the
    component BROKEN at once (no retry) and fails the deployment, saying why."""
    recipes = public_tmp / "recipes"
    starts = shared / "starts"
    write_recipe(recipes, recipe("com.example.Other",
                                 {"Run": f"echo started >> {starts}; exec sleep 600"}))
    assert core.deploy(recipe_dir=recipes, merge={"com.example.Other": "1.0.0"})[
        "status"] == "SUCCEEDED"
    assert starts.read_text() == "started\n"
    write_recipe(recipes, recipe("com.example.NeedsRestart", {
        "Bootstrap": "echo installing a driver; exit 100", "Run": "exec sleep 600"}))
    result = core.deploy(recipe_dir=recipes, merge={"com.example.NeedsRestart": "1.0.0"})
    assert result["status"] == "SUCCEEDED", result
    assert starts.read_text() == "started\nstarted\n"       # restarted, as a nucleus restart
    assert core.states()["com.example.NeedsRestart"] == "RUNNING"
    assert "restarting every component, as Greengrass restarts the nucleus" in \
        core.log("sprig")
    bootstraps = shared / "bootstraps"
    write_recipe(recipes, recipe("com.example.NeedsReboot", {
        "Bootstrap": f"echo once >> {bootstraps}; exit 101", "Run": "exec sleep 600"}))
    started = time.monotonic()
    result = core.deploy(recipe_dir=recipes, merge={"com.example.NeedsReboot": "1.0.0"})
    assert result["status"] == "FAILED", result
    assert "exited with code 101" in result["reason"] and "never reboots" in result["reason"]
    assert bootstraps.read_text() == "once\n"                 # not retried three times
    assert time.monotonic() - started < DECIDED_WITHIN_S
