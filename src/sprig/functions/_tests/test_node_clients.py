"""Node.js workers through the Lambda manager: the real aws-lambda-ric (as ``provided``) and
Sprig's own Node.js runtime."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sprig.functions.config import LambdaConfig
from sprig.functions.function import Function
from sprig.functions.invocation import FunctionErrorKind, Invocation
from sprig.functions.worker import FunctionSpec
from sprig.lambda_params import ContainerMode

RIC = (Path(__file__).resolve().parents[4] / ".compat" / "node" / "node_modules"
       / "aws-lambda-ric" / "index.mjs")
NODE = shutil.which("node")

INDEX = """
let count = 0;
exports.handler = async (event, context) => {
  count += 1;
  console.log("invoked", count);
  if (event && event.fail) { throw new TypeError("node boom"); }
  return {echo: event, count, rid: context.awsRequestId, fn: context.functionName,
          arn: context.invokedFunctionArn,
          custom: context.clientContext && context.clientContext.custom};
};
"""


def spec_for(tmp_path: Path, runtime: str) -> FunctionSpec:
    code = tmp_path / "code"
    code.mkdir()
    (code / "index.js").write_text(INDEX)
    (tmp_path / "work").mkdir()
    return FunctionSpec(
        component_name="nodecomp", component_version="1.0.0", function_name="nodefn",
        function_version="1",
        function_arn="arn:aws:lambda:us-east-1:123456789012:function:nodefn:1",
        runtime=runtime, handler="index.handler", code_dir=code,
        config=LambdaConfig(container_mode=ContainerMode.NO_CONTAINER, timeout_s=30),
        work_dir=tmp_path / "work")


@pytest.fixture
async def made() -> AsyncIterator[list[Function]]:
    fns: list[Function] = []
    yield fns
    for fn in fns:
        await fn.stop()


async def exercise(fn: Function) -> None:
    await asyncio.wait_for(fn.start(), 60)
    r = await asyncio.wait_for(fn.invoke(Invocation(b'{"a": 1}',
                                                    client_context={"custom": {"k": "v"}})), 30)
    d = json.loads(r.payload)
    assert r.ok and d["echo"] == {"a": 1} and d["count"] == 1 and d["rid"] == r.request_id
    assert d["fn"] == "nodefn" and d["arn"].endswith(":nodefn:1") and d["custom"] == {"k": "v"}
    r = await asyncio.wait_for(fn.invoke(Invocation(b'{"fail": true}')), 30)
    assert r.function_error is FunctionErrorKind.HANDLED
    err = json.loads(r.payload)
    assert err["errorType"] == "TypeError" and err["errorMessage"] == "node boom"
    assert isinstance(err["stackTrace"], list)
    r = await asyncio.wait_for(fn.invoke(Invocation(b"{}")), 30)
    assert json.loads(r.payload)["count"] == 3                  # pinned: state kept


@pytest.mark.skipif(NODE is None or not RIC.exists(),
                    reason="needs node and aws-lambda-ric (scripts/setup-compat)")
async def test_aws_lambda_ric_as_provided(tmp_path: Path, made: list[Function]) -> None:
    spec = spec_for(tmp_path, "provided.al2023")
    boot = spec.code_dir / "bootstrap"
    boot.write_text(f"#!/bin/sh\nexec {NODE} {RIC}\n")
    boot.chmod(0o755)
    fn = Function(spec)
    made.append(fn)
    await exercise(fn)


@pytest.mark.skipif(NODE is None, reason="Node.js is not installed")
async def test_sprig_node_runtime(tmp_path: Path, made: list[Function]) -> None:
    fn = Function(dataclasses.replace(spec_for(tmp_path, "nodejs20.x")))
    made.append(fn)
    await exercise(fn)
