"""Is a deployment's component set healthy yet? Pure decisions over what the kernel shows.

The deployment worker (:mod:`sprig.deployment.service`) waits on the kernel's state changes and
asks these functions, with a snapshot of the components it deployed and the clock passed in,
whether it is done and how: so the rules are tested in milliseconds with explicit states and
times, no core. The rules (see the worker's docstring): a component that went BROKEN after the
deployment began fails it at once (one BROKEN before and left alone does not count, as in the
nucleus); RUNNING or FINISHED everywhere is success, once each Run process the deployment
started has stayed up for the stability window; otherwise the deployment times out.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sprig.core.state import State

#: The states a deployment waits for.
UP = (State.RUNNING, State.FINISHED)


@dataclass(frozen=True)
class Seen:
    """One component of the deployment as the kernel shows it now."""

    name: str
    state: State
    #: when it entered ``state`` (monotonic seconds)
    changed_at: float = 0.0
    #: when its Run process started (monotonic seconds; 0: never)
    running_since: float = 0.0
    #: whether its Run process is watched for the stability window (it runs for ever)
    watched: bool = False
    last_error: str = ""


def broken_since(seen: Sequence[Seen], began: float,
                 changed: Collection[str] = ()) -> list[str]:
    """The components that went BROKEN since ``began``, and those BROKEN that the deployment
    ``changed`` (a resumed deployment: one it changed that broke before the core was killed is
    its failure too)."""
    return [s.name for s in seen
            if s.state is State.BROKEN and (s.changed_at >= began or s.name in changed)]


def settled(seen: Sequence[Seen]) -> bool:
    """Every component is up or BROKEN: nothing is still moving."""
    return all(s.state in (*UP, State.BROKEN) for s in seen)


def decided(seen: Sequence[Seen], began: float, changed: Collection[str] = ()) -> bool:
    """Waiting can stop: everything settled, or something broke."""
    return settled(seen) or bool(broken_since(seen, began, changed))


def stability_wait(seen: Sequence[Seen], began: float, window: float, now: float) -> float:
    """How long until every Run process this deployment started has been up for ``window``
    seconds (0: none is young)."""
    return max((s.running_since + window - now for s in seen
                if s.state is State.RUNNING and s.watched and s.running_since >= began),
               default=0.0)


def verdict(seen: Sequence[Seen], began: float, changed: Collection[str] = (), *,
            in_time: bool, timeout_s: float) -> tuple[str, list[str]] | None:
    """None: healthy. Else the reason (as the deployment record says it) and the components
    that broke (empty when it timed out)."""
    broken = broken_since(seen, began, changed)
    if broken:
        errors = {s.name: s.last_error for s in seen}
        details = "; ".join(f"{n}: {errors[n]}" for n in broken)
        return f"component {', '.join(broken)} BROKEN ({details})", broken
    if not in_time:
        waiting = [f"{s.name} ({s.state})" for s in seen if s.state not in UP]
        return (f"timed out after {timeout_s:g} s waiting for {', '.join(waiting)} to be "
                "RUNNING or FINISHED"), []
    return None
