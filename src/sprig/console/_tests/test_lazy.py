"""The console costs a core nothing it does not use: the daemon does not import it, and a
started console (listener, sessions) has not loaded its API, live channel or pages."""

from __future__ import annotations

import subprocess
import sys


def _modules(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys\nprint(sorted(m for m in "
                          "sys.modules if m.startswith('sprig.console')))"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    return list(eval(out))


def test_the_daemon_does_not_import_the_console() -> None:
    assert _modules("import sprig.daemon") == []


def test_the_listener_does_not_load_the_api_until_a_request() -> None:
    loaded = _modules("import sprig.daemon, sprig.console.server")
    assert loaded == ["sprig.console", "sprig.console.auth", "sprig.console.server"], loaded
