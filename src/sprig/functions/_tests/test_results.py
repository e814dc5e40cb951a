"""How an invocation ended → what the caller gets (pure)."""

from __future__ import annotations

import json

from sprig.functions.invocation import FunctionErrorKind
from sprig.functions.results import invocation_result, report_line
from sprig.functions.worker import WorkerExited, WorkerTimeout
from sprig.launcher.process import ExitStatus
from sprig.runtime_api import Outcome, OutcomeKind


def doc(r: object) -> dict[str, object]:
    return json.loads(r.payload)  # type: ignore[attr-defined, no-any-return]


def test_outcomes() -> None:
    r, retire, fatal = invocation_result("id", "3", Outcome(OutcomeKind.RESPONSE, b"1"), 3, 16384)
    assert r.ok and r.payload == b"1" and r.executed_version == "3" and not retire and not fatal
    r, retire, _ = invocation_result("id", "3", Outcome(OutcomeKind.ERROR, b"{}", "E"), 3, 1)
    assert r.function_error is FunctionErrorKind.HANDLED and not retire
    r, retire, fatal = invocation_result("id", "3", Outcome(OutcomeKind.TOO_LARGE, b"{}"), 3, 1)
    assert r.function_error is FunctionErrorKind.UNHANDLED and retire and not fatal


def test_failures() -> None:
    r, retire, fatal = invocation_result("id", "1", WorkerTimeout(), 3, 16384)
    assert doc(r)["errorType"] == "Sandbox.Timeout" and retire and fatal
    assert str(doc(r)["errorMessage"]).endswith("id Task timed out after 3.00 seconds")
    r, *_ = invocation_result("id", "1", WorkerExited(ExitStatus(3, None, False)), 3, 16384)
    assert doc(r) == {"errorMessage": "RequestId: id Error: Runtime exited with error: "
                                      "exited with code 3", "errorType": "Runtime.ExitError"}
    r, *_ = invocation_result("id", "1", WorkerExited(ExitStatus(None, 9, True, 16384)), 3, 1)
    assert doc(r)["errorType"] == "Runtime.OutOfMemory"
    assert "memory limit of 16384 KB" in str(doc(r)["errorMessage"])
    r, retire, fatal = invocation_result("id", "1", RuntimeError("bug"), 3, 1)
    assert doc(r)["errorType"] == "Sprig.InternalError" and retire and not fatal


def test_report_line() -> None:
    assert report_line("id", 1.234, 16384, 20480, None) == (
        "REPORT RequestId: id\tDuration: 1.23 ms\tBilled Duration: 2 ms\tMemory Size: 16 MB\t"
        "Max Memory Used: 20 MB")
    assert report_line("id", 1, 16384, None, 12.5).endswith("\tInit Duration: 12.50 ms")
