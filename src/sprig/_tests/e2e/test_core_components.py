"""The core as a user runs it: deploy recipes, watch states, logs, configuration, failures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sprig.cli.client import ApiError
from sprig.testing import CoreProcess, write_recipe

pytestmark = pytest.mark.e2e


def recipe(name: str, version: str = "1.0.0", *, lifecycle: dict[str, Any],
           config: dict[str, Any] | None = None,
           deps: dict[str, Any] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": name,
        "ComponentVersion": version,
        "ComponentConfiguration": {"DefaultConfiguration": config or {}},
        "Manifests": [{"Platform": {"os": "linux"}, "Lifecycle": lifecycle}],
    }
    if deps:
        doc["ComponentDependencies"] = deps
    return doc


def sprig(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sprig", *args, "--root", str(root)],
                          capture_output=True, text=True, timeout=120)


def test_hello_world_runs_logs_and_takes_a_merge(core: CoreProcess, tmp_path: Path) -> None:
    recipes = tmp_path / "recipes"
    write_recipe(recipes, recipe(
        "com.example.Hello", config={"message": "world"},
        lifecycle={"Run": "echo Hello {configuration:/message} as $(id -un); "
                          "while true; do sleep 60; done"}))
    result = core.deploy(recipe_dir=recipes, merge={"com.example.Hello": "1.0.0"})
    assert result["status"] == "SUCCEEDED", result
    core.wait_state("com.example.Hello", "RUNNING")
    listing = sprig(core.root, "component", "list")
    assert "com.example.Hello" in listing.stdout and "RUNNING" in listing.stdout

    def logged(text: str) -> bool:
        return text in core.log("com.example.Hello")

    core.call("component.wait", {"name": "com.example.Hello", "states": ["RUNNING"]})
    _wait_for(lambda: logged("Hello world as sprig_user"))
    logs = sprig(core.root, "logs", "com.example.Hello")
    assert "Hello world as sprig_user" in logs.stdout

    result = core.deploy(configuration_update={
        "com.example.Hello": {"MERGE": {"message": "Sprig"}}})
    assert result["status"] == "SUCCEEDED", result
    _wait_for(lambda: logged("Hello Sprig as sprig_user"))
    details = core.call("component.details", {"name": "com.example.Hello"})
    assert details["configuration"] == {"message": "Sprig"}


def test_startup_failing_three_times_ends_broken_with_reason(core: CoreProcess,
                                                            tmp_path: Path,
                                                            shared_dir: Path) -> None:
    recipes = tmp_path / "recipes"
    counter = shared_dir / "attempts"
    counter.touch()
    counter.chmod(0o666)
    write_recipe(recipes, recipe("com.example.Flaky", lifecycle={
        "Startup": f"echo attempt >> {counter}; echo cannot start >&2; exit 3"}))
    result = core.deploy(recipe_dir=recipes, merge={"com.example.Flaky": "1.0.0"},
                         failure_handling="DO_NOTHING")
    assert result["status"] == "FAILED"
    assert "BROKEN" in result["reason"] and "exited with code 3" in result["reason"]
    assert core.states()["com.example.Flaky"] == "BROKEN"
    assert counter.read_text().count("attempt") == 3
    details = sprig(core.root, "component", "details", "com.example.Flaky")
    assert "BROKEN" in details.stdout and "Startup script exited with code 3" in details.stdout
    # BROKEN stays BROKEN across a core restart ...
    core.stop()
    core.start()
    assert core.states()["com.example.Flaky"] == "BROKEN"
    assert counter.read_text().count("attempt") == 3
    # ... until a new deployment of a fixed version.
    write_recipe(recipes, recipe("com.example.Flaky", "1.0.1",
                                 lifecycle={"Run": "while true; do sleep 60; done"}))
    result = core.deploy(recipe_dir=recipes, merge={"com.example.Flaky": "1.0.1"})
    assert result["status"] == "SUCCEEDED", result
    assert core.states()["com.example.Flaky"] == "RUNNING"


def test_failed_deployment_rolls_back_to_exactly_the_previous_state(core: CoreProcess,
                                                                   tmp_path: Path) -> None:
    recipes = tmp_path / "recipes"
    write_recipe(recipes, recipe("com.example.App", config={"level": 1},
                                 lifecycle={"Run": "while true; do sleep 60; done"}))
    write_recipe(recipes, recipe("com.example.App", "2.0.0", config={"level": 2},
                                 lifecycle={"Install": "exit 1", "Run": "sleep 60"}))
    assert core.deploy(recipe_dir=recipes, merge={"com.example.App": "1.0.0"},
                       configuration_update={"com.example.App": {"MERGE": {"x": "kept"}}}
                       )["status"] == "SUCCEEDED"
    before = core.call("component.details", {"name": "com.example.App"})
    result = core.deploy(recipe_dir=recipes, merge={"com.example.App": "2.0.0"})
    assert result["status"] == "FAILED"
    assert "Install script exited with code 1" in result["reason"]
    assert "rolled back" in result["reason"]
    core.wait_state("com.example.App", "RUNNING")
    after = core.call("component.details", {"name": "com.example.App"})
    assert after["version"] == "1.0.0"
    assert after["configuration"] == before["configuration"] == {"level": 1, "x": "kept"}
    status = sprig(core.root, "deployment", "status", result["deploymentId"])
    assert status.returncode == 1 and "FAILED" in status.stdout


def test_hard_dependency_error_restarts_its_dependent(core: CoreProcess, tmp_path: Path,
                                                     shared_dir: Path) -> None:
    recipes = tmp_path / "recipes"
    marker = shared_dir / "dep-fail-once"
    marker.touch()
    marker.chmod(0o666)
    starts = shared_dir / "starts"
    starts.touch()
    starts.chmod(0o666)
    write_recipe(recipes, recipe("com.example.Base", lifecycle={
        # Runs, then errors once when the marker is removed by the test.
        "Run": f"while [ -e {marker} ]; do sleep 0.1; done; "
               f"if [ ! -e {marker}.done ]; then touch {marker}.done; exit 2; fi; "
               "while true; do sleep 60; done"}))
    write_recipe(recipes, recipe(
        "com.example.User", deps={"com.example.Base": {"VersionRequirement": "^1.0.0",
                                                       "DependencyType": "HARD"}},
        lifecycle={"Run": f"echo start >> {starts}; while true; do sleep 60; done"}))
    result = core.deploy(recipe_dir=recipes, merge={"com.example.User": "1.0.0"})
    assert result["status"] == "SUCCEEDED", result
    assert core.states() == {"com.example.Base": "RUNNING", "com.example.User": "RUNNING"}
    _wait_for(lambda: starts.read_text().count("start") == 1)
    marker.unlink()   # Base errors once, restarts; User must restart because of HARD
    _wait_for(lambda: starts.read_text().count("start") == 2)
    core.wait_state("com.example.Base", "RUNNING")
    core.wait_state("com.example.User", "RUNNING")


def test_bad_input_is_rejected_before_anything_changes(core: CoreProcess,
                                                      tmp_path: Path) -> None:
    good = tmp_path / "good"
    write_recipe(good, recipe("com.example.Ok", lifecycle={"Run": "sleep 600"}))
    assert core.deploy(recipe_dir=good, merge={"com.example.Ok": "1.0.0"})["status"] \
        == "SUCCEEDED"
    before = core.call("component.details", {"name": "com.example.Ok"})
    cases: list[tuple[dict[str, Any], str]] = [
        ({"ComponentVersion": "1.0"}, "ComponentVersion"),
        ({"ComponentType": "aws.greengrass.plugin"}, "plugin components"),
        ({"ComponentDependencies": {"com.example.Missing": {"VersionRequirement": "^1"}}},
         "com.example.Missing"),
        ({"ComponentDependencies": {"com.example.Ok": {"VersionRequirement": ">=2.0.0"}}},
         "no version satisfies"),
    ]
    for i, (change, expected) in enumerate(cases):
        bad = tmp_path / f"bad{i}"
        doc = {**recipe("com.example.Bad", lifecycle={"Run": "sleep 600"}), **change}
        bad.mkdir()
        (bad / "bad.yaml").write_text(json.dumps(doc))
        version = str(doc["ComponentVersion"])
        with pytest.raises(ApiError) as err:
            core.deploy(recipe_dir=bad, merge={"com.example.Bad": version})
        assert expected in str(err.value), str(err.value)
        if i < 2:   # parse errors name the file; resolution errors name who requires what
            assert "bad.yaml" in str(err.value), str(err.value)
        else:
            assert "com.example.Bad 1.0.0 requires" in str(err.value), str(err.value)
    malformed = tmp_path / "malformed"
    malformed.mkdir()
    (malformed / "m.yaml").write_text("ComponentName: [unclosed\n")
    with pytest.raises(ApiError, match=r"m\.yaml"):
        core.deploy(recipe_dir=malformed, merge={"x": "1.0.0"})
    with pytest.raises(ApiError, match=r"RESET"):
        core.deploy(configuration_update={"com.example.Ok": {"RESET": ["/not/there"]}})
    with pytest.raises(ApiError, match=r"MERGE"):
        core.deploy(configuration_update={"com.example.Ok": {"MERGE": [1, 2]}})
    assert core.states() == {"com.example.Ok": "RUNNING"}
    assert core.call("component.details", {"name": "com.example.Ok"}) == before
    assert [d["status"] for d in core.call("deployment.list")] == ["SUCCEEDED"]


def test_cli_without_a_core_says_so(tmp_path: Path) -> None:
    result = sprig(tmp_path / "nothing-here", "component", "list")
    assert result.returncode != 0
    assert "no Sprig core is running" in result.stderr


def test_restart_returns_to_the_previous_state(tmp_path: Path) -> None:
    recipes = tmp_path / "recipes"
    write_recipe(recipes, recipe("com.example.Keep", lifecycle={"Run": "sleep 600"}))
    with CoreProcess(tmp_path / "root") as core:
        assert core.deploy(recipe_dir=recipes, merge={"com.example.Keep": "1.0.0"})["status"] \
            == "SUCCEEDED"
    with CoreProcess(tmp_path / "root") as core:
        core.wait_state("com.example.Keep", "RUNNING")


def _wait_for(predicate: Any, timeout_s: float = 30) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.05)
