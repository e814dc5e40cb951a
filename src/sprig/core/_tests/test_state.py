from __future__ import annotations

from sprig.core.state import State

S = State


def test_names_and_order_match_greengrass() -> None:
    assert [s.value for s in State] == [
        "NEW", "INSTALLED", "STARTING", "RUNNING", "STOPPING", "ERRORED", "BROKEN", "FINISHED",
    ]
    assert State("RUNNING") is S.RUNNING
    assert f"{S.BROKEN}" == "BROKEN"
