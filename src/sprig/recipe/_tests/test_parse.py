"""Parsing and validating recipes: the AWS-generated Lambda recipe, YAML and JSON files, and
every error a user can make (each names the file, the field path, the value and what is allowed).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from sprig.errors import ValidationError
from sprig.recipe import (
    ComponentType,
    DependencyType,
    Permission,
    SkipIfKind,
    StepName,
    Unarchive,
    load_recipe,
    load_recipe_dir,
    parse_recipe,
)

DATA = Path(__file__).parent / "data"


def base() -> dict[str, Any]:
    return {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": "com.example.Hello",
        "ComponentVersion": "1.0.0",
        "Manifests": [{"Platform": {"os": "linux"},
                       "Lifecycle": {"Run": "python3 -u {artifacts:path}/hello.py"}}],
    }


def error(data: Any, source: str = "hello.yaml") -> ValidationError:
    with pytest.raises(ValidationError) as info:
        parse_recipe(data, source)
    return info.value


def test_aws_generated_lambda_recipe_parses_unchanged() -> None:
    data = json.loads((DATA / "aws-generated-lambda.json").read_text())
    recipe = parse_recipe(data, "aws-generated-lambda.json")
    assert recipe.name == "example-lambda-python"
    assert recipe.version == "8.0.0"
    assert recipe.component_type is ComponentType.LAMBDA
    assert recipe.publisher == "AWS Lambda"
    assert recipe.default_configuration["containerParams"]["memorySize"] == 16384
    assert recipe.default_configuration["pubsubTopics"]["2"] == {"topic": "#", "type": "IOT_CORE"}
    deps = recipe.dependencies
    assert deps["aws.greengrass.LambdaRuntimes"].dependency_type is DependencyType.SOFT
    assert deps["aws.greengrass.LambdaLauncher"].version_requirement == ">=2.0.0 <3.0.0"
    (manifest,) = recipe.manifests
    assert manifest.platform == {} and manifest.lifecycle.is_empty
    (artifact,) = manifest.artifacts
    assert artifact.uri == "greengrass:lambda-artifact.zip"
    assert artifact.file_name == "lambda-artifact.zip"
    assert artifact.unarchived_name == "lambda-artifact"
    assert artifact.unarchive is Unarchive.ZIP
    assert (artifact.read, artifact.execute) == (Permission.OWNER, Permission.NONE)
    startup = recipe.lifecycle.steps[StepName.STARTUP]
    assert startup.requires_privilege is True
    assert startup.script == "{aws.greengrass.LambdaLauncher:artifacts:path}/lambda-launcher start"
    assert startup.effective_timeout_s(StepName.STARTUP) == 120
    assert recipe.lifecycle.steps[StepName.SHUTDOWN].effective_timeout_s(StepName.SHUTDOWN) == 15
    assert recipe.lifecycle.setenv["AWS_GREENGRASS_LAMBDA_RUNTIME"] == "python3.8"
    assert parse_recipe(recipe.to_dict(), "stored") == recipe


def test_yaml_recipe_with_docs_spelling(tmp_path: Path) -> None:
    path = tmp_path / "hello.yaml"
    path.write_text("""\
---
RecipeFormatVersion: 2020-01-25
ComponentName: com.example.HelloWorld
ComponentVersion: '1.0.0'
ComponentDescription: My first component.
ComponentPublisher: Amazon
ComponentConfiguration:
  DefaultConfiguration:
    Message: world
    Since: 2021-03-04
ComponentDependencies:
  com.example.Lib:
    VersionRequirement: ^1.2.0
Manifests:
  - Name: Linux
    Platform:
      os: linux
      architecture: /amd64|aarch64/
    Lifecycle:
      Setenv:
        DEBUG: true
        LEVEL: 3
      Install:
        Script: pip3 install --user -r {artifacts:path}/requirements.txt
        Skipif: onpath pip3
        Timeout: 300
        RequiresPrivilege: "true"
      Run: |
        python3 -u {artifacts:path}/hello_world.py "{configuration:/Message}"
    Artifacts:
      - URI: s3://DOC-EXAMPLE-BUCKET/artifacts/com.example.HelloWorld/1.0.0/hello_world.py
        Permission:
          Read: ALL
          Execute: owner
