"""The core's import footprint: heavy libraries stay out of the long-running process.

Why: the core's memory target (≤ 40 MB idle with 20 functions) is mostly import cost, measured
as resident memory added to a bare interpreter: ``aiohttp.web`` ~16 MB, aiomqtt with paho (and
through it urllib.request, http.client, email) ~4.7 MB, ``email.utils`` ~1 MB, ``zipfile``
~0.5 MB. Each is imported where it is needed (a broker connection, a ``Date``-signed request,
an archive to unpack). Checked in a fresh interpreter, as the core starts.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

KEPT_OUT = ("aiohttp", "multidict", "yarl", "aiomqtt", "paho", "urllib.request", "http.client",
            "email", "zipfile", "boto3", "botocore")
CLI_ONLY = ("sprig.cli.lambda_cmd", "sprig.cli.fleet_cmd", "sprig.cli.console_cmd",
            "sprig.lambda_import")


def test_the_core_daemon_does_not_import_aiohttp_nor_other_heavy_modules() -> None:
    code = ("import sys, sprig.daemon\n"
            f"print(sorted(m for m in {KEPT_OUT!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert out.strip() == "[]", out


def test_sprig_core_run_keeps_them_out_too(tmp_path: Path) -> None:
    """The same check through the entry point a core really starts from, ``sprig core run``:
    the command line must not load its other commands (the management client's
    ``http.client`` and ``email``, ``lambda import``'s ZIP writer) into the daemon."""
    code = ("import sys, sprig.daemon\n"
            "def run_core(root):\n"
            f"    print(sorted(m for m in {KEPT_OUT + CLI_ONLY!r} if m in sys.modules))\n"
            "    return 0\n"
            "sprig.daemon.run_core = run_core\n"
            "from sprig.cli.main import main\n"
            f"raise SystemExit(main(['core', 'run', '--root', {str(tmp_path)!r}]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert out.strip() == "[]", out


def test_aiohttp_is_not_imported_at_all() -> None:
    """The task's own check, verbatim."""
    subprocess.run([sys.executable, "-c",
                    "import sprig.daemon, sys; assert 'aiohttp' not in sys.modules"],
                   timeout=60, check=True)


def test_the_fleet_agent_stays_small() -> None:
    """A fleet device talks to its component store with a small client of its own: botocore
    alone would cost the core tens of megabytes (see docs/fleet.md for the figures)."""
    code = ("import sys, sprig.daemon, sprig.fleet.agent, sprig.fleet.s3, sprig.fleet.aws\n"
            "heavy = ('boto3', 'botocore', 'aiohttp', 'urllib.request', 'http.client', 'email',"
            " 'xml.etree', 'zipfile')\n"
            "print(sorted(m for m in heavy if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert out.strip() == "[]", out
