"""Dependency resolution: which version of every component a deployment runs, and in what order.

Policy (Greengrass's): a component's version must satisfy every requirement on it at once (the
deployment's own request plus each dependent's ``VersionRequirement``), and among those the
HIGHEST available version that has a manifest for this platform wins. Choosing a version
changes what it requires, so resolution repeats until the choice is stable. Pure: no I/O.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from sprig.errors import ValidationError
from sprig.recipe._semver import compare, is_valid_range, satisfies, sort_versions
from sprig.recipe.model import Recipe
from sprig.recipe.platform import manifest_matches

DEPLOYMENT = "the deployment"


@dataclass(frozen=True)
class Requirement:
    """``requirer`` (``the deployment`` or ``A 1.0.0``) needs a version in ``version_range``."""

    requirer: str
    version_range: str

    def __str__(self) -> str:
        return f"{self.requirer} requires {self.version_range}"


def resolve(requested: Mapping[str, str], available: Mapping[str, Sequence[Recipe]],
            platform: Mapping[str, str]) -> dict[str, Recipe]:
    """Pick one recipe per component reachable from ``requested``.

    Args:
        requested: root component name -> exact version or npm range.
        available: component name -> its recipes (any order).
        platform: the device platform (see :func:`sprig.recipe.platform.current_platform`).

    Raises:
        ValidationError: a bad request, an unknown component, no version satisfying all
            requirements (naming each requirement and who makes it), or a dependency cycle.
    """
    for name, version_range in requested.items():
        if not isinstance(version_range, str) or not is_valid_range(version_range):
            raise ValidationError(f"requested.{name}", "is not a version or version range",
                                  value=version_range, has_value=True,
                                  allowed="a version such as 1.0.0 or a range such as ^1.0.0")
    chosen: dict[str, Recipe] = {}
    # Each round can only move a version when a requirement on it changed; the bound is generous
    # and only guards against pathological oscillation.
    rounds = 10 + 2 * sum(len(v) for v in available.values())
    for _ in range(rounds):
        requirements = _requirements(requested, chosen)
        picked: dict[str, Recipe] = {}
        problems: list[ValidationError] = []
        for name in sorted(requirements):
            result = _pick(name, requirements[name], available.get(name, ()), platform)
            if isinstance(result, ValidationError):
                problems.append(result)
            else:
                picked[name] = result
        stable = {n: r.version for n, r in picked.items()} == {
            n: r.version for n, r in chosen.items()}
        if stable:
            if problems:
                raise problems[0]
            _check_cycles(picked)
            return picked
        chosen = picked
    raise ValidationError("ComponentDependencies", "dependency resolution did not settle",
                          value=sorted(requested), allowed="requirements that agree")


def _requirements(requested: Mapping[str, str],
                  chosen: Mapping[str, Recipe]) -> dict[str, list[Requirement]]:
    """Requirements on every component reachable from the roots through chosen versions."""
    out: dict[str, list[Requirement]] = {}
    queue: list[str] = []
    for name, version_range in requested.items():
        out.setdefault(name, []).append(Requirement(DEPLOYMENT, version_range))
        queue.append(name)
    seen = set(queue)
    while queue:
        name = queue.pop(0)
        recipe = chosen.get(name)
        if recipe is None:
            continue
        for dep in recipe.dependencies.values():
            out.setdefault(dep.name, []).append(
                Requirement(f"{recipe.name} {recipe.version}", dep.version_requirement))
            if dep.name not in seen:
                seen.add(dep.name)
                queue.append(dep.name)
    return out


def _pick(name: str, requirements: list[Requirement], candidates: Sequence[Recipe],
          platform: Mapping[str, str]) -> Recipe | ValidationError:
    needed = ", ".join(str(r) for r in requirements)
    if not candidates:
        return ValidationError(name, f"component not found ({needed})", value=name,
                               allowed="a component whose recipe is in the deployment or "
                               "already on the device")
    fitting = [c for c in candidates
               if all(satisfies(c.version, r.version_range) for r in requirements)]
    usable = [c for c in fitting
              if any(manifest_matches(m, platform) for m in c.effective_manifests)]
    if usable:
        best = usable[0]
        for c in usable[1:]:
            if compare(c.version, best.version) > 0:
                best = c
        return best
    versions = ", ".join(sort_versions({c.version for c in candidates}))
    message = f"no version satisfies all requirements: {needed}; available: {versions}"
    if fitting:
        excluded = ", ".join(sort_versions({c.version for c in fitting}))
        platform_text = ", ".join(f"{k}={v}" for k, v in platform.items())
        message += f" ({excluded} has no manifest for this platform: {platform_text})"
    return ValidationError(name, message)


def _check_cycles(components: Mapping[str, Recipe]) -> None:
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        path.append(name)
        for dep in sorted(components[name].dependencies):
            if dep not in components:
                continue
            if state.get(dep) == 1:
                cycle = [*path[path.index(dep):], dep]
                raise ValidationError("ComponentDependencies",
                                      f"dependency cycle: {' -> '.join(cycle)}",
                                      value=cycle[0],
                                      allowed="dependencies that form no cycle")
            if dep not in state:
                visit(dep)
        path.pop()
        state[name] = 2

    for name in sorted(components):
        if name not in state:
            visit(name)


def dependency_order(components: Mapping[str, Recipe]) -> list[str]:
    """Component names with every dependency before its dependents (the start order).

    Deterministic: among components that could go next, the alphabetically first goes first.
    Dependencies outside ``components`` are ignored. Reverse it for the stop order.

    Raises:
        ValidationError: the components' dependencies form a cycle.
    """
    _check_cycles(components)
    return order_by_dependencies({n: r.dependencies for n, r in components.items()})


def order_by_dependencies(dependencies: Mapping[str, Iterable[str]]) -> list[str]:
    """The keys of ``dependencies`` (name -> names it depends on), each after what it depends
    on: the one dependency-ordering routine (the planner's start order, the kernel's start
    and stop order).

    Deterministic: among names that could go next, the alphabetically first goes first.
    Dependencies that are not keys are ignored. Names caught in a cycle (a validated
    deployment has none) come last, alphabetically, rather than being lost.
    """
    waiting = {n: {d for d in deps if d in dependencies and d != n}
               for n, deps in dependencies.items()}
    dependents: dict[str, list[str]] = {n: [] for n in dependencies}
    for name, deps in waiting.items():
        for dep in deps:
            dependents[dep].append(name)
    ready = [n for n, deps in waiting.items() if not deps]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        name = heapq.heappop(ready)
        order.append(name)
        for dependent in dependents[name]:
            waiting[dependent].discard(name)
            if not waiting[dependent]:
                heapq.heappush(ready, dependent)
    placed = set(order)
    return order + sorted(n for n in dependencies if n not in placed)