""")
    recipe = load_recipe(path)
    assert recipe.component_type is ComponentType.GENERIC
    assert recipe.default_configuration == {"Message": "world", "Since": "2021-03-04"}
    assert recipe.dependencies["com.example.Lib"].dependency_type is DependencyType.HARD
    (manifest,) = recipe.manifests
    assert manifest.name == "Linux"
    assert manifest.platform["architecture"] == "/amd64|aarch64/"
    assert manifest.lifecycle.setenv == {"DEBUG": "true", "LEVEL": "3"}
    install = manifest.lifecycle.steps[StepName.INSTALL]
    assert install.skipif is not None and install.skipif.kind is SkipIfKind.ONPATH
    assert install.skipif.target == "pip3"
    assert install.timeout_s == 300 and install.requires_privilege
    run = manifest.lifecycle.steps[StepName.RUN]
    assert run.effective_timeout_s(StepName.RUN) is None
    assert manifest.artifacts[0].file_name == "hello_world.py"
    assert manifest.artifacts[0].execute is Permission.OWNER
    assert parse_recipe(recipe.to_dict(), "stored") == recipe


def test_json_file_is_read_as_json(tmp_path: Path) -> None:
    path = tmp_path / "hello.json"
    path.write_text(json.dumps(base()))
    assert load_recipe(path).name == "com.example.Hello"


def test_yaml_syntax_error_names_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("RecipeFormatVersion: 2020-01-25\nComponentName: a\nComponentVersion: a: b\n")
    with pytest.raises(ValidationError) as info:
        load_recipe(path)
    text = str(info.value)
    assert text.startswith(f"{path}: YAML syntax error at line 3, column 20: ")


def test_json_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{\n  "ComponentName": ,\n}')
    with pytest.raises(ValidationError, match=r"broken\.json: JSON syntax error at line 2, col"):
        load_recipe(path)


def test_duplicate_yaml_key_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("ComponentName: a\nComponentName: b\n")
    with pytest.raises(ValidationError, match=r"line 2, column 1: found the key 'ComponentName'"):
        load_recipe(path)


def test_recipe_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ValidationError, match=r"list\.yaml: a recipe must be an object"):
        load_recipe(path)


def test_load_recipe_dir_reads_all_kinds_and_rejects_duplicates(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(json.dumps(base()))
    other = base() | {"ComponentVersion": "2.0.0"}
    (tmp_path / "b.json").write_text(json.dumps(other))
    third = base() | {"ComponentName": "com.example.Other"}
    (tmp_path / "c.yml").write_text(json.dumps(third))
    (tmp_path / "notes.txt").write_text("not a recipe")
    recipes = load_recipe_dir(tmp_path)
    assert sorted(recipes) == [("com.example.Hello", "1.0.0"), ("com.example.Hello", "2.0.0"),
                               ("com.example.Other", "1.0.0")]
    (tmp_path / "d.yaml").write_text(json.dumps(base()))
    with pytest.raises(ValidationError) as info:
        load_recipe_dir(tmp_path)
    assert "d.yaml" in str(info.value) and "a.yaml" in str(info.value)
    assert "com.example.Hello 1.0.0" in str(info.value)


def test_keys_are_case_insensitive_but_not_twice() -> None:
    data = base()
    data["componentname"] = data.pop("ComponentName")
    assert parse_recipe(data, "x").name == "com.example.Hello"
    data["COMPONENTNAME"] = "other"
    err = error(data)
    assert "given twice" in str(err) and err.path == "COMPONENTNAME"


def test_no_manifests_uses_top_level_lifecycle() -> None:
    data = base()
    del data["Manifests"]
    data["Lifecycle"] = {"Run": "echo hi"}
    recipe = parse_recipe(data, "x")
    assert recipe.manifests == ()
    assert len(recipe.effective_manifests) == 1


def test_yaml_empty_values_read_as_absent() -> None:
    data = base() | {"ComponentConfiguration": None, "ComponentDependencies": None,
                     "Lifecycle": None}
    recipe = parse_recipe(data, "x")
    assert recipe.default_configuration == {} and recipe.dependencies == {}


def with_path(path: list[Any], value: Any) -> dict[str, Any]:
    """``base()`` with the value at ``path`` set (or deleted for ``...``)."""
    data = copy.deepcopy(base())
    node: Any = data
    for key in path[:-1]:
        if isinstance(node, dict) and key not in node:
            node[key] = {}
        node = node[key]
    if value is ...:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return data


ARTIFACT = ["Manifests", 0, "Artifacts"]
LIFECYCLE = ["Manifests", 0, "Lifecycle"]

# (where to put it, the value, the expected error path, a word the message must contain,
#  a word "allowed" must contain)
CASES: list[tuple[list[Any], Any, str, str, str]] = [
    (["RecipeFormatVersion"], "2021-01-01", "RecipeFormatVersion", "not a supported",
     "2020-01-25"),
    (["RecipeFormatVersion"], ..., "RecipeFormatVersion", "is required", "RecipeFormatVersion"),
    (["ComponentName"], ..., "ComponentName", "is required", "ComponentName"),
    (["ComponentName"], "has space", "ComponentName", "not a valid component name", "letters"),
    (["ComponentName"], "../etc", "ComponentName", "not a valid component name", "letters"),
    (["ComponentName"], 7, "ComponentName", "must be", "letters"),
    (["ComponentVersion"], "1.0", "ComponentVersion", "not a strict semantic version",
     "MAJOR.MINOR.PATCH"),
    (["ComponentVersion"], "v1.0.0", "ComponentVersion", "not a strict", "MAJOR"),
    (["ComponentVersion"], 1.0, "ComponentVersion", "must be a semantic version", "1.0.0"),
    (["ComponentType"], "aws.greengrass.plugin", "ComponentType", "plugin components",
     "aws.greengrass.generic | aws.greengrass.lambda"),
    (["ComponentType"], "aws.greengrass.nucleus", "ComponentType", "not supported",
     "aws.greengrass.lambda"),
    (["ComponentType"], "docker", "ComponentType", "not a known value", "aws.greengrass.generic"),
    (["ComponentDescription"], ["x"], "ComponentDescription", "must be a string", "a string"),
    (["ComponentConfiguration", "DefaultConfiguration"], "x",
     "ComponentConfiguration.DefaultConfiguration", "must be an object", "an object"),
    (["ComponentConfiguration", "DefaultConfiguration"], {"a": {1: 2}},
     "ComponentConfiguration.DefaultConfiguration.a.1", "keys must be strings", "string key"),
    (["ComponentConfiguration", "DefaultConfiguration"], {"a": float("nan")},
     "ComponentConfiguration.DefaultConfiguration.a", "finite", "JSON number"),
    (["ComponentDependencies"], ["a"], "ComponentDependencies", "must be an object",
     "component name"),
    (["ComponentDependencies", "B"], {"VersionRequirement": "banana"},
     "ComponentDependencies.B.VersionRequirement", "not a valid version range", "npm-style"),
    (["ComponentDependencies", "B"], {"DependencyType": "WEAK"},
     "ComponentDependencies.B.DependencyType", "not a known value", "HARD | SOFT"),
    (["ComponentDependencies", "com.example.Hello"], {}, "ComponentDependencies.com.example.Hello",
     "cannot depend on itself", "another"),
    (["Manifests"], {"os": "linux"}, "Manifests", "must be a list", "list of manifests"),
    (["Manifests", 0, "Platform"], "linux", "Manifests[0].Platform", "must be an object", "os"),
    (["Manifests", 0, "Platform", "os"], 1, "Manifests[0].Platform.os", "must be", "/regex/"),
    (["Manifests", 0, "Platform", "architecture"], "/(/", "Manifests[0].Platform.architecture",
     "not a valid regular expression", "/regex/"),
    (["Manifests", 0, "Platform", "os"], "", "Manifests[0].Platform.os", "must not be empty",
     "exact value"),
    (["Manifests", 0, "Platform", "os"], "-linux", "Manifests[0].Platform.os",
     "start with a letter or a number", "exact value"),
    (["Manifests", 0, "Selections"], "linux", "Manifests[0].Selections", "must be a list",
     "list of strings"),
    (ARTIFACT, [{"URI": "s3://b/x.zip"}, {"URI": "s3://b/y.zip", "Unarchive": "TAR"}],
     "Manifests[0].Artifacts[1].Unarchive", "not a known value", "NONE | ZIP"),
    (ARTIFACT, [{"Unarchive": "ZIP"}], "Manifests[0].Artifacts[0].URI", "is required", "URI"),
    (ARTIFACT, [{"URI": "https://example.com/x.zip"}], "Manifests[0].Artifacts[0].URI",
     "unsupported scheme", "s3://"),
    (ARTIFACT, [{"URI": "s3://bucket-only"}], "Manifests[0].Artifacts[0].URI",
     "bucket and a key", "s3://"),
    (ARTIFACT, [{"URI": "s3://b/dir/"}], "Manifests[0].Artifacts[0].URI", "file name", "s3://"),
    (ARTIFACT, [{"URI": "s3://b/a/x.zip"}, {"URI": "s3://b/c/x.zip"}],
     "Manifests[0].Artifacts[1]", "same file name", "differ"),
    (ARTIFACT, [{"URI": "s3://b/x", "Permission": {"Read": "GROUP"}}],
     "Manifests[0].Artifacts[0].Permission.Read", "not a known value", "NONE | OWNER | ALL"),
    (ARTIFACT, [{"URI": "s3://b/x", "Algorithm": "MD5"}], "Manifests[0].Artifacts[0].Algorithm",
     "not a supported digest algorithm", "SHA-256"),
    (ARTIFACT, {"URI": "s3://b/x"}, "Manifests[0].Artifacts", "must be a list", "artifacts"),
    (LIFECYCLE, {"Run": "a", "Startup": "b"}, "Manifests[0].Lifecycle", "both Run and Startup",
     "only one of Run"),
    (LIFECYCLE, {"Run": {"Script": "a", "Timeout": -1}}, "Manifests[0].Lifecycle.Run.Timeout",
     "must be positive", "positive number"),
    (LIFECYCLE, {"Run": {"Script": "a", "Timeout": "10"}}, "Manifests[0].Lifecycle.Run.Timeout",
     "must be a positive number", "seconds"),
    (LIFECYCLE, {"Run": {"Script": "a", "Timeout": True}}, "Manifests[0].Lifecycle.Run.Timeout",
     "not a boolean", "seconds"),
    (LIFECYCLE, {"Run": {"Timeout": 3}}, "Manifests[0].Lifecycle.Run.Script", "is required",
     "Script"),
    (LIFECYCLE, {"Run": {"Script": "a", "RequiresPrivilege": "yes"}},
     "Manifests[0].Lifecycle.Run.RequiresPrivilege", "must be", "true or false"),
    (LIFECYCLE, {"Install": {"Script": "a", "Skipif": "missing foo"}},
     "Manifests[0].Lifecycle.Install.Skipif", "unknown condition", "onpath <executable>"),
    (LIFECYCLE, {"Install": {"Script": "a", "Skipif": "exists"}},
     "Manifests[0].Lifecycle.Install.Skipif", "not a valid condition", "exists <file>"),
    (LIFECYCLE, {"Setenv": {"A": None}}, "Manifests[0].Lifecycle.Setenv.A", "must be",
     "a string, number or boolean"),
    (LIFECYCLE, {"Setenv": {"A=B": "x"}}, "Manifests[0].Lifecycle.Setenv.A=B",
     "not a valid environment variable name", "without '='"),
    (LIFECYCLE, {"Setenv": ["A"]}, "Manifests[0].Lifecycle.Setenv", "must be an object",
     "environment variables"),
    (LIFECYCLE, {"Run": ""}, "Manifests[0].Lifecycle.Run", "must not be empty", "script"),
    (LIFECYCLE, {"Run": 3}, "Manifests[0].Lifecycle.Run", "must be a script", "step object"),
    (LIFECYCLE, {"Run": ["a"]}, "Manifests[0].Lifecycle.Run", "not a list", "Script"),
]


#: Unknown keys are ignored as the nucleus ignores them (its RecipeLoader disables Jackson's
#: FAIL_ON_UNKNOWN_PROPERTIES), each with a warning naming the path, a near miss and the known keys.
IGNORED = [
    (["Extra"], 1, "Extra", None, "ComponentName"),
    (["ComponentConfiguration", "Default"], {}, "ComponentConfiguration.Default", None,
     "DefaultConfiguration"),
    (["ComponentDependencies", "B"], {"Version": "1"}, "ComponentDependencies.B.Version", None,
     "VersionRequirement"),
    (["Manifests", 0, "Nmae"], "x", "Manifests[0].Nmae", "Name", "Platform"),
    (["Manifests", 0, "Parameters"], {"a": 1}, "Manifests[0].Parameters", None, "Selections"),
    (ARTIFACT, [{"URI": "s3://b/x", "Permission": {"Write": "ALL"}}],
     "Manifests[0].Artifacts[0].Permission.Write", None, "Read, Execute"),
    (LIFECYCLE, {"Runn": "a"}, "Manifests[0].Lifecycle.Runn", "Run", "Install"),
    (["Lifecycle"], {"linux": {"Run": "x"}}, "Lifecycle.linux", None, "Setenv"),
]


@pytest.mark.parametrize(("where", "value", "path", "suggestion", "known"), IGNORED,
                         ids=[c[2] for c in IGNORED])
def test_unknown_keys_are_ignored_with_a_warning(
        where: list[Any], value: Any, path: str, suggestion: str | None, known: str) -> None:
    recipe = parse_recipe(with_path(where, value), "recipes/hello.yaml")
    (warning,) = recipe.warnings
    assert warning.startswith(f"recipes/hello.yaml: {path}: unknown key ignored")
    assert known in warning
    assert (f"did you mean {suggestion!r}" in warning) if suggestion else "did you mean" \
        not in warning


def test_uninstall_step_and_error_reset_time_are_read() -> None:
    """The nucleus runs ``Uninstall`` when a deployment removes the component
    (GenericExternalService.uninstall, default timeout 120 s) and reads ``lifecycle.errorResetTime``
    (Lifecycle.getErrorResetTime, default 3600 s)."""
    data = base()
    data["Manifests"][0]["Lifecycle"] = {"Run": "x", "Uninstall": "rm -rf /tmp/x",
                                         "errorResetTime": 30}
    recipe = parse_recipe(data, "hello.yaml")
    lifecycle = recipe.manifests[0].lifecycle
    assert lifecycle.steps[StepName.UNINSTALL].script == "rm -rf /tmp/x"
    assert lifecycle.steps[StepName.UNINSTALL].effective_timeout_s(StepName.UNINSTALL) == 120
    assert lifecycle.error_reset_time_s == 30
    assert not recipe.warnings
    assert parse_recipe(recipe.to_dict(), "stored") == recipe


@pytest.mark.parametrize(("where", "value", "path", "message", "allowed"), CASES,
                         ids=[c[2] + ":" + c[3] for c in CASES])
def test_validation_errors_name_file_path_value_and_allowed(
        where: list[Any], value: Any, path: str, message: str, allowed: str) -> None:
    err = error(with_path(where, value), "recipes/hello.yaml")
    assert err.source == "recipes/hello.yaml"
    assert err.path == path
    assert message in err.message
    assert err.allowed is not None and allowed in err.allowed
    text = str(err)
    assert text.startswith(f"recipes/hello.yaml: {path}: ")
    if value is not ... and not isinstance(value, dict | list):
        assert err.has_value


def test_setenv_converts_numbers_and_booleans() -> None:
    recipe = parse_recipe(with_path(LIFECYCLE, {"Setenv": {"A": 1, "B": 2.5, "C": False},
                                                "Run": "x"}), "x")
    assert recipe.manifests[0].lifecycle.setenv == {"A": "1", "B": "2.5", "C": "false"}


def test_step_setenv_overrides_lifecycle_setenv() -> None:
    recipe = parse_recipe(with_path(LIFECYCLE, {
        "Setenv": {"A": "1", "B": "1"},
        "Run": {"Script": "x", "Setenv": {"B": "2"}}}), "x")
    assert recipe.manifests[0].lifecycle.env_for(StepName.RUN) == {"A": "1", "B": "2"}


def test_selection_keys_of_global_lifecycle() -> None:
    data = base()
    data["Manifests"] = [{"Platform": {"os": "linux"}, "Selections": ["linux"]}]
    data["Lifecycle"] = {"Setenv": {"A": "1"}, "linux": {"Run": "echo linux"}}
    recipe = parse_recipe(data, "x")
    assert recipe.lifecycle.sections["linux"].steps[StepName.RUN].script == "echo linux"
    assert parse_recipe(recipe.to_dict(), "stored") == recipe
    data["Lifecycle"] = {"Startup": "a", "linux": {"Run": "b"}}
    assert "both Run and Startup" in str(error(data))


def test_a_selection_key_spelled_like_a_step_is_the_step() -> None:
    data = base()
    data["Manifests"] = [{"Selections": ["run"]}]
    data["Lifecycle"] = {"run": "echo step"}
    recipe = parse_recipe(data, "x")
    assert recipe.lifecycle.steps[StepName.RUN].script == "echo step"
    assert recipe.lifecycle.sections == {}
