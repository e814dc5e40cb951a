from __future__ import annotations

import pytest

from sprig.core.lifecycle import (
    DEFAULT_STEP_TIMEOUTS,
    ErrorPolicy,
    ErrorTracker,
    Step,
    can_report,
    state_after_recover,
)
from sprig.core.state import State
from sprig.errors import ValidationError

S = State


def test_default_timeouts() -> None:
    assert DEFAULT_STEP_TIMEOUTS == {
        Step.BOOTSTRAP: 120, Step.INSTALL: 120, Step.STARTUP: 120, Step.RUN: None,
        Step.SHUTDOWN: 15, Step.RECOVER: 60, Step.UNINSTALL: 120,
    }
    assert ErrorPolicy() == ErrorPolicy(max_errors=3, error_reset_time_s=3600)


@pytest.mark.parametrize("prior", [S.NEW, S.INSTALLED, S.STARTING, S.RUNNING])
def test_third_error_in_a_counted_state_breaks(prior: State) -> None:
    t = ErrorTracker()
    assert t.record_error(prior, 0.0) is False
    assert t.state is S.ERRORED
    assert t.record_error(prior, 10.0) is False
    assert t.record_error(prior, 20.0) is True
    assert t.state is S.BROKEN
    assert t.error_count(prior) == 3


@pytest.mark.parametrize("prior", [S.STOPPING, S.ERRORED, S.FINISHED, S.BROKEN])
def test_errors_in_other_states_never_break(prior: State) -> None:
    t = ErrorTracker()
    assert not any(t.record_error(prior, float(i)) for i in range(10))
    assert t.error_count(prior) == 0


def test_errors_are_counted_per_prior_state() -> None:
    t = ErrorTracker()
    assert not t.record_error(S.NEW, 0)
    assert not t.record_error(S.STARTING, 1)
    assert not t.record_error(S.RUNNING, 2)
    assert not t.record_error(S.NEW, 3)
    assert t.record_error(S.NEW, 4)


@pytest.mark.parametrize(
    ("times", "broken"),
    [
        ((0, 1000, 3599.9), True),  # all within an hour of the previous one
        ((0, 3000, 6000), True),  # each within an hour of the *previous* error
        ((0, 1000, 4600), False),  # last one >= 3600 after the previous: count restarts at 1
        ((0, 3600, 3601), False),  # exactly errorResetTime apart also restarts
        ((0, 3600, 3601, 3602), True),
    ],
)
def test_error_reset_time(times: tuple[float, ...], broken: bool) -> None:
    t = ErrorTracker()
    results = [t.record_error(S.RUNNING, now) for now in times]
    assert results[-1] is broken
    assert not any(results[:-1])


def test_custom_policy() -> None:
    t = ErrorTracker(ErrorPolicy(max_errors=1, error_reset_time_s=5))
    assert t.record_error(S.STARTING, 0)
    t2 = ErrorTracker(ErrorPolicy(max_errors=2, error_reset_time_s=5))
    assert not t2.record_error(S.STARTING, 0)
    assert not t2.record_error(S.STARTING, 5)
    assert t2.record_error(S.STARTING, 9)


def test_successful_startup_clears_startup_errors() -> None:
    t = ErrorTracker(state=S.STARTING)
    assert t.report(S.ERRORED, 0) is S.ERRORED
    t.record_state(S.STARTING, 1, prior_state=S.INSTALLED)
    assert t.report(S.ERRORED, 2) is S.ERRORED
    t.record_state(S.STARTING, 3, prior_state=S.INSTALLED)
    t.record_state(S.RUNNING, 4)  # STARTING -> RUNNING
    assert t.error_count(S.STARTING) == 0
    t.record_state(S.STARTING, 5, prior_state=S.INSTALLED)
    assert t.report(S.ERRORED, 6) is S.ERRORED


def _restart(t: ErrorTracker, now: float) -> None:
    """The Greengrass path after a run error: ERRORED -> STOPPING -> FINISHED -> INSTALLED
    -> STARTING -> RUNNING."""
    for state in (S.STOPPING, S.FINISHED, S.INSTALLED, S.STARTING, S.RUNNING):
        assert t.report(state, now) is state


