"""The core's import footprint: heavy libraries stay out of the long-running process.

Why: the core's memory target (≤ 40 MB idle with 20 functions) is mostly import cost;
``aiohttp.web`` alone was about 16 MB. Checked in a fresh interpreter, as the core starts.
"""

from __future__ import annotations

import subprocess
import sys

KEPT_OUT = ("aiohttp", "multidict", "yarl")


def test_the_core_daemon_does_not_import_aiohttp() -> None:
    code = ("import sys, sprig.core.daemon\n"
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {KEPT_OUT!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert out.strip() == "[]", out
