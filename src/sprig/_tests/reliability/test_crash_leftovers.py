"""What a killed core leaves on disk is removed by the next one (issue: /tmp/sprig-rapi-*
directories leaked on every crash)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sprig._tests.reliability.support import function_component, invoke
from sprig.testing import CoreProcess

pytestmark = pytest.mark.e2e

OK = "def handler(event, context):\n    return {'ok': True}\n"


def test_runtime_api_sockets_live_under_the_root_and_a_restarted_core_removes_the_old_ones(
        public_tmp: Path) -> None:
    out = public_tmp / "out"
    function_component(out, "Pinned", OK, pinned=True)
    core = CoreProcess(public_tmp / "root").start()
    try:
        result = core.deploy(recipe_dir=out / "recipes", artifact_dir=out / "artifacts",
                             merge={"Pinned": "1.0.0"})
        assert result["status"] == "SUCCEEDED", result
        sockets = core.layout.runtime_sockets
        before = {p.name for p in sockets.iterdir()}
        assert before, "the pinned worker's socket directory is under <root>/rapi"
        assert (sockets.stat().st_mode & 0o777) == 0o711
        core.kill()
        assert {p.name for p in sockets.iterdir()} == before, "a killed core leaves them"
        core.start()
        core.wait_state("Pinned", "RUNNING", timeout_s=30)   # start() returns before components
        assert invoke(core, "Pinned")["payload"] == {"ok": True}
        after = {p.name for p in sockets.iterdir()}
        assert after and not (after & before), (before, after)
        assert "removed 1 Runtime API socket" in core.layout.core_log.read_text()
    finally:
        core.stop()
