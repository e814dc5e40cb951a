"""Test-wide set-up shared by every package's tests."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from sprig import assets
from sprig.testing import skips

# Property tests check what is generated, not how fast: on a shared 2-core machine a single
# example can take longer than hypothesis's 200 ms default deadline while other tests run, and
# a deadline failure that does not reproduce is noise. Speed is measured under bench/.
settings.register_profile("sprig", deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("sprig")


@pytest.fixture(scope="session", autouse=True)
def published_assets() -> Iterator[Path]:
    """Publish the runtime bootstraps and shims in a world-readable place, as a running core
    does under its root: tests start workers as unprivileged users, and the checkout may live in
    a private directory (root's home) that those users cannot read."""
    base = Path(tempfile.mkdtemp(prefix="sprig-assets-", dir="/tmp"))
    base.chmod(0o755)
    try:
        yield assets.publish(base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With SPRIG_STRICT_SKIPS=1 (CI), a skip this machine does not explain fails the run."""
    if os.environ.get(skips.ENV_STRICT) != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    bad: list[str] = []
    for report in reporter.stats.get("skipped", []):
        reason = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else str(
            report.longrepr)
        why = skips.judge(reason)
        if why is not None:
            bad.append(f"{report.nodeid}: skipped ({reason.removeprefix('Skipped: ')}) but "
                       f"{why}")
    if bad:
        reporter.write_sep("=", "skips this machine does not explain (SPRIG_STRICT_SKIPS=1)",
                           red=True)
        for line in bad:
            reporter.write_line(line)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
