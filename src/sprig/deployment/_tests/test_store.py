"""The package store's retention and crash clean-up, and the bounded history in a real
state.db."""

from __future__ import annotations

from pathlib import Path

import pytest

from sprig.deployment.store import PackageStore, keep_set
from sprig.paths import RootLayout
from sprig.recipe import parse_recipe, stage_artifacts
from sprig.state.db import (
    FAILED,
    HISTORY_KEEP,
    IN_PROGRESS,
    QUEUED,
    SUCCEEDED,
    ComponentRecord,
    StateDB,
)


@pytest.fixture
def layout(tmp_path: Path) -> RootLayout:
    root = RootLayout(tmp_path / "root")
    root.create()
    return root


def add_version(layout: RootLayout, tmp_path: Path, name: str, version: str) -> None:
    """A stored recipe and a staged artifact, the way a deployment leaves them."""
    src = tmp_path / "in" / name / version
    src.mkdir(parents=True, exist_ok=True)
    (src / "run.sh").write_text(f"echo {version}\n")
    recipe = parse_recipe({"RecipeFormatVersion": "2020-01-25", "ComponentName": name,
                           "ComponentVersion": version,
                           "Manifests": [{"Artifacts": [{"URI": "s3://b/run.sh"}]}]}, "r")
    stage_artifacts(recipe, recipe.manifests[0], tmp_path / "in", layout)
    PackageStore(layout).store(recipe)


def test_prune_keeps_only_what_is_asked_and_removes_removed_components(
        layout: RootLayout, tmp_path: Path) -> None:
    store = PackageStore(layout)
    for v in ("1.0.0", "2.0.0", "3.0.0"):
        add_version(layout, tmp_path, "com.example.A", v)
    add_version(layout, tmp_path, "com.example.Gone", "1.0.0")
    bins = store.prune(keep_set({"com.example.A": "3.0.0"}, {"com.example.A": "2.0.0"}))
    assert store.versions() == {"com.example.A": {"2.0.0", "3.0.0"}}
    assert not (layout.artifacts / "com.example.Gone").exists()
    assert sorted(p.name for p in layout.recipes.iterdir()) == [
        "com.example.A-2.0.0.json", "com.example.A-3.0.0.json"]
    assert bins and all(b.parent == store.trash for b in bins)
    store.empty(bins)
    assert list(store.trash.iterdir()) == []
    assert store.prune(keep_set({"com.example.A": {"2.0.0", "3.0.0"}})) == []


def test_store_undo_puts_the_previous_recipe_back(layout: RootLayout) -> None:
    store = PackageStore(layout)
    doc = {"RecipeFormatVersion": "2020-01-25", "ComponentName": "com.example.R",
           "ComponentVersion": "1.0.0", "ComponentDescription": "first"}
    store.store(parse_recipe(doc, "r"))
    undo = store.store(parse_recipe({**doc, "ComponentDescription": "second"}, "r"))
    undo()
    (recipe,) = store.stored_recipes().values()
    assert recipe.description == "first"
    undo_new = store.store(parse_recipe({**doc, "ComponentVersion": "2.0.0"}, "r"))
    undo_new()
    assert list(store.stored_recipes()) == [("com.example.R", "1.0.0")]


