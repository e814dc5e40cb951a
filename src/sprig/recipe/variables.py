"""Recipe variables: ``{artifacts:path}``, ``{configuration:/pointer}``, ``{dep:work:path}``...

Interpolation is pure: a :class:`VariableContext` carries everything a component's scripts may
refer to (its own paths and configuration, those of its DIRECT dependencies, the root path and
the thing name); :func:`interpolate` replaces what it knows and leaves anything else (unknown
namespaces, indirect dependencies, configuration keys that do not exist, shell text like
``${HOME}``'s braces) untouched, as the Greengrass nucleus does (KernelConfigResolver).
Substituted values are not interpolated again.

Two ways out. :func:`interpolate` pastes every value as text: for Skipif, Setenv values (plain
environment values) and the lifecycle fingerprint, none of which a shell parses.
:func:`shell_script` is for lifecycle *scripts*: the paths Sprig itself produces
(``{artifacts:path}``, ``{work:path}``, ``{kernel:rootPath}``, ``{iot:thingName}``...) stay
text, but every configuration value (``{configuration:/x}``, ``{Dep:configuration:/x}``) is
passed in an environment variable and referred to in a way that suits its shell quoting
context (:mod:`sprig.recipe.shell`), so no value can become shell code.
:func:`configuration_references` lists the configuration keys a text reads (what the
configuration guard protects).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sprig.paths import RootLayout
from sprig.recipe.model import Recipe
from sprig.recipe.shell import Placed, Value, place


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
    """``text`` with every recipe variable known in ``ctx`` replaced by its text."""
    return "".join(p if isinstance(p, str) else p.text for p in _split(text, ctx))


def shell_script(text: str, ctx: VariableContext) -> Placed:
    """A lifecycle script ready for ``/bin/sh -c``: paths as text, configuration values as
    references to the environment variables in ``env`` (which the step's process must get).

    Raises:
        sprig.recipe.shell.PlacementError: a value that cannot be placed safely.
    """
    return place(_split(text, ctx))


def _split(text: str, ctx: VariableContext) -> list[str | Value]:
    """``text`` as literal text (paths substituted) and configuration :class:`Value` parts."""
    parts: list[str | Value] = []
    last = 0
    for match in _VARIABLE.finditer(text):
        found = _lookup(match.group(1), ctx)
        if found is None:
            continue
        parts.append(text[last:match.start()])
        parts.append(found if isinstance(found, str) else Value(match.group(0), found[0]))
        last = match.end()
    parts.append(text[last:])
    return parts


def _lookup(expr: str, ctx: VariableContext) -> str | tuple[str] | None:
    """A path's text, a configuration value's text as a 1-tuple, or None (left as written)."""
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
        return (config_text(found),)
    return None


def configuration_references(text: str) -> list[tuple[str | None, tuple[str, ...]]]:
    """The configuration keys ``text`` reads: ``(owner, key path)`` for each
    ``{[owner:]configuration:<pointer>}`` (owner None: the recipe's own component), whether or
    not the key exists today. Malformed pointers are skipped: they are never interpolated."""
    found: list[tuple[str | None, tuple[str, ...]]] = []
    for match in _VARIABLE.finditer(text):
        expr = match.group(1)
        owner: str | None = None
        if not expr.startswith("configuration:"):
            owner, _, expr = expr.partition(":")
            if not expr.startswith("configuration:"):
                continue
        tokens = pointer_tokens(expr[len("configuration:"):])
        if tokens is not None:
            found.append((owner, tokens))
    return found


_INVALID = object()


def pointer_tokens(pointer: str) -> tuple[str, ...] | None:
    """The keys of an RFC 6901 ``pointer`` as interpolation reads it; None if malformed."""
    if pointer == "":
        return ()
    if not pointer.startswith("/"):
        return None
    return tuple(t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/"))


def json_pointer(document: Any, pointer: str) -> Any:
    """The value at an RFC 6901 ``pointer``; ``_MISSING`` if absent, ``_INVALID`` if malformed."""
    tokens = pointer_tokens(pointer)
    if tokens is None:
        return _INVALID
    node = document
    for key in tokens:
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
