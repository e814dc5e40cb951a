"""The strict-skip rule: a skip must name something this machine really lacks."""

from __future__ import annotations

import shutil

import pytest

from sprig.testing import skips


def test_a_reason_this_machine_contradicts_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    assert skips.judge("bubblewrap is not installed") == "this machine has bubblewrap"
    assert skips.judge("node is not installed on this machine") == "this machine has Node.js"


def test_a_reason_the_machine_explains_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert skips.judge("bubblewrap is not installed") is None
    assert skips.judge("needs a JDK (java and javac)") is None


def test_a_reason_naming_two_needs_holds_when_either_is_missing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None if name == "bwrap" else "/x")
    assert skips.judge("needs bubblewrap and a memory cgroup") is None


def test_a_reason_about_anything_but_the_machine_is_refused() -> None:
    assert skips.judge("not implemented yet") is not None
    assert skips.judge("flaky on CI") is not None
