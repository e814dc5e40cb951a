"""What the device remembers about the fleet, in ``state.db`` (one JSON value in its ``meta``
table, written in one transaction, so it survives ``kill -9`` like the deployment queue):

* ``targets``: each fleet target's last deployment here and its roots (the nucleus's
  ``GroupToRootComponents``), kept on success (and on a DO_NOTHING failure, as the nucleus);
* ``executions``: per target, the last execution this device took up: job id, its
  ``creationTimestamp`` (older ones are REJECTED), its status and details, and the local
  deployment that carries it (a restarted core waits for that one instead of starting again).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

from sprig.fleet.targets import TargetRoots
from sprig.state.db import StateDB

META_KEY = "fleet.device"


@dataclass(frozen=True)
class ExecutionRecord:
    job_id: str
    creation_timestamp: int
    status: str
    details: dict[str, Any] = field(default_factory=dict)
    local_id: str | None = None
    configuration_arn: str = ""
    components: dict[str, str] = field(default_factory=dict)   # the deployment's roots

    def to_json(self) -> dict[str, Any]:
        return {"jobId": self.job_id, "creationTimestamp": self.creation_timestamp,
                "status": self.status, "statusDetails": self.details,
                "localDeploymentId": self.local_id, "configurationArn": self.configuration_arn,
                "components": self.components}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ExecutionRecord:
        return cls(str(d["jobId"]), int(d["creationTimestamp"]), str(d["status"]),
                   dict(d.get("statusDetails") or {}), d.get("localDeploymentId"),
                   str(d.get("configurationArn") or ""), dict(d.get("components") or {}))


@dataclass
class DeviceFleetState:
    db: StateDB
    targets: dict[str, TargetRoots] = field(default_factory=dict)
    executions: dict[str, ExecutionRecord] = field(default_factory=dict)

    @classmethod
    def load(cls, db: StateDB) -> DeviceFleetState:
        raw = db.get_meta(META_KEY)
        state = cls(db)
        if raw:
            data = json.loads(raw)
            state.targets = {k: TargetRoots.from_json(v)
                             for k, v in (data.get("targets") or {}).items()}
            state.executions = {k: ExecutionRecord.from_json(v)
                                for k, v in (data.get("executions") or {}).items()}
        return state

    def save(self) -> None:
        self.db.set_meta(META_KEY, json.dumps({
            "targets": {k: v.to_json() for k, v in self.targets.items()},
            "executions": {k: v.to_json() for k, v in self.executions.items()}}))

    def record(self, target: str, rec: ExecutionRecord) -> None:
        self.executions[target] = rec
        self.save()

    def update(self, target: str, **changes: Any) -> ExecutionRecord:
        rec = replace(self.executions[target], **changes)
        self.record(target, rec)
        return rec
