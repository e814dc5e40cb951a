"""Component lifecycle states, with the names and meanings of Greengrass V2.

The names are those of ``InstalledComponentLifecycleState`` (what ``sprig component list`` and
the deployment status show). The predicates mirror the nucleus's ``State.java`` so that code
ported from Greengrass behaviour reads the same.
"""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    """The lifecycle state of a component (declaration order = Greengrass's ordinal order)."""

    NEW = "NEW"
    """Recipe and artifacts loaded, not installed: the install step runs next."""
    INSTALLED = "INSTALLED"
    """The install step succeeded; waiting for dependencies before starting."""
    STARTING = "STARTING"
    """The startup step (or the run step being launched) is in progress."""
    RUNNING = "RUNNING"
    """The run step is running, or background processes from startup are active."""
    STOPPING = "STOPPING"
    """The shutdown step is running."""
    ERRORED = "ERRORED"
    """Something failed: the recover step runs, then the component restarts."""
    BROKEN = "BROKEN"
    """Repeated errors; only a new deployment of the component revives it."""
    FINISHED = "FINISHED"
    """Ran successfully and completed (or stopped on request)."""

    @property
    def is_running(self) -> bool:
        """Fully up with the component's code executing (Greengrass ``isRunning``)."""
        return self is State.RUNNING

    @property
    def is_happy(self) -> bool:
        """Nothing is going wrong, though it may not be up (Greengrass ``isHappy``)."""
        return self not in (State.ERRORED, State.BROKEN)

    @property
    def is_functioning(self) -> bool:
        """Up and all is good (Greengrass ``isFunctioningProperly``): RUNNING, STOPPING,
        FINISHED."""
        return self in (State.RUNNING, State.STOPPING, State.FINISHED)

    @property
    def is_up_for_dependents(self) -> bool:
        """A HARD dependency in this state lets its dependents start: RUNNING or FINISHED.

        (Greengrass ``dependencyReady``: a dependency that ran to completion counts as ready.)
        """
        return self in (State.RUNNING, State.FINISHED)

    @property
    def is_startable(self) -> bool:
        """A start request is meaningful (Greengrass ``isStartable``)."""
        return self in (State.NEW, State.INSTALLED, State.ERRORED, State.FINISHED)

    @property
    def is_stoppable(self) -> bool:
        """A stop request is meaningful (Greengrass ``isStoppable``)."""
        return self in (State.NEW, State.STARTING, State.RUNNING)

    @property
    def is_closable(self) -> bool:
        """The component can be closed without a shutdown (Greengrass ``isClosable``)."""
        return self in (State.ERRORED, State.BROKEN, State.FINISHED, State.NEW)


class StatusCode(StrEnum):
    """Why a component is in its state (Greengrass ``ComponentStatusCode``, nucleus >= 2.8.0).

    Shown with the state in ``sprig component list`` and deployment status, so a user sees
    ``STARTUP_TIMEOUT`` rather than a bare ERRORED.
    """

    NONE = "NONE"
    INSTALL_ERRORED = "INSTALL_ERRORED"
    INSTALL_INVALID_CONFIG = "INSTALL_INVALID_CONFIG"
    INSTALL_IO_ERROR = "INSTALL_IO_ERROR"
    INSTALL_MISSING_DEFAULT_RUNWITH = "INSTALL_MISSING_DEFAULT_RUNWITH"
    INSTALL_TIMEOUT = "INSTALL_TIMEOUT"
    STARTUP_ERRORED = "STARTUP_ERRORED"
    STARTUP_INVALID_CONFIG = "STARTUP_INVALID_CONFIG"
    STARTUP_IO_ERROR = "STARTUP_IO_ERROR"
    STARTUP_MISSING_DEFAULT_RUNWITH = "STARTUP_MISSING_DEFAULT_RUNWITH"
    STARTUP_TIMEOUT = "STARTUP_TIMEOUT"
    RUN_ERRORED = "RUN_ERRORED"
    RUN_MISSING_DEFAULT_RUNWITH = "RUN_MISSING_DEFAULT_RUNWITH"
    RUN_INVALID_CONFIG = "RUN_INVALID_CONFIG"
    RUN_IO_ERROR = "RUN_IO_ERROR"
    RUN_TIMEOUT = "RUN_TIMEOUT"
    SHUTDOWN_ERRORED = "SHUTDOWN_ERRORED"
    SHUTDOWN_TIMEOUT = "SHUTDOWN_TIMEOUT"

    @property
    def description(self) -> str:
        """Greengrass's wording (its ``statusReason`` when no exit code is known)."""
        return _DESCRIPTIONS[self]


_DESCRIPTIONS: dict[StatusCode, str] = {
    StatusCode.NONE: "",
    StatusCode.INSTALL_ERRORED: "Error during install",
    StatusCode.INSTALL_INVALID_CONFIG: "Invalid configuration for install",
    StatusCode.INSTALL_IO_ERROR: "I/O error during install",
    StatusCode.INSTALL_MISSING_DEFAULT_RUNWITH:
        "Could not determine user/group to run with during install",
    StatusCode.INSTALL_TIMEOUT: "Timeout during install",
    StatusCode.STARTUP_ERRORED: "Error during startup",
    StatusCode.STARTUP_INVALID_CONFIG: "Invalid configuration for startup",
    StatusCode.STARTUP_IO_ERROR: "I/O error during startup",
    StatusCode.STARTUP_MISSING_DEFAULT_RUNWITH:
        "Could not determine user/group to run with during startup",
    StatusCode.STARTUP_TIMEOUT: "Timeout during startup",
    StatusCode.RUN_ERRORED: "Error during run",
    StatusCode.RUN_MISSING_DEFAULT_RUNWITH: "Could not determine user/group to run with during run",
    StatusCode.RUN_INVALID_CONFIG: "Invalid configuration for run",
    StatusCode.RUN_IO_ERROR: "I/O error during run",
    StatusCode.RUN_TIMEOUT: "Timeout during run",
    StatusCode.SHUTDOWN_ERRORED: "Error during shutdown",
    StatusCode.SHUTDOWN_TIMEOUT: "Timeout during shutdown",
}


def default_status_code(prior: State, new: State) -> StatusCode:
    """The status code of a transition when the reporter gave none (Greengrass's default)."""
    if new is not State.ERRORED:
        return StatusCode.NONE
    return {
        State.NEW: StatusCode.INSTALL_ERRORED,
        State.INSTALLED: StatusCode.INSTALL_ERRORED,
        State.STARTING: StatusCode.STARTUP_ERRORED,
        State.RUNNING: StatusCode.RUN_ERRORED,
        State.STOPPING: StatusCode.SHUTDOWN_ERRORED,
    }.get(prior, StatusCode.NONE)


def status_reason(code: StatusCode, exit_code: int | None = None) -> str:
    """Greengrass's ``statusReason`` text: the description, plus the exit code when known."""
    if exit_code is None:
        return code.description
    return f"{code.description}: exit code {exit_code}"
