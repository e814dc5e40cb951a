"""Regression: a PINNED function whose worker dies during an invocation (os._exit, or killed
by the memory cgroup's OOM killer) answers the caller (Unhandled) before the component restarts;
it used to leave the caller waiting for ever (found by the reliability suite)."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import pytest

from sprig._tests.reliability.support import function_component, invoke
from sprig.testing import CoreProcess

HANDLER = """
import os
def handler(event, context):
    if event.get("exit"):
        os._exit(7)
    if event.get("fill_tmp"):
        with open("/tmp/fill", "wb") as f:
            while True:
                f.write(b"x" * (1 << 20))
    return {"ok": True}
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("event", [{"exit": 1}, {"fill_tmp": 1}])
def test_pinned_worker_dying_mid_invocation_answers_the_caller(
        core: CoreProcess, public_tmp: Path, event: dict[str, int]) -> None:
    out = public_tmp / "out"
    function_component(out, "Pinned", HANDLER, pinned=True, memory_kb="65536")
    result = core.deploy(recipe_dir=out / "recipes", artifact_dir=out / "artifacts",
                         merge={"Pinned": "1.0.0"})
    assert result["status"] == "SUCCEEDED", result
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        answer = pool.submit(invoke, core, "Pinned", event).result(timeout=20)
    assert answer["functionError"] == "Unhandled"
    assert answer["payload"]["errorType"] in ("Runtime.ExitError", "Runtime.OutOfMemory")
    core.wait_state("Pinned", "RUNNING")
    assert invoke(core, "Pinned", {})["payload"] == {"ok": True}
