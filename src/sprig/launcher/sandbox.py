"""Preparing a GreengrassContainer sandbox (placeholder until bubblewrap support lands)."""

from __future__ import annotations

from sprig.errors import SandboxUnavailable
from sprig.launcher.spec import LaunchSpec
from sprig.launcher.users import Credentials


def prepare(spec: LaunchSpec, creds: Credentials | None) -> list[str]:
    """Return the argv that starts ``spec`` inside its sandbox."""
    raise SandboxUnavailable("GreengrassContainer is not implemented yet; use NoContainer")
