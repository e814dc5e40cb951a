"""A component's privileged texts (what the configuration guard protects), its scripts as the
shell gets them, and its lifecycle fingerprint."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from sprig.config.merge import ConfigState
from sprig.config.protected import protected_keys, reached_key
from sprig.core.component import (
    Component,
    interpolation_context,
    lifecycle_fingerprint,
    load_component,
    privileged_references,
    render_script,
)
from sprig.paths import RootLayout
from sprig.recipe.model import StepName
from sprig.recipe.platform import current_platform
from sprig.state.db import ComponentRecord


def component(name: str, lifecycle: dict[str, Any], config: dict[str, Any] | None = None, *,
              deps: tuple[str, ...] = (), component_type: str | None = None) -> Component:
    recipe: dict[str, Any] = {
        "RecipeFormatVersion": "2020-01-25", "ComponentName": name, "ComponentVersion": "1.0.0",
        "Manifests": [{"Platform": {"os": "linux"}, "Lifecycle": lifecycle}],
        "ComponentDependencies": {d: {"VersionRequirement": "*"} for d in deps},
    }
    if component_type:
        recipe["ComponentType"] = component_type
    record = ComponentRecord(name, "1.0.0", recipe,
                             ConfigState(defaults=config or {}).to_document())
    return load_component(record, current_platform())


def test_references_of_privileged_steps_skipif_and_setenv() -> None:
    app = component("App", {
        "Setenv": {"TOP": "{configuration:/top}"},
        "Install": {"RequiresPrivilege": True,
                    "Script": "install {configuration:/pkg} {Lib:configuration:/dir}",
                    "Skipif": "onpath {configuration:/tool}",
                    "Setenv": {"MODE": "{configuration:/mode}"}},
        "Run": "run {configuration:/free}",
    }, deps=("Lib",))
    refs = privileged_references(app, runs_as_root=False)
    assert {(r.owner, r.path) for r in refs} == {
        ("App", ("pkg",)), ("Lib", ("dir",)), ("App", ("tool",)), ("App", ("mode",)),
        ("App", ("top",))}
    assert all("RequiresPrivilege Install step of App" in r.where or "Setenv TOP" in r.where
               for r in refs)
    assert [k.path for k in protected_keys("App", app.component_type, refs)] == [
        ("accessControl",), ("pkg",), ("tool",), ("mode",), ("top",)]
    assert [k.path for k in protected_keys("Lib", "aws.greengrass.generic", refs)] == [
        ("accessControl",), ("dir",)]
    # Run as root, every step is privileged.
    refs = privileged_references(app, runs_as_root=True)
    assert ("App", ("free",)) in {(r.owner, r.path) for r in refs}


def test_unprivileged_steps_protect_nothing_but_a_lambda_setenv_always_does() -> None:
    plain = component("Plain", {"Setenv": {"A": "{configuration:/a}"},
                                "Run": "echo {configuration:/msg}"})
    assert privileged_references(plain, runs_as_root=False) == []
    fn = component("Fn", {"Setenv": {"AWS_GREENGRASS_LAMBDA_EXEC_ARGS": "{configuration:/args}"}},
                   component_type="aws.greengrass.lambda")
    refs = privileged_references(fn, runs_as_root=False)
    assert [(r.owner, r.path) for r in refs] == [("Fn", ("args",))]
    keys = protected_keys("Fn", fn.component_type, refs)
    assert reached_key(keys, ["args"], "--x") is not None
    assert reached_key(keys, ["containerMode"], "NoContainer") is not None
    assert reached_key(keys, ["myOwnKey"], 1) is None


def test_a_script_gets_its_values_by_environment(tmp_path: Path) -> None:
    layout = RootLayout(tmp_path)
    lib = component("Lib", {}, {"greeting": "it's $(id)"})
    app = component("App", {"Install": "printf '[%s]' {Lib:configuration:/greeting} "
                                       "\"{configuration:/x}\" {work:path}"},
                    {"x": "; touch " + str(tmp_path / "pwned")}, deps=("Lib",))
    ctx = interpolation_context(app, {"Lib": lib, "App": app}, layout, "Thing")
    placed = render_script(app.steps[StepName.INSTALL], ctx)
    out = subprocess.run(["/bin/sh", "-c", placed.script], env=placed.env, capture_output=True,
                         text=True, check=True).stdout
    assert out == f"[it's $(id)][; touch {tmp_path / 'pwned'}][{layout.work_dir('App')}]"
    assert not (tmp_path / "pwned").exists()


def test_the_fingerprint_changes_with_a_value_a_script_refers_to(tmp_path: Path) -> None:
    layout = RootLayout(tmp_path)

    def fingerprint(x: str, other: str = "o") -> str:
        app = component("App", {"Run": "echo '{configuration:/x}'"}, {"x": x, "other": other})
        return lifecycle_fingerprint(app, interpolation_context(app, {"App": app}, layout, ""))

    assert fingerprint("a") == fingerprint("a")
    assert fingerprint("a") != fingerprint("b")
    assert fingerprint("a", other="1") == fingerprint("a", other="2"), \
        "a key no script reads does not restart the component"
