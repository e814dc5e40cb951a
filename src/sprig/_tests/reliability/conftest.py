from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sprig._tests.reliability.support import public_dir
from sprig.testing import CoreProcess


@pytest.fixture
def public_tmp() -> Iterator[Path]:
    """A 0755 directory: a core's root must be traversable by the run-as user ``sprig_user``."""
    with public_dir("sprig-rel-") as path:
        yield path


@pytest.fixture
def core(public_tmp: Path) -> Iterator[CoreProcess]:
    """A real core on a fresh root, stopped gracefully after the test."""
    with CoreProcess(public_tmp / "root") as proc:
        yield proc
