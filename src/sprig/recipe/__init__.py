"""Greengrass component recipes: parse and validate, pick the platform's manifest, stage
artifacts, expand recipe variables and resolve dependency versions.

Everything here is pure except :func:`load_recipe`, :func:`load_recipe_dir` (read files) and
:func:`stage_artifacts` (writes the artifact directories).
"""

from __future__ import annotations

from sprig.recipe.artifacts import chown_staged, stage_artifacts, verify_staged
from sprig.recipe.load import load_document, load_recipe, load_recipe_dir
from sprig.recipe.model import (
    DEFAULT_TIMEOUTS_S,
    RECIPE_FORMAT_VERSION,
    Artifact,
    ComponentType,
    Dependency,
    DependencyType,
    Lifecycle,
    Manifest,
    Permission,
    Recipe,
    SkipIf,
    SkipIfKind,
    Step,
    StepName,
    Unarchive,
)
from sprig.recipe.parse import parse_recipe
from sprig.recipe.platform import (
    current_platform,
    effective_lifecycle,
    manifest_matches,
    select_manifest,
)
from sprig.recipe.resolve import Requirement, dependency_order, resolve
from sprig.recipe.variables import (
    ComponentVariables,
    VariableContext,
    component_variables,
    context_for,
    interpolate,
)

__all__ = [
    "DEFAULT_TIMEOUTS_S",
    "RECIPE_FORMAT_VERSION",
    "Artifact",
    "ComponentType",
    "ComponentVariables",
    "Dependency",
    "DependencyType",
    "Lifecycle",
    "Manifest",
    "Permission",
    "Recipe",
    "Requirement",
    "SkipIf",
    "SkipIfKind",
    "Step",
    "StepName",
    "Unarchive",
    "VariableContext",
    "chown_staged",
    "component_variables",
    "context_for",
    "current_platform",
    "dependency_order",
    "effective_lifecycle",
    "interpolate",
    "load_document",
    "load_recipe",
    "load_recipe_dir",
    "manifest_matches",
    "parse_recipe",
    "resolve",
    "select_manifest",
    "stage_artifacts",
    "verify_staged",
]
