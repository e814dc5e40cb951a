"""How an invocation ended, in AWS's words: pure functions from an outcome to what the caller
gets, and the REPORT line of the log.

* a response → the payload; a handler error → ``Handled`` with the runtime's error document;
* an oversize response → ``Unhandled`` ``Function.ResponseSizeTooLarge`` (the worker goes);
* past the timeout → ``Unhandled`` ``Sandbox.Timeout``, "Task timed out after 3.00 seconds";
* the process ended → ``Unhandled`` ``Runtime.ExitError`` with the exit reason, or
  ``Runtime.OutOfMemory`` naming the memory limit.
"""

from __future__ import annotations

import math
import time

from sprig.functions import errors
from sprig.functions.invocation import FunctionErrorKind, InvocationResult
from sprig.functions.worker import WorkerExited, WorkerTimeout
from sprig.runtime_api import Outcome, OutcomeKind, error_document

INTERNAL_ERROR = "Sprig.InternalError"


def unhandled(rid: str, version: str, error_type: str, message: str) -> InvocationResult:
    return InvocationResult(rid, error_document(error_type, message),
                            FunctionErrorKind.UNHANDLED, version)


def invocation_result(rid: str, version: str, r: Outcome | BaseException, timeout_s: float,
                      memory_kb: int) -> tuple[InvocationResult, bool, bool]:
    """``(result, retire, fatal)``: what the caller gets; whether the worker must go; whether
    a pinned function's kernel must hear of it (the component turns ERRORED)."""
    if isinstance(r, Outcome):
        if r.kind is OutcomeKind.RESPONSE:
            return InvocationResult(rid, r.body, None, version), False, False
        if r.kind is OutcomeKind.ERROR:
            return InvocationResult(rid, r.body, FunctionErrorKind.HANDLED, version), False, False
        return InvocationResult(rid, r.body, FunctionErrorKind.UNHANDLED, version), True, False
    if isinstance(r, WorkerTimeout):
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return unhandled(rid, version, errors.SANDBOX_TIMEOUT,
                         f"{stamp} {rid} Task timed out after {timeout_s:.2f} seconds"), True, True
    if isinstance(r, WorkerExited):
        status = r.status
        if status is not None and status.oom_killed:
            limit = status.memory_limit_kb or memory_kb
            return unhandled(rid, version, errors.RUNTIME_OUT_OF_MEMORY,
                             f"RequestId: {rid} Error: Runtime exited: memory limit of {limit} "
                             "KB (containerParams.memorySize) exceeded"), True, True
        why = status.describe() if status else "the worker is gone"
        return unhandled(rid, version, errors.RUNTIME_EXIT_ERROR,
                         f"RequestId: {rid} Error: Runtime exited with error: {why}"), True, True
    return unhandled(rid, version, INTERNAL_ERROR, f"RequestId: {rid} Error: {r!r}"), True, False


def report_line(rid: str, ms: float, memory_kb: int, peak_kb: int | None,
                init_ms: float | None) -> str:
    """AWS's REPORT line; ``init_ms`` only on a worker's first invocation (a cold start)."""
    line = (f"REPORT RequestId: {rid}\tDuration: {ms:.2f} ms\tBilled Duration: {math.ceil(ms)} "
            f"ms\tMemory Size: {max(1, memory_kb // 1024)} MB\t"
            f"Max Memory Used: {(peak_kb or 0) // 1024} MB")
    if init_ms is not None:
        line += f"\tInit Duration: {init_ms:.2f} ms"
    return line
