"""Deployment records keep their stable codes, and an older core's database gains the column."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sprig.state.db import FAILED, SUCCEEDED, StateDB

DETAILS = {"detailed-deployment-status": "FAILED_ROLLBACK_COMPLETE",
           "deployment-failure-cause": "component A BROKEN; rolled back",
           "deployment-error-stack": ["DEPLOYMENT_FAILURE", "COMPONENT_UPDATE_ERROR",
                                      "COMPONENT_BROKEN"],
           "deployment-error-types": ["USER_COMPONENT_ERROR"]}


def test_status_details_are_stored_and_shown(tmp_path: Path) -> None:
    db = StateDB(tmp_path / "state.db")
    queued = db.enqueue_deployment({"merge": {}})
    assert "statusDetails" not in queued.summary()        # none until it is finished
    db.finish_deployment(queued.id, FAILED, "component A BROKEN; rolled back", details=DETAILS)
    assert db.deployment(queued.id).summary()["statusDetails"] == DETAILS  # type: ignore[union-attr]
    other = db.enqueue_deployment({"merge": {}})
    db.fail_queued(other.id, "rejected: x", {"detailed-deployment-status": "REJECTED"})
    db.set_status_details(other.id, {"detailed-deployment-status": "FAILED_NO_STATE_CHANGE"})
    assert [d.status_details for d in db.deployments()] == [
        {"detailed-deployment-status": "FAILED_NO_STATE_CHANGE"}, DETAILS]
    db.close()


def test_a_database_from_before_the_codes_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    old = sqlite3.connect(path)
    old.executescript("""
        CREATE TABLE deployments (id TEXT PRIMARY KEY, seq INTEGER NOT NULL,
            created REAL NOT NULL, updated REAL NOT NULL, document TEXT NOT NULL,
            status TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '', snapshot TEXT);
        INSERT INTO deployments VALUES ('old', 1, 0, 0, '{}', 'SUCCEEDED', '', NULL);
    """)
    old.close()
    db = StateDB(path)
    record = db.deployment("old")
    assert record is not None and record.status == SUCCEEDED and record.status_details is None
    assert "statusDetails" not in record.summary()
    new = db.enqueue_deployment({})
    db.finish_deployment(new.id, SUCCEEDED, details={"detailed-deployment-status": "SUCCESSFUL"})
    db.close()
    again = StateDB(path)                      # opening twice adds nothing twice
    assert again.deployment(new.id).status_details == {  # type: ignore[union-attr]
        "detailed-deployment-status": "SUCCESSFUL"}
    again.close()
