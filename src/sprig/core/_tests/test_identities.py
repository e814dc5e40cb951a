"""Sandbox uids: one per component, stable across restarts, never shared."""

from __future__ import annotations

from pathlib import Path

import pytest

from sprig.core.identities import FIRST_SANDBOX_UID, SandboxIdentities, SandboxUidsExhausted
from sprig.state.db import StateDB


def test_one_uid_per_component_kept_across_restarts(tmp_path: Path) -> None:
    db = StateDB(tmp_path / "state.db")
    ids = SandboxIdentities(db)
    a, b = ids.uid_for("A"), ids.uid_for("B")
    assert (a, b) == (FIRST_SANDBOX_UID, FIRST_SANDBOX_UID + 1)
    assert ids.uid_for("A") == a
    assert ids.owner_of(b) == "B" and ids.owner_of(12) is None
    db.close()
    again = SandboxIdentities(StateDB(tmp_path / "state.db"))
    assert again.uid_for("B") == b and again.uid_for("C") == FIRST_SANDBOX_UID + 2


def test_the_range_can_run_out(tmp_path: Path) -> None:
    ids = SandboxIdentities(StateDB(tmp_path / "state.db"), first=5000, count=2)
    ids.uid_for("A")
    ids.uid_for("B")
    with pytest.raises(SandboxUidsExhausted, match="no sandbox uid left for C"):
        ids.uid_for("C")
