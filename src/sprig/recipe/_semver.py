"""Typed wrappers around node-semver: npm's version and range rules, as Greengrass uses them."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

import nodesemver

# The regular expression published at semver.org: no leading zeros, no "v" prefix.
_STRICT = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?")


def is_strict_version(text: str) -> bool:
    """True for a strict semver ``MAJOR.MINOR.PATCH[-pre][+build]``."""
    return _STRICT.fullmatch(text) is not None


def is_valid_range(text: str) -> bool:
    try:
        return nodesemver.valid_range(text, False) is not None
    except Exception:
        return False


def satisfies(version: str, requirement: str) -> bool:
    return bool(nodesemver.satisfies(version, requirement, False))


def compare(a: str, b: str) -> int:
    return int(nodesemver.compare(a, b, False))


def sort_versions(versions: Iterable[str]) -> list[str]:
    """Ascending semver order."""
    return sorted(versions, key=functools.cmp_to_key(compare))
