"""Test-wide set-up shared by every package's tests."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sprig import assets


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
