"""Sandbox uids: one host uid per component that runs in a GreengrassContainer.

Why: the kernel lets a process read another's ``/proc/<pid>/environ`` and memory, trace it,
signal it and reach its files through ``/proc/<pid>/root`` whenever both have the same uid (and
the owner of a user namespace has every capability inside it). Every component runs as the same
``sprig_user`` by default, so without distinct host uids any NoContainer function or generic
component could take a container function's secrets and its ``SVCUID``. Inside its sandbox the
function still is its run-as user (a user namespace maps the sandbox uid to it), so nothing
changes for the code; see :mod:`sprig.launcher.sandbox`.

The uids come from a range no account uses: systemd's documented map of uid ranges
(``UIDS-GIDS.md``) leaves 0x70000000-0x7FFFFFFF unallocated, above the container range that
``systemd-nspawn`` and ``/etc/subuid`` use. Each component keeps its uid for good (its work
directory and artifacts are owned by it), recorded in ``state.db``; uids are never reused.
"""

from __future__ import annotations

import json
import threading

from sprig.errors import SprigError
from sprig.state.db import StateDB

FIRST_SANDBOX_UID = 0x70000000
SANDBOX_UID_COUNT = 0x10000
_META_KEY = "sandbox-uids"


class SandboxUidsExhausted(SprigError):
    """Every uid of the range is taken (65,536 components ever deployed on this device)."""


class SandboxIdentities:
    """The component → sandbox uid table of one core (persisted in ``state.db``)."""

    def __init__(self, db: StateDB, first: int = FIRST_SANDBOX_UID,
                 count: int = SANDBOX_UID_COUNT) -> None:
        self._db = db
        self._first = first
        self._count = count
        self._lock = threading.Lock()
        raw = db.get_meta(_META_KEY)
        self._uids: dict[str, int] = json.loads(raw) if raw else {}

    def uid_for(self, component: str) -> int:
        """The component's sandbox uid, allocated (and persisted) the first time."""
        with self._lock:
            uid = self._uids.get(component)
            if uid is not None:
                return uid
            taken = set(self._uids.values())
            for uid in range(self._first, self._first + self._count):
                if uid not in taken:
                    break
            else:
                raise SandboxUidsExhausted(
                    f"no sandbox uid left for {component}: all {self._count} uids from "
                    f"{self._first} are taken")
            allocated = {**self._uids, component: uid}
            self._db.set_meta(_META_KEY, json.dumps(allocated, sort_keys=True))
            self._uids = allocated
            return uid

    def owner_of(self, uid: int) -> str | None:
        """The component a sandbox uid belongs to (for log lines), or None."""
        for name, u in self._uids.items():
            if u == uid:
                return name
        return None
