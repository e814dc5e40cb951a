"""A component as the kernel runs it: the recipe resolved for this device, its configuration,
how its lifecycle strings are interpolated, and which of its texts root runs (the
configuration keys those read are protected from IPC updates: :mod:`sprig.config.protected`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sprig.config.merge import ConfigState
from sprig.config.protected import Reference
from sprig.config.visibility import readable_configuration
from sprig.core.lifecycle import DEFAULT_STEP_TIMEOUTS, Step
from sprig.recipe.model import Recipe
from sprig.recipe.parse import parse_recipe
from sprig.recipe.platform import effective_lifecycle, select_manifest
from sprig.recipe.shell import Placed
from sprig.recipe.variables import (
    ComponentVariables,
    VariableContext,
    configuration_references,
    interpolate,
    shell_script,
)

if TYPE_CHECKING:
    from sprig.paths import RootLayout
    from sprig.state.db import ComponentRecord

GENERIC = "aws.greengrass.generic"
LAMBDA = "aws.greengrass.lambda"


@dataclass(frozen=True)
class StepSpec:
    """One lifecycle step after manifest selection (script not yet interpolated)."""

    name: Step
    script: str
    requires_privilege: bool = False
    skipif: str | None = None
    timeout_s: float | None = None
    setenv: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Component:
    """Everything the kernel needs to know about one desired component."""

    record: ComponentRecord
    recipe: Recipe
    steps: dict[Step, StepSpec]
    setenv: dict[str, str]
    #: the lifecycle's errorResetTime in seconds (None: the nucleus default, 3600)
    error_reset_time_s: float | None = None

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def version(self) -> str:
        return self.record.version

    @property
    def component_type(self) -> str:
        return str(self.recipe.component_type)

    @property
    def configuration(self) -> dict[str, Any]:
        return config_state(self.record).effective

    @property
    def dependencies(self) -> dict[str, str]:
        """Direct dependencies: name -> "HARD" | "SOFT"."""
        return {name: str(dep.dependency_type) for name, dep in self.recipe.dependencies.items()}


def config_state(record: ComponentRecord) -> ConfigState:
    return ConfigState.from_document(record.configuration, source=f"component {record.name}")


def load_component(record: ComponentRecord, platform: dict[str, str]) -> Component:
    recipe = parse_recipe(record.recipe, f"recipe of {record.name}-{record.version}")
    manifest = select_manifest(recipe, platform)
    lifecycle = effective_lifecycle(recipe, manifest)
    steps: dict[Step, StepSpec] = {}
    for step_name, step in lifecycle.steps.items():
        key = Step(str(step_name))
        timeout = step.timeout_s if step.timeout_s is not None else DEFAULT_STEP_TIMEOUTS[key]
        steps[key] = StepSpec(
            name=key,
            script=step.script,
            requires_privilege=step.requires_privilege,
            skipif=str(step.skipif) if step.skipif is not None else None,
            timeout_s=timeout,
            setenv=dict(step.setenv),
        )
    return Component(record=record, recipe=recipe, steps=steps, setenv=dict(lifecycle.setenv),
                     error_reset_time_s=lifecycle.error_reset_time_s)


def variables_for(component: Component, layout: RootLayout, reader: str) -> ComponentVariables:
    """What ``{component:...}`` variables expand to in ``reader``'s lifecycle: configuration as
    ``reader`` may read it (:func:`readable_configuration`: no secret value, no other function's
    environment), exactly as over IPC."""
    return ComponentVariables(
        artifacts_path=str(layout.artifact_dir(component.name, component.version)),
        decompressed_path=str(layout.unarchived_dir(component.name, component.version)),
        work_path=str(layout.work_dir(component.name)),
        configuration=readable_configuration(reader, component.name, component.component_type,
                                             component.configuration),
    )


def interpolation_context(component: Component, others: dict[str, Component],
                          layout: RootLayout, thing_name: str) -> VariableContext:
    components = {
        name: variables_for(others[name], layout, component.name)
        for name in component.dependencies
        if name in others
    }
    components[component.name] = variables_for(component, layout, component.name)
    return VariableContext(
        component=component.name,
        components=components,
        kernel_root_path=str(layout.root),
        thing_name=thing_name,
    )


def render(text: str, ctx: VariableContext) -> str:
    """Text with every variable's value pasted in: for Skipif and Setenv values, which no
    shell parses (never for a script: see :func:`render_script`)."""
    return interpolate(text, ctx)


def render_script(step: StepSpec, ctx: VariableContext) -> Placed:
    """The step's script for ``/bin/sh -c`` and the environment variables holding the
    configuration values it refers to (each reaches the shell as one literal string).

    Raises:
        sprig.recipe.shell.PlacementError: a value that cannot be placed safely.
    """
    return shell_script(step.script, ctx)


def privileged_references(component: Component, *, runs_as_root: bool) -> list[Reference]:
    """The configuration keys that root (or, for a Lambda component, the Lambda manager) reads
    through ``component``'s recipe: the script, Skipif and Setenv of each ``RequiresPrivilege``
    step (every step when the component runs as root) and the component-level Setenv when any
    step is privileged; a Lambda component's Setenv always (the manager reads its handler,
    runtime, artifact path and exec args from there)."""
    texts: list[tuple[str, str]] = []
    privileged = False
    for step in component.steps.values():
        if not (step.requires_privilege or runs_as_root):
            continue
        privileged = True
        where = (f"the {step.name} step of {component.name} (run as root)" if runs_as_root
                 and not step.requires_privilege else
                 f"the RequiresPrivilege {step.name} step of {component.name}")
        texts.append((where, step.script))
        if step.skipif:
            texts.append((f"{where} (Skipif)", step.skipif))
        texts.extend((f"{where} (Setenv {k})", v) for k, v in step.setenv.items())
    if privileged or component.component_type == LAMBDA:
        texts.extend((f"the Setenv {k} of {component.name}", v)
                     for k, v in component.setenv.items())
    return [Reference(owner or component.name, path, where)
            for where, text in texts
            for owner, path in configuration_references(text)]


def lifecycle_fingerprint(component: Component, ctx: VariableContext) -> str:
    """The interpolated lifecycle: when it changes, the component must restart.

    Values are pasted as text here (:func:`render`), never run: the fingerprint only has to
    change whenever a value a script refers to changes (scripts get them by environment).
    """
    doc = {
        "setenv": {k: interpolate(v, ctx) for k, v in component.setenv.items()},
        "steps": {
            str(k): {
                "script": interpolate(s.script, ctx),
                "priv": s.requires_privilege,
                "skipif": s.skipif,
                "timeout": s.timeout_s,
                "setenv": {ek: interpolate(ev, ctx) for ek, ev in s.setenv.items()},
            }
            for k, s in component.steps.items()
        },
        "version": component.version,
        "run_with": component.record.run_with,
        "limits": component.record.system_limits,
    }
    return json.dumps(doc, sort_keys=True)
