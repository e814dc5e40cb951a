from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sprig.testing import CoreProcess


@pytest.fixture
def public_tmp() -> Iterator[Path]:
    """A temporary directory others may traverse (0755): a core's root must be reachable by
    the unprivileged run-as user (pytest's tmp_path lives in a 0700 directory)."""
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="sprig-root-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def core(public_tmp: Path) -> Iterator[CoreProcess]:
    """A real core on a temporary root, stopped (gracefully) after the test."""
    with CoreProcess(public_tmp / "root") as proc:
        yield proc


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory the components' unprivileged run-as user can write to (pytest's own
    tmp_path is private to root)."""
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="sprig-e2e-", dir="/tmp"))
    path.chmod(0o777)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
