"""The key pair that callers of the Lambda Invoke API sign their requests with.

The core generates one pair on its first start and keeps it in ``<root>/credentials`` in the AWS
shared-credentials format (profile ``[sprig]``), so the same file works as
``AWS_SHARED_CREDENTIALS_FILE`` with ``AWS_PROFILE=sprig`` for boto3 and the AWS CLI. The file is
owner-only (0600) from the moment it exists: it is written to a private temporary file and then
hard-linked into place, so there is never a moment where it is readable by others or half
written. Later starts read it back and refuse a file that others can read, as ssh does.
"""

from __future__ import annotations

import configparser
import os
import re
import secrets
import stat
import string
from dataclasses import dataclass, field
from pathlib import Path

from sprig.errors import SprigError, ValidationError

PROFILE = "sprig"
ACCESS_KEY_PREFIX = "SPRIG"
ACCESS_KEY_LENGTH = 20
SECRET_KEY_LENGTH = 40
FILE_MODE = 0o600

_ACCESS_KEY_ALPHABET = string.ascii_uppercase + string.digits
_SECRET_ALPHABET = string.ascii_letters + string.digits
_ACCESS_KEY_RE = re.compile(r"[A-Z0-9]{16,128}")
_SECRET_RE = re.compile(r"[A-Za-z0-9/+=]{16,128}")


@dataclass(frozen=True)
class Credentials:
    """An access key id and its secret; ``source`` is the file they came from, for messages.

    The secret is left out of ``repr()`` so it never lands in a log line or a traceback.
    """

    access_key_id: str
    secret_access_key: str = field(repr=False)
    source: Path | None = None


def generate_credentials() -> Credentials:
    """A fresh pair: ``SPRIG`` + 15 upper-case alphanumerics, and a 40-character secret."""
    tail = ACCESS_KEY_LENGTH - len(ACCESS_KEY_PREFIX)
    access_key_id = ACCESS_KEY_PREFIX + "".join(
        secrets.choice(_ACCESS_KEY_ALPHABET) for _ in range(tail)
    )
    secret = "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(SECRET_KEY_LENGTH))
    return Credentials(access_key_id, secret)


def render_credentials(credentials: Credentials) -> str:
    """The shared-credentials file text (keys only: a region is not part of credentials)."""
    return (
        f"[{PROFILE}]\n"
        f"aws_access_key_id = {credentials.access_key_id}\n"
        f"aws_secret_access_key = {credentials.secret_access_key}\n"
    )


def parse_credentials(text: str, source: Path | None = None) -> Credentials:
    """Read profile ``[sprig]`` from shared-credentials text; every problem names the field."""
    where = str(source) if source else None
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text, source=where or "<credentials>")
    except configparser.Error as exc:
        raise ValidationError(
            "", f"not in the AWS shared-credentials format: {exc.message}", source=where,
        ) from exc
    if not parser.has_section(PROFILE):
        raise ValidationError(
            f"[{PROFILE}]", "profile missing", value=parser.sections(),
            allowed=f"a [{PROFILE}] section", source=where,
        )
    section = parser[PROFILE]
    access_key_id = section.get("aws_access_key_id", "").strip()
    secret = section.get("aws_secret_access_key", "").strip()
    if not _ACCESS_KEY_RE.fullmatch(access_key_id):
        raise ValidationError(
            f"[{PROFILE}].aws_access_key_id", "missing or malformed access key id",
            value=access_key_id, allowed="16-128 upper-case letters and digits", source=where,
        )
    if not _SECRET_RE.fullmatch(secret):
        # Never echo a secret back, even a malformed one.
        raise ValidationError(
            f"[{PROFILE}].aws_secret_access_key",
            f"missing or malformed secret access key ({len(secret)} characters)",
            allowed="16-128 characters from A-Z a-z 0-9 / + =", source=where,
        )
    return Credentials(access_key_id, secret, source)


def load_credentials(path: Path) -> Credentials:
    """Read the credentials file; refuse one that others can read or write.

    Raises:
        ValidationError: the file is missing, not private, or not a valid ``[sprig]`` profile.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise ValidationError(
            "", "credentials file not found; start the core once to create it", source=str(path),
        ) from exc
    except OSError as exc:
        raise ValidationError(
            "", f"cannot open the credentials file: {exc.strerror}", source=str(path),
        ) from exc
    with os.fdopen(fd, "r", encoding="utf-8") as f:
        mode = stat.S_IMODE(os.fstat(f.fileno()).st_mode)
        if mode & 0o077:
            raise ValidationError(
                "mode", "the credentials file is accessible by other users",
                value=oct(mode), allowed=f"{oct(FILE_MODE)} (run: chmod 600 {path})",
                source=str(path),
            )
        text = f.read()
    return parse_credentials(text, path)


def ensure_credentials(path: Path) -> Credentials:
    """Return the key pair in ``path``, creating it (mode 0600, atomically) on first start.

    Two cores racing to create the file both end up with the one that won: the file is linked
    into place with ``link()``, which never replaces an existing file.
    """
    if path.exists() or path.is_symlink():
        return load_credentials(path)
    credentials = generate_credentials()
    try:
        _write_private_file(path, render_credentials(credentials))
    except FileExistsError:
        return load_credentials(path)
    return Credentials(credentials.access_key_id, credentials.secret_access_key, path)


def _write_private_file(path: Path, text: str) -> None:
    """Create ``path`` with ``text``, mode 0600, never visible half-written or to others."""
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{path.name}.{secrets.token_hex(8)}.tmp"
    try:
        # O_EXCL + mode 0600 at creation: the file is private before it has a single byte.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     FILE_MODE)
    except OSError as exc:
        raise SprigError(f"cannot create the credentials file in {directory}: {exc.strerror}") \
            from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), FILE_MODE)   # the umask can only remove bits; be explicit
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.link(tmp, path)                     # FileExistsError if another start won the race
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_directory(directory)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
