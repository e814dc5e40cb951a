"""Attack: a sandboxed function floods the core's IPC socket with garbage to flood the core's
own log (on main this wrote one warning per connection: ~0.8 MB per 3000 connections, and
pushed every useful line out of the rotated files). It must stay a handful of lines and a
summary that still counts every refused connection."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sprig._tests.reliability.support import function_component, invoke
from sprig.log_ratelimit import DEFAULT_BURST
from sprig.logs import rotated_files
from sprig.testing import CoreProcess

GARBLER = """
import os, socket, time
GARBAGE = b"\\x00\\x00\\x00\\x10\\x00\\x00\\x00\\x00" + b"garbage!"   # a broken prelude CRC
def handler(event, context):
    path = os.environ["AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT"]
    sent = 0
    started = time.monotonic()
    for _ in range(event["connections"]):
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(20)
            s.connect(path)
            s.sendall(GARBAGE)
            while s.recv(4096):       # until the core hangs up: it has seen and logged it
                pass
        sent += 1
    return {"sent": sent, "seconds": time.monotonic() - started}
"""
NEEDLE = "ipc: protocol error from an unauthenticated client"


def core_log_bytes(core: CoreProcess) -> int:
    files = [*rotated_files(core.layout.core_log), core.layout.core_log]
    return sum(p.stat().st_size for p in files)


@pytest.mark.parametrize("isolation", ["GreengrassContainer", "NoContainer"])
def test_function_flooding_ipc_with_garbage_cannot_flood_the_core_log(
        core: CoreProcess, public_tmp: Path, isolation: str) -> None:
    out = public_tmp / "out"
    function_component(out, "Garbler", GARBLER, pinned=True, timeout="120",
                       isolation=isolation)
    result = core.deploy(recipe_dir=out / "recipes", artifact_dir=out / "artifacts",
                         merge={"Garbler": "1.0.0"})
    assert result["status"] == "SUCCEEDED", result
    before = core_log_bytes(core)
    answer = invoke(core, "Garbler", {"connections": 2000})
    assert answer["functionError"] is None, answer
    assert "sent" in answer["payload"], answer
    sent, seconds = answer["payload"]["sent"], answer["payload"]["seconds"]
    grew = core_log_bytes(core) - before
    core.stop()                               # writes the pending summary
    text = core.layout.core_log.read_text(errors="replace")
    lines = [ln for ln in text.splitlines() if NEEDLE in ln]
    written = [ln for ln in lines if " ... repeated " not in ln]
    counted = sum(int(m[1]) for ln in lines
                  if (m := re.search(r" \.\.\. repeated (\d+) times? in the last", ln)))
    print(f"\n{isolation}: {sent} garbage IPC connections in {seconds:.1f} s "
          f"({sent / seconds:.0f}/s): the core log grew by {grew} bytes "
          f"({len(written)} lines written, {counted} summarised)")
    assert sent == 2000
    assert len(written) + counted == sent      # none lost from the record, none written twice
    assert len(written) <= 2 * DEFAULT_BURST
    assert grew < 16 * 1024
