"""Lambda functions as AWS imports them, and the clients users point at them: the AWS CLI and
boto3 on the Lambda API; configuration mistakes refused before anything changes."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from sprig._tests.reliability.support import function_component
from sprig.cli.client import ApiError
from sprig.functions.runtimes import installed_pythons
from sprig.testing import CoreProcess

REPO = Path(__file__).resolve().parents[4]
AWS_CLI = REPO / ".compat" / "awscli" / "bin" / "aws"

HANDLER = """
def handler(event, context):
    if event.get("raise"):
        raise ValueError("bad input")
    return {"hello": event.get("name", "world")}
"""


def lambda_client(core: CoreProcess) -> Any:
    text = core.layout.credentials.read_text()
    keys = dict(line.split(" = ", 1) for line in text.splitlines() if " = " in line)
    return boto3.client(
        "lambda", endpoint_url=core.endpoints()["lambda"], region_name="us-east-1",
        aws_access_key_id=keys["aws_access_key_id"],
        aws_secret_access_key=keys["aws_secret_access_key"],
        config=Config(retries={"total_max_attempts": 1}))


def deploy(core: CoreProcess, out: Path, *names: str, **kwargs: Any) -> dict[str, Any]:
    result: dict[str, Any] = core.deploy(recipe_dir=out / "recipes",
                                         artifact_dir=out / "artifacts",
                                         merge=dict.fromkeys(names, "1.0.0"), **kwargs)
    return result


def test_aws_cli_and_boto3_see_the_deployed_functions(core: CoreProcess, public_tmp: Path,
                                                      tmp_path: Path) -> None:
    """``aws lambda list-functions --endpoint-url …`` and boto3's ``list_functions``,
    ``get_function``, ``get_function_configuration`` answer in the Lambda API's shapes
    (ListFunctionsResponse, GetFunctionResponse, FunctionConfiguration); a handler exception
    is ``FunctionError: Unhandled``, as AWS Lambda's current runtimes report it."""
    out = public_tmp / "out"
    function_component(out, "Greeter", HANDLER, pinned=True, timeout="7", memory_kb="65536",
                       env=("STAGE=test",))
    function_component(out, "OnDemand", HANDLER, pinned=False)
    assert deploy(core, out, "Greeter", "OnDemand")["status"] == "SUCCEEDED"
    assert AWS_CLI.exists(), f"{AWS_CLI} is missing: run scripts/setup-compat"
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "AWS_PROFILE": "sprig",
           "AWS_SHARED_CREDENTIALS_FILE": str(core.layout.credentials),
           "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_DEFAULT_REGION": "us-east-1"}
    done = subprocess.run([str(AWS_CLI), "lambda", "list-functions", "--endpoint-url",
                           core.endpoints()["lambda"], "--output", "json"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    listed = {f["FunctionName"]: f for f in json.loads(done.stdout)["Functions"]}
    assert set(listed) == {"Greeter", "OnDemand"}
    greeter = listed["Greeter"]
    assert (greeter["Runtime"], greeter["Handler"], greeter["Timeout"], greeter["MemorySize"],
            greeter["State"]) == ("python3.11", "app.handler", 7, 64, "Active")
    assert greeter["Environment"]["Variables"]["STAGE"] == "test"
    assert greeter["FunctionArn"].endswith(":function:Greeter:1")
    client = lambda_client(core)
    pages = list(client.get_paginator("list_functions").paginate(
        PaginationConfig={"PageSize": 1}))
    assert [f["FunctionName"] for p in pages for f in p["Functions"]] == ["Greeter", "OnDemand"]
    got = client.get_function(FunctionName="Greeter")
    assert got["Configuration"] == greeter | {"Environment": greeter["Environment"]}
    assert got["Tags"]["greengrass:component"] == "Greeter"
    assert got["Code"]["Location"].startswith("file://") and got["Code"]["Location"].endswith(
        ".zip")
    conf = client.get_function_configuration(FunctionName=greeter["FunctionArn"])
    assert conf["CodeSha256"] == greeter["CodeSha256"] and conf["CodeSize"] > 0
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_function(FunctionName="Nope")
    err = client.invoke(FunctionName="Greeter", Payload=b'{"raise": 1}')
    assert err["FunctionError"] == "Unhandled"
    assert json.load(err["Payload"])["errorMessage"] == "bad input"


@pytest.mark.parametrize(("configuration", "path", "suggestion"), [
    ({"timeoutInSecond": 30}, "timeoutInSecond", "timeoutInSeconds"),
    ({"containerParams": {"memorySizeInKB": 65536}}, "containerParams.memorySizeInKB",
     "memorySize"),
    ({"containerParams": {"mountRoSysfs": True}}, "containerParams.mountRoSysfs",
     "mountROSysfs"),
    ({"accessControl": {"aws.greengrass.ipc.pubsub": {"p1": {
        "operations": ["aws.greengrass#PublishToTopik"], "resources": ["*"]}}}},
     "accessControl.aws.greengrass.ipc.pubsub.p1.operations", "aws.greengrass#PublishToTopic"),
    ({"accessControl": {"aws.greengrass.ipc.pubsb": {"p1": {
        "operations": ["*"], "resources": ["*"]}}}},
     "accessControl.aws.greengrass.ipc.pubsb", "aws.greengrass.ipc.pubsub"),
])
def test_a_silent_mistake_is_refused_before_anything_changes(
        core: CoreProcess, public_tmp: Path, configuration: dict[str, Any], path: str,
        suggestion: str) -> None:
    """A typo'd Lambda key would quietly become the default (3 s, 16 MB, no /sys), a typo'd
    operation or service would deploy and deny at run time (the nucleus only logs
    "Operation not registered" / "Component not registered" and drops the policy): Sprig
    refuses the deployment, naming the field and the near miss, and changes nothing."""
    out = public_tmp / "out"
    function_component(out, "Fn", HANDLER)
    assert deploy(core, out, "Fn")["status"] == "SUCCEEDED"
    before = core.call("component.details", {"name": "Fn"})
    with pytest.raises(ApiError) as refused:
        core.deploy(configuration_update={"Fn": {"MERGE": configuration}})
    message = str(refused.value)
    assert path in message and f"did you mean {suggestion!r}" in message, message
    assert core.call("component.details", {"name": "Fn"}) == before
    assert len(core.call("deployment.list")) == 1


def test_python27_is_refused_without_contradiction(core: CoreProcess, public_tmp: Path) -> None:
    """Python 2 code does not run on Python 3: a ``python2.7`` function needs an installed
    Python 2.7, and the refusal says so (it used to suggest installing a Python 3)."""
    out = public_tmp / "out"
    function_component(out, "Legacy", "def handler(event, context):\n    return 1\n",
                       runtime="python2.7")
    if (2, 7) in installed_pythons():
        assert deploy(core, out, "Legacy")["status"] == "SUCCEEDED"
        return
    with pytest.raises(ApiError) as refused:
        deploy(core, out, "Legacy")
    message = str(refused.value)
    assert "python2.7 needs an installed Python 2.7" in message
    assert "Python 2 code does not run on Python 3" in message and "≥ 3.7" not in message


@pytest.mark.slow
def test_status_timeout_bounds_a_pinned_function_s_start(core: CoreProcess,
                                                         public_tmp: Path) -> None:
    """``statusTimeoutInSeconds`` (AWS: how often a pinned function reports its status to the
    Lambda manager; what a missed report does is undocumented) is honoured as the time a worker
    has to report itself ready: an init slower than that fails the start, naming the limit
    (30 s, the smallest value AWS accepts; three failed starts make the component BROKEN)."""
    out = public_tmp / "out"
    function_component(out, "SlowInit", "import time\ntime.sleep(45)\n\n"
                       "def handler(event, context):\n    return 1\n", pinned=True)
    started = time.monotonic()
    result = core.deploy(recipe_dir=out / "recipes", artifact_dir=out / "artifacts",
                         merge={"SlowInit": "1.0.0"}, configuration_update={
                             "SlowInit": {"MERGE": {"statusTimeoutInSeconds": 30}}})
    elapsed = time.monotonic() - started
    assert result["status"] == "FAILED", result
    assert "SlowInit BROKEN" in result["reason"]
    assert "did not finish init within 30 s" in result["reason"]
    assert 90 <= elapsed < 150, elapsed          # three starts of 30 s, not 3 x 45 s
