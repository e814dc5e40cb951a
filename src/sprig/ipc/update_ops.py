"""What components say about a deployment before it changes them: SubscribeToComponentUpdates,
DeferComponentUpdate, SubscribeToValidateConfigurationUpdates, SendConfigurationValidityReport.

The conversation itself (who is asked, how long the deployment waits, what a deferral or a
rejection does) lives with the deployments: :mod:`sprig.ipc.notices`. These handlers
only check the requests and pass them on; like the nucleus they need no ``accessControl``
policy (a component speaks only for itself).
"""

from __future__ import annotations

import math
from typing import Any, Final

from sprig.ipc.call import Call, Reply, required_string
from sprig.ipc.core import invalid

UPDATE_EVENTS: Final = "aws.greengrass#ComponentUpdatePolicyEvents"
VALIDATE_EVENTS: Final = "aws.greengrass#ValidateConfigurationUpdateEvents"
STATUSES: Final = ("ACCEPTED", "REJECTED")
#: recheckAfterMs is a Java long in the model; a day is more than any update should wait.
MAX_RECHECK_MS: Final = 24 * 3600 * 1000


async def subscribe_to_component_updates(call: Call, req: dict[str, Any]) -> Reply:
    unsubscribe = call.core.subscribe_component_updates(
        call.component, lambda event: call.emit(UPDATE_EVENTS, event))
    return Reply("aws.greengrass#SubscribeToComponentUpdatesResponse", {}, close=unsubscribe)


async def defer_component_update(call: Call, req: dict[str, Any]) -> Reply:
    deployment_id = required_string(req, "deploymentId",
                                    allowed="the deploymentId of the preUpdateEvent")
    message = _message(req, "message")
    recheck = req.get("recheckAfterMs", 0)
    if recheck is None:
        recheck = 0
    if isinstance(recheck, bool) or not isinstance(recheck, int | float) \
            or not math.isfinite(recheck) or not 0 <= recheck <= MAX_RECHECK_MS:
        raise invalid("recheckAfterMs", "must be a number of milliseconds", recheck,
                      f"0 (update now) to {MAX_RECHECK_MS}")
    call.core.defer_component_update(call.component, deployment_id, message, int(recheck))
    return Reply("aws.greengrass#DeferComponentUpdateResponse", {})


async def subscribe_to_validate_configuration_updates(call: Call, req: dict[str, Any]) -> Reply:
    unsubscribe = call.core.subscribe_configuration_validation(
        call.component, lambda event: call.emit(VALIDATE_EVENTS, event))
    return Reply("aws.greengrass#SubscribeToValidateConfigurationUpdatesResponse", {},
                 close=unsubscribe)


async def send_configuration_validity_report(call: Call, req: dict[str, Any]) -> Reply:
    report = req.get("configurationValidityReport")
    if not isinstance(report, dict):
        raise invalid("configurationValidityReport", "is required", report,
                      "{status: ACCEPTED|REJECTED, deploymentId, message}")
    status = required_string(report, "status", allowed=" or ".join(STATUSES))
    if status not in STATUSES:
        raise invalid("configurationValidityReport.status", "unknown status", status,
                      " or ".join(STATUSES))
    deployment_id = required_string(report, "deploymentId",
                                    allowed="the deploymentId of the validation event")
    message = _message(report, "configurationValidityReport.message")
    call.core.report_configuration_validity(call.component, deployment_id, status, message)
    return Reply("aws.greengrass#SendConfigurationValidityReportResponse", {})


def _message(req: dict[str, Any], name: str) -> str:
    value = req.get(name.rpartition(".")[2])
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > 4096:
        raise invalid(name, "must be a string of at most 4096 characters", value,
                      "a short text saying why")
    return value
