"""The generated component goes through Sprig's own recipe loader and artifact stager, as a
deployment (``--recipe-dir OUT/recipes --artifact-dir OUT/artifacts``) would take it."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from sprig.lambda_import.importer import RecipeFormat, import_function
from sprig.paths import RootLayout
from sprig.recipe.artifacts import stage_artifacts
from sprig.recipe.load import load_recipe_dir
from sprig.recipe.model import ComponentType
from sprig.recipe.parse import parse_recipe
from sprig.recipe.platform import current_platform, select_manifest

from .helpers import golden, python_code
from .test_golden import FULL_FLAGS


@pytest.mark.parametrize("fmt", list(RecipeFormat))
def test_recipe_loads_and_artifact_stages(tmp_path: Path, fmt: RecipeFormat) -> None:
    out = tmp_path / "out"
    result = import_function(python_code(tmp_path), out, FULL_FLAGS,
                             golden("full_lambda_function.json"),
                             golden("full_function_configuration.json"), fmt=fmt)
    recipes = load_recipe_dir(result.recipe_dir)
    recipe = recipes[("com.example.LambdaPython", "8.1.0")]
    assert recipe.component_type is ComponentType.LAMBDA
    assert recipe.source == result.component.lambda_arn
    assert set(recipe.dependencies) >= {"aws.greengrass.LambdaLauncher",
                                        "aws.greengrass.LambdaRuntimes",
                                        "aws.greengrass.TokenExchangeService"}
    assert dict(recipe.default_configuration) == \
        result.recipe["ComponentConfiguration"]["DefaultConfiguration"]
    manifest = select_manifest(recipe, current_platform())
    layout = RootLayout(tmp_path / "root")
    layout.create()
    stage_artifacts(recipe, manifest, result.artifact_dir, layout)
    staged = layout.unarchived_dir(recipe.name, recipe.version) / "lambda-artifact"
    with zipfile.ZipFile(result.artifact_path) as zf:
        assert sorted(p.name for p in staged.iterdir()) == sorted(zf.namelist())


def test_the_aws_generated_recipe_parses() -> None:
    recipe_doc = golden("aws_generated_recipe.json")
    for manifest in recipe_doc["Manifests"]:
        for artifact in manifest["Artifacts"]:
            artifact["Digest"] = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
    recipe = parse_recipe(recipe_doc, "aws_generated_recipe.json")
    assert recipe.component_type is ComponentType.LAMBDA
    assert recipe.publisher == "AWS Lambda"
