"""GetThingShadow, UpdateThingShadow, DeleteThingShadow, ListNamedShadowsForThing: the shadow
IPC service of ``aws.greengrass.ShadowManager`` (:mod:`sprig.shadow.service` does the work).

What a caller sees follows Greengrass's ShadowManager IPC handlers:

* **Authorization**: an ``accessControl`` policy under ``aws.greengrass.ShadowManager`` listing
  the operation (``aws.greengrass#GetThingShadow``... or ``*``) and a resource matching the
  shadow: ``$aws/things/<thing>/shadow`` for the classic shadow,
  ``$aws/things/<thing>/shadow/name/<name>`` for a named one (``*`` wildcards as in every
  Greengrass policy). ListNamedShadowsForThing is checked on the thing name (what Greengrass
  checks) or on ``$aws/things/<thing>/shadow``. Names are validated first (400), then the
  caller is authorized, then the request is served.
* **Errors**: 400/413/415 → InvalidArgumentsError with AWS's message; 404 →
  ResourceNotFoundError ``No shadow found`` (``resourceType`` ``shadow``); 409 → ConflictError
  ``Version conflict``; 429 → ServiceError ``Too Many Requests``; 500 → ServiceError.
* **Payloads** are the AWS IoT shadow documents as bytes: GetThingShadow answers the document
  with its ``delta``, UpdateThingShadow the ``update/accepted`` message, DeleteThingShadow an
  empty payload (as the REST API and Greengrass do).
* Without ``aws.greengrass.ShadowManager`` deployed, every operation is a ServiceError saying
  so.
"""

from __future__ import annotations

import datetime
import json
from typing import Any, Final

from sprig.ipc.call import Call, Reply, b64, base64_bytes
from sprig.ipc.core import (
    ConflictError,
    InvalidArgumentsError,
    IpcError,
    ResourceNotFoundError,
    ServiceError,
    UnauthorizedError,
)
from sprig.pubsub.authorization import AuthorizationError, authorize
from sprig.shadow.document import (
    ShadowError,
    topic_prefix,
    validate_shadow_name,
    validate_thing_name,
)
from sprig.shadow.service import SHADOW_MANAGER, ShadowService

GET_THING_SHADOW: Final = "aws.greengrass#GetThingShadow"
UPDATE_THING_SHADOW: Final = "aws.greengrass#UpdateThingShadow"
DELETE_THING_SHADOW: Final = "aws.greengrass#DeleteThingShadow"
LIST_NAMED_SHADOWS: Final = "aws.greengrass#ListNamedShadowsForThing"


def ipc_error(e: ShadowError) -> IpcError:
    """The Greengrass IPC error for a refused shadow request."""
    if e.code == 404:
        return ResourceNotFoundError(f"No shadow found ({e.message})", resource_type="shadow")
    if e.code == 409:
        return ConflictError(e.message)
    if e.code in (401, 403):
        return UnauthorizedError(e.text)
    if e.code in (400, 413, 415):
        return InvalidArgumentsError(e.text)
    return ServiceError(e.text)


def _service(call: Call) -> ShadowService:
    service = call.core.shadows()
    if service is None:
        raise ServiceError(f"{call.operation.split('#', 1)[1]}: {SHADOW_MANAGER} is not "
                           f"deployed on this core; deploy it (sprig deployment create --merge "
                           f"{SHADOW_MANAGER}=2.3.12) to use local shadows")
    return service


def _authorize(call: Call, operation: str, *resources: str) -> None:
    policies = call.core.access_control(call.component)
    if not any(authorize(policies, SHADOW_MANAGER, operation, r) for r in resources):
        raise UnauthorizedError(str(AuthorizationError(call.component, SHADOW_MANAGER,
                                                       operation, resources[-1])))


def _names(req: dict[str, Any]) -> tuple[str, str]:
    try:
        return validate_thing_name(req.get("thingName")), validate_shadow_name(
            req.get("shadowName"))
    except ShadowError as e:
        raise ipc_error(e) from None


async def get_thing_shadow(call: Call, req: dict[str, Any]) -> Reply:
    service = _service(call)
    thing, name = _names(req)
    _authorize(call, GET_THING_SHADOW, topic_prefix(thing, name))
    try:
        answer = service.get(thing, name)
    except ShadowError as e:
        raise ipc_error(e) from None
    return Reply("aws.greengrass#GetThingShadowResponse",
                 {"payload": b64(json.dumps(answer).encode())})


async def update_thing_shadow(call: Call, req: dict[str, Any]) -> Reply:
    service = _service(call)
    thing, name = _names(req)
    payload = base64_bytes(req.get("payload"), "payload")
    _authorize(call, UPDATE_THING_SHADOW, topic_prefix(thing, name))
    try:
        answer = service.update(thing, name, payload)
    except ShadowError as e:
        raise ipc_error(e) from None
    return Reply("aws.greengrass#UpdateThingShadowResponse",
                 {"payload": b64(json.dumps(answer).encode())})


async def delete_thing_shadow(call: Call, req: dict[str, Any]) -> Reply:
    service = _service(call)
    thing, name = _names(req)
    _authorize(call, DELETE_THING_SHADOW, topic_prefix(thing, name))
    try:
        service.delete(thing, name)
    except ShadowError as e:
        raise ipc_error(e) from None
    return Reply("aws.greengrass#DeleteThingShadowResponse", {"payload": b64(b"")})


async def list_named_shadows_for_thing(call: Call, req: dict[str, Any]) -> Reply:
    service = _service(call)
    try:
        thing = validate_thing_name(req.get("thingName"))
    except ShadowError as e:
        raise ipc_error(e) from None
    _authorize(call, LIST_NAMED_SHADOWS, thing, topic_prefix(thing, ""))
    try:
        page = service.list_named(thing, req.get("pageSize"), req.get("nextToken"))
    except ShadowError as e:
        raise ipc_error(e) from None
    body: dict[str, Any] = {
        "results": page.results,
        "timestamp": datetime.datetime.fromtimestamp(page.timestamp, datetime.UTC).timestamp()}
    if page.next_token is not None:
        body["nextToken"] = page.next_token
    return Reply("aws.greengrass#ListNamedShadowsForThingResponse", body)
