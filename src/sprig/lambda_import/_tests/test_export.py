"""Import → export-params gives back the parameters; device-side configuration is read
leniently (floats, strings, index-keyed maps, alternative spellings)."""

from __future__ import annotations

from pathlib import Path

from sprig.functions.config import LambdaConfig
from sprig.lambda_import.documents import parameters_document
from sprig.lambda_import.export import (
    configuration_to_lambda_parameters,
    effective_lambda_function,
    exec_args_from_recipe,
)
from sprig.lambda_import.importer import import_function
from sprig.lambda_import.params import ImportFlags

from .helpers import golden, python_code, without_digest
from .test_golden import FULL_FLAGS


def _details(recipe: dict[str, object], config: dict[str, object]) -> dict[str, object]:
    """What ``component.details`` returns for a deployed component."""
    return {"name": recipe["ComponentName"], "version": recipe["ComponentVersion"],
            "state": "RUNNING", "configuration": config, "recipe": recipe}


def test_round_trip_gives_back_every_parameter(tmp_path: Path) -> None:
    result = import_function(python_code(tmp_path), tmp_path / "out", FULL_FLAGS,
                             golden("full_lambda_function.json"),
                             golden("full_function_configuration.json"))
    config = result.recipe["ComponentConfiguration"]["DefaultConfiguration"]
    doc = effective_lambda_function(_details(result.recipe, config))
    params = doc["lambdaFunction"]["componentLambdaParameters"]
    assert params == parameters_document(result.component.config, result.component.exec_args)
    assert params["execArgs"] == ["--verbose", "x y"]
    assert params["linuxProcessParams"]["containerParams"]["volumes"][1] == {
        "sourcePath": "/var/data", "destinationPath": "/data", "permission": "rw",
        "addGroupOwner": False}
    # Importing again from the exported document gives the same recipe.
    again = import_function(python_code(tmp_path / "again"), tmp_path / "out2",
                            ImportFlags(runtime="python3.8",
                                        handler="lambda_function.lambda_handler",
                                        description="v8"), doc)
    expected = without_digest(result.recipe)
    got = without_digest(again.recipe)
    # Platforms and extra dependencies are not configuration: they are not exported.
    for recipe in (expected, got):
        recipe.pop("Manifests")
        recipe["ComponentDependencies"] = {
            k: v for k, v in recipe["ComponentDependencies"].items()
            if k.startswith("aws.greengrass.Lambda") or k.endswith("TokenExchangeService")}
    assert got == expected


def test_device_configuration_with_floats_and_strings_is_normalised() -> None:
    config = {
        "lambdaExecutionParameters": {"EnvironmentVariables": {"A": "1"}},
        "containerParams": {"memorySize": 65536.0, "mountROSysfs": "true",
                            "volumes": {"1": {"source": "/b", "destination": "/y"},
                                        "0": {"sourcePath": "/a", "destinationPath": "/x",
                                              "permission": "rw", "addGroupOwner": True}},
                            "devices": {"0": {"path": "/dev/ttyS2", "permission": "rw",
                                              "addGroupOwner": True}}},
        "containerMode": "NoContainer", "timeoutInSeconds": 3.0, "maxInstancesCount": "7",
        "inputPayloadEncodingType": "binary", "maxQueueSize": 10.0, "pinned": False,
        "maxIdleTimeInSeconds": 60.0, "statusTimeoutInSeconds": 60.0,
        "pubsubTopics": {"0": {"topic": "a/b", "type": "Pubsub"},
                         "1": {"topic": "c/#", "type": "IotCore"}},
    }
    assert configuration_to_lambda_parameters(config) == {
        "eventSources": [{"topic": "a/b", "type": "PUB_SUB"}, {"topic": "c/#", "type": "IOT_CORE"}],
        "maxQueueSize": 10, "maxInstancesCount": 7, "maxIdleTimeInSeconds": 60,
        "timeoutInSeconds": 3, "statusTimeoutInSeconds": 60, "pinned": False,
        "inputPayloadEncodingType": "binary", "execArgs": [],
        "environmentVariables": {"A": "1"},
        "linuxProcessParams": {"isolationMode": "NoContainer", "containerParams": {
            "memorySizeInKB": 65536, "mountROSysfs": True,
            "volumes": [{"sourcePath": "/a", "destinationPath": "/x", "permission": "rw",
                         "addGroupOwner": True},
                        {"sourcePath": "/b", "destinationPath": "/y", "permission": "ro",
                         "addGroupOwner": False}],
            "devices": [{"path": "/dev/ttyS2", "permission": "rw", "addGroupOwner": True}]}},
    }


def test_empty_configuration_gives_the_defaults() -> None:
    assert configuration_to_lambda_parameters({}) == \
        parameters_document(LambdaConfig())


def test_exec_args_of_the_aws_recipe_are_empty_and_of_yaml_text_are_read() -> None:
    assert exec_args_from_recipe(golden("aws_generated_recipe.json")) == []
    text = ('Lifecycle:\n  Setenv:\n    AWS_GREENGRASS_LAMBDA_EXEC_ARGS: \'["nodejs14.x",'
            '"/runtime/nodejs/lambda_nodejs_runtime.js","--handler=index.handler","-v"]\'\n')
    assert exec_args_from_recipe(text) == ["-v"]
    assert exec_args_from_recipe(None) == []


def test_the_aws_generated_recipe_exports_its_arn_and_topics() -> None:
    recipe = golden("aws_generated_recipe.json")
    doc = effective_lambda_function(
        _details(recipe, recipe["ComponentConfiguration"]["DefaultConfiguration"]))
    inner = doc["lambdaFunction"]
    assert inner["lambdaArn"] == \
        "arn:aws:lambda:ap-northeast-2:123456789012:function:example-lambda-python:8"
    assert inner["componentName"] == "example-lambda-python"
    assert inner["componentVersion"] == "8.0.0"
    assert [e["topic"] for e in inner["componentLambdaParameters"]["eventSources"]] == \
        ["core/topic", "local/topic", "#"]
