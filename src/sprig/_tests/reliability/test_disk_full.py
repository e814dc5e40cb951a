"""A full disk is a state, not a crash (issue 12 item 4), on a real core whose root is a small
tmpfs that a GreengrassContainer function fills through its work directory:

* other functions' invocations (pinned and on-demand, RequestResponse and Event, management
  API and boto3) answer or fail with an error naming a full path, each within a bound;
* deployments fail with "no space left on <path>" and change nothing;
* ``kill -9`` and a restart on the still-full disk: the core starts and says what is full;
* once the space is freed, everything works again without a restart.
"""

from __future__ import annotations

import base64
import concurrent.futures
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from sprig._tests.reliability.support import function_component, invoke
from sprig.cli.client import ApiError
from sprig.local_api.credentials import load_credentials
from sprig.testing import CoreProcess
from sprig.testing.tmpfs import MountError, small_tmpfs

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BOUND_S = 10.0          # an invocation on a full disk answers or fails within this
T = TypeVar("T")

FILLER = '''
import os
def handler(event, context):
    n = 0
    try:
        with open("fill.bin", "ab") as f:
            while True:
                f.write(b"x" * 65536)
                f.flush()
                n += 65536
    except OSError as e:
        return {"written": n, "error": str(e), "file": os.path.abspath("fill.bin")}
'''
# Prints (log lines to write) and records the request ids it saw in its work directory.
RECORDER = '''
import os
def handler(event, context):
    print("handling", context.aws_request_id, "x" * 2000)
    try:
        with open("seen.txt", "a") as f:
            f.write(context.aws_request_id + "\\n")
        recorded = True
    except OSError:
        recorded = False
    return {"ok": True, "recorded": recorded}
'''


@pytest.fixture
def disk() -> Iterator[Path]:
    try:
        with small_tmpfs("24m") as base:
            yield base
    except MountError as e:
        pytest.fail(f"this test needs a tmpfs mount (root): {e}")


def bounded(what: str, call: Callable[[], T]) -> tuple[T | BaseException, float]:
    """Run ``call`` in a thread; it must return or raise within BOUND_S (asserted)."""
    pool = concurrent.futures.ThreadPoolExecutor(1)
    t0 = time.perf_counter()
    future = pool.submit(call)
    try:
        outcome: T | BaseException = future.result(timeout=BOUND_S)
    except concurrent.futures.TimeoutError:
        pool.shutdown(wait=False)
        raise AssertionError(f"{what}: no answer within {BOUND_S:g} s on a full disk") from None
    except Exception as e:
        outcome = e
    pool.shutdown(wait=False)
    return outcome, time.perf_counter() - t0


def assert_answered_or_clear(what: str, outcome: Any, root: Path) -> str:
    """An answer, or an error that names a full path under the root."""
    if isinstance(outcome, ApiError):
        assert outcome.kind == "DiskFull", (what, outcome)
        assert f"no space left on {root}" in str(outcome), (what, outcome)
        return "refused"
    if isinstance(outcome, ClientError):
        text = outcome.response["Error"]["Message"]
        assert outcome.response["Error"]["Code"] == "ServiceException", (what, outcome)
        assert f"no space left on {root}" in text, (what, outcome)
        return "refused"
    assert not isinstance(outcome, BaseException), (what, outcome)
    if isinstance(outcome, dict) and outcome.get("statusCode") == 202:
        return "accepted"
    if isinstance(outcome, dict) and outcome.get("functionError"):
        payload = outcome["payload"]
        assert payload["errorType"] == "Runtime.DiskFull", (what, outcome)
        assert f"no space left on {root}" in payload["errorMessage"], (what, outcome)
        return "failed clearly"
    return "answered"


def lambda_client(core: CoreProcess) -> Any:
    creds = load_credentials(core.layout.credentials)
    return boto3.client("lambda", endpoint_url=core.endpoints()["lambda"],
                        region_name="us-east-1", aws_access_key_id=creds.access_key_id,
                        aws_secret_access_key=creds.secret_access_key,
                        config=Config(retries={"total_max_attempts": 1}, read_timeout=BOUND_S))


def event(core: CoreProcess, name: str) -> dict[str, Any]:
    result: dict[str, Any] = core.call("invoke", {
        "function": name, "invocationType": "Event",
        "payload": base64.b64encode(b'{"pad": "' + b"e" * 100_000 + b'"}').decode()})
    return result


def versions(core: CoreProcess) -> dict[str, str]:
    return {c["name"]: c["version"] for c in core.call("component.list")}


