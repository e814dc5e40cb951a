"""Run-as resolution: cached until the account databases change."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sprig.launcher import users
from sprig.run_as import RunAs


def test_resolution_is_cached_until_passwd_or_group_changes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    passwd, group = tmp_path / "passwd", tmp_path / "group"
    passwd.write_text("a\n")
    group.write_text("b\n")
    monkeypatch.setattr(users, "_ACCOUNT_FILES", (str(passwd), str(group)))
    monkeypatch.setattr(users, "_resolved", {})
    calls: list[RunAs] = []
    real = users._resolve

    def counting(run_as: RunAs) -> users.Credentials:
        calls.append(run_as)
        return real(run_as)

    monkeypatch.setattr(users, "_resolve", counting)
    nobody = RunAs("nobody", "nogroup")
    first = users.resolve(nobody)
    assert users.resolve(nobody) == first and len(calls) == 1
    tmp = tmp_path / "group.new"               # usermod/groupadd replace the file
    tmp.write_text("b\nc\n")
    tmp.rename(group)
    assert users.resolve(nobody) == first and len(calls) == 2
    with open(passwd, "a") as f:              # an edit in place changes the time
        f.write("more\n")
    os.utime(passwd, ns=(1, 1))
    users.resolve(nobody)
    assert len(calls) == 3
    with pytest.raises(users.LaunchError):    # a failure is not remembered
        users.resolve(RunAs("no_such_user_q"))
    with pytest.raises(users.LaunchError):
        users.resolve(RunAs("no_such_user_q"))
    assert calls.count(RunAs("no_such_user_q")) == 2
