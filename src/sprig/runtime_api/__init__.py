"""The Lambda Runtime API (2018-06-01): one loopback endpoint per worker.

See :mod:`sprig.runtime_api.session` for how to start a session for one worker, and
:mod:`sprig.runtime_api.frames` for the framed lane Sprig's Python runtime speaks on the
session's Unix socket instead of HTTP.
"""

from __future__ import annotations

from sprig.runtime_api import wire
from sprig.runtime_api.session import (
    InitError,
    InitFailedError,
    Job,
    Outcome,
    OutcomeKind,
    RuntimeSession,
    SessionAborted,
    SessionState,
    error_document,
)

__all__ = ["InitError", "InitFailedError", "Job", "Outcome", "OutcomeKind", "RuntimeSession",
           "SessionAborted", "SessionState", "error_document", "wire"]
