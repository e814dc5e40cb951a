"""Which manifest of a recipe applies to this device, and which lifecycle runs.

The device's platform is a flat string map as Greengrass reports it (``os``, ``architecture``,
``architecture.detail``, plus ``runtime``). A manifest's ``Platform`` matches when every key
it names matches: exactly, ``*`` (anything, even an absent key), ``//`` (any value, but the key
must exist), or ``/regex/`` (a full match, as Java's ``Pattern.matches``); a list of such
expressions matches when one of them does (``PlatformHelper.testAlternatives``). ``all`` and
``any`` are wildcards too for ``os`` and ``architecture``: the nucleus's matcher
(``PlatformHelper.testField`` in aws-greengrass-component-common) treats them so, and the GDK
template and most of the nucleus's own test recipes write ``os: all``. The first matching
manifest wins.
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


#: Keys whose ``all`` / ``any`` value is a wildcard (PlatformHelper.testField).
ALL_ANY_KEYS = frozenset({"os", "architecture"})


def value_matches(wanted: str | tuple[str, ...], actual: str | None, key: str = "") -> bool:
    if isinstance(wanted, tuple):
        return any(value_matches(w, actual, key) for w in wanted)
    if wanted == "*":
        return True
    if key in ALL_ANY_KEYS and wanted in ("all", "any"):
        return True
    if actual is None:
        return False
    if wanted == "//":
        return True
    if len(wanted) >= 2 and wanted.startswith("/") and wanted.endswith("/"):
        return re.fullmatch(wanted[1:-1], actual) is not None
    return wanted == actual


def manifest_matches(manifest: Manifest, platform: Mapping[str, str]) -> bool:
    return all(value_matches(v, platform.get(k), k) for k, v in manifest.platform.items())


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


def _describe(platform: Mapping[str, str | tuple[str, ...]]) -> str:
    if not platform:
        return "{} (any)"
    return "{" + ", ".join(f"{k}: {'|'.join(v) if isinstance(v, tuple) else v}"
                           for k, v in platform.items()) + "}"


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
            reset = section.error_reset_time_s
            return Lifecycle(setenv={**base.setenv, **section.setenv},
                             steps={**base.steps, **section.steps},
                             error_reset_time_s=base.error_reset_time_s if reset is None
                             else reset)
    return Lifecycle(setenv=base.setenv, steps=base.steps,
                     error_reset_time_s=base.error_reset_time_s)
