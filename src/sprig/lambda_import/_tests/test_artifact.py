"""Code inputs: a Lambda .zip kept as is, a directory zipped deterministically, a jar wrapped;
the digest is what Greengrass (and openssl) compute; invalid code is refused."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from sprig.errors import ValidationError
from sprig.lambda_import.artifact import CodeKind, greengrass_digest, load_code


def _tree(root: Path) -> Path:
    (root / "pkg" / "sub").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "lambda_function.py").write_text("def lambda_handler(e, c):\n    return e\n")
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "sub" / "data.json").write_text('{"a": 1}')
    (root / "bootstrap").write_text("#!/bin/sh\necho hi\n")
    os.chmod(root / "bootstrap", 0o755)
    return root


def test_a_lambda_zip_is_kept_byte_for_byte(tmp_path: Path) -> None:
    src = tmp_path / "function.zip"
    with zipfile.ZipFile(src, "w") as zf:
        zf.writestr("lambda_function.py", "def lambda_handler(e, c):\n    return e\n")
    artifact = load_code(src)
    assert artifact.kind is CodeKind.ZIP
    assert artifact.data == src.read_bytes()


def test_a_directory_zips_the_same_whatever_the_timestamps(tmp_path: Path) -> None:
    one = _tree(tmp_path / "one")
    first = load_code(one)
    two = tmp_path / "two"
    shutil.copytree(one, two)
    for path in two.rglob("*"):
        os.utime(path, (1_700_000_000, 1_700_000_000))
    second = load_code(two)
    assert first.kind is CodeKind.DIRECTORY
    assert first.data == second.data
    assert first.digest == second.digest


def test_a_directory_zip_has_sorted_entries_and_keeps_the_exec_bit(tmp_path: Path) -> None:
    artifact = load_code(_tree(tmp_path / "code"))
    out = tmp_path / "unzipped"
    out.mkdir()
    (tmp_path / "a.zip").write_bytes(artifact.data)
    # unzip(1) is a real, independent reader of the archive and honours the Unix modes.
    subprocess.run(["unzip", "-q", str(tmp_path / "a.zip"), "-d", str(out)], check=True)
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        names = zf.namelist()
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    assert names == ["bootstrap", "lambda_function.py", "empty/", "pkg/__init__.py",
                     "pkg/sub/data.json"]
    assert os.access(out / "bootstrap", os.X_OK)
    assert not os.access(out / "lambda_function.py", os.X_OK)
    assert (out / "pkg/sub/data.json").read_text() == '{"a": 1}'


def test_a_jar_is_wrapped_to_unarchive_as_lambda_artifact_slash_jar(tmp_path: Path) -> None:
    jar = tmp_path / "hello.jar"
    with zipfile.ZipFile(jar, "w") as zf:
        zf.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n")
    artifact = load_code(jar)
    assert artifact.kind is CodeKind.JAR
    (tmp_path / "lambda-artifact.zip").write_bytes(artifact.data)
    with zipfile.ZipFile(tmp_path / "lambda-artifact.zip") as zf:
        assert zf.namelist() == ["hello.jar"]
        assert zf.read("hello.jar") == jar.read_bytes()


def test_the_digest_is_base64_sha256_as_openssl_computes_it(tmp_path: Path) -> None:
    data = b"lambda code \x00\xff" * 1000
    (tmp_path / "blob").write_bytes(data)
    sha = subprocess.run(["openssl", "dgst", "-sha256", "-binary", str(tmp_path / "blob")],
                         check=True, capture_output=True).stdout
    assert greengrass_digest(data) == base64.b64encode(sha).decode()
    assert greengrass_digest(data) == base64.b64encode(hashlib.sha256(data).digest()).decode()


def test_a_file_that_is_not_a_zip_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "function.zip"
    bad.write_text("print('hello')")
    with pytest.raises(ValidationError) as info:
        load_code(bad)
    assert str(info.value) == (
        f"code: {bad}: is not a zip archive; allowed: a Lambda deployment package (.zip), "
        "a .jar or a directory")


def test_a_zip_with_entries_outside_its_root_is_refused(tmp_path: Path) -> None:
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../escape.py", "x = 1")
    with pytest.raises(ValidationError) as info:
        load_code(evil)
    assert str(info.value) == (
        f"code: {evil}: holds an entry the core will not unpack: is an unsafe path (absolute, "
        "empty or with '..') (got '../escape.py'); allowed: relative paths inside the archive "
        "(no leading /, no '..')")


def test_missing_code_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as info:
        load_code(tmp_path / "nope.zip")
    assert str(info.value) == (
        f"code: {tmp_path / 'nope.zip'}: cannot read the code: No such file or directory; "
        "allowed: a Lambda deployment package (.zip), a .jar or a directory")


# -- links: the import may run as root; a link must not carry a root-only file --------------

def _secret(tmp_path: Path) -> Path:
    secret = tmp_path / "root-only"
    secret.write_text("root:$6$hash\n")
    secret.chmod(0o600)
    return secret


def test_a_symlinked_file_in_a_code_directory_is_refused(tmp_path: Path) -> None:
    code = _tree(tmp_path / "code")
    secret = _secret(tmp_path)
    (code / "pkg" / "shadow").symlink_to(secret)
    with pytest.raises(ValidationError) as info:
        load_code(code)
    text = str(info.value)
    assert str(code / "pkg" / "shadow") in text and f"symbolic link to {secret}" in text


def test_a_symlinked_directory_in_a_code_directory_is_refused(tmp_path: Path) -> None:
    code = _tree(tmp_path / "code")
    (tmp_path / "elsewhere").mkdir()
    (code / "etc").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ValidationError, match=r"code/etc: is a symbolic link to .*elsewhere"):
        load_code(code)


def test_a_fifo_in_a_code_directory_is_left_out_without_hanging(tmp_path: Path) -> None:
    code = _tree(tmp_path / "code")
    os.mkfifo(code / "pipe")
    with zipfile.ZipFile(__import__("io").BytesIO(load_code(code).data)) as zf:
        assert "pipe" not in zf.namelist()


def test_a_lambda_zip_holding_a_link_is_refused(tmp_path: Path) -> None:
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        info = zipfile.ZipInfo("shadow")
        info.create_system = 3
        info.external_attr = (0o120777) << 16
        zf.writestr(info, "/etc/shadow")
    with pytest.raises(ValidationError) as info_:
        load_code(evil)
    assert "symbolic link (to /etc/shadow)" in str(info_.value)
