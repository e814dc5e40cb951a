"""Component lifecycle states, with the names and meanings of Greengrass V2.

The names are those of ``InstalledComponentLifecycleState`` (what ``sprig component list`` and
the deployment status show). Which state may follow which is the kernel's business
(:mod:`sprig.core.service`); the error rule that makes one BROKEN is :mod:`sprig.core.lifecycle`.
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
