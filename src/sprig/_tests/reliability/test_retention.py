"""What a device keeps, with a real core: after many deployments of new versions only the current
and the previous version of a component stay (recipes, artifacts, unpacked trees) and state.db
holds a bounded history; a removed component's files go; a failed deployment still rolls back —
also when the core was killed in the middle of it and the rollback happens after the restart."""

from __future__ import annotations

import sqlite3
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sprig._tests.reliability.support import public_dir, wait_deployment
from sprig.state.db import HISTORY_KEEP
from sprig.testing import CoreProcess, write_recipe

pytestmark = pytest.mark.e2e

APP = "com.example.Kept"


@pytest.fixture
def public_tmp() -> Iterator[Path]:
    with public_dir("sprig-retention-") as path:
        yield path


def add_version(base: Path, name: str, version: str, *, install: str | None = None) -> None:
    """A component whose Run needs its unpacked artifact (a missing one makes it fail)."""
    files = base / "artifacts" / name / version
    files.mkdir(parents=True)
    with zipfile.ZipFile(files / "code.zip", "w") as z:
        z.writestr("version.txt", version)
    lifecycle = {"Run": "test -f {artifacts:decompressedPath}/code/version.txt && "
                        "exec sleep 600"}
    if install:
        lifecycle["Install"] = install
    write_recipe(base / "recipes", {
        "RecipeFormatVersion": "2020-01-25", "ComponentName": name, "ComponentVersion": version,
        "Manifests": [{"Platform": {"os": "linux"}, "Lifecycle": lifecycle,
                       "Artifacts": [{"URI": "s3://b/code.zip", "Unarchive": "ZIP",
                                      "Permission": {"Read": "ALL"}}]}]})


def deploy(core: CoreProcess, base: Path, name: str, version: str) -> dict[str, object]:
    return core.deploy(recipe_dir=base / "recipes", artifact_dir=base / "artifacts",
                       merge={name: version})


def on_disk(core: CoreProcess, name: str) -> dict[str, set[str]]:
    """The versions of ``name`` in each part of the package store."""
    layout = core.layout
    recipes = {p.name[len(name) + 1:-len(".json")]
               for p in layout.recipes.glob(f"{name}-*.json")}
    return {"recipes": recipes,
            "artifacts": {p.name for p in (layout.artifacts / name).glob("*")},
            "unarchived": {p.name for p in (layout.artifacts_unarchived / name).glob("*")}}


