"""A function's writable space can be capped: ``containerParams.ephemeralStorageSize`` (KB).

Without it a container function's work directory is the component's directory on the device's
disk (persistent, and as large as the disk: a function filled the root's filesystem through it).
With it, its work directory and ``/tmp`` are private in-memory file systems of that size each
(like AWS Lambda's ephemeral storage), so it can fill neither the disk nor more than that."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sprig._tests.reliability.support import function_component, invoke
from sprig.cli.client import ApiError
from sprig.testing import CoreProcess

pytestmark = pytest.mark.e2e

FILLER = """
import os
def handler(event, context):
    out = {"cwd": os.getcwd()}
    for where in (os.getcwd(), "/tmp"):
        written = 0
        try:
            with open(os.path.join(where, "fill"), "wb") as f:
                for _ in range(event["mb"] * 16):
                    f.write(b"x" * 65536)
                    f.flush()
                    written += 65536
            out[where] = {"written": written}
        except OSError as e:
            out[where] = {"written": written, "error": e.strerror}
    return out
"""


def test_a_capped_function_cannot_fill_the_disk(core: CoreProcess, public_tmp: Path) -> None:
    out = public_tmp / "out"
    function_component(out, "Capped", FILLER, pinned=True, memory_kb="65536", timeout="30")
    function_component(out, "Uncapped", FILLER, pinned=True, memory_kb="65536", timeout="30")
    result = core.deploy(recipe_dir=out / "recipes", artifact_dir=out / "artifacts",
                         merge={"Capped": "1.0.0", "Uncapped": "1.0.0"},
                         configuration_update={"Capped": {"MERGE": {
                             "containerParams": {"ephemeralStorageSize": 2048}}}})
    assert result["status"] == "SUCCEEDED", result
    capped = invoke(core, "Capped", {"mb": 8})["payload"]
    print("capped:", capped)
    cwd = capped["cwd"]
    for where in (cwd, "/tmp"):
        assert capped[where]["error"] == "No space left on device", capped
        assert 1 * 2**20 <= capped[where]["written"] <= 2 * 2**20, capped
    host_work = core.layout.work_dir("Capped")
    assert not (host_work / "fill").exists(), "nothing reached the device's disk"
    uncapped = invoke(core, "Uncapped", {"mb": 1})["payload"]
    assert "error" not in uncapped[uncapped["cwd"]], uncapped
    assert os.path.getsize(core.layout.work_dir("Uncapped") / "fill") == 2**20


def test_the_cap_needs_a_container(core: CoreProcess, public_tmp: Path) -> None:
    out = public_tmp / "out"
    function_component(out, "Plain", FILLER, pinned=True, isolation="NoContainer")
    with pytest.raises(ApiError, match=r"containerParams\.ephemeralStorageSize: "
                       r"containerMode NoContainer cannot cap"):
        core.deploy(recipe_dir=out / "recipes", artifact_dir=out / "artifacts",
                    merge={"Plain": "1.0.0"},
                    configuration_update={"Plain": {"MERGE": {
                        "containerParams": {"ephemeralStorageSize": 2048}}}})
    assert "Plain" not in core.states()
