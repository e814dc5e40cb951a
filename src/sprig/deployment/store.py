"""The package store: the recipes and artifacts of the component versions on this device, and
what is kept of them.

Layout (``packages/``): ``recipes/<name>-<version>.json`` (the accepted recipe, canonical form),
``artifacts/<name>/<version>/`` and ``artifacts-unarchived/<name>/<version>/``.

Retention follows the Greengrass nucleus (``ComponentManager.cleanupStaleVersions``, run after
every deployment): for each component the current version and the previous one (the version it
had before its last change, kept so that a rollback needs nothing new) stay; every other version
goes, and so does everything of a removed component. A deployment that failed also keeps the
versions it tried (the nucleus keeps "the versions in the last tried deployment" when it was
aborted). Versions still needed by a queued deployment or by the rollback of the one in progress
stay too: the caller passes them in.

Removal is two steps: stale directories are renamed into ``packages/.trash/`` at once (so the
store is consistent immediately), then deleted — possibly in a thread, since a tree may be large.
The next core deletes whatever a crash left in the trash, and the temporary directories of an
interrupted staging (:func:`sweep_leftovers`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from sprig.paths import RootLayout
from sprig.recipe.artifacts import BACKUP_PREFIX, STAGING_PREFIX
from sprig.recipe.model import Recipe
from sprig.recipe.parse import parse_recipe

TRASH = ".trash"


def keep_set(*groups: Mapping[str, str | Iterable[str]]) -> dict[str, set[str]]:
    """Merge name -> version(s) maps into name -> set of versions to keep."""
    keep: dict[str, set[str]] = {}
    for group in groups:
        for name, versions in group.items():
            keep.setdefault(name, set()).update(
                {versions} if isinstance(versions, str) else versions)
    return keep


class PackageStore:
    def __init__(self, layout: RootLayout) -> None:
        self.layout = layout

    @property
    def trash(self) -> Path:
        return self.layout.recipes.parent / TRASH

    # -- recipes ---------------------------------------------------------------------------

    def recipe_path(self, name: str, version: str) -> Path:
        return self.layout.recipes / f"{name}-{version}.json"

    def stored_recipes(self) -> dict[tuple[str, str], Recipe]:
        found: dict[tuple[str, str], Recipe] = {}
        for path in sorted(self.layout.recipes.glob("*.json")):
            recipe = parse_recipe(json.loads(path.read_text()), str(path))
            found[(recipe.name, recipe.version)] = recipe
        return found

    def store(self, recipe: Recipe) -> Callable[[], None]:
        """Store ``recipe`` durably; returns what undoes it (the file it replaced comes back)."""
        path = self.recipe_path(recipe.name, recipe.version)
        before = path.read_bytes() if path.exists() else None
        self._write(path, json.dumps(recipe.to_dict(), indent=2, sort_keys=True).encode())

        def undo() -> None:
            if before is None:
                path.unlink(missing_ok=True)
            else:
                self._write(path, before)
        return undo

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)

    # -- retention -------------------------------------------------------------------------

    def versions(self) -> dict[str, set[str]]:
        """Every component version with a recipe or a staged directory on disk."""
        found: dict[str, set[str]] = {}
        for (name, version) in self.stored_recipes():
            found.setdefault(name, set()).add(version)
        for base in (self.layout.artifacts, self.layout.artifacts_unarchived):
            for name_dir in _entries(base):
                for version_dir in _entries(name_dir):
                    found.setdefault(name_dir.name, set()).add(version_dir.name)
        return found

    def prune(self, keep: Mapping[str, set[str]]) -> list[Path]:
        """Move every version not in ``keep`` (recipe and artifact trees) into the trash and
        return the trash directories to :meth:`empty`. Entries of an interrupted staging (dot
        names) are left to :func:`sweep_leftovers`."""
        doomed: list[Path] = []
        for (name, version) in self.stored_recipes():
            if version not in keep.get(name, set()):
                doomed.append(self.recipe_path(name, version))
        for base in (self.layout.artifacts, self.layout.artifacts_unarchived):
            for name_dir in _entries(base):
                kept = keep.get(name_dir.name, set())
                doomed.extend(v for v in _entries(name_dir) if v.name not in kept)
        if not doomed:
            return []
        self.trash.mkdir(mode=0o700, exist_ok=True)
        bin_ = Path(tempfile.mkdtemp(prefix="prune-", dir=self.trash))
        for i, path in enumerate(doomed):
            os.rename(path, bin_ / f"{i}-{path.name}")
        for base in (self.layout.artifacts, self.layout.artifacts_unarchived):
            for name_dir in _entries(base):
                if not any(name_dir.iterdir()):
                    name_dir.rmdir()
        return [bin_]

    @staticmethod
    def empty(bins: Iterable[Path]) -> None:
        for bin_ in bins:
            shutil.rmtree(bin_, ignore_errors=True)

    def sweep_leftovers(self) -> int:
        """At start-up: delete the trash and the temporary directories a killed core left while
        staging; a version whose directory was renamed aside but never replaced gets it back.
        Returns how many entries were cleaned."""
        cleaned = 0
        if self.trash.exists():
            shutil.rmtree(self.trash, ignore_errors=True)
            cleaned += 1
        for tmp in self.layout.recipes.glob("*.tmp"):
            tmp.unlink(missing_ok=True)
            cleaned += 1
        for base in (self.layout.artifacts, self.layout.artifacts_unarchived):
            if not base.is_dir():
                continue
            for name_dir in (p for p in base.iterdir() if p.is_dir()):
                for entry in list(name_dir.iterdir()):
                    if entry.name.startswith(BACKUP_PREFIX):
                        _restore_or_drop(entry)
                    elif entry.name.startswith(STAGING_PREFIX):
                        shutil.rmtree(entry, ignore_errors=True)
                    else:
                        continue
                    cleaned += 1
        return cleaned


def _entries(directory: Path) -> list[Path]:
    """The component or version directories in ``directory`` (not the dot-named leftovers)."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if not p.name.startswith("."))


def _restore_or_drop(backup_dir: Path) -> None:
    """``.old-<version>-xxxx/<version>``: put it back if nothing replaced it, else drop it (the
    renames that replace a version are atomic: a final directory is always complete)."""
    for kept in backup_dir.iterdir():
        final = backup_dir.parent / kept.name
        if not final.exists() and not final.is_symlink():
            os.rename(kept, final)
    shutil.rmtree(backup_dir, ignore_errors=True)
