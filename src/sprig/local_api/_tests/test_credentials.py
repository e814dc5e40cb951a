"""The invoke API key pair: generated once, private from the first byte, read back later."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import boto3
import pytest

from sprig.errors import ValidationError
from sprig.local_api.credentials import (
    Credentials,
    ensure_credentials,
    generate_credentials,
    load_credentials,
    parse_credentials,
)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_first_start_creates_an_owner_only_file_and_later_starts_reuse_it(tmp_path: Path) -> None:
    path = tmp_path / "root" / "credentials"
    first = ensure_credentials(path)
    assert mode_of(path) == 0o600
    assert re.fullmatch(r"SPRIG[A-Z0-9]{15}", first.access_key_id)
    assert re.fullmatch(r"[A-Za-z0-9]{40}", first.secret_access_key)
    assert first.source == path
    assert ensure_credentials(path) == first
    assert load_credentials(path) == first
    assert [p.name for p in path.parent.iterdir()] == ["credentials"]   # no temp file left


def test_mode_is_0600_even_with_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        ensure_credentials(tmp_path / "credentials")
    finally:
        os.umask(old)
    assert mode_of(tmp_path / "credentials") == 0o600


def test_each_generated_pair_is_different() -> None:
    assert generate_credentials() != generate_credentials()


def test_the_file_is_a_profile_botocore_reads(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "credentials"
    created = ensure_credentials(path)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(path))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    got = boto3.Session(profile_name="sprig").get_credentials()
    assert got is not None
    assert (got.access_key, got.secret_key) == (created.access_key_id,
                                                created.secret_access_key)
    assert "region" not in path.read_text()


def test_an_existing_file_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    path.write_text("[sprig]\naws_access_key_id = SPRIGKEEPME00000000\n"
                    "aws_secret_access_key = " + "k" * 40 + "\n")
    path.chmod(0o600)
    assert ensure_credentials(path).access_key_id == "SPRIGKEEPME00000000"


def test_a_file_others_can_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    ensure_credentials(path)
    path.chmod(0o644)
    with pytest.raises(ValidationError) as info:
        load_credentials(path)
    assert info.value.path == "mode"
    assert "0o644" in str(info.value) and "chmod 600" in str(info.value)
    assert str(path) in str(info.value)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="credentials file not found"):
        load_credentials(tmp_path / "nope")


@pytest.mark.parametrize(("text", "field"), [
    ("[default]\naws_access_key_id = SPRIGABCDEFGHIJ12345\n", "[sprig]"),
    ("[sprig]\naws_secret_access_key = " + "s" * 40 + "\n", "[sprig].aws_access_key_id"),
    ("[sprig]\naws_access_key_id = lower-case\n", "[sprig].aws_access_key_id"),
    ("[sprig]\naws_access_key_id = SPRIGABCDEFGHIJ12345\naws_secret_access_key = sh ort\n",
     "[sprig].aws_secret_access_key"),
    ("not an ini file", ""),
])
def test_malformed_files_name_the_field(text: str, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_credentials(text, Path("/root/.sprig/credentials"))
    assert info.value.path == field
    assert info.value.source == "/root/.sprig/credentials"
    assert "sh ort" not in str(info.value)    # a secret is never echoed


def test_repr_hides_the_secret() -> None:
    credentials = Credentials("SPRIGABCDEFGHIJ12345", "topsecret" * 5)
    assert "topsecret" not in repr(credentials)
    assert "SPRIGABCDEFGHIJ12345" in repr(credentials)
