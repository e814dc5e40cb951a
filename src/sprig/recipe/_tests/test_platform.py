"""Manifest selection (exact, ``*``, ``/regex/``, first match, none) and the effective lifecycle."""

from __future__ import annotations

import platform as std_platform
from typing import Any

import pytest

from sprig.errors import ValidationError
from sprig.recipe import (
    Recipe,
    StepName,
    current_platform,
    effective_lifecycle,
    parse_recipe,
    select_manifest,
)
from sprig.recipe.platform import architecture

LINUX_AMD64 = {"os": "linux", "architecture": "amd64", "architecture.detail": "x86_64"}


def recipe(manifests: list[dict[str, Any]], lifecycle: dict[str, Any] | None = None) -> Recipe:
    data: dict[str, Any] = {"RecipeFormatVersion": "2020-01-25", "ComponentName": "c",
                            "ComponentVersion": "1.0.0", "Manifests": manifests}
    if lifecycle is not None:
        data["Lifecycle"] = lifecycle
    return parse_recipe(data, "c.yaml")


@pytest.mark.parametrize(("machine", "expected"), [
    ("x86_64", "amd64"), ("aarch64", "aarch64"), ("armv7l", "arm"), ("armv6l", "arm"),
    ("i686", "x86"), ("riscv64", "riscv64")])
def test_architecture_names_follow_greengrass(machine: str, expected: str) -> None:
    assert architecture(machine) == expected


def test_current_platform_describes_this_machine() -> None:
    here = current_platform()
    assert here["os"] == "linux"
    assert here["architecture.detail"] == std_platform.machine()
    assert here["architecture"] == architecture(std_platform.machine())


@pytest.mark.parametrize(("platform", "matches"), [
    ({}, True),
    ({"os": "linux"}, True),
    ({"os": "windows"}, False),
    ({"os": "*", "architecture": "*"}, True),
    ({"architecture": "/amd64|aarch64/"}, True),
    ({"architecture": "/amd/"}, False),  # a regex must match the whole value
    ({"architecture": "/amd.*/"}, True),
    ({"os": "linux", "architecture": "arm"}, False),
    ({"gpu": "nvidia"}, False),  # a custom key the device does not have
    ({"gpu": "*"}, True),
    # PlatformHelper.testField: "all"/"any" are wildcards for os and architecture only, and
    # "//" means "has a value" (the GDK template and the nucleus test recipes write os: all).
    ({"os": "all"}, True),
    ({"os": "any", "architecture": "all"}, True),
    ({"architecture": "any"}, True),
    ({"gpu": "all"}, False),
    ({"os": "//"}, True),
    ({"gpu": "//"}, False),
    ({"os": ["windows", "linux"]}, True),                # alternatives (testAlternatives)
    ({"architecture": ["arm", "/aarch.*/"]}, False),
])
def test_platform_matching(platform: dict[str, str], matches: bool) -> None:
    r = recipe([{"Platform": platform}])
    if matches:
        assert select_manifest(r, LINUX_AMD64) is r.manifests[0]
    else:
        with pytest.raises(ValidationError):
            select_manifest(r, LINUX_AMD64)


def test_first_matching_manifest_wins() -> None:
    r = recipe([{"Name": "arm", "Platform": {"architecture": "arm"}},
                {"Name": "any-linux", "Platform": {"os": "linux"}},
                {"Name": "everything", "Platform": {}}])
    assert select_manifest(r, LINUX_AMD64).name == "any-linux"
    assert select_manifest(r, {"os": "linux", "architecture": "arm"}).name == "arm"
    assert select_manifest(r, {"os": "darwin"}).name == "everything"


def test_no_matching_manifest_names_component_platform_and_offers() -> None:
    r = recipe([{"Platform": {"os": "windows"}}, {"Platform": {"os": "linux",
                                                               "architecture": "arm"}}])
    with pytest.raises(ValidationError) as info:
        select_manifest(r, LINUX_AMD64)
    text = str(info.value)
    assert "c 1.0.0" in text
    assert "architecture: amd64" in text
    assert "{os: windows}" in text and "{os: linux, architecture: arm}" in text


def test_recipe_without_manifests_uses_global_lifecycle() -> None:
    r = recipe([], {"Run": "echo global"})
    manifest = select_manifest(r, LINUX_AMD64)
    assert effective_lifecycle(r, manifest).steps[StepName.RUN].script == "echo global"


def test_manifest_lifecycle_wins_when_not_empty() -> None:
    r = recipe([{"Platform": {"os": "linux"}, "Lifecycle": {"Run": "echo manifest"}},
                {"Platform": {}, "Lifecycle": {}}], {"Run": "echo global"})
    first = select_manifest(r, LINUX_AMD64)
    assert effective_lifecycle(r, first).steps[StepName.RUN].script == "echo manifest"
    other = select_manifest(r, {"os": "darwin"})
    assert effective_lifecycle(r, other).steps[StepName.RUN].script == "echo global"


def test_selections_pick_a_section_of_the_global_lifecycle() -> None:
    r = recipe([{"Platform": {"os": "linux"}, "Selections": ["linux"]},
                {"Platform": {"os": "darwin"}}],
               {"Setenv": {"A": "1", "B": "1"}, "Shutdown": "echo bye",
                "linux": {"Setenv": {"B": "2"}, "Run": "echo linux"},
                "all": {"Run": "echo all"}})
    linux = effective_lifecycle(r, select_manifest(r, LINUX_AMD64))
    assert linux.steps[StepName.RUN].script == "echo linux"
    assert linux.steps[StepName.SHUTDOWN].script == "echo bye"
    assert linux.setenv == {"A": "1", "B": "2"}
    darwin = effective_lifecycle(r, select_manifest(r, {"os": "darwin"}))
    assert darwin.steps[StepName.RUN].script == "echo all"
    assert darwin.setenv == {"A": "1", "B": "1"}
