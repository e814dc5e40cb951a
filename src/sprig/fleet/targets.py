"""The union of a device's targets, as the nucleus's ``GroupToRootComponents``. Pure.

A device runs the root components of every target it belongs to (each thing group, its own
thing, and ``LOCAL_DEPLOYMENTS``: the roots of local ``sprig deployment create`` runs); a new
deployment replaces only its own target's roots. Two targets asking for one component in two
versions cannot both be satisfied: the deployment fails, naming both targets and versions.

Local roots are the device's roots that no fleet target owns: a component a fleet target
deploys belongs to that target (a local deployment may change it until the target's next
deployment, which puts the target's version back).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sprig.errors import ValidationError
from sprig.fleet.topics import LOCAL_DEPLOYMENTS


@dataclass(frozen=True)
class TargetRoots:
    """What one target last deployed here (kept on success, as the nucleus keeps it)."""

    deployment_id: str
    creation_timestamp: int
    configuration_arn: str
    components: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"deploymentId": self.deployment_id,
                "creationTimestamp": self.creation_timestamp,
                "configurationArn": self.configuration_arn,
                "components": dict(self.components)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TargetRoots:
        return cls(str(data["deploymentId"]), int(data["creationTimestamp"]),
                   str(data["configurationArn"]), dict(data.get("components") or {}))


class VersionConflict(ValidationError):
    """Two targets require different versions of one component."""


@dataclass(frozen=True)
class RootPlan:
    versions: dict[str, str]    # every root the device runs after the deployment
    remove: list[str]           # current roots no target wants any more
    owners: dict[str, list[str]]  # component -> the targets that want it


def plan_roots(mapping: Mapping[str, TargetRoots], target: str,
               components: Mapping[str, str],
               current_roots: Mapping[str, str]) -> RootPlan:
    """The roots after ``target`` deploys ``components`` (exact versions).

    ``mapping``: each fleet target's last deployment here; ``current_roots``: the device's
    roots now (name -> version), local ones included.
    """
    owned = {n for t in mapping.values() for n in t.components}
    wanted: dict[str, dict[str, str]] = {}     # target -> its roots
    for key, last in sorted(mapping.items()):
        if key != target:
            wanted[key] = dict(last.components)
    wanted[target] = dict(components)
    local = {n: v for n, v in current_roots.items() if n not in owned and n not in components}
    if local:
        wanted[LOCAL_DEPLOYMENTS] = local
    versions: dict[str, str] = {}
    owners: dict[str, list[str]] = {}
    for key, roots in wanted.items():
        for name, version in sorted(roots.items()):
            owners.setdefault(name, []).append(key)
            if name in versions and versions[name] != version:
                others = [k for k in owners[name] if wanted[k][name] != version]
                raise VersionConflict(
                    f"components.{name}",
                    f"conflicting versions: {others[0]} requires {name} {versions[name]}, "
                    f"{key} requires {version}", value=version,
                    allowed="one version of a component across every target of this device "
                    "(its thing groups, its thing and LOCAL_DEPLOYMENTS)")
            versions[name] = version
    remove = sorted(n for n in current_roots if n not in versions)
    return RootPlan(versions, remove, owners)
