from __future__ import annotations

import pytest

from sprig.core.state import State, StatusCode, default_status_code, status_reason

S = State


def test_names_and_order_match_greengrass() -> None:
    assert [s.value for s in State] == [
        "NEW", "INSTALLED", "STARTING", "RUNNING", "STOPPING", "ERRORED", "BROKEN", "FINISHED",
    ]
    assert State("RUNNING") is S.RUNNING
    assert f"{S.BROKEN}" == "BROKEN"


# state: (happy, running, functioning, up_for_dependents, startable, stoppable, closable)
TABLE = {
    S.NEW: (True, False, False, False, True, True, True),
    S.INSTALLED: (True, False, False, False, True, False, False),
    S.STARTING: (True, False, False, False, False, True, False),
    S.RUNNING: (True, True, True, True, False, True, False),
    S.STOPPING: (True, False, True, False, False, False, False),
    S.ERRORED: (False, False, False, False, True, False, True),
    S.BROKEN: (False, False, False, False, False, False, True),
    S.FINISHED: (True, False, True, True, True, False, True),
}


@pytest.mark.parametrize("state", list(State))
def test_predicates_match_state_java(state: State) -> None:
    assert (
        state.is_happy,
        state.is_running,
        state.is_functioning,
        state.is_up_for_dependents,
        state.is_startable,
        state.is_stoppable,
        state.is_closable,
    ) == TABLE[state]


@pytest.mark.parametrize(
    ("prior", "new", "code"),
    [
        (S.NEW, S.ERRORED, StatusCode.INSTALL_ERRORED),
        (S.INSTALLED, S.ERRORED, StatusCode.INSTALL_ERRORED),
        (S.STARTING, S.ERRORED, StatusCode.STARTUP_ERRORED),
        (S.RUNNING, S.ERRORED, StatusCode.RUN_ERRORED),
        (S.STOPPING, S.ERRORED, StatusCode.SHUTDOWN_ERRORED),
        (S.ERRORED, S.ERRORED, StatusCode.NONE),
        (S.STARTING, S.RUNNING, StatusCode.NONE),
    ],
)
def test_default_status_codes(prior: State, new: State, code: StatusCode) -> None:
    assert default_status_code(prior, new) is code


def test_status_reason() -> None:
    assert status_reason(StatusCode.STARTUP_TIMEOUT) == "Timeout during startup"
    assert status_reason(StatusCode.RUN_ERRORED, 3) == "Error during run: exit code 3"
    assert all(code.description or code is StatusCode.NONE for code in StatusCode)
