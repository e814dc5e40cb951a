"""The prepared /etc: what is copied, what is left out, and when a copy is renewed.

A fake host /etc under tmp_path stands for the real one, so every rule is checked against
files the test controls (modes, links, in-place edits, renames).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from sprig.launcher.etc_view import EtcView


@pytest.fixture
def host(tmp_path: Path) -> Path:
    etc = tmp_path / "etc"
    (etc / "ssl" / "certs").mkdir(parents=True)
    (etc / "ssl" / "private").mkdir()
    (etc / "ssl" / "private").chmod(0o710)
    (etc / "ssl" / "private" / "key.pem").write_text("SECRET KEY")
    (etc / "ssl" / "certs" / "bundle.crt").write_text("CERTS v1")
    (etc / "ssl" / "certs" / "abcd.0").symlink_to("bundle.crt")
    (etc / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (etc / "group").write_text("root:x:0:\n")
    (etc / "group").chmod(0o640)                       # not readable by others: left out
    usr = tmp_path / "usr" / "share" / "zoneinfo"
    usr.mkdir(parents=True)
    (usr / "UTC").write_text("TZif")
    (etc / "localtime").symlink_to(usr / "UTC")        # into a system directory: a link
    run = tmp_path / "run"
    run.mkdir()
    (run / "resolv.conf").write_text("nameserver 10.0.0.1\n")
    (etc / "resolv.conf").symlink_to(run / "resolv.conf")   # outside: copied as content
    return etc


def view(host: Path, home: Path, full_check_s: float = 3600.0) -> EtcView:
    names = ("passwd", "group", "localtime", "resolv.conf", "ssl", "missing")
    return EtcView(home, [str(host / n) for n in names], [str(host.parent / "usr")],
                   full_check_s=full_check_s, etc=str(host))


def test_only_what_others_can_read_is_copied(host: Path, tmp_path: Path) -> None:
    copy = view(host, tmp_path / "home").current()
    assert sorted(os.listdir(copy)) == ["localtime", "passwd", "resolv.conf", "ssl"]
    assert (copy / "passwd").read_text() == (host / "passwd").read_text()
    assert not (copy / "ssl" / "private").exists()          # 0710: not for others
    assert (copy / "ssl" / "certs" / "bundle.crt").read_text() == "CERTS v1"
    assert os.readlink(copy / "ssl" / "certs" / "abcd.0") == "bundle.crt"
    assert os.readlink(copy / "localtime") == str(host.parent / "usr/share/zoneinfo/UTC")
    assert not (copy / "resolv.conf").is_symlink()
    assert (copy / "resolv.conf").read_text() == "nameserver 10.0.0.1\n"
    for dirpath, dirnames, filenames in os.walk(copy):
        for name in (*dirnames, *filenames):
            mode = os.lstat(os.path.join(dirpath, name)).st_mode
            if not stat.S_ISLNK(mode):
                assert mode & 0o022 == 0, name              # nobody can change a copy


def test_a_copy_is_reused_until_the_host_changes(host: Path, tmp_path: Path) -> None:
    v = view(host, tmp_path / "home")
    first = v.current()
    assert v.current() == first
    # an in-place edit of a top-level file (its own status changes)
    with open(host / "passwd", "a") as f:
        f.write("sprig_user:x:999:995::/:/bin/false\n")
    second = v.current()
    assert second != first and "sprig_user" in (second / "passwd").read_text()
    assert (first / "passwd").is_file()        # the old copy stays for running sandboxes
    # a file replaced by rename inside a tree (update-ca-certificates, dpkg)
    tmp = host / "ssl" / "certs" / ".new"
    tmp.write_text("CERTS v2")
    tmp.rename(host / "ssl" / "certs" / "bundle.crt")
    assert (v.current() / "ssl" / "certs" / "bundle.crt").read_text() == "CERTS v2"
    # the target of a top-level link outside the system directories (DHCP's resolv.conf)
    (host.parent / "run" / "resolv.conf").write_text("nameserver 10.0.0.2\n")
    assert (v.current() / "resolv.conf").read_text() == "nameserver 10.0.0.2\n"


def test_an_in_place_edit_deep_in_a_tree_is_seen_by_the_full_check(host: Path,
                                                                   tmp_path: Path) -> None:
    lazy, eager = view(host, tmp_path / "a"), view(host, tmp_path / "b", full_check_s=0.0)
    before_lazy, before_eager = lazy.current(), eager.current()
    with open(host / "ssl" / "certs" / "bundle.crt", "a") as f:   # no directory changes
        f.write(" + one more")
    assert lazy.current() == before_lazy                          # until its next full check
    renewed = eager.current()
    assert renewed != before_eager
    assert (renewed / "ssl" / "certs" / "bundle.crt").read_text() == "CERTS v1 + one more"


def test_copies_are_named_by_content_and_an_earlier_cores_are_removed(
        host: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    a = view(host, home).current()
    stamp = a.stat().st_mtime_ns
    b = view(host, home).current()      # a restarted core, same content: the same copy, as is
    assert a == b and a.stat().st_mtime_ns == stamp
    (home / "0123456789abcdef").mkdir()             # a copy left by some earlier core
    (host / "passwd").write_text("changed\n")
    v = view(host, home)
    c = v.current()
    assert c != a and c.is_dir()
    assert sorted(p.name for p in home.iterdir()) == [c.name]   # the earlier ones removed
    (host / "passwd").write_text("changed again\n")
    d = v.current()
    assert d != c and c.is_dir() and d.is_dir()     # this core's own stay while it runs


def test_a_restarted_core_on_a_full_disk_reuses_its_copy(host: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The copy is found by the host's content: nothing is written (or freed) at restart."""
    from sprig.launcher import etc_view
    home = tmp_path / "home"
    first = view(host, home).current()

    def no_space(*_a: object, **_k: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(etc_view.shutil, "copyfile", no_space)
    assert view(host, home).current() == first
