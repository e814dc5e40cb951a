"""Turn a deployment request into the complete desired component set — or refuse it.

Everything is checked here, before any running component is touched: recipes, artifacts and
their digests, versions and dependency ranges, configuration updates, run-as users, every
component's ``accessControl`` policies, and each component type's own rules (a Lambda
component's configuration and runtime, its container mode).

Only the recipes a deployment uses must be valid: a ``--recipe-dir`` may hold others Sprig cannot
run (a plugin, a newer format), refused only if the deployment needs them. What a used recipe
holds that Sprig ignores (unknown keys, as Greengrass ignores them) comes back as warnings, shown
in the deployment's status and the core log.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sprig.config.merge import ConfigState
from sprig.core.component import config_state
from sprig.deployment.builtins import NUCLEUS, builtin_recipes
from sprig.deployment.request import DeploymentRequest
from sprig.deployment.store import PackageStore
from sprig.errors import ValidationError
from sprig.paths import RootLayout
from sprig.pubsub.authorization import validate_access_control
from sprig.recipe.artifacts import StagedVersion, prepare_artifacts, verify_staged
from sprig.recipe.limits import DEFAULT_LIMITS, StagingLimits
from sprig.recipe.load import RecipeFolder, load_recipe_folder
from sprig.recipe.model import Recipe
from sprig.recipe.parse import parse_recipe
from sprig.recipe.platform import select_manifest
from sprig.recipe.resolve import resolve
from sprig.state.db import ComponentRecord, StateDB

#: component type -> check of a planned component (raises ValidationError)
Validator = Callable[[ComponentRecord, Recipe], None]


@dataclass(frozen=True)
class Accepted:
    """A deployment the planner accepted: the desired component set and what it ignored."""

    records: dict[str, ComponentRecord]
    warnings: tuple[str, ...] = field(default=())


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
               artifact_dir: Path | None) -> Accepted:
        """Validate a new request with the recipes and artifacts it brings; on success stage the
        artifacts and store the recipes it uses (running components are not touched).

        All or nothing: if anything is refused, the versions staged so far are removed, the
        trees they replaced come back and no recipe is stored."""
        folder = RecipeFolder()
        if recipe_dir is not None:
            folder = load_recipe_folder(recipe_dir, max_bytes=self.limits.recipe_max_bytes)
        new = folder.recipes
        stored = self.stored_recipes()
        builtin = {r.name for r in builtin_recipes()}
        for name, version in request.merge.items():
            if (name, version) in folder.unusable:
                raise folder.unusable[(name, version)]
            if (name, version) not in new and (name, version) not in stored \
                    and name not in builtin:
                where = f"in {recipe_dir}" if recipe_dir else "(no --recipe-dir given)"
                known = sorted(v for (n, v) in {**stored, **new} if n == name)
                raise ValidationError(
                    f"merge.{name}", f"no recipe for {name} {version} {where}", value=version,
                    allowed=("versions " + ", ".join(known)) if known
                    else "a version whose recipe is in --recipe-dir")
        records = self.plan(request, extra=new, validate=False, unusable=folder.unusable)
        staged: list[StagedVersion] = []
        undo: list[Callable[[], None]] = []
        try:
            for name, rec in records.items():
                recipe = parse_recipe(rec.recipe, f"{name}-{rec.version}")
                manifest = select_manifest(recipe, self.platform)
                if (name, rec.version) in new:
                    # greengrass-cli makes the whole <artifact-dir>/<name>/<version>/ folder
                    # the component's {artifacts:path}, declared in the recipe or not.
                    folder_given = artifact_dir is not None and (
                        artifact_dir / name / rec.version).is_dir()
                    if manifest.artifacts or folder_given:
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
        warnings = tuple(w for key, recipe in sorted(new.items())
                         if key[0] in records and records[key[0]].version == key[1]
                         for w in recipe.warnings)
        return Accepted(records, warnings)

    def validate(self, records: Mapping[str, ComponentRecord]) -> None:
        """Each component type's own checks (after artifacts are staged)."""
        for rec in records.values():
            self.check_run_as(rec)
            config = config_state(rec).effective
            validate_access_control(config.get("accessControl"),
                                    source=f"{rec.name} configuration")
            recipe = parse_recipe(rec.recipe, f"{rec.name}-{rec.version}")
            validator = self.validators.get(str(recipe.component_type))
            if validator is not None:
                validator(rec, recipe)

    def plan(self, request: DeploymentRequest,
             extra: Mapping[tuple[str, str], Recipe] | None = None,
             validate: bool = True,
             unusable: Mapping[tuple[str, str], ValidationError] | None = None,
             ) -> dict[str, ComponentRecord]:
        """The complete desired component set after ``request`` (pure but for reads).

        ``unusable``: recipes of the deployment's folder Sprig cannot use; their error is
        raised if resolution needs that component and finds no usable version."""
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
        try:
            resolved = resolve(requested, available, self.platform) if requested else {}
        except ValidationError as e:
            why = [err for (n, _), err in sorted((unusable or {}).items()) if n == e.path]
            if why:
                raise why[0] from None
            raise
        if NUCLEUS in request.config_updates:
            raise ValidationError(
                f"configurationUpdate.{NUCLEUS}", "Sprig stands in for the nucleus and reads no "
                "configuration of it: such an update would change nothing",
                allowed="the core's settings in config.yaml (thingName, awsRegion, "
                "runWithDefault, mqtt, logging, deploymentLimits)")
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
