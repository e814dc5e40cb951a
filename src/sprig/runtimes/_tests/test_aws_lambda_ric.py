"""The real AWS Node.js runtime interface client (npm aws-lambda-ric) against a Runtime API server,
running the same sample handlers as our bootstrap: the server side speaks what AWS's client needs.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "nodejs"
RIC = Path(__file__).resolve().parents[4] / ".compat" / "node" / "node_modules" / "aws-lambda-ric"
NODE = shutil.which("node")

pytestmark = [
    pytest.mark.skipif(NODE is None, reason="node is not installed on this machine"),
    pytest.mark.skipif(not (RIC / "rapid-client.node").is_file(),
                       reason=f"aws-lambda-ric with its native addon is not installed in {RIC} "
                              "(run scripts/setup-compat)"),
]


async def start(workers: Any, make_env: Any, handler: str) -> Any:
    assert NODE is not None
    root = FIXTURES / "cjs"
    return await workers.start([NODE, str(RIC / "index.mjs")], make_env(handler, root), cwd=root)


async def test_real_node_ric_runs_a_handler(rapi: Any, workers: Any, make_env: Any) -> None:
    await start(workers, make_env, "index.handler")
    out = await rapi.invoke({"a": 1}, client_context={"custom": {"subject": "t"}})
    assert out.kind == "response", out.body
    doc = out.json
    assert doc["echo"] == {"a": 1}
    assert doc["greeting"] == "hello node"
    assert doc["functionName"] == "sample"
    assert doc["memoryLimitInMB"] == "128"
    assert doc["clientContext"]["custom"] == {"subject": "t"}
    assert doc["remaining"] > 0
    assert (await rapi.invoke([2])).json["echo"] == [2]


async def test_real_node_ric_reports_a_handled_error(rapi: Any, workers: Any,
                                                     make_env: Any) -> None:
    await start(workers, make_env, "errors.handler")
    out = await rapi.invoke({"x": 3})
    assert out.kind == "error"
    assert out.json["errorType"] == "ValidationFailed"
    assert out.json["errorMessage"] == "field x is 3"


async def test_real_node_ric_reports_an_init_error(rapi: Any, workers: Any,
                                                   make_env: Any) -> None:
    proc = await start(workers, make_env, "nope.handler")
    out = await rapi.wait_init_error()
    assert out.json["errorType"] == "Runtime.ImportModuleError"
    assert await workers.exit_code(proc) != 0
