"""Who a process runs as: :class:`RunAs`, a POSIX user and group by name.

Its own module, with no Sprig imports, because three layers need it: the core's settings
(``runWithDefault.posixUser``), the kernel (a component's ``RunWith``) and the launcher (which
resolves the names to ids and drops privileges). Living in :mod:`sprig.launcher` made the
settings, a foundation, import the launcher.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RunAs:
    """The POSIX user and group a process runs as (names, as in ``posixUser=user:group``)."""

    user: str
    group: str | None = None

    def __str__(self) -> str:
        return f"{self.user}:{self.group}" if self.group else self.user
