"""Import a Lambda function: validate every input, then write the recipe and artifact.

Output layout, as ``sprig deployment create --recipe-dir OUT/recipes --artifact-dir
OUT/artifacts --merge NAME=VERSION`` (and ``greengrass-cli``) expect it::

    OUT/recipes/<name>-<version>.json            (or .yaml)
    OUT/artifacts/<name>/<version>/lambda-artifact.zip

Nothing is written until everything is valid; files are written in a temporary directory inside
OUT and then renamed into place, so a failure never leaves half a component behind.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from sprig.errors import ValidationError
from sprig.lambda_import.artifact import Artifact, load_code
from sprig.lambda_import.documents import check_function_configuration, check_lambda_function
from sprig.lambda_import.model import LambdaComponent
from sprig.lambda_import.params import ImportFlags, resolve
from sprig.lambda_import.recipe import ARTIFACT_FILE, build_recipe


class RecipeFormat(StrEnum):
    JSON = "json"
    YAML = "yaml"


@dataclass(frozen=True)
class ImportResult:
    component: LambdaComponent
    recipe: dict[str, Any]
    digest: str
    recipe_path: Path
    artifact_path: Path

    @property
    def recipe_dir(self) -> Path:
        return self.recipe_path.parent

    @property
    def artifact_dir(self) -> Path:
        return self.artifact_path.parent.parent.parent


def render_recipe(recipe: dict[str, Any], fmt: RecipeFormat) -> bytes:
    if fmt is RecipeFormat.YAML:
        return yaml.safe_dump(recipe, sort_keys=False, allow_unicode=True).encode("utf-8")
    return (json.dumps(recipe, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def prepare(code: Path, flags: ImportFlags, lambda_function: Any = None,
            function_configuration: Any = None) -> tuple[LambdaComponent, Artifact,
                                                         dict[str, Any]]:
    """Validate every input and build the recipe in memory (no file is written)."""
    doc = check_lambda_function(lambda_function) if lambda_function is not None else None
    config = (check_function_configuration(function_configuration)
              if function_configuration is not None else None)
    component = resolve(flags, doc, config)
    artifact = load_code(code)
    return component, artifact, build_recipe(component, artifact.digest)


def write_component(out: Path, component: LambdaComponent, artifact: Artifact,
                    recipe: dict[str, Any], fmt: RecipeFormat = RecipeFormat.JSON,
                    ) -> ImportResult:
    """Write the recipe and artifact under ``out`` (replacing an earlier import of the same
    name and version)."""
    name, version = component.component_name, component.component_version
    recipe_rel = Path("recipes") / f"{name}-{version}.{fmt.value}"
    artifact_rel = Path("artifacts") / name / version / ARTIFACT_FILE
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".sprig-import-", dir=out))
    try:
        for rel, data in ((artifact_rel, artifact.data), (recipe_rel, render_recipe(recipe, fmt))):
            tmp = staging / rel.name
            tmp.write_bytes(data)
            os.chmod(tmp, 0o644)
            os.replace(tmp, _directory(out, rel.parent) / rel.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ImportResult(component, recipe, artifact.digest, out / recipe_rel, out / artifact_rel)


def _directory(out: Path, rel: Path) -> Path:
    """``out/rel``, created as needed; a symbolic link on the way is refused (the import may run
    as root: a planted ``OUT/artifacts -> /etc`` must not redirect what it writes)."""
    current = out
    for part in rel.parts:
        current = current / part
        if current.is_symlink():
            raise ValidationError("", f"{current} is a symbolic link to {os.readlink(current)}: "
                                  "the import does not write through links", source="--out",
                                  value=str(current), allowed="an output directory without links")
        current.mkdir(exist_ok=True)
    return current


def import_function(code: Path, out: Path, flags: ImportFlags, lambda_function: Any = None,
                    function_configuration: Any = None,
                    fmt: RecipeFormat = RecipeFormat.JSON) -> ImportResult:
    """Validate everything, then write. Raises ValidationError before writing anything."""
    component, artifact, recipe = prepare(code, flags, lambda_function, function_configuration)
    return write_component(out, component, artifact, recipe, fmt)
