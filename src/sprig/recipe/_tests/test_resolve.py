"""Dependency resolution: highest version, range intersection, conflicts, unknowns, cycles,
platform filtering, and the start order."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from sprig.errors import ValidationError
from sprig.recipe import Recipe, dependency_order, parse_recipe, resolve

LINUX = {"os": "linux", "architecture": "amd64"}


def r(name: str, version: str, deps: dict[str, str] | None = None, *,
      os: str | None = None) -> Recipe:
    data: dict[str, Any] = {"RecipeFormatVersion": "2020-01-25", "ComponentName": name,
            "ComponentVersion": version,
            "ComponentDependencies": {d: {"VersionRequirement": v}
                                      for d, v in (deps or {}).items()}}
    if os is not None:
        data["Manifests"] = [{"Platform": {"os": os}}]
    return parse_recipe(data, f"{name}-{version}.yaml")


def catalog(*recipes: Recipe) -> dict[str, Sequence[Recipe]]:
    out: dict[str, list[Recipe]] = {}
    for recipe in recipes:
        out.setdefault(recipe.name, []).append(recipe)
    return dict(out)


def versions(resolved: dict[str, Recipe]) -> dict[str, str]:
    return {n: rec.version for n, rec in resolved.items()}


def test_highest_version_of_everything_reachable() -> None:
    available = catalog(r("A", "1.0.0", {"B": "^1.0.0"}), r("A", "1.2.0", {"B": "^1.1.0"}),
                        r("B", "1.0.0"), r("B", "1.10.0", {"C": "*"}), r("B", "2.0.0"),
                        r("C", "0.1.0"), r("Unrelated", "1.0.0"))
    assert versions(resolve({"A": "*"}, available, LINUX)) == {
        "A": "1.2.0", "B": "1.10.0", "C": "0.1.0"}


def test_exact_requested_version() -> None:
    available = catalog(r("A", "1.0.0"), r("A", "1.2.0"))
    assert versions(resolve({"A": "1.0.0"}, available, LINUX)) == {"A": "1.0.0"}


def test_intersection_of_all_requirements() -> None:
    available = catalog(r("A", "1.0.0", {"C": ">=1.0.0"}), r("B", "1.0.0", {"C": "<1.5.0"}),
                        r("C", "1.0.0"), r("C", "1.4.9"), r("C", "1.5.0"), r("C", "2.0.0"))
    assert versions(resolve({"A": "1.0.0", "B": "1.0.0"}, available, LINUX))["C"] == "1.4.9"


def test_conflict_names_each_requirement_and_who_requires_it() -> None:
    available = catalog(r("A", "1.0.0", {"B": ">=2.0.0"}), r("C", "1.2.0", {"B": "<2.0.0"}),
                        r("B", "1.0.0"), r("B", "2.1.0"))
    with pytest.raises(ValidationError) as info:
        resolve({"A": "1.0.0", "C": "1.2.0"}, available, LINUX)
    assert str(info.value) == ("B: no version satisfies all requirements: A 1.0.0 requires "
                               ">=2.0.0, C 1.2.0 requires <2.0.0; available: 1.0.0, 2.1.0")


def test_conflict_with_the_deployment_request() -> None:
    available = catalog(r("A", "1.0.0", {"B": "^1.0.0"}), r("B", "1.0.0"), r("B", "2.0.0"))
    with pytest.raises(ValidationError) as info:
        resolve({"A": "*", "B": "2.0.0"}, available, LINUX)
    assert "the deployment requires 2.0.0, A 1.0.0 requires ^1.0.0" in str(info.value)


def test_unknown_dependency_names_who_needs_it() -> None:
    available = catalog(r("A", "1.0.0", {"Missing": "^1.0.0"}))
    with pytest.raises(ValidationError) as info:
        resolve({"A": "1.0.0"}, available, LINUX)
    assert str(info.value).startswith("Missing: component not found (A 1.0.0 requires ^1.0.0)")


def test_unknown_root() -> None:
    with pytest.raises(ValidationError, match="Nope: component not found"):
        resolve({"Nope": "1.0.0"}, {}, LINUX)


def test_bad_requested_range() -> None:
    with pytest.raises(ValidationError) as info:
        resolve({"A": "one"}, catalog(r("A", "1.0.0")), LINUX)
    assert info.value.path == "requested.A" and info.value.value == "one"


def test_cycle_is_named() -> None:
    available = catalog(r("A", "1.0.0", {"B": "*"}), r("B", "1.0.0", {"C": "*"}),
                        r("C", "1.0.0", {"A": "*"}))
    with pytest.raises(ValidationError, match="dependency cycle: A -> B -> C -> A"):
        resolve({"A": "*"}, available, LINUX)


def test_a_later_requirement_lowers_an_earlier_choice() -> None:
    # Z is chosen at 2.0.0 first (A needs any); then B's newest version requires Z <2, and the
    # choice of Z must move down, which changes Z's own dependencies too.
    available = catalog(r("A", "1.0.0", {"Z": "*", "B": "*"}),
                        r("B", "1.0.0", {"Y": "*"}), r("Y", "1.0.0", {"Z": "<2.0.0"}),
                        r("Z", "1.0.0", {"Old": "*"}), r("Z", "2.0.0", {"New": "*"}),
                        r("Old", "1.0.0"), r("New", "1.0.0"))
    assert versions(resolve({"A": "*"}, available, LINUX)) == {
        "A": "1.0.0", "B": "1.0.0", "Y": "1.0.0", "Z": "1.0.0", "Old": "1.0.0"}


def test_versions_without_a_manifest_for_the_platform_are_skipped() -> None:
    available = catalog(r("A", "1.0.0", os="linux"), r("A", "2.0.0", os="windows"))
    assert versions(resolve({"A": "*"}, available, LINUX)) == {"A": "1.0.0"}
    with pytest.raises(ValidationError) as info:
        resolve({"A": "2.0.0"}, available, LINUX)
    assert "2.0.0 has no manifest for this platform: os=linux" in str(info.value)


def test_prereleases_only_when_asked_for() -> None:
    available = catalog(r("A", "1.0.0"), r("A", "1.1.0-rc.1"))
    assert versions(resolve({"A": "*"}, available, LINUX)) == {"A": "1.0.0"}
    assert versions(resolve({"A": "1.1.0-rc.1"}, available, LINUX)) == {"A": "1.1.0-rc.1"}


def test_dependency_order_puts_dependencies_first_deterministically() -> None:
    comps = {rec.name: rec for rec in (
        r("app", "1.0.0", {"lib": "*", "log": "*"}), r("lib", "1.0.0", {"base": "*"}),
        r("log", "1.0.0"), r("base", "1.0.0"), r("zeta", "1.0.0"),
        r("alpha", "1.0.0", {"ghost": "*"}))}
    order = dependency_order(comps)
    assert order == ["alpha", "base", "lib", "log", "app", "zeta"]
    assert dependency_order(dict(reversed(list(comps.items())))) == order


def test_dependency_order_rejects_cycles() -> None:
    comps = {"a": r("a", "1.0.0", {"b": "*"}), "b": r("b", "1.0.0", {"a": "*"})}
    with pytest.raises(ValidationError, match="dependency cycle: a -> b -> a"):
        dependency_order(comps)


def test_one_ordering_routine_for_planner_and_kernel() -> None:
    from sprig.recipe.resolve import order_by_dependencies

    deps = {"app": ["db", "log"], "db": ["log"], "log": [], "zz": ["outside"]}
    assert order_by_dependencies(deps) == ["log", "db", "app", "zz"]
    # a cycle (which a deployment refuses) does not lose its members
    assert order_by_dependencies({"a": ["b"], "b": ["a"], "c": []}) == ["c", "a", "b"]
