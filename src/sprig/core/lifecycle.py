"""The lifecycle error policy (when ERRORED becomes BROKEN) and the lifecycle step timeouts.

Pure: no clock, no I/O. The kernel passes ``now`` (``time.monotonic()``) in and acts on the
answer, so the rule is tested with explicit times.

The BROKEN rule, as the nucleus's ``Lifecycle.java`` implements it
-------------------------------------------------------------------
* Errors are counted **per prior state** (the state the component was in when it errored), and
  only for the states that decide whether the component can work at all: NEW (install),
  STARTING (startup) and RUNNING (run). Sprig also counts INSTALLED: the nucleus never reports an
  error from INSTALLED (it only waits for dependencies there), but Sprig's kernel may fail while
  INSTALLED (e.g. the run step cannot be launched: missing interpreter, sandbox refused). Not
  counting those would make such a component retry for ever instead of going BROKEN.
  Errors while STOPPING (shutdown) or ERRORED (recover) are not counted: the component is
  going away anyway.
* The third error counted for the same prior state within ``errorResetTime`` makes the
  component BROKEN instead of ERRORED (``MAXIMUM_CONTINUAL_ERROR = 3``).
* An error that comes ``errorResetTime`` (default 3600 s) or more after the previous error
  counted for that state starts the count again.
* When a state reports a **non-ERRORED** transition, the counter of the state being left is
  cleared: STARTING -> RUNNING clears startup errors, NEW -> INSTALLED clears install errors,
  RUNNING -> FINISHED or RUNNING -> STOPPING clears run errors. Note that reaching RUNNING does
  *not* clear run errors: a run step that crashes a second after every restart still becomes
  BROKEN on its third crash, which is what "three times without a successful run" means.
* A BROKEN component is revived only by a new deployment (BROKEN -> NEW), which clears all
  counters.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from sprig.core.state import State
from sprig.errors import ValidationError

# Default lifecycle step timeouts, in seconds (Greengrass recipe reference; Lifecycle.java).
BOOTSTRAP_TIMEOUT_S: Final = 120
INSTALL_TIMEOUT_S: Final = 120
STARTUP_TIMEOUT_S: Final = 120
SHUTDOWN_TIMEOUT_S: Final = 15
RECOVER_TIMEOUT_S: Final = 60
UNINSTALL_TIMEOUT_S: Final = 120

MAX_CONTINUAL_ERRORS: Final = 3
ERROR_RESET_TIME_S: Final = 3600


class Step(StrEnum):
    """Recipe lifecycle steps, spelled as the recipe keys (``Lifecycle.Install`` ...)."""

    BOOTSTRAP = "Bootstrap"
    INSTALL = "Install"
    STARTUP = "Startup"
    RUN = "Run"
    SHUTDOWN = "Shutdown"
    RECOVER = "Recover"
    UNINSTALL = "Uninstall"


#: Default ``Timeout`` of each step; ``None`` = no timeout (Run runs for as long as it likes).
DEFAULT_STEP_TIMEOUTS: Final[Mapping[Step, int | None]] = {
    Step.BOOTSTRAP: BOOTSTRAP_TIMEOUT_S,
    Step.INSTALL: INSTALL_TIMEOUT_S,
    Step.STARTUP: STARTUP_TIMEOUT_S,
    Step.RUN: None,
    Step.SHUTDOWN: SHUTDOWN_TIMEOUT_S,
    Step.RECOVER: RECOVER_TIMEOUT_S,
    Step.UNINSTALL: UNINSTALL_TIMEOUT_S,
}

#: Prior states whose errors count toward BROKEN (see the module docstring for INSTALLED).
COUNTED_STATES: Final = frozenset({State.NEW, State.INSTALLED, State.STARTING, State.RUNNING})

#: Transitions a running step may *report* (Lifecycle.java ALLOWED_STATE_TRANSITION_FOR_REPORTING,
#: plus INSTALLED -> ERRORED, see above). Other transitions are the kernel's own decisions.
REPORTABLE: Final[Mapping[State, frozenset[State]]] = {
    State.NEW: frozenset({State.ERRORED}),
    State.INSTALLED: frozenset({State.ERRORED}),
    State.STARTING: frozenset({State.RUNNING, State.ERRORED, State.FINISHED}),
    State.RUNNING: frozenset({State.ERRORED, State.FINISHED}),
    State.STOPPING: frozenset({State.ERRORED, State.FINISHED}),
}


def can_report(current: State, new: State) -> bool:
    """True when a step running in ``current`` may report ``new`` (others are ignored)."""
    return new in REPORTABLE.get(current, frozenset())


def state_after_recover(prior: State) -> State:
    """Where an ERRORED component goes once its recover step is done, by the state it errored in.

    STARTING/RUNNING: stop first (STOPPING), then restart; NEW: reinstall; INSTALLED: try to
    start again; STOPPING: the stop is considered done (FINISHED). Like Greengrass, anything
    else ends in FINISHED.
    """
    if prior in (State.STARTING, State.RUNNING):
        return State.STOPPING
    if prior in (State.NEW, State.INSTALLED):
        return prior
    return State.FINISHED


@dataclass(frozen=True)
class ErrorPolicy:
    """How many errors, how close together, make a component BROKEN."""

    max_errors: int = MAX_CONTINUAL_ERRORS
    error_reset_time_s: float = ERROR_RESET_TIME_S

    def __post_init__(self) -> None:
        if isinstance(self.max_errors, bool) or not isinstance(self.max_errors, int) or (
            self.max_errors < 1
        ):
            raise ValidationError(
                "max_errors", "must be a positive whole number", value=self.max_errors,
                has_value=True, allowed="an integer >= 1",
            )
        if (
            isinstance(self.error_reset_time_s, bool)
            or not isinstance(self.error_reset_time_s, (int, float))
            or not math.isfinite(self.error_reset_time_s)
            or self.error_reset_time_s <= 0
        ):
            raise ValidationError(
                "lifecycle.errorResetTime", "must be a positive number of seconds",
                value=self.error_reset_time_s, has_value=True, allowed="a number > 0",
            )

    @classmethod
    def from_lifecycle_config(
        cls, lifecycle: Mapping[str, Any], *, source: str | None = None
    ) -> ErrorPolicy:
        """Read ``errorResetTime`` (seconds) from a component's ``lifecycle`` configuration."""
        value = lifecycle.get("errorResetTime", ERROR_RESET_TIME_S)
        try:
            return cls(error_reset_time_s=value)
        except ValidationError as exc:
            if source is None:
                raise
            raise exc.with_source(source) from None


