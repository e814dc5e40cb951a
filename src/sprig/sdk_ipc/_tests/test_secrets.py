from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest

from sprig.errors import ValidationError
from sprig.sdk_ipc.secrets import (
    SecretNotFoundError,
    SecretStore,
    SecretStoreError,
    parse_secrets,
)

ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:api-key-AbCdEf"


def store(tmp_path: Path) -> SecretStore:
    return SecretStore(tmp_path / "secrets.enc", tmp_path / "secrets.key")


def test_round_trip_encrypted_at_rest(tmp_path: Path) -> None:
    s = store(tmp_path)
    s.replace(parse_secrets({"secrets": {
        "api-key": {"secretString": "very-secret-value", "arn": ARN},
        "blob": {"secretBinary": base64.b64encode(b"\x00\x01binary").decode(),
                 "versionStages": ["AWSCURRENT", "v2"]},
    }}, now_ms=1234))
    raw = (tmp_path / "secrets.enc").read_bytes()
    assert b"very-secret-value" not in raw and raw.startswith(b"SPRIGSEC1")
    assert stat.S_IMODE((tmp_path / "secrets.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "secrets.enc").stat().st_mode) == 0o600
    fresh = store(tmp_path)                # a new process reading the file
    v = fresh.get_secret_value("api-key")
    assert v == {"ARN": ARN, "Name": "api-key", "VersionId": v["VersionId"],
                 "VersionStages": ["AWSCURRENT"], "CreatedDate": 1234,
                 "SecretString": "very-secret-value"}
    assert fresh.get_secret_value(ARN) == v
    b = fresh.get_secret_value("blob", "v2")
    assert base64.b64decode(b["SecretBinary"]) == b"\x00\x01binary"
    assert b["ARN"] == "arn:aws:secretsmanager:us-east-1:000000000000:secret:blob"
    with pytest.raises(SecretNotFoundError, match="no version with stage AWSPREVIOUS"):
        fresh.get_secret_value("api-key", "AWSPREVIOUS")
    with pytest.raises(SecretNotFoundError, match="Secret not found: nope"):
        fresh.get_secret_value("nope")


def test_redeploy_keeps_created_date_of_unchanged_values(tmp_path: Path) -> None:
    s = store(tmp_path)
    s.replace(parse_secrets({"secrets": {"a": {"secretString": "1"},
                                         "b": {"secretString": "2"}}}, now_ms=1))
    first = s.get_secret_value("a")["VersionId"]
    s2 = store(tmp_path)
    s2.replace(parse_secrets({"secrets": {"a": {"secretString": "1"},
                                          "b": {"secretString": "3"}}}, now_ms=2))
    assert s2.get_secret_value("a")["CreatedDate"] == 1
    assert s2.get_secret_value("a")["VersionId"] == first
    assert s2.get_secret_value("b")["CreatedDate"] == 2
    s2.replace(parse_secrets({"secrets": {}}))
    assert store(tmp_path).names() == []


def test_tampered_file_and_wrong_key_are_refused(tmp_path: Path) -> None:
    s = store(tmp_path)
    s.replace(parse_secrets({"secrets": {"a": {"secretString": "x"}}}))
    data = tmp_path / "secrets.enc"
    blob = bytearray(data.read_bytes())
    blob[-1] ^= 1
    data.write_bytes(bytes(blob))
    with pytest.raises(SecretStoreError, match="authentication failed"):
        store(tmp_path).get_secret_value("a")
    (tmp_path / "secrets.key").unlink()
    with pytest.raises(SecretStoreError, match=r"secrets\.key is missing"):
        store(tmp_path).get_secret_value("a")


def test_stores_on_one_file_see_each_others_writes(tmp_path: Path) -> None:
    """The core's V1 endpoint and its IPC v2 server hold separate stores on one file: a
    deployment written through one is what the other answers next, removals included, and
    a file changed under a store that already read it is checked again, not served from
    memory."""
    writer, reader = store(tmp_path), store(tmp_path)
    assert reader.find("api-key") is None
    writer.replace(parse_secrets({"secrets": {"api-key": {"secretString": "v1", "arn": ARN}}}))
    first = reader.find("api-key")
    assert first is not None and first.string == "v1" and reader.find(ARN) == first
    assert reader.find("api") is None and reader.find(ARN[:-7]) is None    # exact matches only
    for value in ("v2", "v3"):                # quick successive writes of the same size
        writer.replace(parse_secrets({"secrets": {"api-key": {"secretString": value,
                                                              "arn": ARN}}}))
        found = reader.find(ARN)
        assert found is not None and found.string == value
    writer.replace(parse_secrets({"secrets": {}}))
    assert reader.find("api-key") is None
    writer.replace(parse_secrets({"secrets": {"a": {"secretString": "x"}}}))
    assert reader.find("a") is not None
    blob = bytearray((tmp_path / "secrets.enc").read_bytes())
    blob[-1] ^= 1
    (tmp_path / "secrets.enc").write_bytes(bytes(blob))
    with pytest.raises(SecretStoreError, match="authentication failed"):
        reader.find("a")


@pytest.mark.parametrize(("cfg", "pattern"), [
    ({"secrets": {"a": {}}}, r"secrets\.a: needs exactly one of secretString and secretBinary"),
    ({"secrets": {"a": {"secretString": "x", "secretBinary": "eA=="}}}, r"exactly one"),
    ({"secrets": {"a": {"secretBinary": "***"}}}, r"secrets\.a\.secretBinary: must be base64"),
    ({"secrets": {"a b": {"secretString": "x"}}}, r"secrets\.a b: invalid secret name"),
    ({"secrets": {"a": {"secretString": "x", "arn": ARN}}},
     r"secrets\.a\.arn: must be a Secrets Manager ARN for this secret's name"),
    ({"secrets": {"a": {"secretString": "x", "versionStages": []}}}, r"versionStages"),
    ({"secrets": {"a": {"secretString": "x", "colour": 1}}}, r"secrets\.a\.colour: unknown"),
    ({"secrets": {}, "cloudSecrets": [{"arn": ARN}]},
     r"cloudSecrets\[0\]\.arn: has no value: Sprig does not fetch secrets from AWS"),
])
def test_validation(cfg: dict[str, object], pattern: str) -> None:
    with pytest.raises(ValidationError, match=pattern):
        parse_secrets(cfg, source="deployment")


def test_cloud_secrets_with_values_are_fine() -> None:
    recs = parse_secrets({"secrets": {"api-key": {"secretString": "v", "arn": ARN}},
                          "cloudSecrets": [{"arn": ARN}]})
    assert [r.name for r in recs] == ["api-key"]