def test_sweep_removes_staging_leftovers_and_restores_an_orphaned_version(
        layout: RootLayout, tmp_path: Path) -> None:
    add_version(layout, tmp_path, "com.example.A", "1.0.0")
    add_version(layout, tmp_path, "com.example.A", "2.0.0")
    name_dir = layout.artifacts / "com.example.A"
    (name_dir / ".staging-3.0.0-abc").mkdir()
    (name_dir / ".staging-3.0.0-abc" / "half.bin").write_bytes(b"x" * 100)
    (layout.artifacts_unarchived / "com.example.A").mkdir(parents=True, exist_ok=True)
    (layout.artifacts_unarchived / "com.example.A" / ".staging-3.0.0-def").mkdir()
    # Killed between "rename the old tree aside" and "rename the new one in": 1.0.0 comes back.
    (name_dir / ".old-1.0.0-x").mkdir()
    (name_dir / "1.0.0").rename(name_dir / ".old-1.0.0-x" / "1.0.0")
    # Killed after the new tree was in place: the old one is dropped.
    (name_dir / ".old-2.0.0-y").mkdir()
    (name_dir / ".old-2.0.0-y" / "2.0.0").mkdir()
    (layout.recipes / "com.example.A-9.0.0.tmp").write_text("{")
    store = PackageStore(layout)
    store.trash.mkdir()
    (store.trash / "prune-zzz").mkdir()
    assert store.sweep_leftovers() == 6
    assert sorted(p.name for p in name_dir.iterdir()) == ["1.0.0", "2.0.0"]
    assert (name_dir / "1.0.0" / "run.sh").read_text() == "echo 1.0.0\n"
    assert sorted(p.name for p in (layout.artifacts_unarchived / "com.example.A").iterdir()) \
        == ["1.0.0", "2.0.0"]
    assert not store.trash.exists()
    assert not list(layout.recipes.glob("*.tmp"))
    assert store.sweep_leftovers() == 0


def rec(name: str, version: str) -> ComponentRecord:
    return ComponentRecord(name=name, version=version, recipe={}, configuration={})


def deploy(db: StateDB, target: dict[str, str], status: str = SUCCEEDED,
           rollback: bool = False) -> str:
    dep = db.enqueue_deployment({"merge": target}, pins=target)
    snapshot = list(db.components().values())
    db.begin_deployment(dep.id, {n: rec(n, v) for n, v in target.items()})
    db.finish_deployment(dep.id, status, restore=snapshot if rollback else None)
    return dep.id


def test_previous_versions_follow_changes_and_removals(tmp_path: Path) -> None:
    db = StateDB(tmp_path / "state.db")
    deploy(db, {"A": "1.0.0", "B": "1.0.0"})
    assert db.previous_versions() == {}
    deploy(db, {"A": "2.0.0", "B": "1.0.0"})
    deploy(db, {"A": "2.0.0", "B": "1.0.0"})          # no change: the previous stays
    assert db.previous_versions() == {"A": "1.0.0"}
    deploy(db, {"A": "3.0.0", "B": "1.0.0"}, FAILED, rollback=True)
    assert db.previous_versions() == {"A": "1.0.0"}   # rolled back: nothing changed
    assert db.components()["A"].version == "2.0.0"
    deploy(db, {"B": "2.0.0"})                         # A removed
    assert db.previous_versions() == {"B": "1.0.0"}


def test_history_is_bounded_and_only_the_newest_finished_keeps_its_snapshot(
        tmp_path: Path) -> None:
    db = StateDB(tmp_path / "state.db")
    for i in range(HISTORY_KEEP + 15):
        last = deploy(db, {"A": f"{i}.0.0"})
    queued = db.enqueue_deployment({"merge": {"A": "99.0.0"}}, pins={"A": "99.0.0"})
    history = db.deployments(1000)
    assert len(history) == HISTORY_KEEP + 1 and history[0].id == queued.id
    assert [d.id for d in history if d.snapshot is not None] == [last]
    assert db.pinned_versions() == {"A": {"99.0.0"}}
    rows = db._conn.execute("SELECT COUNT(*) FROM deployment_pins").fetchone()[0]
    assert rows == 1, "pins of finished deployments are gone"


def test_an_interrupted_deployment_keeps_what_its_rollback_needs(tmp_path: Path) -> None:
    db = StateDB(tmp_path / "state.db")
    deploy(db, {"A": "1.0.0"})
    dep = db.enqueue_deployment({"merge": {"A": "2.0.0"}}, pins={"A": "2.0.0"})
    db.begin_deployment(dep.id, {"A": rec("A", "2.0.0")})
    for _ in range(HISTORY_KEEP + 2):                  # trimming never touches it
        db.trim_history()
    found = db.deployment(dep.id)
    assert found is not None and found.status == IN_PROGRESS
    assert [r.version for r in found.snapshot or []] == ["1.0.0"]
    assert db.pinned_versions() == {"A": {"1.0.0", "2.0.0"}}
    assert db.next_pending() is not None and db.next_pending().status in (IN_PROGRESS, QUEUED)
