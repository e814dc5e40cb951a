"""Which manifest of a recipe applies to this device, and which lifecycle runs.

The device's platform is a flat string map as Greengrass reports it (``os``, ``architecture``,
``architecture.detail``, plus ``runtime``). A manifest's ``Platform`` matches when every key
it names matches: exactly, ``*`` (anything, even an absent key), or ``/regex/`` (a full match,
as Java's ``Pattern.matches``). The first matching manifest wins.
"""

from __future__ import annotations

import platform as _platform
import re
from collections.abc import Mapping

from sprig.errors import ValidationError
from sprig.recipe.model import Lifecycle, Manifest, Recipe

# uname machine -> Greengrass architecture name (nucleus PlatformResolver).
_ARCHITECTURES = {
    "x86_64": "amd64", "amd64": "amd64",
    "aarch64": "aarch64", "arm64": "aarch64",
    "i386": "x86", "i486": "x86", "i586": "x86", "i686": "x86", "x86": "x86",
}

# Sprig behaves as the classic (Java) nucleus: Lambda components exist only there, and recipes
# written for both nuclei say ``runtime: "*"``.
RUNTIME = "aws_nucleus_classic"


def architecture(machine: str) -> str:
    """The Greengrass name of a ``uname -m`` machine (``armv7l`` -> ``arm``)."""
    m = machine.lower()
    if m in _ARCHITECTURES:
        return _ARCHITECTURES[m]
    if m.startswith("arm"):
        return "arm"
    return m


def current_platform() -> dict[str, str]:
    """This device's platform attributes."""
    machine = _platform.machine()
    return {
        "os": _platform.system().lower(),
        "architecture": architecture(machine),
        "architecture.detail": machine,
        "runtime": RUNTIME,
    }


def value_matches(wanted: str, actual: str | None) -> bool:
    if wanted == "*":
        return True
    if actual is None:
        return False
    if len(wanted) >= 2 and wanted.startswith("/") and wanted.endswith("/"):
        return re.fullmatch(wanted[1:-1], actual) is not None
    return wanted == actual


def manifest_matches(manifest: Manifest, platform: Mapping[str, str]) -> bool:
    return all(value_matches(v, platform.get(k)) for k, v in manifest.platform.items())


def select_manifest(recipe: Recipe, platform: Mapping[str, str]) -> Manifest:
    """The first manifest of ``recipe`` matching ``platform``.

    Raises:
        ValidationError: no manifest matches; names the component, the platform and the
            manifests' platforms.
    """
    manifests = recipe.effective_manifests
    for manifest in manifests:
        if manifest_matches(manifest, platform):
            return manifest
    offered = "; ".join(_describe(m.platform) for m in manifests)
    raise ValidationError(
        "Manifests", f"{recipe.name} {recipe.version} has no manifest for this device's "
        f"platform {_describe(platform)}", allowed=f"a manifest whose Platform matches; the "
        f"recipe offers: {offered}")


def _describe(platform: Mapping[str, str]) -> str:
    if not platform:
        return "{} (any)"
    return "{" + ", ".join(f"{k}: {v}" for k, v in platform.items()) + "}"


def effective_lifecycle(recipe: Recipe, manifest: Manifest) -> Lifecycle:
    """The lifecycle to run: the manifest's own when non-empty, else the recipe's global one.

    In the global lifecycle, the first of the manifest's ``Selections`` (default ``all``) that
    names a section is laid over the global steps and ``Setenv`` (the section wins).
    """
    if not manifest.lifecycle.is_empty:
        return manifest.lifecycle
    base = recipe.lifecycle
    for key in manifest.selections or ("all",):
        section = base.sections.get(key)
        if section is not None:
            return Lifecycle(setenv={**base.setenv, **section.setenv},
                             steps={**base.steps, **section.steps})
    return Lifecycle(setenv=base.setenv, steps=base.steps)
