"""Recipe variable interpolation: own and direct-dependency paths, configuration, the rest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sprig.paths import RootLayout
from sprig.recipe import (
    ComponentVariables,
    Recipe,
    VariableContext,
    context_for,
    interpolate,
    parse_recipe,
)
from sprig.recipe.variables import configuration_references, shell_script

CONFIG = {
    "containerMode": "GreengrassContainer",
    "timeoutInSeconds": 3.0,
    "maxInstancesCount": 100,
    "pinned": True,
    "nothing": None,
    "containerParams": {"volumes": {}, "memorySize": 16384},
    "list": [1, "two"],
    "a/b": {"~x": "escaped"},
}

CTX = VariableContext(
    component="app",
    components={
        "app": ComponentVariables("/r/packages/artifacts/app/1.0.0",
                                  "/r/packages/artifacts-unarchived/app/1.0.0", "/r/work/app",
                                  CONFIG),
        "aws.greengrass.LambdaLauncher": ComponentVariables(
            "/r/packages/artifacts/aws.greengrass.LambdaLauncher/2.0.10",
            "/r/packages/artifacts-unarchived/aws.greengrass.LambdaLauncher/2.0.10",
            "/r/work/aws.greengrass.LambdaLauncher", {"port": 8000}),
    },
    kernel_root_path="/r",
    thing_name="MyThing",
)


@pytest.mark.parametrize(("text", "expected"), [
    ("{artifacts:path}/run.sh", "/r/packages/artifacts/app/1.0.0/run.sh"),
    ("{artifacts:decompressedPath}/lambda-artifact",
     "/r/packages/artifacts-unarchived/app/1.0.0/lambda-artifact"),
    ("cd {work:path}", "cd /r/work/app"),
    ("{kernel:rootPath}", "/r"),
    ("thing={iot:thingName}", "thing=MyThing"),
    ("{configuration:/containerMode}", "GreengrassContainer"),
    ("{configuration:/timeoutInSeconds}", "3.0"),
    ("{configuration:/maxInstancesCount}", "100"),
    ("{configuration:/pinned}", "true"),
    ("{configuration:/nothing}", "null"),
    # Objects are compact JSON with sorted keys (the nucleus's Jackson mapper sorts them).
    ("{configuration:/containerParams}", '{"memorySize":16384,"volumes":{}}'),
    ("{configuration:/list}", '[1,"two"]'),
    ("{configuration:/list/1}", "two"),
    ("{configuration:/a~1b/~0x}", "escaped"),
    # A key that does not exist is left as written, as the nucleus does.
    ("[{configuration:/missing}]", "[{configuration:/missing}]"),
    ("{configuration:/list/7}", "{configuration:/list/7}"),
    ("{aws.greengrass.LambdaLauncher:artifacts:path}/lambda-launcher start",
     "/r/packages/artifacts/aws.greengrass.LambdaLauncher/2.0.10/lambda-launcher start"),
    ("{aws.greengrass.LambdaLauncher:configuration:/port}", "8000"),
    ("{aws.greengrass.LambdaLauncher:work:path}", "/r/work/aws.greengrass.LambdaLauncher"),
    # Left alone: unknown namespaces, non-direct dependencies, shell syntax, bad pointers.
    ("${HOME} {unknown:thing} {other.Component:artifacts:path}",
     "${HOME} {unknown:thing} {other.Component:artifacts:path}"),
    ("{artifacts:size} {configuration:noslash}", "{artifacts:size} {configuration:noslash}"),
    ("awk '{print $1}'", "awk '{print $1}'"),
])
def test_interpolate(text: str, expected: str) -> None:
    assert interpolate(text, CTX) == expected


def test_substituted_values_are_not_interpolated_again() -> None:
    ctx = VariableContext("app", {"app": ComponentVariables("a", "d", "w",
                                                            {"x": "{iot:thingName}"})}, "/r",
                          "T")
    assert interpolate("{configuration:/x}", ctx) == "{iot:thingName}"


def test_context_for_uses_the_layout_and_only_direct_dependencies(tmp_path: Path) -> None:
    def recipe(name: str, version: str, deps: dict[str, str]) -> Recipe:
        return parse_recipe({"RecipeFormatVersion": "2020-01-25", "ComponentName": name,
                             "ComponentVersion": version,
                             "ComponentDependencies": {d: {"VersionRequirement": r}
                                                       for d, r in deps.items()}}, name)
    app = recipe("app", "1.0.0", {"lib": "^2.0.0"})
    lib = recipe("lib", "2.3.0", {"base": "*"})
    base = recipe("base", "1.0.0", {})
    layout = RootLayout(tmp_path)
    ctx = context_for(app, {"app": app, "lib": lib, "base": base}, layout,
                      {"app": {"k": "v"}, "lib": {"n": 1}}, thing_name="T")
    assert interpolate("{lib:artifacts:path}", ctx) == str(layout.artifact_dir("lib", "2.3.0"))
    assert interpolate("{configuration:/k} {lib:configuration:/n}", ctx) == "v 1"
    assert interpolate("{base:artifacts:path}", ctx) == "{base:artifacts:path}"
    assert interpolate("{kernel:rootPath}", ctx) == str(tmp_path)
    assert json.loads(interpolate("{configuration:}", ctx)) == {"k": "v"}


def test_shell_script_passes_configuration_values_by_environment_and_paths_as_text() -> None:
    ctx = VariableContext("app", {
        "app": ComponentVariables("/r/a", "/r/d", "/r/w", {"msg": "hi; id", "n": 3}),
        "lib": ComponentVariables("/r/lib", "/r/libd", "/r/libw", {"port": "80 $(id)"}),
    }, "/r", "Thing")
    placed = shell_script(
        "cd {work:path} && python3 -u {artifacts:path}/app.py \"{configuration:/msg}\" "
        "--port {lib:configuration:/port} '{configuration:/n}' {iot:thingName} "
        "{configuration:/missing}", ctx)
    assert placed.script == (
        'cd /r/w && python3 -u /r/a/app.py "${SPRIG_CONFIG_1}" --port "${SPRIG_CONFIG_2}" '
        "''\"${SPRIG_CONFIG_3}\"'' Thing {configuration:/missing}")
    assert placed.env == {"SPRIG_CONFIG_1": "hi; id", "SPRIG_CONFIG_2": "80 $(id)",
                          "SPRIG_CONFIG_3": "3"}
    # The same text for everything no shell parses.
    assert interpolate("{configuration:/msg} {lib:configuration:/port}", ctx) == "hi; id 80 $(id)"


def test_configuration_references_name_owner_and_key_path() -> None:
    text = ("{configuration:/a/b} {Other:configuration:/x~1y/0} {configuration:} "
            "{configuration:bad} {Other:artifacts:path} {work:path} ${HOME} "
            "{configuration:/a~0b}")
    assert configuration_references(text) == [
        (None, ("a", "b")), ("Other", ("x/y", "0")), (None, ()), (None, ("a~b",))]
