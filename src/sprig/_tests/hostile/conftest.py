"""The hostile group: each test deploys functions or components the ordinary way and performs an
attack for real (real sandbox, real core, real clients or raw sockets inside the function). A
test fails if the attack works. Run them alone with ``pytest -m hostile``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sprig._tests.reliability.support import public_dir
from sprig.testing import CoreProcess


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.hostile)
            item.add_marker(pytest.mark.e2e)


@pytest.fixture
def public_tmp() -> Iterator[Path]:
    """A 0755 directory: a core's root must be traversable by the run-as user ``sprig_user``."""
    with public_dir("sprig-hostile-") as path:
        yield path


@pytest.fixture
def core(public_tmp: Path) -> Iterator[CoreProcess]:
    """A real core on a fresh root, stopped gracefully after the test."""
    with CoreProcess(public_tmp / "root") as proc:
        yield proc
