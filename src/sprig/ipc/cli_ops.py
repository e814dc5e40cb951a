"""The operations of Greengrass's CLI IPC service (``aws.greengrass.Cli``): GetComponentDetails,
ListComponents, RestartComponent, StopComponent, GetLocalDeploymentStatus,
ListLocalDeployments — what a management component or a debugging tool asks the core.

As in Greengrass (``CLIEventStreamAgent``), each needs an ``accessControl`` policy under
``aws.greengrass.Cli`` naming the operation; the resource is the component name (Get/Restart/
Stop), the deployment id (GetLocalDeploymentStatus) or ``*`` (the two List operations). What a
caller sees of another component's configuration is what GetConfiguration would show it
(:func:`sprig.config.visibility.readable_configuration`: no secrets, no other function's
environment). Not served: CreateLocalDeployment and CancelLocalDeployment (a component would
have the root core read recipe and artifact folders it names; deployments come from the
operator), CreateDebugPassword (the console has its own one-time login).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Final

from sprig.config.visibility import readable_configuration
from sprig.ipc.call import Call, Reply, required_string
from sprig.ipc.core import InvalidArgumentsError, ResourceNotFoundError
from sprig.pubsub.authorization import check

CLI_SERVICE: Final = "aws.greengrass.Cli"
GET_COMPONENT_DETAILS: Final = "aws.greengrass#GetComponentDetails"
LIST_COMPONENTS: Final = "aws.greengrass#ListComponents"
RESTART_COMPONENT: Final = "aws.greengrass#RestartComponent"
STOP_COMPONENT: Final = "aws.greengrass#StopComponent"
GET_LOCAL_DEPLOYMENT_STATUS: Final = "aws.greengrass#GetLocalDeploymentStatus"
LIST_LOCAL_DEPLOYMENTS: Final = "aws.greengrass#ListLocalDeployments"
#: ``LocalDeployment.createdOn``, as the Greengrass CLI formats it
#: (``LOCAL_DEPLOYMENT_CREATED_ON_FORMATTER = "dd-MM-uuuu HH:mm:ss z"``, in UTC).
CREATED_ON_FORMAT: Final = "%d-%m-%Y %H:%M:%S UTC"
#: Sprig's deployment states as the IPC model's ``DeploymentStatus`` spells them.
_STATUSES: Final = {"QUEUED": "QUEUED", "IN_PROGRESS": "IN_PROGRESS",
                    "SUCCEEDED": "SUCCEEDED", "FAILED": "FAILED", "CANCELED": "CANCELED"}


def _authorize(call: Call, operation: str, resource: str) -> None:
    check(call.component, call.core.access_control(call.component), CLI_SERVICE, operation,
          resource)


def _component_name(req: dict[str, Any]) -> str:
    name = req.get("componentName")
    if not isinstance(name, str) or not name:
        raise InvalidArgumentsError("Component name cannot be empty")
    return name


def _not_found(name: str) -> ResourceNotFoundError:
    return ResourceNotFoundError(f"Component with name {name} not found in Greengrass",
                                 resource_type="Component", resource_name=name)


def _visible(call: Call, details: dict[str, Any]) -> dict[str, Any]:
    """``ComponentDetails`` as the caller may see it."""
    name = details["componentName"]
    body = {k: details[k] for k in ("componentName", "version", "state", "configuration")
            if details.get(k) is not None}
    if "configuration" in body:
        body["configuration"] = readable_configuration(
            call.component, name, call.core.component_type(name), body["configuration"])
    return body


async def get_component_details(call: Call, req: dict[str, Any]) -> Reply:
    name = _component_name(req)
    _authorize(call, GET_COMPONENT_DETAILS, name)
    details = call.core.component_details(name)
    if details is None:
        raise _not_found(name)
    return Reply("aws.greengrass#GetComponentDetailsResponse",
                 {"componentDetails": _visible(call, details)})


async def list_components(call: Call, req: dict[str, Any]) -> Reply:
    _authorize(call, LIST_COMPONENTS, "*")
    components = [_visible(call, d) for d in call.core.list_component_details()]
    return Reply("aws.greengrass#ListComponentsResponse", {"components": components})


async def restart_component(call: Call, req: dict[str, Any]) -> Reply:
    name = _component_name(req)
    _authorize(call, RESTART_COMPONENT, name)
    if not await call.core.restart_component(name):
        raise _not_found(name)
    return Reply("aws.greengrass#RestartComponentResponse", {"restartStatus": "SUCCEEDED"})


async def stop_component(call: Call, req: dict[str, Any]) -> Reply:
    name = _component_name(req)
    _authorize(call, STOP_COMPONENT, name)
    if not await call.core.stop_component(name):
        raise _not_found(name)
    return Reply("aws.greengrass#StopComponentResponse", {"stopStatus": "SUCCEEDED"})


def _local_deployment(summary: dict[str, Any]) -> dict[str, Any]:
    created = dt.datetime.fromtimestamp(float(summary["createdAt"]), dt.UTC)
    out: dict[str, Any] = {"deploymentId": summary["deploymentId"],
                           "status": _STATUSES.get(str(summary["status"]), "FAILED"),
                           "createdOn": created.strftime(CREATED_ON_FORMAT)}
    if summary.get("reason"):
        out["deploymentStatusDetails"] = {"deploymentFailureCause": summary["reason"]}
    return out


async def get_local_deployment_status(call: Call, req: dict[str, Any]) -> Reply:
    dep_id = required_string(req, "deploymentId", allowed="a deployment id (a UUID)")
    try:
        uuid.UUID(dep_id)
    except ValueError:
        raise InvalidArgumentsError(
            "Invalid deploymentId format received. DeploymentId is a UUID") from None
    _authorize(call, GET_LOCAL_DEPLOYMENT_STATUS, dep_id)
    summary = call.core.deployment_summary(dep_id)
    if summary is None:
        raise ResourceNotFoundError("Cannot find deployment", resource_type="LocalDeployment",
                                    resource_name=dep_id)
    return Reply("aws.greengrass#GetLocalDeploymentStatusResponse",
                 {"deployment": _local_deployment(summary)})


async def list_local_deployments(call: Call, req: dict[str, Any]) -> Reply:
    _authorize(call, LIST_LOCAL_DEPLOYMENTS, "*")
    deployments = [_local_deployment(s) for s in call.core.deployment_summaries()]
    return Reply("aws.greengrass#ListLocalDeploymentsResponse",
                 {"localDeployments": deployments})
