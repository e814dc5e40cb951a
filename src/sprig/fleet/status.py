"""What a device reports: execution statuses with the nucleus's ``statusDetails``, and the
Fleet Status message. Pure: builders and classifiers, no I/O.

The words are Greengrass's: execution statuses are the IoT Jobs ones a device may set
(IN_PROGRESS, SUCCEEDED, FAILED, REJECTED) or the service sets (QUEUED, TIMED_OUT, CANCELED);
``detailed-deployment-status``, ``deployment-failure-cause``, ``deployment-error-stack`` and
``deployment-error-types`` are the nucleus's keys, with its values (``DeploymentErrorCode`` and
``DeploymentErrorType``).
"""

from __future__ import annotations

import enum
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


class ExecutionStatus(enum.StrEnum):
    QUEUED = "QUEUED"
    IN_PROGRESS = "IN_PROGRESS"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    REJECTED = "REJECTED"
    TIMED_OUT = "TIMED_OUT"
    CANCELED = "CANCELED"

    @property
    def terminal(self) -> bool:
        return self not in (ExecutionStatus.QUEUED, ExecutionStatus.IN_PROGRESS)


#: What a device may report (the rest are the controller's, as the IoT Jobs service's).
DEVICE_STATUSES = (ExecutionStatus.IN_PROGRESS, ExecutionStatus.SUCCEEDED,
                   ExecutionStatus.FAILED, ExecutionStatus.REJECTED)


class DetailedStatus(enum.StrEnum):
    """``detailed-deployment-status`` (the nucleus's ``DeploymentResult.DeploymentStatus``)."""

    SUCCESSFUL = "SUCCESSFUL"
    FAILED_NO_STATE_CHANGE = "FAILED_NO_STATE_CHANGE"
    FAILED_ROLLBACK_NOT_REQUESTED = "FAILED_ROLLBACK_NOT_REQUESTED"
    FAILED_ROLLBACK_COMPLETE = "FAILED_ROLLBACK_COMPLETE"
    FAILED_UNABLE_TO_ROLLBACK = "FAILED_UNABLE_TO_ROLLBACK"
    REJECTED = "REJECTED"


#: The nucleus's ``DeploymentErrorCode`` -> ``DeploymentErrorType`` (the codes Sprig raises).
ERROR_TYPES: Mapping[str, str] = {
    "DEPLOYMENT_FAILURE": "NONE",
    "DEPLOYMENT_REJECTED": "NONE",
    "REJECTED_STALE_DEPLOYMENT": "NONE",
    "ARTIFACT_DOWNLOAD_ERROR": "NONE",
    "NO_AVAILABLE_COMPONENT_VERSION": "NONE",
    "COMPONENT_VERSION_REQUIREMENTS_NOT_MET": "REQUEST_ERROR",
    "COMPONENT_CIRCULAR_DEPENDENCY_ERROR": "REQUEST_ERROR",
    "NUCLEUS_MISSING_REQUIRED_CAPABILITIES": "REQUEST_ERROR",
    "RUN_WITH_CONFIG_NOT_VALID": "REQUEST_ERROR",
    "DEPLOYMENT_DOCUMENT_NOT_VALID": "NONE",
    "DEPLOYMENT_DOCUMENT_SIZE_EXCEEDED": "CLOUD_SERVICE_ERROR",
    "RECIPE_PARSE_ERROR": "COMPONENT_RECIPE_ERROR",
    "ARTIFACT_CHECKSUM_MISMATCH": "COMPONENT_RECIPE_ERROR",
    "RECIPE_MISSING_ARTIFACT_HASH_ALGORITHM": "COMPONENT_RECIPE_ERROR",
    "S3_ARTIFACT_URI_NOT_VALID": "COMPONENT_RECIPE_ERROR",
    "UNSUPPORTED_ARTIFACT_SCHEME": "COMPONENT_RECIPE_ERROR",
    "COMPONENT_CONFIGURATION_NOT_VALID": "NONE",
    "S3_ERROR": "DEPENDENCY_ERROR",
    "S3_ACCESS_DENIED": "PERMISSION_ERROR",
    "S3_GET_OBJECT_ACCESS_DENIED": "PERMISSION_ERROR",
    "S3_GET_OBJECT_RESOURCE_NOT_FOUND": "REQUEST_ERROR",
    "S3_SERVER_ERROR": "SERVER_ERROR",
    "NETWORK_ERROR": "NETWORK_ERROR",
    "DEVICE_CONFIG_NOT_VALID_FOR_ARTIFACT_DOWNLOAD": "DEVICE_ERROR",
    "DISK_SPACE_CRITICAL": "DEVICE_ERROR",
    "IO_WRITE_ERROR": "DEVICE_ERROR",
    "COMPONENT_BROKEN": "NONE",
    "COMPONENT_UPDATE_ERROR": "NONE",
}


