"""Regression: deploying a version whose Run script exits at once fails (the component goes
BROKEN right after its brief RUNNING) and rolls back; it used to be reported SUCCEEDED."""

from __future__ import annotations

from pathlib import Path

from sprig.testing import CoreProcess, write_recipe


def test_upgrade_to_a_version_whose_run_exits_at_once_is_rolled_back(
        core: CoreProcess, public_tmp: Path) -> None:
    recipes = public_tmp / "r"
    for version, run in (("1.0.0", "exec sleep 600"), ("2.0.0", "echo broken >&2; exit 1")):
        write_recipe(recipes, {"RecipeFormatVersion": "2020-01-25", "ComponentName": "com.x.A",
                               "ComponentVersion": version,
                               "Manifests": [{"Lifecycle": {"Run": run}}]})
    assert core.deploy(recipe_dir=recipes, merge={"com.x.A": "1.0.0"})["status"] == "SUCCEEDED"
    result = core.deploy(recipe_dir=recipes, merge={"com.x.A": "2.0.0"})
    assert result["status"] == "FAILED", result
    core.wait_state("com.x.A", "RUNNING")
    assert core.call("component.list")[0]["version"] == "1.0.0"
