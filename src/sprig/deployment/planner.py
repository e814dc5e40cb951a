"""Turn a deployment request into the complete desired component set — or refuse it.

Everything is checked here, before any running component is touched: recipes, artifacts and
their digests, versions and dependency ranges, configuration updates, run-as users, and each
component type's own rules (a Lambda component's configuration and runtime, its container mode).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from sprig.config.merge import ConfigState
from sprig.core.component import config_state
from sprig.deployment.builtins import builtin_recipes
from sprig.deployment.request import DeploymentRequest
from sprig.deployment.store import PackageStore
from sprig.errors import ValidationError
from sprig.paths import RootLayout
from sprig.recipe.artifacts import StagedVersion, prepare_artifacts, verify_staged
from sprig.recipe.limits import DEFAULT_LIMITS, StagingLimits
from sprig.recipe.load import load_recipe_dir
from sprig.recipe.model import Recipe
from sprig.recipe.parse import parse_recipe
from sprig.recipe.platform import select_manifest
from sprig.recipe.resolve import resolve
from sprig.state.db import ComponentRecord, StateDB

#: component type -> check of a planned component (raises ValidationError)
Validator = Callable[[ComponentRecord, Recipe], None]


class Planner:
    def __init__(self, layout: RootLayout, db: StateDB, platform: Mapping[str, str]) -> None:
        self.layout = layout
        self.db = db
        self.platform = dict(platform)
        self.store = PackageStore(layout)
        #: what one deployment may bring (the core sets config.yaml's deploymentLimits)
        self.limits: StagingLimits = DEFAULT_LIMITS
        self.validators: dict[str, Validator] = {}
        #: the uid/gid that owns a component's artifacts (its run-as user), None = keep as is
        self.owner_for: Callable[[ComponentRecord], tuple[int, int] | None] = lambda rec: None
        #: raises ValidationError when a component's run-as user or group does not exist
        self.check_run_as: Callable[[ComponentRecord], None] = lambda rec: None

    def stored_recipes(self) -> dict[tuple[str, str], Recipe]:
        return self.store.stored_recipes()

    # -- planning ------------------------------------------------------------------------

    def accept(self, request: DeploymentRequest, recipe_dir: Path | None,
               artifact_dir: Path | None) -> dict[str, ComponentRecord]:
        """Validate a new request with the recipes and artifacts it brings; on success stage the
        artifacts and store the recipes it uses (running components are not touched).

        All or nothing: if anything is refused, the versions staged so far are removed, the
        trees they replaced come back and no recipe is stored."""
        new: dict[tuple[str, str], Recipe] = {}
        if recipe_dir is not None:
            new = load_recipe_dir(recipe_dir, max_bytes=self.limits.recipe_max_bytes)
        stored = self.stored_recipes()
        builtin = {r.name for r in builtin_recipes()}
        for name, version in request.merge.items():
            if (name, version) not in new and (name, version) not in stored \
                    and name not in builtin:
                where = f"in {recipe_dir}" if recipe_dir else "(no --recipe-dir given)"
                known = sorted(v for (n, v) in {**stored, **new} if n == name)
                raise ValidationError(
                    f"merge.{name}", f"no recipe for {name} {version} {where}", value=version,
                    allowed=("versions " + ", ".join(known)) if known
                    else "a version whose recipe is in --recipe-dir")
        records = self.plan(request, extra=new, validate=False)
        staged: list[StagedVersion] = []
        undo: list[Callable[[], None]] = []
        try:
            for name, rec in records.items():
                recipe = parse_recipe(rec.recipe, f"{name}-{rec.version}")
                manifest = select_manifest(recipe, self.platform)
                if (name, rec.version) in new:
                    if manifest.artifacts:
                        if artifact_dir is None:
                            raise ValidationError(
                                f"{name}.Artifacts", "the recipe has artifacts but no artifact "
                                "directory was given", allowed="--artifact-dir D with "
                                f"D/{name}/{rec.version}/<files>")
                        staged.append(prepare_artifacts(
                            recipe, manifest, artifact_dir, self.layout,
                            owner=self.owner_for(rec), limits=self.limits))
                elif manifest.artifacts:
                    verify_staged(recipe, manifest, self.layout)
            self.validate(records)
            for key, recipe in new.items():
                if key[0] in records and records[key[0]].version == key[1]:
                    undo.append(self.store.store(recipe))
        except BaseException:
            for step in reversed(undo):
                step()
            for one in reversed(staged):
                one.rollback()
            raise
        for one in staged:
            one.commit()
        return records

    def validate(self, records: Mapping[str, ComponentRecord]) -> None:
        """Each component type's own checks (after artifacts are staged)."""
        for rec in records.values():
            self.check_run_as(rec)
            recipe = parse_recipe(rec.recipe, f"{rec.name}-{rec.version}")
            validator = self.validators.get(str(recipe.component_type))
            if validator is not None:
                validator(rec, recipe)

    def plan(self, request: DeploymentRequest,
             extra: Mapping[tuple[str, str], Recipe] | None = None,
             validate: bool = True) -> dict[str, ComponentRecord]:
        """The complete desired component set after ``request`` (pure but for reads)."""
        current = self.db.components()
        for name in request.remove:
            if name not in current:
                raise ValidationError(f"remove.{name}", "component is not deployed", value=name,
                                      allowed=", ".join(sorted(current)) or "(none deployed)")
        requested = {n: r.version for n, r in current.items()
                     if r.is_root and n not in request.remove}
        requested.update(request.merge)
        available: dict[str, list[Recipe]] = {}
        pool = {**self.stored_recipes(), **(extra or {})}
        for recipe in builtin_recipes():
            pool.setdefault((recipe.name, recipe.version), recipe)
        for (name, _), recipe in sorted(pool.items()):
            available.setdefault(name, []).append(recipe)
        resolved = resolve(requested, available, self.platform) if requested else {}
        for name in request.config_updates:
            if name not in resolved:
                raise ValidationError(f"configurationUpdate.{name}",
                                      "component is not part of the deployment", value=name,
                                      allowed=", ".join(sorted(resolved)) or "(none)")
        for name in [*request.run_with, *request.system_limits]:
            if name not in resolved:
                raise ValidationError(f"runWith/systemLimits.{name}",
                                      "component is not part of the deployment", value=name,
                                      allowed=", ".join(sorted(resolved)) or "(none)")
        records: dict[str, ComponentRecord] = {}
        for name, recipe in resolved.items():
            prev = current.get(name)
            defaults = dict(recipe.default_configuration)
            state = config_state(prev).with_defaults(defaults) if prev else ConfigState(defaults)
            update = request.config_updates.get(name)
            if update is not None:
                try:
                    state = state.apply(update)
                except ValidationError as e:
                    raise e.under(f"configurationUpdate.{name}") from None
            rec = ComponentRecord(
                name=name,
                version=recipe.version,
                recipe=recipe.to_dict(),
                configuration=state.to_document(),
                run_with=request.run_with.get(name, prev.run_with if prev else None),
                system_limits=request.system_limits.get(
                    name, prev.system_limits if prev else None),
                is_root=name in requested,
                user_stopped=False,
            )
            records[name] = rec
        if validate:
            self.validate(records)
        return records
