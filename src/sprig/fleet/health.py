"""The Fleet Status message (the nucleus's ``FleetStatusService`` shape), built from the
kernel's components and the device's fleet state. Pure.

Departures from Greengrass, and why: the message is retained, so it must stand alone: every
message lists every component (Greengrass's PARTIAL messages list only the changed ones), so
``messageType`` is always ``COMPLETE`` and ``chunkInfo`` always 1 of 1 (a message over the
broker's limit drops the components' details, then components, and says how many it left
out). Sprig adds ``thingGroups`` (which fleet targets the device takes deployments from) and
``sprigVersion``; ``ggcVersion`` carries Sprig's version too.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sprig.fleet.device_state import ExecutionRecord
from sprig.fleet.status import overall_status

TRIGGERS = ("NUCLEUS_LAUNCH", "RECONNECT", "CADENCE", "THING_GROUP_DEPLOYMENT",
            "THING_DEPLOYMENT", "LOCAL_DEPLOYMENT", "COMPONENT_STATUS_CHANGE")


@dataclass(frozen=True)
class ComponentInfo:
    name: str
    version: str
    state: str
    is_root: bool
    reason: str = ""


def health_message(*, thing: str, groups: Iterable[str], version: str,
                   platform: Mapping[str, str], components: Iterable[ComponentInfo],
                   fleet_arns: Mapping[str, list[str]], trigger: str, sequence: int,
                   timestamp: int, last: tuple[str, ExecutionRecord] | None,
                   max_bytes: int) -> bytes:
    comps = list(components)
    entries = [{
        "componentName": c.name, "version": c.version,
        "fleetConfigArns": fleet_arns.get(c.name, []), "isRoot": c.is_root,
        "status": c.state,
        "componentStatusDetails": {"statusCodes": [c.state] if c.state in (
            "ERRORED", "BROKEN") else [], "statusReason": c.reason}} for c in comps]
    msg: dict[str, Any] = {
        "ggcVersion": version, "sprigVersion": version,
        "platform": platform.get("os", "linux"),
        "architecture": platform.get("architecture", ""),
        "thing": thing, "thingGroups": list(groups),
        "overallDeviceStatus": overall_status(c.state for c in comps),
        "sequenceNumber": sequence, "timestamp": timestamp,
        "messageType": "COMPLETE", "trigger": trigger,
        "chunkInfo": {"chunkId": 1, "totalChunks": 1},
        "components": entries,
    }
    if last is not None:
        target, rec = last
        d = rec.details
        msg["deploymentInformation"] = {
            "status": rec.status,
            "statusDetails": {
                "detailedStatus": d.get("detailed-deployment-status"),
                "failureCause": d.get("deployment-failure-cause"),
                "errorStack": d.get("deployment-error-stack", []),
                "errorTypes": d.get("deployment-error-types", [])},
            "fleetConfigurationArnForStatus": rec.configuration_arn,
            "deploymentId": rec.job_id,
            "target": target,
            "unchangedRootComponents": [],
        }
    data = json.dumps(msg, separators=(",", ":")).encode()
    if len(data) > max_bytes:
        for e in entries:
            e.pop("componentStatusDetails", None)
        data = json.dumps(msg, separators=(",", ":")).encode()
    left_out = 0
    while len(data) > max_bytes and entries:
        keep = max(0, len(entries) * max_bytes // len(data) - 1)
        left_out += len(entries) - keep
        del entries[keep:]
        msg["componentsLeftOut"] = left_out
        data = json.dumps(msg, separators=(",", ":")).encode()
    return data
