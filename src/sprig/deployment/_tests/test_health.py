"""The deployment's health decisions, with explicit states and times (no core, no clock)."""

from __future__ import annotations

from sprig.core.state import State
from sprig.deployment.health import (
    Seen,
    broken_since,
    decided,
    settled,
    stability_wait,
    verdict,
)

BEGAN = 100.0


def test_up_everywhere_is_healthy() -> None:
    seen = [Seen("a", State.RUNNING, 101), Seen("b", State.FINISHED, 102)]
    assert settled(seen) and decided(seen, BEGAN)
    assert verdict(seen, BEGAN, in_time=True, timeout_s=300) is None


def test_broken_since_the_deployment_fails_it_at_once() -> None:
    seen = [Seen("a", State.STARTING, 101),
            Seen("b", State.BROKEN, 105, last_error="Run script exited with code 3")]
    assert not settled(seen) and decided(seen, BEGAN)
    assert verdict(seen, BEGAN, in_time=True, timeout_s=300) == (
        "component b BROKEN (b: Run script exited with code 3)", ["b"])


def test_broken_before_and_left_alone_does_not_count() -> None:
    seen = [Seen("old", State.BROKEN, 50), Seen("a", State.RUNNING, 101)]
    assert broken_since(seen, BEGAN) == []
    assert verdict(seen, BEGAN, in_time=True, timeout_s=300) is None


def test_a_young_run_process_is_watched_for_the_window() -> None:
    young = Seen("a", State.RUNNING, 101, running_since=101, watched=True)
    assert stability_wait([young], BEGAN, window=3, now=102) == 2
    assert stability_wait([young], BEGAN, window=3, now=105) <= 0
    # started before the deployment, or not a watched Run process: no wait
    assert stability_wait([Seen("a", State.RUNNING, 90, running_since=90, watched=True)],
                          BEGAN, window=3, now=101) == 0
    assert stability_wait([Seen("a", State.RUNNING, 101, running_since=101)],
                          BEGAN, window=3, now=101) == 0


def test_timing_out_names_what_it_waited_for() -> None:
    seen = [Seen("a", State.STARTING, 101), Seen("b", State.RUNNING, 101)]
    assert not decided(seen, BEGAN)
    assert verdict(seen, BEGAN, in_time=False, timeout_s=300) == (
        "timed out after 300 s waiting for a (STARTING) to be RUNNING or FINISHED", [])


def test_a_resumed_deployment_owns_what_it_changed_that_broke_before_the_kill() -> None:
    seen = [Seen("changed", State.BROKEN, 50, last_error="x"), Seen("other", State.BROKEN, 50)]
    assert broken_since(seen, BEGAN, {"changed"}) == ["changed"]
    assert decided(seen, BEGAN, {"changed"})
    assert verdict(seen, BEGAN, {"changed"}, in_time=True, timeout_s=300) == (
        "component changed BROKEN (changed: x)", ["changed"])
