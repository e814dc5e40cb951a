"""``minInstancesCount`` on a real core: the first invocation after a deployment is served by
a worker started before it (no REPORT Init Duration), a later deployment's count is honoured,
and a bad count is refused by the deployment naming the key, the value and what is allowed,
with nothing changed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sprig._tests.reliability.support import function_component, invoke
from sprig.cli.client import ManagementApiError
from sprig.testing import CoreProcess

pytestmark = pytest.mark.e2e

ECHO = """
import os
def handler(event, context):
    return {"pid": os.getpid()}
"""


def _workers(core: CoreProcess, name: str) -> dict[str, int]:
    details: dict[str, Any] = core.call("component.details", {"name": name})
    found = details.get("function", details).get("workers")
    assert isinstance(found, dict), details
    return found


def _cold_reports(core: CoreProcess, name: str) -> int:
    """REPORT lines with an Init Duration: invocations that waited for a worker's init."""
    return sum("REPORT RequestId" in line and "Init Duration" in line
               for line in core.log(name).splitlines())


def test_first_invocation_after_a_deployment_is_warm(core: CoreProcess,
                                                    public_tmp: Path) -> None:
    out = public_tmp / "out"
    function_component(out, "Warm", ECHO, pinned=False, isolation="NoContainer")
    result = core.deploy(recipe_dir=out / "recipes", artifact_dir=out / "artifacts",
                         merge={"Warm": "1.0.0"}, configuration_update={"Warm": {"MERGE": {
                             "maxInstancesCount": 3, "minInstancesCount": 1}}})
    assert result["status"] == "SUCCEEDED", result
    assert _workers(core, "Warm").get("IDLE") == 1          # up before anyone asked
    first = invoke(core, "Warm")
    assert first["payload"]["pid"] > 0
    assert _cold_reports(core, "Warm") == 0, core.log("Warm")
    assert "pre-started" in core.log("Warm")

    # a later deployment raises the count: honoured once it succeeds
    result = core.deploy(merge={"Warm": "1.0.0"}, configuration_update={"Warm": {"MERGE": {
        "minInstancesCount": 2}}})
    assert result["status"] == "SUCCEEDED", result
    assert _workers(core, "Warm").get("IDLE") == 2

    # a bad count: refused, naming the key, the value and the bound; nothing changes
    with pytest.raises(ManagementApiError) as refused:
        core.deploy(merge={"Warm": "1.0.0"}, configuration_update={"Warm": {"MERGE": {
            "minInstancesCount": 5}}})
    assert str(refused.value) == (
        "component Warm: minInstancesCount: is larger than maxInstancesCount (got 5); "
        "allowed: a whole number from 0 to maxInstancesCount (3)")
    assert _workers(core, "Warm").get("IDLE") == 2
    assert invoke(core, "Warm")["payload"]["pid"] > 0
    assert _cold_reports(core, "Warm") == 0, core.log("Warm")
