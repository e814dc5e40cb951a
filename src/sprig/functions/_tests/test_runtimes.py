"""Runtime names → argv on this device, and the documented nearest-Python rule."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from sprig.errors import ValidationError
from sprig.functions import runtimes
from sprig.functions.runtimes import choose_python, installed_pythons, resolve


def test_choose_python_rule() -> None:
    have = [(3, 9), (3, 11), (3, 12), (2, 7)]
    assert choose_python((3, 11), have) == (3, 11)          # exact
    assert choose_python((3, 10), have) == (3, 11)          # closest newer
    assert choose_python((3, 7), have) == (3, 9)
    assert choose_python((3, 13), have) == (3, 12)          # else closest older
    assert choose_python((2, 7), have) == (2, 7)
    assert choose_python((2, 7), [(3, 11)]) is None         # python2.7 only if installed
    assert choose_python((3, 9), [(3, 6)]) is None          # never below 3.7


def test_shims_are_not_interpreters(tmp_path: Path) -> None:
    shim = tmp_path / "python3.9"
    shim.write_text("#!/usr/bin/env bash\nexec pyenv exec python3.9 \"$@\"\n")
    shim.chmod(0o755)
    system = Path(os.path.realpath("/usr/bin/python3"))
    if not runtimes.world_executable(system):
        pytest.skip("no system python3 that every user can run")
    (tmp_path / "python3.11").symlink_to(system)
    found = installed_pythons([tmp_path])
    assert found == {(3, 11): tmp_path / "python3.11"}


def test_python_resolution_with_warning(tmp_path: Path) -> None:
    exe = Path(sys.executable)
    r = resolve("python3.10", tmp_path, pythons={(3, 11): exe})
    # the bootstrap's bytecode, compiled once by that interpreter (see compiled_bootstrap)
    assert r.argv[0] == str(exe) and r.argv[1] == "-u" and r.argv[2].endswith(".pyc")
    assert Path(r.argv[2]).parent.name == "__pycache__"
    assert r.warning and "python3.10" in r.warning and "python3.11" in r.warning
    assert resolve("python3.11", tmp_path, pythons={(3, 11): exe}).warning is None
    with pytest.raises(ValidationError) as e:
        resolve("python2.7", tmp_path, pythons={(3, 11): exe})
    assert "python2.7" in str(e.value) and "python3.11" in str(e.value)
    # No contradiction: it does not suggest a Python 3, which could not run Python 2 code.
    assert "does not run on Python 3" in str(e.value) and "3.7" not in str(e.value)


def test_real_device_pythons_are_elf() -> None:
    found = installed_pythons()
    assert (sys.version_info[0], sys.version_info[1]) in found
    for path in found.values():
        assert Path(os.path.realpath(path)).read_bytes()[:4] == b"\x7fELF"


def test_provided_needs_executable_bootstrap(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as e:
        resolve("provided.al2", tmp_path)
    assert "bootstrap" in str(e.value)
    boot = tmp_path / "bootstrap"
    boot.write_text("#!/bin/sh\n")
    with pytest.raises(ValidationError):
        resolve("provided", tmp_path)
    boot.chmod(0o755)
    assert resolve("provided.al2023", tmp_path).argv == (str(boot),)


def test_unknown_runtime() -> None:
    with pytest.raises(ValidationError) as e:
        resolve("ruby3.2", Path("/"))
    assert "ruby3.2" in str(e.value) and "python3.13" in str(e.value)


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_node(tmp_path: Path) -> None:
    r = resolve("nodejs18.x", tmp_path)
    assert Path(r.argv[0]).name == "node" and r.argv[1].endswith("bootstrap.js")
    assert str(tmp_path) in r.env["NODE_PATH"]


@pytest.mark.skipif(shutil.which("java") is None, reason="no JVM installed")
def test_java_version_requirement(tmp_path: Path) -> None:
    major = runtimes.java_major(Path(shutil.which("java") or ""))
    assert major is not None and major >= 8
    newer = [n for n, v in runtimes.JAVA_RUNTIMES.items() if v > major]
    if newer:
        with pytest.raises(ValidationError) as e:
            resolve(newer[0], tmp_path)
        assert f"Java {major}" in str(e.value)


@pytest.mark.skipif(shutil.which("java") is None, reason="no JVM installed")
def test_java_without_building_the_jar(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sprig.runtimes import java as jrt

    java = Path(shutil.which("java") or "")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "java").symlink_to(java.resolve())
    failing = bin_dir / "javac"
    failing.write_text("#!/bin/sh\necho 'this javac always fails' >&2\nexit 1\n")
    failing.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    cache = tmp_path / "cache"
    # A check that starts nothing does not compile: the failing javac is never run.
    rt = resolve("java11", tmp_path, handler="a.B::c", memory_mb=128, cache_dir=cache,
                 build_jar=False)
    jar = jrt.runtime_jar_path(cache)
    assert any(str(jar) in arg for arg in rt.argv)
    assert not jar.exists()
    with pytest.raises(ValidationError, match="this javac always fails"):
        resolve("java11", tmp_path, handler="a.B::c", memory_mb=128, cache_dir=cache)
    # Without any javac and no jar yet, the check says what is missing.
    failing.unlink()
    with pytest.raises(ValidationError) as info:
        resolve("java11", tmp_path, handler="a.B::c", cache_dir=cache, build_jar=False)
    assert info.value.value == "java11"
    assert "javac was not found" in str(info.value) and str(jar) in str(info.value)
