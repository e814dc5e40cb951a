"""Regression: the run-as user (every component's and NoContainer function's) cannot read the
core's state (state.db and its -wal/-shm files), the core's log, or a deployed secret anywhere
under the root; found by the reliability suite."""

from __future__ import annotations

from pathlib import Path

from sprig._tests.hostile.test_function_reach import check_snoop
from sprig.testing import CoreProcess


def test_nocontainer_function_cannot_read_the_wal_or_the_core_log(
        core: CoreProcess, public_tmp: Path) -> None:
    check_snoop(core, public_tmp, "NoContainer")


def test_a_deployed_secret_is_not_readable_by_the_run_as_user(core: CoreProcess) -> None:
    """Worse than the WAL's mode alone: a secret given to aws.greengrass.SecretManager by
    deployment (stored encrypted in secrets.enc) is also in plaintext in state.db (component
    configuration and deployment document), hence in state.db-wal (0644) while the core runs:
    sprig_user -- every component's and NoContainer function's user -- can read it."""
    import subprocess

    secret = "hunter2-pending-secret"
    result = core.deploy(merge={"aws.greengrass.SecretManager": "2.1.8"},
                         configuration_update={"aws.greengrass.SecretManager": {"MERGE": {
                             "secrets": {"db-password": {
                                 "secretString": secret,
                                 "arn": "arn:aws:secretsmanager:us-east-1:123456789012:"
                                        "secret:db-password-AbCdEf"}}}}})
    assert result["status"] == "SUCCEEDED", result
    found = subprocess.run(["runuser", "-u", "sprig_user", "--", "grep", "-rl", secret,
                            str(core.root)], capture_output=True, text=True)
    assert found.stdout == "", f"sprig_user can read the secret in: {found.stdout}"
