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

KEPT_OUT = ("aiohttp", "multidict", "yarl", "aiomqtt", "paho", "urllib.request", "http.client",
            "email", "zipfile", "boto3", "botocore")


def test_the_core_daemon_does_not_import_aiohttp_nor_other_heavy_modules() -> None:
    code = ("import sys, sprig.daemon\n"
            f"print(sorted(m for m in {KEPT_OUT!r} if m in sys.modules))")
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
