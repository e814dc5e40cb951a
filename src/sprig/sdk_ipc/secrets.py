"""The local secret store: secrets given by deployment, encrypted at rest, read by functions.

Where the values come from
    Greengrass's ``aws.greengrass.SecretManager`` lists ``cloudSecrets`` (ARNs) and fetches their
    values from AWS Secrets Manager. Sprig works offline, so the same component's configuration
    carries the values under a Sprig-specific ``secrets`` map (a ``cloudSecrets`` entry without a
    value there is a validation error, never a silent gap)::

        services:
          aws.greengrass.SecretManager:
            configuration:
              secrets:
                db-password:
                  secretString: hunter2              # or secretBinary: <base64>
                  arn: arn:aws:secretsmanager:us-east-1:123456789012:secret:db-password-AbCdEf
                  versionStages: [AWSCURRENT]        # default
              cloudSecrets: [{arn: ...}]             # optional, Greengrass shape

How they are stored
    One file, ``<root>/secrets.enc``: ``b"SPRIGSEC1" | 12-byte nonce | AES-256-GCM(JSON)`` with
    a random 256-bit key in ``<root>/secrets.key`` (mode 0600, created once). A new random
    nonce is drawn for every write; the header is authenticated too. Why this scheme: AES-GCM is
    a standard AEAD (confidentiality *and* tamper detection: a modified file is refused, not
    misread), from the well-kept ``cryptography`` package, with no passphrase to type at boot
    (a device restarts unattended). Keeping the key in a separate owner-only file means copies
    of the data file (backups, support bundles, a leaked work directory) reveal nothing. As with
    Greengrass, whoever is root on the device can read the key: the store protects secrets at
    rest, not from the device's administrator. Writes are atomic (temp file, fsync, rename).

What functions get
    ``get_secret_value`` returns the Secrets Manager shape (``ARN``, ``Name``, ``VersionId``,
    ``SecretString`` or ``SecretBinary`` (base64), ``VersionStages``, ``CreatedDate`` in epoch
    milliseconds, which ``greengrasssdk`` requires): the V1 SDK endpoint. The Greengrass IPC v2
    ``GetSecretValue`` (:mod:`sprig.ipc.secret_ops`) looks the record up with :meth:`find` and
    answers in its own shape.

Several readers, one file
    The core's V1 endpoint and its IPC v2 server each hold a :class:`SecretStore` on the same
    file. A store caches the decrypted records with the file's bytes and decrypts again only
    when the bytes differ (every write draws a new random nonce, so every write differs): a
    deployment applied through one store is seen by the others at their next lookup, for the
    price of reading a small file. (A ``stat`` identity would be cheaper but can repeat: an
    inode freed by one rename is reused by the next write within the clock's granularity.)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import secrets as _random
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sprig.errors import SprigError, ValidationError
from sprig.paths import RootLayout

MAGIC = b"SPRIGSEC1"
NONCE_BYTES = 12
KEY_BYTES = 32
DEFAULT_STAGE = "AWSCURRENT"
_NAME = re.compile(r"^[A-Za-z0-9/_+=.@-]{1,512}$")
_SECRET_ARN = re.compile(r"^arn:aws[a-zA-Z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:"
                         r"(?P<name>[A-Za-z0-9/_+=.@-]+?)(-[A-Za-z0-9]{6})?$")


class SecretNotFoundError(SprigError):
    """No secret with that name/ARN, or no version with that stage."""


class SecretStoreError(SprigError):
    """The store file cannot be read: wrong key, tampered or corrupt file."""


@dataclass(frozen=True)
class SecretRecord:
    name: str
    arn: str
    version_id: str
    stages: tuple[str, ...]
    string: str | None
    binary: bytes | None
    created_ms: int

    def response(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ARN": self.arn, "Name": self.name, "VersionId": self.version_id,
                               "VersionStages": list(self.stages), "CreatedDate": self.created_ms}
        if self.string is not None:
            out["SecretString"] = self.string
        if self.binary is not None:
            out["SecretBinary"] = base64.b64encode(self.binary).decode()
        return out

    def to_json(self) -> dict[str, Any]:
        d = self.response()
        d["SecretBinary"] = d.get("SecretBinary")
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> SecretRecord:
        binary = d.get("SecretBinary")
        return cls(d["Name"], d["ARN"], d["VersionId"], tuple(d["VersionStages"]),
                   d.get("SecretString"), base64.b64decode(binary) if binary else None,
                   int(d["CreatedDate"]))


def _version_id(name: str, string: str | None, binary: bytes | None) -> str:
    """Deterministic: redeploying the same value keeps its version (and CreatedDate)."""
    h = hashlib.sha256(name.encode() + b"\0" + (string or "").encode() + b"\0" + (binary or b""))
    return str(uuid.UUID(bytes=h.digest()[:16], version=4))


def parse_secrets(config: Mapping[str, Any] | None, *, source: str | None = None,
                  region: str = "us-east-1", account: str = "000000000000",
                  now_ms: int | None = None) -> tuple[SecretRecord, ...]:
    """Validate the SecretManager configuration (``secrets`` and ``cloudSecrets``)."""
    def bad(path: str, msg: str, value: Any, allowed: str) -> ValidationError:
        return ValidationError(path, msg, value=value, allowed=allowed, source=source,
                               has_value=True)

    cfg = config or {}
    now = int(time.time() * 1000) if now_ms is None else now_ms
    raw = cfg.get("secrets") or {}
    if not isinstance(raw, Mapping):
        raise bad("secrets", "must be an object keyed by secret name", raw,
                  "{<name>: {secretString | secretBinary, arn?, versionStages?}}")
    out: list[SecretRecord] = []
    for name, spec in raw.items():
        where = f"secrets.{name}"
        if not isinstance(name, str) or not _NAME.match(name):
            raise bad(where, "invalid secret name", name,
                      "1-512 characters from A-Z a-z 0-9 / _ + = . @ -")
        if not isinstance(spec, Mapping):
            raise bad(where, "must be an object", spec, "{secretString | secretBinary, ...}")
        unknown = set(spec) - {"secretString", "secretBinary", "arn", "versionStages"}
        if unknown:
            raise bad(f"{where}.{sorted(unknown)[0]}", "unknown setting", sorted(unknown)[0],
                      "secretString, secretBinary, arn, versionStages")
        string, b64 = spec.get("secretString"), spec.get("secretBinary")
        if (string is None) == (b64 is None):
            raise bad(where, "needs exactly one of secretString and secretBinary",
                      sorted(spec), "secretString: <text> or secretBinary: <base64>")
        if string is not None and not isinstance(string, str):
            raise bad(f"{where}.secretString", "must be a string", type(string).__name__,
                      "a string")
        binary: bytes | None = None
        if b64 is not None:
            try:
                binary = base64.b64decode(b64, validate=True) if isinstance(b64, str) else None
            except binascii.Error:
                binary = None
            if binary is None:
                raise bad(f"{where}.secretBinary", "must be base64", "<redacted>",
                          "base64 text")
        arn = spec.get("arn", f"arn:aws:secretsmanager:{region}:{account}:secret:{name}")
        m = _SECRET_ARN.match(arn) if isinstance(arn, str) else None
        if m is None or m["name"] != name:
            raise bad(f"{where}.arn", "must be a Secrets Manager ARN for this secret's name",
                      arn, f"arn:aws:secretsmanager:<region>:<account>:secret:{name}[-XXXXXX]")
        stages = spec.get("versionStages", [DEFAULT_STAGE])
        if not isinstance(stages, list) or not stages or not all(
                isinstance(s, str) and s for s in stages):
            raise bad(f"{where}.versionStages", "must be a non-empty list of strings", stages,
                      "e.g. [AWSCURRENT]")
        out.append(SecretRecord(name, arn, _version_id(name, string, binary), tuple(stages),
                                string, binary, now))
    known = {r.arn for r in out}
    cloud = cfg.get("cloudSecrets") or []
    if not isinstance(cloud, list):
        raise bad("cloudSecrets", "must be a list", cloud, "[{arn: <secret ARN>}]")
    for i, entry in enumerate(cloud):
        arn = entry.get("arn") if isinstance(entry, Mapping) else None
        if arn not in known:
            raise bad(f"cloudSecrets[{i}].arn", "has no value: Sprig does not fetch secrets "
                      "from AWS; give it under secrets.<name> with this arn", arn,
                      "an ARN that a secrets.<name>.arn entry names")
    return tuple(out)


class SecretStore:
    """The encrypted file of secrets under the root directory."""

    def __init__(self, data_file: Path, key_file: Path) -> None:
        self.data_file = data_file
        self.key_file = key_file
        self._records: dict[str, SecretRecord] | None = None
        #: The file's bytes ``_records`` were decrypted from; None: no file.
        self._loaded_from: bytes | None = None

    @classmethod
    def for_root(cls, layout: RootLayout) -> SecretStore:
        """The store of a Sprig root: ``<root>/secrets.enc`` and ``<root>/secrets.key``."""
        return cls(layout.root / "secrets.enc", layout.secrets_key)

    # --- key and file ----------------------------------------------------------------------

    def _key(self, *, create: bool) -> bytes | None:
        try:
            key = self.key_file.read_bytes()
        except FileNotFoundError:
            if not create:
                return None
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            key = AESGCM.generate_key(bit_length=256)
            self.key_file.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, key)
                os.fsync(fd)
            finally:
                os.close(fd)
            return key
        if len(key) != KEY_BYTES:
            raise SecretStoreError(f"{self.key_file}: not a {KEY_BYTES}-byte key "
                                   f"({len(key)} bytes); restore it or remove both it and "
                                   f"{self.data_file.name} and redeploy the secrets")
        return key

    def _load(self) -> dict[str, SecretRecord]:
        try:
            blob = self.data_file.read_bytes()
        except FileNotFoundError:
            self._records, self._loaded_from = {}, None
            return self._records
        if self._records is not None and blob == self._loaded_from:
            return self._records
        key = self._key(create=False)
        if key is None:
            raise SecretStoreError(f"{self.key_file} is missing: the secrets in "
                                   f"{self.data_file} cannot be decrypted; redeploy them")
        if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + NONCE_BYTES + 16:
            raise SecretStoreError(f"{self.data_file}: not a Sprig secret store")
        nonce = blob[len(MAGIC):len(MAGIC) + NONCE_BYTES]
        try:
            plain = _aesgcm(key).decrypt(nonce, blob[len(MAGIC) + NONCE_BYTES:], MAGIC)
        except _invalid_tag():
            raise SecretStoreError(f"{self.data_file}: authentication failed (the file was "
                                   "modified or the key does not match)") from None
        doc = json.loads(plain)
        self._records = {r.name: r for r in map(SecretRecord.from_json, doc["secrets"])}
        self._loaded_from = blob
        return self._records

    def _write(self, records: dict[str, SecretRecord]) -> None:
        key = self._key(create=True)
        assert key is not None
        plain = json.dumps({"version": 1, "secrets": [r.to_json() for r in records.values()]})
        nonce = _random.token_bytes(NONCE_BYTES)
        blob = MAGIC + nonce + _aesgcm(key).encrypt(nonce, plain.encode(), MAGIC)
        tmp = self.data_file.with_name(self.data_file.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, blob)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.data_file)
        self._records, self._loaded_from = records, blob

    # --- API -------------------------------------------------------------------------------

    def replace(self, records: tuple[SecretRecord, ...]) -> None:
        """Make ``records`` the store's content (a deployment). Unchanged versions keep their
        ``CreatedDate``."""
        old = self._load()
        new: dict[str, SecretRecord] = {}
        for r in records:
            prev = old.get(r.name)
            if prev is not None and prev.version_id == r.version_id:
                r = SecretRecord(r.name, r.arn, r.version_id, r.stages, r.string, r.binary,
                                 prev.created_ms)
            new[r.name] = r
        self._write(new)

    def names(self) -> list[str]:
        return sorted(self._load())

    def find(self, secret_id: str) -> SecretRecord | None:
        """The secret whose name or full ARN is ``secret_id`` (exactly); None: not deployed.

        A name cannot contain ``:`` and an ARN always does, so the two never collide."""
        records = self._load()
        return records.get(secret_id) or next(
            (r for r in records.values() if r.arn == secret_id), None)

    def get_secret_value(self, secret_id: str, version_stage: str | None = None
                         ) -> dict[str, Any]:
        """The Secrets Manager ``GetSecretValue`` response for a name or ARN."""
        record = self.find(secret_id)
        if record is None:
            raise SecretNotFoundError(f"Secret not found: {secret_id} (deploy it in the "
                                      "aws.greengrass.SecretManager configuration)")
        stage = version_stage or DEFAULT_STAGE
        if stage not in record.stages:
            raise SecretNotFoundError(f"Secret {secret_id} has no version with stage {stage} "
                                      f"(stages: {', '.join(record.stages)})")
        return record.response()


# cryptography (with OpenSSL bindings) costs ~8 MB of the core's memory: load it only when a
# secret is actually stored or read.
def _aesgcm(key: bytes) -> Any:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return AESGCM(key)


def _invalid_tag() -> type[Exception]:
    from cryptography.exceptions import InvalidTag

    return InvalidTag
