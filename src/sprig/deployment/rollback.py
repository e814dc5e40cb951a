"""Roll back: a new deployment that returns the device to where it was before the last
successful deployment.

The database keeps the component set a deployment replaced (its *snapshot*) for the newest
finished deployment only, and the package store keeps each component's current and previous
version: exactly what one step back needs. The rollback is an ordinary deployment (queued,
validated, all or nothing, and itself undoable by rolling back again) whose document says:

* ``merge``: every root component of the snapshot at its version then;
* ``remove``: the root components deployed since;
* ``configurationUpdate``: ``RESET [""]`` then ``MERGE`` of the snapshot's effective
  configuration, for each component whose configuration differs from it now;
* ``runWith`` / ``systemLimits``: the snapshot's values, where it had some.

Limits (said in the refusal, never guessed around): nothing to roll back to when no deployment
finished yet, when the newest one FAILED (it was rolled back already, or left as it was with
DO_NOTHING), or while another deployment is queued or in progress. A ``runWith`` or
``systemLimits`` that the snapshot did not have cannot be removed by a deployment document.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sprig.core.component import config_state
from sprig.errors import ValidationError
from sprig.state.db import FAILED, HISTORY_KEEP, IN_PROGRESS, QUEUED, SUCCEEDED

if TYPE_CHECKING:
    from sprig.state.db import StateDB


def rollback_document(db: StateDB) -> dict[str, Any]:
    """The deployment document of the rollback (raises ValidationError saying why none)."""
    history = db.deployments(HISTORY_KEEP + 10)
    busy = [d for d in history if d.status in (QUEUED, IN_PROGRESS)]
    if busy:
        raise ValidationError("deployment", "a deployment is queued or in progress",
                              value=busy[0].id, allowed="roll back once it has finished")
    finished = [d for d in history if d.status in (SUCCEEDED, FAILED)]
    if not finished:
        raise ValidationError("deployment", "no deployment has finished yet: nothing to roll "
                              "back to", allowed="a device with a SUCCEEDED deployment")
    last = finished[0]
    if last.status != SUCCEEDED:
        raise ValidationError("deployment", "the last deployment FAILED, so the device is "
                              "already where it was before it", value=last.id,
                              allowed="roll back after a SUCCEEDED deployment")
    if last.snapshot is None:
        raise ValidationError("deployment", "the last deployment kept no record of what it "
                              "replaced", value=last.id,
                              allowed="roll back after a deployment made by this core")
    before = {r.name: r for r in last.snapshot}
    now = db.components()
    merge = {n: r.version for n, r in sorted(before.items()) if r.is_root}
    remove = sorted(n for n, r in now.items() if r.is_root and n not in merge)
    updates: dict[str, Any] = {}
    for name, rec in sorted(before.items()):
        then = config_state(rec).effective
        current = now.get(name)
        if current is None or current.version != rec.version \
                or config_state(current).effective != then:
            updates[name] = {"RESET": [""], "MERGE": then}
    return {
        "merge": merge,
        "remove": remove,
        "configurationUpdate": updates,
        "runWith": {n: dict(r.run_with) for n, r in sorted(before.items()) if r.run_with},
        "systemLimits": {n: dict(r.system_limits) for n, r in sorted(before.items())
                         if r.system_limits},
        "failureHandlingPolicy": "ROLLBACK",
    }
