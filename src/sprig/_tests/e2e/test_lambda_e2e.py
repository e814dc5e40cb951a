"""Lambda functions through a real core: the CLI and boto3 against the invoke API."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config

from sprig.cli.client import ManagementApiError
from sprig.lambda_import.importer import import_function
from sprig.lambda_import.params import ImportFlags
from sprig.testing import CoreProcess

pytestmark = pytest.mark.e2e

HANDLER = """
import os, time
state = {"count": 0}
if os.environ.get("FAIL_INIT") == "yes":
    raise RuntimeError("init failed on purpose")

def handler(event, context):
    state["count"] += 1
    if event.get("raise"):
        raise ValueError("bad input: " + str(event["raise"]))
    if event.get("sleep"):
        time.sleep(event["sleep"])
    if event.get("exit"):
        os._exit(7)
    return {"count": state["count"], "greeting": os.environ.get("GREETING"),
            "pid": os.getpid()}
"""


def deploy_function(core: CoreProcess, tmp_path: Path, name: str, **flags: Any) -> None:
    code = tmp_path / f"{name}-code"
    code.mkdir()
    (code / "app.py").write_text(HANDLER)
    out = tmp_path / f"{name}-out"
    import_function(code, out, ImportFlags(name=name, runtime="python3.11",
                                           handler="app.handler", **flags))
    result = core.deploy(recipe_dir=out / "recipes", artifact_dir=out / "artifacts",
                         merge={name: "1.0.0"})
    assert result["status"] == "SUCCEEDED", result


def invoke(core: CoreProcess, name: str, payload: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sprig", "invoke", name, "--payload", json.dumps(payload),
         "--root", str(core.root)], capture_output=True, text=True, timeout=60)


def lambda_client(core: CoreProcess, secret: str | None = None) -> Any:
    text = core.layout.credentials.read_text()
    keys = dict(line.split(" = ", 1) for line in text.splitlines() if " = " in line)
    return boto3.client(
        "lambda", endpoint_url=core.endpoints()["lambda"], region_name="us-east-1",
        aws_access_key_id=keys["aws_access_key_id"],
        aws_secret_access_key=secret or keys["aws_secret_access_key"],
        config=Config(retries={"total_max_attempts": 1}))


def test_pinned_function_keeps_state_and_errors_are_shaped_like_aws(core: CoreProcess,
                                                                    tmp_path: Path) -> None:
    deploy_function(core, tmp_path, "Counter", pinned=True, env=("GREETING=hi",),
                    isolation="NoContainer")
    first = invoke(core, "Counter", {})
    second = invoke(core, "Counter", {})
    assert first.returncode == 0, first.stderr
    a, b = json.loads(first.stdout), json.loads(second.stdout)
    assert (a["count"], b["count"]) == (1, 2) and a["pid"] == b["pid"]
    assert a["greeting"] == "hi"
    handled = invoke(core, "Counter", {"raise": "x"})
    assert handled.returncode == 1
    doc = json.loads(handled.stdout)
    assert doc["errorType"] == "ValueError" and doc["errorMessage"] == "bad input: x"
    assert isinstance(doc["stackTrace"], list)
    assert "FunctionError: Unhandled" in handled.stderr   # as AWS Lambda answers today
    # The management API's task-less entrance (RequestResponse) and its awaited one (the
    # other types) answer alike, errors included.
    empty = base64.b64encode(b"{}").decode()
    tail = core.call("invoke", {"function": "Counter", "payload": empty, "logTail": True})
    assert tail["statusCode"] == 200 and tail["functionError"] is None
    assert b"START RequestId: " + tail["requestId"].encode() in base64.b64decode(tail["logTail"])
    event = core.call("invoke", {"function": "Counter", "payload": empty,
                                 "invocationType": "Event"})
    assert event["statusCode"] == 202 and event["payload"] == ""
    assert core.call("invoke", {"function": "Counter", "invocationType": "DryRun"}) == \
        {"statusCode": 204}
    for kind in ("RequestResponse", "Event"):
        with pytest.raises(ManagementApiError, match="Nope") as missing:
            core.call("invoke", {"function": "Nope", "invocationType": kind})
        assert missing.value.kind == "FunctionNotFound"
    with pytest.raises(ManagementApiError, match="allowed: RequestResponse, Event, DryRun"):
        core.call("invoke", {"function": "Counter", "invocationType": "Later"})
    # A configuration change restarts the worker with the new environment.
    result = core.deploy(configuration_update={"Counter": {"MERGE": {
        "lambdaExecutionParameters": {"EnvironmentVariables": {"GREETING": "hello"}}}}})
    assert result["status"] == "SUCCEEDED", result
    after = json.loads(invoke(core, "Counter", {}).stdout)
    assert after["greeting"] == "hello" and after["count"] == 1 and after["pid"] != a["pid"]


def test_timeout_and_crash_are_unhandled_and_the_function_recovers(core: CoreProcess,
                                                                   tmp_path: Path) -> None:
    deploy_function(core, tmp_path, "Sleepy", pinned=False, timeout="1")
    slow = invoke(core, "Sleepy", {"sleep": 5})
    assert slow.returncode == 1
    doc = json.loads(slow.stdout)
    assert doc["errorType"] == "Sandbox.Timeout" and "1.00 seconds" in doc["errorMessage"]
    assert "Unhandled" in slow.stderr
    crash = json.loads(invoke(core, "Sleepy", {"exit": True}).stdout)
    assert crash["errorType"] == "Runtime.ExitError" and "code 7" in crash["errorMessage"]
    ok = invoke(core, "Sleepy", {})
    assert ok.returncode == 0 and json.loads(ok.stdout)["count"] == 1


def test_boto3_signed_unsigned_and_wrongly_signed(core: CoreProcess, tmp_path: Path) -> None:
    deploy_function(core, tmp_path, "Api", pinned=True)
    client = lambda_client(core)
    resp = client.invoke(FunctionName="Api", Payload=b"{}", LogType="Tail")
    assert resp["StatusCode"] == 200 and json.load(resp["Payload"])["count"] == 1
    assert resp["ExecutedVersion"] == "1"
    assert "START RequestId" in __import__("base64").b64decode(resp["LogResult"]).decode()
    err = client.invoke(FunctionName="Api", Payload=b'{"raise": 1}')
    assert err["FunctionError"] == "Unhandled"
    assert client.invoke(FunctionName="Api", InvocationType="Event",
                         Payload=b"{}")["StatusCode"] == 202
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.invoke(FunctionName="Nope", Payload=b"{}")
    with pytest.raises(botocore.exceptions.ClientError) as bad:
        lambda_client(core, secret="x" * 40).invoke(FunctionName="Api", Payload=b"{}")
    assert bad.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    import urllib.error
    import urllib.request

    req = urllib.request.Request(
        core.endpoints()["lambda"] + "/2015-03-31/functions/Api/invocations", data=b"{}")
    with pytest.raises(urllib.error.HTTPError) as unsigned:
        urllib.request.urlopen(req, timeout=10)
    assert unsigned.value.code == 403


def test_pinned_init_error_ends_broken_with_the_reason(core: CoreProcess, tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "app.py").write_text(HANDLER)
    out = tmp_path / "out"
    import_function(code, out, ImportFlags(name="BadInit", runtime="python3.11",
                                           handler="app.handler", env=("FAIL_INIT=yes",)))
    result = core.deploy(recipe_dir=out / "recipes", artifact_dir=out / "artifacts",
                         merge={"BadInit": "1.0.0"}, failure_handling="DO_NOTHING")
    assert result["status"] == "FAILED"
    assert "init failed on purpose" in result["reason"]
    assert core.states()["BadInit"] == "BROKEN"