def test_crash_loop_after_reaching_running_still_breaks() -> None:
    t = ErrorTracker(state=S.RUNNING)
    assert t.report(S.ERRORED, 0) is S.ERRORED
    _restart(t, 1)
    assert t.report(S.ERRORED, 2) is S.ERRORED
    _restart(t, 3)
    assert t.report(S.ERRORED, 4) is S.BROKEN
    assert t.state is S.BROKEN


def test_run_finishing_or_stopping_clears_run_errors() -> None:
    for good in (S.FINISHED, S.STOPPING):
        t = ErrorTracker(state=S.RUNNING)
        t.report(S.ERRORED, 0)
        _restart(t, 1)
        t.report(S.ERRORED, 2)
        _restart(t, 3)
        t.report(good, 4)  # RUNNING -> good: a successful run
        assert t.error_count(S.RUNNING) == 0
        _restart(t, 5)
        assert t.report(S.ERRORED, 6) is S.ERRORED


def test_install_success_clears_install_errors() -> None:
    t = ErrorTracker(state=S.NEW)
    assert t.report(S.ERRORED, 0) is S.ERRORED
    t.record_state(S.NEW, 1)  # recover: reinstall
    assert t.report(S.ERRORED, 2) is S.ERRORED
    t.record_state(S.NEW, 3)
    t.record_state(S.INSTALLED, 4)
    assert t.error_count(S.NEW) == 0


def test_broken_to_new_clears_everything() -> None:
    t = ErrorTracker(ErrorPolicy(max_errors=2), state=S.RUNNING)
    t.report(S.ERRORED, 0, prior_state=S.NEW)
    t.report(S.ERRORED, 0, prior_state=S.RUNNING)
    assert t.report(S.ERRORED, 1, prior_state=S.RUNNING) is S.BROKEN
    t.record_state(S.NEW, 2)
    assert t.error_count(S.NEW) == 0
    assert t.state is S.NEW
    assert t.report(S.ERRORED, 3, prior_state=S.NEW) is S.ERRORED


def test_record_state_refuses_errored() -> None:
    with pytest.raises(ValueError, match="record_error"):
        ErrorTracker().record_state(S.ERRORED, 0)


@pytest.mark.parametrize(
    ("prior", "after"),
    [
        (S.STARTING, S.STOPPING),
        (S.RUNNING, S.STOPPING),
        (S.NEW, S.NEW),
        (S.INSTALLED, S.INSTALLED),
        (S.STOPPING, S.FINISHED),
        (S.FINISHED, S.FINISHED),
    ],
)
def test_state_after_recover(prior: State, after: State) -> None:
    assert state_after_recover(prior) is after


def test_can_report() -> None:
    assert can_report(S.STARTING, S.RUNNING)
    assert can_report(S.RUNNING, S.FINISHED)
    assert can_report(S.NEW, S.ERRORED)
    assert not can_report(S.RUNNING, S.STARTING)
    assert not can_report(S.BROKEN, S.RUNNING)
    assert not can_report(S.NEW, S.RUNNING)


@pytest.mark.parametrize(
    ("kwargs", "path"),
    [
        ({"max_errors": 0}, "max_errors"),
        ({"max_errors": True}, "max_errors"),
        ({"error_reset_time_s": 0}, "lifecycle.errorResetTime"),
        ({"error_reset_time_s": "1h"}, "lifecycle.errorResetTime"),
        ({"error_reset_time_s": float("inf")}, "lifecycle.errorResetTime"),
    ],
)
def test_policy_validation(kwargs: dict[str, object], path: str) -> None:
    with pytest.raises(ValidationError) as err:
        ErrorPolicy(**kwargs)  # type: ignore[arg-type]
    assert err.value.path == path
    assert "allowed" in str(err.value)


def test_policy_from_lifecycle_config() -> None:
    assert ErrorPolicy.from_lifecycle_config({}).error_reset_time_s == 3600
    assert ErrorPolicy.from_lifecycle_config({"errorResetTime": 60}).error_reset_time_s == 60
    with pytest.raises(ValidationError) as err:
        ErrorPolicy.from_lifecycle_config({"errorResetTime": -1}, source="recipe.yaml")
    assert str(err.value).startswith("recipe.yaml: lifecycle.errorResetTime")
    assert "-1" in str(err.value)
