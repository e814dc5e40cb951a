"""Shared fixtures: directories the unprivileged sandbox user can enter."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def world_dir() -> Iterator[Path]:
    """A 0755 directory under /tmp (pytest's tmp_path is under a 0700 directory of root,
    which a run-as user such as nobody cannot enter, so bwrap could not bind from it)."""
    d = Path(tempfile.mkdtemp(prefix="sprig-launcher-", dir="/tmp"))
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)
