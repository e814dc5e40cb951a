"""How a deployment ended, in Greengrass's stable codes: pure functions, no I/O.

Free text (``reason``) is for people; tools (the fleet agent, a dashboard, a script) need codes
that do not change with the wording. Greengrass reports a finished deployment's
``statusDetails`` with four keys (reference/fleet.md §1.2; the nucleus's
``DeploymentErrorCode``, ``DeploymentErrorType`` and ``DeploymentErrorCodeUtils``), and Sprig
uses the same keys and words:

* ``detailed-deployment-status``: :class:`DetailedStatus`;
* ``deployment-failure-cause``: the reason, as text;
* ``deployment-error-stack``: :class:`ErrorCode` names, most general first
  (``DEPLOYMENT_FAILURE``, ``COMPONENT_UPDATE_ERROR``, ``COMPONENT_BROKEN``);
* ``deployment-error-types``: the distinct :class:`ErrorType` of those codes, ``NONE`` left
  out, plus ``USER_COMPONENT_ERROR`` / ``AWS_COMPONENT_ERROR`` when a component broke (as the
  nucleus, which tells AWS components from the user's).

Only the codes Sprig can produce are listed; their names and types are the nucleus's.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from sprig.disk import DiskFull
from sprig.errors import SprigError, ValidationError


class DetailedStatus(enum.StrEnum):
    """``detailed-deployment-status`` (Greengrass IPC ``DetailedDeploymentStatus``)."""

    SUCCESSFUL = "SUCCESSFUL"
    #: failed before anything on the device changed (planning refused it when its turn came)
    FAILED_NO_STATE_CHANGE = "FAILED_NO_STATE_CHANGE"
    #: failed, and ``failureHandlingPolicy`` DO_NOTHING left the device as the deployment did
    FAILED_ROLLBACK_NOT_REQUESTED = "FAILED_ROLLBACK_NOT_REQUESTED"
    #: failed and rolled back to the components it replaced
    FAILED_ROLLBACK_COMPLETE = "FAILED_ROLLBACK_COMPLETE"
    #: failed, and rolling back failed too
    FAILED_UNABLE_TO_ROLLBACK = "FAILED_UNABLE_TO_ROLLBACK"
    #: refused outright (a fleet deployment older than the one the device has, for example)
    REJECTED = "REJECTED"


class ErrorType(enum.StrEnum):
    """``deployment-error-types`` (the nucleus's ``DeploymentErrorType``)."""

    NONE = "NONE"
    REQUEST_ERROR = "REQUEST_ERROR"
    DEVICE_ERROR = "DEVICE_ERROR"
    COMPONENT_RECIPE_ERROR = "COMPONENT_RECIPE_ERROR"
    USER_COMPONENT_ERROR = "USER_COMPONENT_ERROR"
    AWS_COMPONENT_ERROR = "AWS_COMPONENT_ERROR"
    UNKNOWN_ERROR = "UNKNOWN_ERROR"


class ErrorCode(enum.StrEnum):
    """``deployment-error-stack`` entries (the nucleus's ``DeploymentErrorCode``)."""

    DEPLOYMENT_FAILURE = "DEPLOYMENT_FAILURE"
    DEPLOYMENT_REJECTED = "DEPLOYMENT_REJECTED"
    DEPLOYMENT_INTERRUPTED = "DEPLOYMENT_INTERRUPTED"
    NO_AVAILABLE_COMPONENT_VERSION = "NO_AVAILABLE_COMPONENT_VERSION"
    COMPONENT_CIRCULAR_DEPENDENCY_ERROR = "COMPONENT_CIRCULAR_DEPENDENCY_ERROR"
    RUN_WITH_CONFIG_NOT_VALID = "RUN_WITH_CONFIG_NOT_VALID"
    COMPONENT_CONFIGURATION_NOT_VALID = "COMPONENT_CONFIGURATION_NOT_VALID"
    DEPLOYMENT_DOCUMENT_NOT_VALID = "DEPLOYMENT_DOCUMENT_NOT_VALID"
    DISK_SPACE_CRITICAL = "DISK_SPACE_CRITICAL"
    COMPONENT_UPDATE_ERROR = "COMPONENT_UPDATE_ERROR"
    COMPONENT_BROKEN = "COMPONENT_BROKEN"


#: Each code's type, as the nucleus assigns it.
ERROR_TYPES: Final[Mapping[ErrorCode, ErrorType]] = {
    ErrorCode.DEPLOYMENT_FAILURE: ErrorType.NONE,
    ErrorCode.DEPLOYMENT_REJECTED: ErrorType.NONE,
    ErrorCode.DEPLOYMENT_INTERRUPTED: ErrorType.NONE,
    ErrorCode.NO_AVAILABLE_COMPONENT_VERSION: ErrorType.NONE,
    ErrorCode.COMPONENT_CIRCULAR_DEPENDENCY_ERROR: ErrorType.REQUEST_ERROR,
    ErrorCode.RUN_WITH_CONFIG_NOT_VALID: ErrorType.REQUEST_ERROR,
    ErrorCode.COMPONENT_CONFIGURATION_NOT_VALID: ErrorType.NONE,
    ErrorCode.DEPLOYMENT_DOCUMENT_NOT_VALID: ErrorType.NONE,
    ErrorCode.DISK_SPACE_CRITICAL: ErrorType.DEVICE_ERROR,
    ErrorCode.COMPONENT_UPDATE_ERROR: ErrorType.NONE,
    ErrorCode.COMPONENT_BROKEN: ErrorType.NONE,
}

#: The keys of ``statusDetails``, as Greengrass writes them.
DETAILED_STATUS: Final = "detailed-deployment-status"
FAILURE_CAUSE: Final = "deployment-failure-cause"
ERROR_STACK: Final = "deployment-error-stack"
ERROR_TYPES_KEY: Final = "deployment-error-types"

#: Components AWS publishes (``aws.greengrass.*``): their failures are AWS_COMPONENT_ERROR.
AWS_PREFIX: Final = "aws.greengrass."


@dataclass(frozen=True)
class StatusDetails:
    """A finished deployment's ``statusDetails``."""

    detailed_status: DetailedStatus
    failure_cause: str = ""
    error_stack: tuple[ErrorCode, ...] = ()
    error_types: tuple[ErrorType, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {DETAILED_STATUS: self.detailed_status.value, FAILURE_CAUSE: self.failure_cause,
                ERROR_STACK: [c.value for c in self.error_stack],
                ERROR_TYPES_KEY: [t.value for t in self.error_types]}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> StatusDetails:
        """What :meth:`to_json` wrote (a code a newer core wrote and this one does not know
        is kept out rather than failing the read)."""
        return cls(DetailedStatus(doc[DETAILED_STATUS]), str(doc.get(FAILURE_CAUSE, "")),
                   tuple(ErrorCode(c) for c in doc.get(ERROR_STACK, ())
                         if c in ErrorCode.__members__),
                   tuple(ErrorType(t) for t in doc.get(ERROR_TYPES_KEY, ())
                         if t in ErrorType.__members__))


def _details(status: DetailedStatus, cause: str, codes: Iterable[ErrorCode],
             extra_types: Iterable[ErrorType] = ()) -> StatusDetails:
    """The stack (DEPLOYMENT_FAILURE first, each code once) and its types (NONE left out)."""
    stack = tuple(dict.fromkeys((ErrorCode.DEPLOYMENT_FAILURE, *codes)))
    types = tuple(dict.fromkeys(t for t in (*(ERROR_TYPES[c] for c in stack), *extra_types)
                                if t is not ErrorType.NONE))
    return StatusDetails(status, cause, stack, types)


def succeeded() -> StatusDetails:
    return StatusDetails(DetailedStatus.SUCCESSFUL)


def code_of(error: SprigError) -> ErrorCode:
    """The code of a refusal found when the deployment's turn came (before any change)."""
    if isinstance(error, DiskFull):
        return ErrorCode.DISK_SPACE_CRITICAL
    if isinstance(error, ValidationError):
        path = error.path
        if path.startswith("configurationUpdate."):
            return ErrorCode.COMPONENT_CONFIGURATION_NOT_VALID
        if path.startswith("runWith/systemLimits."):
            return ErrorCode.RUN_WITH_CONFIG_NOT_VALID
        if "circular" in error.message or "cycle" in error.message:
            return ErrorCode.COMPONENT_CIRCULAR_DEPENDENCY_ERROR
        if path.startswith(("merge.", "remove.")) or "version" in error.message:
            return ErrorCode.NO_AVAILABLE_COMPONENT_VERSION
    return ErrorCode.DEPLOYMENT_DOCUMENT_NOT_VALID


def refused(error: SprigError) -> StatusDetails:
    """Planning refused the deployment when its turn came: nothing changed."""
    return _details(DetailedStatus.FAILED_NO_STATE_CHANGE, f"rejected: {error}",
                    (code_of(error),))


def configuration_refused(cause: str) -> StatusDetails:
    """A running component refused the new configuration (``SendConfigurationValidityReport``)
    or did not answer in time: nothing changed."""
    return _details(DetailedStatus.FAILED_NO_STATE_CHANGE, cause,
                    (ErrorCode.COMPONENT_CONFIGURATION_NOT_VALID,))


def component_error_type(name: str) -> ErrorType:
    return (ErrorType.AWS_COMPONENT_ERROR if name.startswith(AWS_PREFIX)
            else ErrorType.USER_COMPONENT_ERROR)


def failed(cause: str, broken: Iterable[str], *, rollback: bool,
           rollback_failed: bool = False) -> StatusDetails:
    """The deployment changed the device and then failed: components went BROKEN
    (``broken``), or they did not settle in time (``broken`` empty). ``rollback``: its
    failure handling was ROLLBACK (else DO_NOTHING)."""
    names = list(broken)
    codes = [ErrorCode.COMPONENT_UPDATE_ERROR, *([ErrorCode.COMPONENT_BROKEN] if names else [])]
    if not rollback:
        status = DetailedStatus.FAILED_ROLLBACK_NOT_REQUESTED
    elif rollback_failed:
        status = DetailedStatus.FAILED_UNABLE_TO_ROLLBACK
    else:
        status = DetailedStatus.FAILED_ROLLBACK_COMPLETE
    return _details(status, cause, codes, (component_error_type(n) for n in names))
