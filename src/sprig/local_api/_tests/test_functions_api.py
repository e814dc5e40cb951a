"""ListFunctions, GetFunction and GetFunctionConfiguration through unmodified boto3 (its
paginator included), against the real server and a catalog of three functions.

Shapes: the Lambda API reference (botocore ``lambda/2015-03-31``: ``ListFunctionsResponse``
``{Functions, NextMarker}``, ``GetFunctionResponse`` ``{Configuration, Code, Tags}``,
``FunctionConfiguration``); errors are modelled exceptions (ResourceNotFoundException,
InvalidParameterValueException)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from sprig.functions.invocation import Invocation, InvocationResult
from sprig.local_api.credentials import ensure_credentials
from sprig.local_api.functions_api import FunctionInfo, FunctionsApi
from sprig.local_api.invoke_api import start_invoke_api

ACCOUNT = "123456789012"


def info(name: str, version: str = "1", **kw: Any) -> FunctionInfo:
    fields: dict[str, Any] = {
        "name": name, "arn": f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{name}:{version}",
        "version": version, "runtime": "python3.11", "handler": "app.handler",
        "component": f"com.example.{name}", "component_version": "1.0.0", "timeout_s": 3,
        "memory_kb": 16384, "state": "Active", "last_modified": 1_700_000_000.25,
        "code_sha256": "abc=", "code_size": 42, "code_location": "file:///p/lambda.zip",
        **kw}
    return FunctionInfo(**fields)


@dataclass
class Catalog:
    infos: list[FunctionInfo]

    def deployed_functions(self) -> Sequence[FunctionInfo]:
        return self.infos


class NoInvoker:
    async def invoke(self, function: str, invocation: Invocation, *,
                     want_log_tail: bool = False) -> InvocationResult:
        raise AssertionError("not an invocation")

    def submit(self, function: str, invocation: Invocation, *,
               want_log_tail: bool = False) -> asyncio.Future[InvocationResult]:
        raise AssertionError("not an invocation")


@pytest.fixture(autouse=True)
def isolated_aws_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("HOME", str(tmp_path))
    for var in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_LAMBDA",
                "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    yield


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[Any]:
    credentials = ensure_credentials(tmp_path / "credentials")
    catalog = Catalog([info("Zeta"), info("Alpha", "3", environment={"A": "1"}),
                       info("Mid", state="Failed", state_reason="Install failed")])
    runner, url = await start_invoke_api(NoInvoker(), credentials, region="us-east-1",
                                         extra_routes=[FunctionsApi(catalog).register])
    try:
        yield boto3.client("lambda", endpoint_url=url, region_name="us-east-1",
                           aws_access_key_id=credentials.access_key_id,
                           aws_secret_access_key=credentials.secret_access_key,
                           config=Config(retries={"total_max_attempts": 1}))
    finally:
        await runner.cleanup()


async def call(client: Any, operation: str, **kwargs: Any) -> Any:
    return await asyncio.to_thread(getattr(client, operation), **kwargs)


async def test_list_functions_in_aws_shape_and_paginated(client: Any) -> None:
    page = await call(client, "list_functions")
    assert [f["FunctionName"] for f in page["Functions"]] == ["Alpha", "Mid", "Zeta"]
    assert "NextMarker" not in page
    alpha = page["Functions"][0]
    assert alpha["FunctionArn"] == f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:Alpha:3"
    assert (alpha["Runtime"], alpha["Handler"], alpha["Timeout"], alpha["MemorySize"],
            alpha["Version"], alpha["State"], alpha["PackageType"]) == \
        ("python3.11", "app.handler", 3, 16, "3", "Active", "Zip")
    assert alpha["Environment"] == {"Variables": {"A": "1"}}
    assert alpha["LastModified"] == "2023-11-14T22:13:20.250+0000"
    assert page["Functions"][1]["StateReason"] == "Install failed"

    def paginate() -> list[list[str]]:
        pages = client.get_paginator("list_functions").paginate(
            PaginationConfig={"PageSize": 2})
        return [[f["FunctionName"] for f in p["Functions"]] for p in pages]

    assert await asyncio.to_thread(paginate) == [["Alpha", "Mid"], ["Zeta"]]


async def test_get_function_and_its_configuration(client: Any) -> None:
    got = await call(client, "get_function", FunctionName="Alpha")
    assert got["Configuration"]["FunctionName"] == "Alpha"
    assert got["Code"] == {"RepositoryType": "Local", "Location": "file:///p/lambda.zip"}
    assert got["Tags"] == {"greengrass:component": "com.example.Alpha",
                           "greengrass:componentVersion": "1.0.0"}
    for name in ("Alpha", "Alpha:3", "Alpha:$LATEST", "com.example.Alpha",
                 f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:Alpha",
                 f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:Alpha:3",
                 f"{ACCOUNT}:function:Alpha"):
        conf = await call(client, "get_function_configuration", FunctionName=name)
        assert conf["FunctionArn"].endswith(":Alpha:3"), name
    conf = await call(client, "get_function_configuration", FunctionName="Alpha",
                      Qualifier="3")
    assert conf["Version"] == "3"


async def test_unknown_functions_and_bad_parameters_are_modelled_errors(client: Any) -> None:
    for kwargs in ({"FunctionName": "Nope"}, {"FunctionName": "Alpha", "Qualifier": "7"},
                   {"FunctionName": "Alpha:7"}):
        with pytest.raises(client.exceptions.ResourceNotFoundException) as e:
            await call(client, "get_function", **kwargs)
        assert "Function not found" in str(e.value)
    with pytest.raises(client.exceptions.InvalidParameterValueException) as bad:
        await call(client, "list_functions", Marker="not-a-marker")
    assert "marker" in str(bad.value)
    with pytest.raises(client.exceptions.InvalidParameterValueException):
        await call(client, "list_functions", MasterRegion="us-east-1")
    assert len((await call(client, "list_functions", FunctionVersion="ALL"))["Functions"]) == 3