def stored(core: CoreProcess, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(f"file:{core.layout.state_db}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_only_current_and_previous_versions_remain_and_history_is_bounded(
        public_tmp: Path) -> None:
    versions = [f"{i}.0.0" for i in range(1, HISTORY_KEEP + 4)]
    with CoreProcess(public_tmp / "root") as core:
        for v in versions:
            add_version(public_tmp, APP, v)
            assert deploy(core, public_tmp, APP, v)["status"] == "SUCCEEDED"
        current, previous = versions[-1], versions[-2]
        assert on_disk(core, APP) == {"recipes": {previous, current},
                                      "artifacts": {previous, current},
                                      "unarchived": {previous, current}}
        assert core.states()[APP] == "RUNNING"
        history = core.call("deployment.list", {"limit": 1000})
        assert len(history) == HISTORY_KEEP == 20
        assert stored(core, "SELECT COUNT(*) FROM deployments") == [(HISTORY_KEEP,)]
        assert stored(core, "SELECT COUNT(*) FROM deployments WHERE snapshot IS NOT NULL") \
            == [(1,)]
        assert stored(core, "SELECT name, version FROM component_previous_versions") \
            == [(APP, previous)]
        assert stored(core, "SELECT COUNT(*) FROM deployment_pins") == [(0,)]
        size = sum(p.stat().st_size for p in core.root.glob("state.db*"))
        print(f"{len(versions)} deployments: state.db and WAL hold {size / 1024:.0f} KiB; "
              f"{len(history)} deployments kept")

        # A removed component's recipe, artifacts and unpacked tree go once the removal
        # succeeded.
        add_version(public_tmp, "com.example.Gone", "1.0.0")
        assert deploy(core, public_tmp, "com.example.Gone", "1.0.0")["status"] == "SUCCEEDED"
        assert on_disk(core, "com.example.Gone")["artifacts"] == {"1.0.0"}
        assert core.deploy(remove=["com.example.Gone"])["status"] == "SUCCEEDED"
        assert on_disk(core, "com.example.Gone") == {"recipes": set(), "artifacts": set(),
                                                     "unarchived": set()}
        assert not (core.layout.artifacts / "com.example.Gone").exists()
        assert on_disk(core, APP)["artifacts"] == {previous, current}


def test_a_failed_deployment_rolls_back_with_what_was_kept(public_tmp: Path) -> None:
    with CoreProcess(public_tmp / "root") as core:
        for v in ("1.0.0", "2.0.0", "3.0.0"):
            add_version(public_tmp, APP, v)
            assert deploy(core, public_tmp, APP, v)["status"] == "SUCCEEDED"
        add_version(public_tmp, APP, "4.0.0", install="echo broken >&2; exit 1")
        result = deploy(core, public_tmp, APP, "4.0.0")
        assert result["status"] == "FAILED" and "rolled back" in str(result["reason"])
        core.wait_state(APP, "RUNNING")
        assert core.call("component.details", {"name": APP})["version"] == "3.0.0"
        # As the nucleus after an aborted deployment: the tried version stays for now.
        assert on_disk(core, APP)["artifacts"] == {"2.0.0", "3.0.0", "4.0.0"}
        add_version(public_tmp, APP, "5.0.0")
        assert deploy(core, public_tmp, APP, "5.0.0")["status"] == "SUCCEEDED"
        assert on_disk(core, APP)["artifacts"] == {"3.0.0", "5.0.0"}


def test_rollback_after_a_restart_mid_deployment_finds_the_previous_version(
        public_tmp: Path) -> None:
    root = public_tmp / "root"
    core = CoreProcess(root, config={"deploymentTimeoutSeconds": 8}).start()
    try:
        for v in ("1.0.0", "2.0.0"):
            add_version(public_tmp, APP, v)
            assert deploy(core, public_tmp, APP, v)["status"] == "SUCCEEDED"
        # 3.0.0 never finishes installing: the core is killed while it is IN_PROGRESS.
        add_version(public_tmp, APP, "3.0.0", install="exec sleep 600")
        pending = core.deploy(recipe_dir=public_tmp / "recipes",
                              artifact_dir=public_tmp / "artifacts",
                              merge={APP: "3.0.0"}, wait=False)
        core.wait_state(APP, "NEW")
        status = core.call("deployment.status", {"deploymentId": pending["deploymentId"]})
        assert status["status"] == "IN_PROGRESS"
        core.kill()
        core.start()
        # The start-up clean-up kept what the rollback needs (2.0.0 and its previous 1.0.0).
        final = wait_deployment(core, str(pending["deploymentId"]))
        assert final["status"] == "FAILED" and "rolled back" in str(final["reason"]), final
        core.wait_state(APP, "RUNNING")
        assert core.call("component.details", {"name": APP})["version"] == "2.0.0"
        assert on_disk(core, APP)["artifacts"] == {"1.0.0", "2.0.0", "3.0.0"}
        assert stored(core, "SELECT COUNT(*) FROM deployments WHERE snapshot IS NOT NULL") \
            == [(1,)]
    finally:
        core.stop()


def test_the_next_core_cleans_what_a_killed_one_left_while_staging(public_tmp: Path) -> None:
    core = CoreProcess(public_tmp / "root").start()
    try:
        add_version(public_tmp, APP, "1.0.0")
        assert deploy(core, public_tmp, APP, "1.0.0")["status"] == "SUCCEEDED"
        core.kill()
        # What a core killed in the middle of staging leaves (same names as it uses): half-
        # written temporary trees, a version renamed aside but not yet replaced, the trash of
        # an interrupted prune, a recipe being written.
        layout = core.layout
        half = layout.artifacts / APP / ".staging-2.0.0-k1ll3d"
        half.mkdir()
        (half / "code.zip").write_bytes(b"\0" * 4096)
        (layout.artifacts_unarchived / APP / ".staging-2.0.0-k1ll3d").mkdir()
        aside = layout.unarchived_dir(APP, "1.0.0").parent / ".old-1.0.0-k1ll3d"
        aside.mkdir()
        layout.unarchived_dir(APP, "1.0.0").rename(aside / "1.0.0")
        (layout.recipes.parent / ".trash" / "prune-k1ll3d").mkdir(parents=True)
        (layout.recipes / f"{APP}-2.0.0.tmp").write_text("{")
        core.start()
        # Run needs the unpacked artifact: the version renamed aside is back before it starts.
        core.wait_state(APP, "RUNNING")
        leftovers = [p for base in (layout.artifacts / APP, layout.artifacts_unarchived / APP)
                     for p in base.iterdir() if p.name.startswith(".")]
        assert leftovers == []
        assert not (layout.recipes.parent / ".trash").exists()
        assert not list(layout.recipes.glob("*.tmp"))
        assert "leftover(s) of an interrupted staging" in layout.core_log.read_text()
    finally:
        core.stop()