def invoke_all(core: CoreProcess, root: Path, label: str) -> dict[str, str]:
    """Every kind of invocation of the other functions, each bounded; what each did."""
    lam = lambda_client(core)
    calls: dict[str, Callable[[], Any]] = {
        "pinned": lambda: invoke(core, "Pinned"),
        "on-demand": lambda: invoke(core, "OnDemand"),
        "pinned again": lambda: invoke(core, "Pinned"),
        "event (management)": lambda: event(core, "OnDemand"),
        "event (boto3)": lambda: {"statusCode": lam.invoke(
            FunctionName="Pinned", InvocationType="Event",
            Payload=b'{"pad": "' + b"b" * 100_000 + b'"}')["StatusCode"]},
        "boto3": lambda: json.loads(lam.invoke(FunctionName="OnDemand")["Payload"].read()),
    }
    seen: dict[str, str] = {}
    for what, call in calls.items():
        outcome, took = bounded(f"{label}: {what}", call)
        seen[what] = f"{assert_answered_or_clear(what, outcome, root)} in {took:.2f} s"
    print(f"{label}: {seen}")
    return seen


def test_a_full_disk_is_a_state_not_a_crash(disk: Path, public_tmp: Path) -> None:
    out = public_tmp / "out"
    function_component(out, "Filler", FILLER, pinned=False, memory_kb="131072", timeout="60")
    function_component(out, "Pinned", RECORDER, pinned=True)
    function_component(out, "OnDemand", RECORDER, pinned=False)
    function_component(out, "OnDemand", RECORDER, version="2.0.0", pinned=False)
    root = disk / "root"
    core = CoreProcess(root).start()
    try:
        merge = {"Filler": "1.0.0", "Pinned": "1.0.0", "OnDemand": "1.0.0"}
        assert core.deploy(recipe_dir=out / "recipes", artifact_dir=out / "artifacts",
                           merge=merge)["status"] == "SUCCEEDED"
        assert invoke(core, "Pinned")["payload"] == {"ok": True, "recorded": True}
        before = versions(core)
        config_before = core.call("component.details", {"name": "Pinned"})["configuration"]
        deployments_before = core.call("deployment.list", {"limit": 100})

        filled = invoke(core, "Filler")["payload"]
        assert "No space left on device" in filled["error"], filled
        fill_file = root / "work" / "Filler" / "fill.bin"      # its work directory
        assert fill_file.stat().st_size >= filled["written"] > 0, filled

        # 1. Other functions answer or fail clearly, each within the bound.
        invoke_all(core, root, "disk full")

        # 2. Deployments fail naming the path and change nothing.
        refused = []
        for attempt in ({"recipe_dir": out / "recipes", "artifact_dir": out / "artifacts",
                         "merge": {"OnDemand": "2.0.0"}},
                        {"merge": {"Pinned": "1.0.0"}, "configuration_update": {
                            "Pinned": {"MERGE": {"big": "v" * 2_000_000}}}}):
            outcome, _ = bounded("deployment", lambda a=attempt: core.deploy(**a))
            if isinstance(outcome, ApiError):
                assert outcome.kind == "DiskFull", outcome
                assert f"no space left on {root}" in str(outcome), outcome
                refused.append(str(outcome))
            else:
                assert isinstance(outcome, dict) and outcome["status"] == "FAILED", outcome
                assert f"no space left on {root}" in outcome["reason"], outcome
                refused.append(outcome["reason"])
        print("deployments on a full disk:", refused)
        assert versions(core) == before
        assert core.call("deployment.list", {"limit": 100}) == deployments_before
        assert core.call("component.details", {"name": "Pinned"})["configuration"] == \
            config_before

        # 3. What is full is in `sprig status`.
        status = core.call("status")["disk"]
        assert status["low"] and status["full"], status
        assert all(e["path"].startswith(str(root)) for e in status["full"]), status
        print("status while full:", status)

        # 4. kill -9, restart on the full disk: it starts and says what is full.
        core.kill()
        core.start()
        status = core.call("status")
        assert status["disk"]["low"], status["disk"]
        assert str(root) in [e["path"] for e in status["disk"]["full"]], status["disk"]
        assert core.endpoints()["lambda"] == status["endpoints"]["lambda"]   # not a dead port
        core.wait_state("Pinned", "RUNNING", timeout_s=30)
        invoke_all(core, root, "after a restart on a full disk")

        # 5. Space returns: everything works again, no restart.
        fill_file.unlink()
        assert core.call("status")["disk"]["full"] == []
        result = core.deploy(recipe_dir=out / "recipes", artifact_dir=out / "artifacts",
                             merge={"OnDemand": "2.0.0"})
        assert result["status"] == "SUCCEEDED", result
        seen = invoke_all(core, root, "space is back")
        assert all(v.startswith(("answered", "accepted")) for v in seen.values()), seen
        assert invoke(core, "Pinned")["payload"] == {"ok": True, "recorded": True}
        assert "log line(s) dropped: no space left on" in core.log("Pinned")
        core_log = (root / "logs" / "sprig.log").read_text()
        assert "line(s) were held back" in core_log
        assert f"no space left on {root} (" in core_log        # what the restart said
    finally:
        if core.proc is not None:
            core.stop()
