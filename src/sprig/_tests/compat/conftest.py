"""The compatibility group (issue 13): what Greengrass users already have — recipes in the shapes
of the nucleus's integration-test recipes, the developer guide, the GDK template; Lambda
functions as AWS imports them; the AWS CLI and boto3 — deployed unchanged on a real core. Each
test cites the Greengrass behaviour it matches. Run them alone with ``pytest -m compat``."""

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
            item.add_marker(pytest.mark.compat)
            item.add_marker(pytest.mark.e2e)


@pytest.fixture
def public_tmp() -> Iterator[Path]:
    """A 0755 directory: a core's root must be traversable by the run-as user ``sprig_user``."""
    with public_dir("sprig-compat-") as path:
        yield path


@pytest.fixture
def shared(public_tmp: Path) -> Path:
    """A directory the components' run-as user may write to (what they leave is checked)."""
    path = public_tmp / "shared"
    path.mkdir()
    path.chmod(0o777)
    return path


@pytest.fixture
def core(public_tmp: Path) -> Iterator[CoreProcess]:
    """A real core on a fresh root, stopped gracefully after the test."""
    with CoreProcess(public_tmp / "root") as proc:
        yield proc
