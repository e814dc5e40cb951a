"""Golden files: the generated recipe is exactly the expected one, and has AWS's shape."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

from sprig.lambda_import.importer import RecipeFormat, import_function
from sprig.lambda_import.params import ImportFlags

from .helpers import golden, python_code, without_digest

FULL_FLAGS = ImportFlags(
    pinned=False, timeout="45", env=("FROM_FLAG=flag", "SHARED=flag"),
    exec_args=("--verbose", "x y"), volumes=("/srv/models:/models:ro", "/var/data:/data:rw"),
    devices=("/dev/i2c-1",), memory_kb="131072")


def _digest_of(path: Path) -> str:
    return base64.b64encode(hashlib.sha256(path.read_bytes()).digest()).decode()


def test_every_parameter_gives_the_golden_recipe(tmp_path: Path) -> None:
    result = import_function(python_code(tmp_path), tmp_path / "out", FULL_FLAGS,
                             golden("full_lambda_function.json"),
                             golden("full_function_configuration.json"))
    written = json.loads(result.recipe_path.read_text())
    assert without_digest(written) == golden("full_recipe.json")
    digests = {a["Digest"] for m in written["Manifests"] for a in m["Artifacts"]}
    assert digests == {_digest_of(result.artifact_path)}
    assert result.recipe_path == tmp_path / "out/recipes/com.example.LambdaPython-8.1.0.json"
    assert result.artifact_path == (
        tmp_path / "out/artifacts/com.example.LambdaPython/8.1.0/lambda-artifact.zip")


def test_code_and_flags_only_give_the_defaults(tmp_path: Path) -> None:
    flags = ImportFlags(name="hello", runtime="nodejs20.x", handler="index.handler")
    result = import_function(python_code(tmp_path), tmp_path / "out", flags)
    assert without_digest(json.loads(result.recipe_path.read_text())) == \
        golden("defaults_recipe.json")
    assert result.recipe["ComponentSource"] == \
        "arn:aws:lambda:us-east-1:000000000000:function:hello:1"


def test_the_aws_generated_recipe_is_reproduced(tmp_path: Path) -> None:
    """The function of reference §2.1, exported from AWS, gives the service's own recipe."""
    config = {"FunctionName": "example-lambda-python", "Runtime": "python3.8",
              "FunctionArn": "arn:aws:lambda:ap-northeast-2:123456789012:function:"
                             "example-lambda-python",
              "Version": "8", "Handler": "lambda_function.lambda_handler", "Description": "v8",
              "Timeout": 3, "MemorySize": 128, "PackageType": "Zip"}
    doc = {"lambdaFunction": {
        "lambdaArn": "arn:aws:lambda:ap-northeast-2:123456789012:function:"
                     "example-lambda-python:8",
        "componentLambdaParameters": {"eventSources": [
            {"topic": "core/topic", "type": "IOT_CORE"},
            {"topic": "local/topic", "type": "PUB_SUB"},
            {"topic": "#", "type": "IOT_CORE"}]}}}
    result = import_function(python_code(tmp_path), tmp_path / "out", ImportFlags(), doc, config)
    assert without_digest(result.recipe) == golden("aws_generated_recipe.json")


def shape(value: Any, key: str = "") -> Any:
    """The key structure of a recipe, with user-data maps and lists reduced to their entries'
    shape (so a recipe with more volumes or topics has the same shape)."""
    if isinstance(value, dict):
        if key in ("EnvironmentVariables", "Platform"):
            return "<map of strings>"
        if key in ("volumes", "devices", "pubsubTopics", "ComponentDependencies"):
            return {"<entry>": shape(next(iter(value.values())))} if value else "<entries>"
        return {k: shape(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


def test_generated_recipe_has_the_aws_recipe_shape(tmp_path: Path) -> None:
    result = import_function(python_code(tmp_path), tmp_path / "out", FULL_FLAGS,
                             golden("full_lambda_function.json"),
                             golden("full_function_configuration.json"))
    aws = golden("aws_generated_recipe.json")
    ours = shape(result.recipe)
    theirs = shape(aws)
    # The §2.1 recipe has no volumes or devices: compare those entries' keys with the mapping
    # of reference §2.2 / the service's LambdaVolumeMount and LambdaDeviceMount models.
    cp = ours["ComponentConfiguration"]["DefaultConfiguration"]["containerParams"]
    assert cp["volumes"] == {"<entry>": {"sourcePath": "str", "destinationPath": "str",
                                         "permission": "str", "addGroupOwner": "bool"}}
    assert cp["devices"] == {"<entry>": {"path": "str", "permission": "str",
                                         "addGroupOwner": "bool"}}
    cp["volumes"] = cp["devices"] = "<entries>"
    assert ours == theirs
    assert list(result.recipe) == list(aws)   # same top-level keys, same order


def test_yaml_recipe_holds_the_same_document(tmp_path: Path) -> None:
    import yaml

    flags = ImportFlags(name="hello", runtime="python3.11", handler="lambda_function.handler")
    result = import_function(python_code(tmp_path), tmp_path / "out", flags,
                             fmt=RecipeFormat.YAML)
    assert result.recipe_path.name == "hello-1.0.0.yaml"
    assert yaml.safe_load(result.recipe_path.read_text()) == result.recipe
