"""Artifact digests: Greengrass writes them as base64; people often write hex. Accept both."""

from __future__ import annotations

import base64
import binascii
import hashlib

# Recipe ``Algorithm`` spelling -> hashlib name.
ALGORITHMS = {"SHA-256": "sha256", "SHA-384": "sha384", "SHA-512": "sha512"}


def normalize_algorithm(name: str) -> str | None:
    """The canonical spelling (``SHA-256``) of ``name``, or None when unsupported."""
    wanted = name.strip().upper().replace("_", "-")
    if wanted in ("SHA256", "SHA384", "SHA512"):
        wanted = f"SHA-{wanted[3:]}"
    return wanted if wanted in ALGORITHMS else None


def decode_digest(digest: str, algorithm: str) -> bytes | None:
    """The raw digest bytes of ``digest`` (hex or base64), or None if it is neither."""
    size = hashlib.new(ALGORITHMS[algorithm]).digest_size
    text = digest.strip()
    if len(text) == size * 2:
        try:
            return bytes.fromhex(text)
        except ValueError:
            pass
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == size else None


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")