class ErrorTracker:
    """Counts a component's errors and says when the next one makes it BROKEN.

    Feed it every transition the component makes: :meth:`report` does both halves, or call
    :meth:`record_error` / :meth:`record_state` directly. One tracker per component; not shared
    between threads (the kernel's event loop owns it).
    """

    def __init__(self, policy: ErrorPolicy | None = None, *, state: State = State.NEW) -> None:
        self.policy = policy or ErrorPolicy()
        self._state = state
        self._errors: dict[State, list[float]] = {}

    @property
    def state(self) -> State:
        """The last state this tracker was told about (ERRORED or BROKEN after an error)."""
        return self._state

    def error_count(self, prior: State) -> int:
        """Errors currently counted against ``prior`` (for status output and tests)."""
        return len(self._errors.get(prior, ()))

    def record_error(self, prior_state: State, now: float) -> bool:
        """An error while in ``prior_state`` at ``now``; True when the component goes BROKEN."""
        broken = False
        if prior_state in COUNTED_STATES:
            times = self._errors.setdefault(prior_state, [])
            if times and now - times[-1] >= self.policy.error_reset_time_s:
                times.clear()
            times.append(now)
            broken = len(times) >= self.policy.max_errors
        self._state = State.BROKEN if broken else State.ERRORED
        return broken

    def record_state(self, state: State, now: float, *, prior_state: State | None = None) -> None:
        """A non-error transition into ``state`` (from ``prior_state``, default: :attr:`state`).

        Clears the error count of the state being left; BROKEN -> NEW (a new deployment)
        clears every count. ``now`` is accepted for symmetry and future use (e.g. hourly
        metrics); the rule itself does not need it.
        """
        del now
        if state is State.ERRORED:
            raise ValueError("use record_error() for ERRORED")
        prior = self._state if prior_state is None else prior_state
        if prior is State.BROKEN and state is State.NEW:
            self._errors.clear()
        else:
            self._errors.pop(prior, None)
        self._state = state

    def report(self, new: State, now: float, *, prior_state: State | None = None) -> State:
        """Record a transition and return the state actually entered (BROKEN instead of
        ERRORED when the error is one too many)."""
        if new is State.ERRORED:
            prior = self._state if prior_state is None else prior_state
            return State.BROKEN if self.record_error(prior, now) else State.ERRORED
        self.record_state(new, now, prior_state=prior_state)
        return new

    def reset(self) -> None:
        """Forget every error (a new deployment of the component)."""
        self._errors.clear()
