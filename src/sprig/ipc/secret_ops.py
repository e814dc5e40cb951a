"""GetSecretValue: the secret manager IPC service (``aws.greengrass.SecretManager``).

Greengrass serves this operation from its secret manager component; Sprig serves it from the
local store that deployments of that component's ``secrets`` configuration fill
(:mod:`sprig.sdk_ipc.secrets`). What a caller sees follows the component's IPC handler
(``SecretManagerIPCAgent`` / ``SecretManager.getSecret`` in aws-greengrass-secret-manager):

1. **secretId** is the secret's name or its ARN. Absent or empty: ServiceError
   ``SecretId absent in the request``. A name no deployed secret has: ResourceNotFoundError
   ``Secret not configured <id>``, before authorization, as in Greengrass (secret names and ARNs
   are configuration, readable like any configuration; the values are what is guarded).
2. **Authorization** on the secret's ARN: a policy under ``aws.greengrass.SecretManager`` that
   lists ``aws.greengrass#GetSecretValue`` (or ``*``) and a resource matching the ARN (``*`` for
   every secret), else UnauthorizedError. A request by name is checked against the ARN it
   resolves to, so a policy naming secret A never opens secret B, whichever way B is asked for.
   An ARN no deployed secret has is checked as given, then answered ``Secret not found``.
3. **versionId** and **versionStage** are optional, not both (ServiceError ``Both versionId and
   Stage are set in the request``); neither means ``AWSCURRENT``. A version the secret does not
   have is ResourceNotFoundError (``Version Id <v> not found for secret <id>``, ``Version stage
   <s> not found for secret <id>``, or ``Secret not found <id>`` when it has no AWSCURRENT).
   Every ResourceNotFoundError carries ``resourceType: "secret"``.
4. **refresh** asks Greengrass to fetch the value from AWS Secrets Manager first and, when that
   fails, to answer from its local store. Sprig never reaches AWS (its values come only from
   deployments), so ``refresh: true`` answers exactly what ``refresh: false`` does: the value
   last deployed.
5. The answer: ``secretId`` = the ARN, ``versionId``, ``versionStage`` = every stage of that
   version, ``secretValue`` = ``{"secretString": ...}`` or ``{"secretBinary": <base64>}``.

Fields of the wrong JSON type (which Greengrass's typed deserializer would not accept either) are
InvalidArgumentsError naming the field. Every refusal is one WARNING line in the core log naming
the caller and the secret id asked for; a granted read is one INFO line (Greengrass logs each
request too). No log line and no error message ever holds a secret value.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Final

from sprig.errors import SprigError
from sprig.ipc.call import Call, Reply, b64
from sprig.ipc.core import (
    IpcError,
    ResourceNotFoundError,
    ServiceError,
    UnauthorizedError,
    invalid,
)
from sprig.pubsub.authorization import (
    GET_SECRET_VALUE,
    AuthorizationError,
    IpcService,
    authorize,
)
from sprig.sdk_ipc.secrets import DEFAULT_STAGE, SecretRecord, SecretStoreError

log = logging.getLogger("sprig.ipc")

RESPONSE: Final = "aws.greengrass#GetSecretValueResponse"
RESOURCE_TYPE: Final = "secret"
#: At most this much of a caller-chosen string goes into an error message or a log line
#: (AWS allows SecretId up to 2048 characters; Sprig's names are at most 512).
SHOWN_CHARS: Final = 1024

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def shown(text: str) -> str:
    """A caller-chosen string as messages and logs show it: control characters escaped (one
    line, no forged log lines) and cut at :data:`SHOWN_CHARS`. Real ids are shown unchanged."""
    if len(text) > SHOWN_CHARS:
        text = text[:SHOWN_CHARS] + f"...({len(text)} characters)"
    return _CONTROL.sub(lambda m: f"\\x{ord(m[0]):02x}", text)


def _optional_string(req: dict[str, Any], name: str, allowed: str) -> str | None:
    """A string field; absent, null or "" mean "not given" (Greengrass's ``Utils.isEmpty``)."""
    v = req.get(name)
    if v is None or v == "":
        return None
    if not isinstance(v, str):
        raise invalid(name, "must be a string", v, allowed)
    return v


def _refresh(req: dict[str, Any]) -> bool:
    v = req.get("refresh")
    if v is None:
        return False
    if not isinstance(v, bool):
        raise invalid("refresh", "must be a boolean", v, "true, false or absent")
    return v


def _not_found(message: str) -> ResourceNotFoundError:
    return ResourceNotFoundError(message, resource_type=RESOURCE_TYPE)


def _resolve(call: Call, secret_id: str) -> tuple[SecretRecord | None, str]:
    """The deployed secret and the ARN to authorize: a name resolves to its secret's ARN; an ARN
    (``arn:...``) is authorized as given, found or not."""
    try:
        record = call.core.find_secret(secret_id)
    except SecretStoreError as e:
        log.error("ipc: the secret store cannot be read: %s", e)
        raise ServiceError(f"the local secret store cannot be read: {e}") from None
    if record is not None:
        return record, record.arn
    if secret_id.startswith("arn:"):
        return None, secret_id
    raise _not_found(f"Secret not configured {shown(secret_id)} (no secret with this name or "
                     "ARN is deployed in the aws.greengrass.SecretManager configuration)")


def _version(record: SecretRecord | None, secret_id: str, version_id: str | None,
             version_stage: str | None) -> SecretRecord:
    """The version asked for; Sprig keeps one version per secret, with all its stages."""
    sid = shown(secret_id)
    if record is None:
        raise _not_found(f"Secret not found {sid} (no secret with this ARN is deployed)")
    if version_id is not None:
        if version_id != record.version_id:
            raise _not_found(f"Version Id {shown(version_id)} not found for secret {sid} (the "
                             f"deployed version is {record.version_id})")
        return record
    stages = ", ".join(record.stages)
    if version_stage is not None:
        if version_stage not in record.stages:
            raise _not_found(f"Version stage {shown(version_stage)} not found for secret {sid} "
                             f"(its stages: {stages})")
        return record
    if DEFAULT_STAGE not in record.stages:
        raise _not_found(f"Secret not found {sid} (no version has the stage "
                         f"{DEFAULT_STAGE}; its stages: {stages}; ask for one by versionStage)")
    return record


def response_body(record: SecretRecord) -> dict[str, Any]:
    """GetSecretValueResponse: ``secretValue`` is a union, exactly one member set."""
    value = ({"secretBinary": b64(record.binary)} if record.binary is not None
             else {"secretString": record.string or ""})
    return {"secretId": record.arn, "versionId": record.version_id,
            "versionStage": list(record.stages), "secretValue": value}


async def get_secret_value(call: Call, req: dict[str, Any]) -> Reply:
    asked = req.get("secretId")
    try:
        secret_id = _optional_string(req, "secretId", "a secret name or ARN")
        version_id = _optional_string(req, "versionId", "a version id of the secret, or absent")
        version_stage = _optional_string(req, "versionStage",
                                         "a staging label such as AWSCURRENT, or absent")
        refresh = _refresh(req)
        if secret_id is None:
            raise ServiceError("SecretId absent in the request (secretId: the secret's name or "
                               "ARN)")
        record, arn = _resolve(call, secret_id)
        if not authorize(call.core.access_control(call.component), IpcService.SECRET_MANAGER,
                         GET_SECRET_VALUE, arn):
            raise UnauthorizedError(str(AuthorizationError(
                call.component, IpcService.SECRET_MANAGER, GET_SECRET_VALUE, shown(arn))))
        if version_id is not None and version_stage is not None:
            raise ServiceError(f"Both versionId and Stage are set in the request (versionId "
                               f"{shown(version_id)!r}, versionStage {shown(version_stage)!r}); "
                               f"allowed: one of them, or neither for {DEFAULT_STAGE}")
        version = _version(record, secret_id, version_id, version_stage)
    except IpcError as e:
        raise _refused(call, asked, e) from None
    except SprigError as e:
        raise _refused(call, asked, ServiceError(str(e))) from None
    if refresh:
        log.debug("ipc: GetSecretValue by %s: refresh asked; Sprig does not reach AWS Secrets "
                  "Manager, answering the deployed value", call.component)
    log.info("ipc: GetSecretValue: %s read secret %s (version %s)", call.component,
             version.arn, version.version_id)
    return Reply(RESPONSE, response_body(version))


def _refused(call: Call, asked: Any, error: IpcError) -> IpcError:
    """Log the refusal (one WARNING line: caller, the id asked for, the error) and return it."""
    log.warning("ipc: GetSecretValue by %s refused for secret %s: %s: %s", call.component,
                shown(asked if isinstance(asked, str) else repr(asked)),
                error.shape.split("#", 1)[1], error.message)
    return error
