"""Recipe variables: ``{artifacts:path}``, ``{configuration:/pointer}``, ``{dep:work:path}``...

Interpolation is pure: a :class:`VariableContext` carries everything a component's scripts may
refer to (its own paths and configuration, those of its DIRECT dependencies, the root path and
the thing name); :func:`interpolate` replaces what it knows and leaves anything else (unknown
namespaces, indirect dependencies, configuration keys that do not exist, shell text like
``${HOME}``'s braces) untouched, as the Greengrass nucleus does (KernelConfigResolver).
Substituted values are not interpolated again.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sprig.paths import RootLayout
from sprig.recipe.model import Recipe


@dataclass(frozen=True)
class ComponentVariables:
    """What ``{[name:]artifacts:path}`` and friends expand to for one component."""

    artifacts_path: str
    decompressed_path: str
    work_path: str
    configuration: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class VariableContext:
    """The variables visible to one component's lifecycle.

    ``components`` holds the component itself and its direct dependencies, by name.
    """

    component: str
    components: Mapping[str, ComponentVariables]
    kernel_root_path: str
    thing_name: str = ""


def component_variables(recipe: Recipe, layout: RootLayout,
                        configuration: Mapping[str, Any]) -> ComponentVariables:
    return ComponentVariables(
        artifacts_path=str(layout.artifact_dir(recipe.name, recipe.version)),
        decompressed_path=str(layout.unarchived_dir(recipe.name, recipe.version)),
        work_path=str(layout.work_dir(recipe.name)),
        configuration=configuration,
    )


def context_for(recipe: Recipe, resolved: Mapping[str, Recipe], layout: RootLayout,
                configurations: Mapping[str, Mapping[str, Any]],
                thing_name: str = "") -> VariableContext:
    """The context of ``recipe``, given every resolved recipe and each one's configuration."""
    own = {recipe.name: recipe}
    deps = {name: resolved[name] for name in recipe.dependencies if name in resolved}
    components = {
        name: component_variables(r, layout, configurations.get(name, {}))
        for name, r in {**deps, **own}.items()
    }
    return VariableContext(recipe.name, components, str(layout.root), thing_name)


_VARIABLE = re.compile(r"\{([^{}]+)\}")
_MISSING = object()


def interpolate(text: str, ctx: VariableContext) -> str:
    """``text`` with every recipe variable known in ``ctx`` replaced."""

    def replace(match: re.Match[str]) -> str:
        value = _lookup(match.group(1), ctx)
        return match.group(0) if value is None else value

    return _VARIABLE.sub(replace, text)


def _lookup(expr: str, ctx: VariableContext) -> str | None:
    if expr == "kernel:rootPath":
        return ctx.kernel_root_path
    if expr == "iot:thingName":
        return ctx.thing_name
    owner, rest = ctx.component, expr
    namespace, _, tail = expr.partition(":")
    if namespace not in ("artifacts", "configuration", "work"):
        # {<direct dependency>:artifacts:path} and the like; anything else is unknown.
        if namespace == ctx.component or namespace not in ctx.components:
            return None
        owner, rest = namespace, tail
    comp = ctx.components.get(owner)
    if comp is None:
        return None
    if rest == "artifacts:path":
        return comp.artifacts_path
    if rest == "artifacts:decompressedPath":
        return comp.decompressed_path
    if rest == "work:path":
        return comp.work_path
    if rest.startswith("configuration:"):
        found = json_pointer(comp.configuration, rest[len("configuration:"):])
        if found is _INVALID or found is _MISSING:
            return None  # Greengrass leaves a variable it cannot resolve as written
        return config_text(found)
    return None


_INVALID = object()


def json_pointer(document: Any, pointer: str) -> Any:
    """The value at an RFC 6901 ``pointer``; ``_MISSING`` if absent, ``_INVALID`` if malformed."""
    if pointer == "":
        return document
    if not pointer.startswith("/"):
        return _INVALID
    node = document
    for token in pointer[1:].split("/"):
        key = token.replace("~1", "/").replace("~0", "~")
        if isinstance(node, Mapping):
            if key not in node:
                return _MISSING
            node = node[key]
        elif isinstance(node, list):
            if not key.isdigit() or int(key) >= len(node):
                return _MISSING
            node = node[int(key)]
        else:
            return _MISSING
    return node


def config_text(value: Any) -> str:
    """A configuration value as the nucleus renders it (Jackson ``asText``/``toString``).

    Strings as is; numbers, booleans and null as JSON text (``3.0``, ``true``, ``null``);
    objects and lists as compact JSON with object keys sorted (the nucleus's mapper sorts them).
    """
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