@dataclass(frozen=True)
class Outcome:
    """A finished (or refused) deployment on this device."""

    status: ExecutionStatus
    detailed: DetailedStatus
    cause: str = ""
    codes: tuple[str, ...] = ()

    def details(self) -> dict[str, Any]:
        """``statusDetails`` as the nucleus sends them (keys present only when they apply)."""
        out: dict[str, Any] = {"detailed-deployment-status": str(self.detailed)}
        if self.cause:
            out["deployment-failure-cause"] = self.cause
        if self.codes:
            out["deployment-error-stack"] = list(self.codes)
            out["deployment-error-types"] = error_types(self.codes)
        return out


def error_types(codes: Iterable[str]) -> list[str]:
    """The distinct error types of ``codes``, in order; NONE types are not listed (as the
    nucleus), and a failure whose codes all have none is UNKNOWN_ERROR."""
    out: list[str] = []
    for code in codes:
        t = ERROR_TYPES.get(code, "NONE")
        if t != "NONE" and t not in out:
            out.append(t)
    if not out:
        out.append("UNKNOWN_ERROR")
    return out


def succeeded() -> Outcome:
    return Outcome(ExecutionStatus.SUCCEEDED, DetailedStatus.SUCCESSFUL)


def rejected(cause: str, *codes: str) -> Outcome:
    return Outcome(ExecutionStatus.REJECTED, DetailedStatus.REJECTED, cause,
                   ("DEPLOYMENT_REJECTED", *codes))


def failed(cause: str, *codes: str,
           detailed: DetailedStatus = DetailedStatus.FAILED_NO_STATE_CHANGE) -> Outcome:
    return Outcome(ExecutionStatus.FAILED, detailed, cause, ("DEPLOYMENT_FAILURE", *codes))


def classify_local_failure(reason: str, policy: str) -> Outcome:
    """A FAILED local deployment (``state.db``'s reason) as the nucleus would report it."""
    if reason.startswith("rejected:"):
        return failed(reason.removeprefix("rejected:").strip(), *_codes_for(reason))
    codes = _codes_for(reason)
    if reason.endswith("rolled back"):
        return failed(reason, *codes, detailed=DetailedStatus.FAILED_ROLLBACK_COMPLETE)
    if policy == "DO_NOTHING":
        return failed(reason, *codes, detailed=DetailedStatus.FAILED_ROLLBACK_NOT_REQUESTED)
    return failed(reason, *codes, detailed=DetailedStatus.FAILED_UNABLE_TO_ROLLBACK)


def _codes_for(reason: str) -> tuple[str, ...]:
    text = reason.lower()
    if "broken" in text:
        return ("COMPONENT_UPDATE_ERROR", "COMPONENT_BROKEN")
    if "does not match its digest" in text:
        return ("ARTIFACT_CHECKSUM_MISMATCH",)
    if "no version satisfies" in text or "component not found" in text:
        return ("NO_AVAILABLE_COMPONENT_VERSION", "COMPONENT_VERSION_REQUIREMENTS_NOT_MET")
    if "dependency cycle" in text:
        return ("COMPONENT_CIRCULAR_DEPENDENCY_ERROR",)
    if "posixuser" in text or "runwith" in text:
        return ("RUN_WITH_CONFIG_NOT_VALID",)
    if "no space left" in text:
        return ("DISK_SPACE_CRITICAL",)
    if "timed out" in text:
        return ("COMPONENT_UPDATE_ERROR",)
    return ()


# -- messages --------------------------------------------------------------------------------

def now_ms() -> int:
    return int(time.time() * 1000)


def execution_update(thing: str, job_id: str, outcome: Outcome | None, *,
                     creation_timestamp: int | None = None) -> dict[str, Any]:
    """A device's status of one execution (``outcome`` None: IN_PROGRESS)."""
    status = ExecutionStatus.IN_PROGRESS if outcome is None else outcome.status
    details: dict[str, Any] = {} if outcome is None else outcome.details()
    msg: dict[str, Any] = {"jobId": job_id, "thingName": thing, "status": str(status),
                           "statusDetails": details, "timestamp": now_ms()}
    if creation_timestamp is not None:
        msg["creationTimestamp"] = creation_timestamp
    return msg


def execution_notice(thing: str, job_id: str, status: ExecutionStatus,
                     document: Mapping[str, Any] | None, *, queued_at: int,
                     version: int = 1) -> dict[str, Any]:
    """The controller's execution of a deployment on a thing (the IoT Jobs ``execution``)."""
    execution: dict[str, Any] = {"jobId": job_id, "thingName": thing, "status": str(status),
                                 "queuedAt": queued_at, "lastUpdatedAt": now_ms(),
                                 "versionNumber": version, "executionNumber": 1}
    if document is not None:
        execution["jobDocument"] = dict(document)
    return {"execution": execution, "timestamp": now_ms()}


def overall_status(states: Iterable[str]) -> str:
    """``overallDeviceStatus``: UNHEALTHY when a component is ERRORED or BROKEN."""
    return "UNHEALTHY" if any(s in ("ERRORED", "BROKEN") for s in states) else "HEALTHY"
