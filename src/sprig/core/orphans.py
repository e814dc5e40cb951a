"""Processes a killed core left behind.

Component processes run in their own sessions, so a ``kill -9`` of the core (or a power cut of
the core alone) leaves them running. The kernel records each process group it starts in
``run/children.json`` with the process's start time (so a recycled pid is never mistaken for
ours); the next core kills the groups still alive before it starts anything.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
from pathlib import Path

from sprig.disk import WATCH, is_disk_full

log = logging.getLogger("sprig.kernel")


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22 (starttime); the command name (field 2) may contain spaces, so split after ')'.
    return stat.rsplit(")", 1)[1].split()[19]


#: Every process the core starts carries ``SPRIG_COMPONENT_ROOT=<root>`` in its environment, so
#: a restarted core also finds processes it had no time to record (killed mid-spawn).
MARKER = "SPRIG_COMPONENT_ROOT"


def marked_processes(root: Path) -> list[int]:
    """Pids whose environment says they were started by a core on ``root``."""
    needle = f"{MARKER}={root}".encode() + b"\0"
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:
            continue
        if (b"\0" + environ).find(b"\0" + needle) >= 0:
            found.append(int(entry))
    return found


class ChildRegistry:
    def __init__(self, path: Path, root: Path | None = None) -> None:
        self.path = path
        self.root = root
        self._children: dict[int, str] = {}

    def reap_orphans(self) -> int:
        """Kill the process groups a previous core recorded and that still run; return how many."""
        try:
            recorded = json.loads(self.path.read_text())
        except (OSError, ValueError):
            recorded = {}
        killed = 0
        for pid_text, started in recorded.items():
            pid = int(pid_text)
            if _start_time(pid) == started:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
                    killed += 1
        if self.root is not None:
            for pid in marked_processes(self.root):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    if os.getpgid(pid) == pid:
                        os.killpg(pid, signal.SIGKILL)
                    os.kill(pid, signal.SIGKILL)
                    killed += 1
        if killed:
            log.warning("killed %d process(es) left running by a previous core", killed)
        self._children.clear()
        self._save()
        return killed

    def add(self, pid: int) -> None:
        started = _start_time(pid)
        if started is not None:
            self._children[pid] = started
            self._save()

    def remove(self, pid: int) -> None:
        if self._children.pop(pid, None) is not None:
            self._save()

    def _save(self) -> None:
        """Best effort on a full disk: the next core still finds our processes by their
        :data:`MARKER`, so a start or a stop must not fail for want of this file."""
        tmp = self.path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps({str(k): v for k, v in self._children.items()}))
            tmp.replace(self.path)
        except OSError as e:
            if not is_disk_full(e):
                raise
            with contextlib.suppress(OSError):
                tmp.unlink()
            if WATCH.failed(self.path, "the record of the core's processes"):
                log.warning("no space left on %s: the core's processes are not recorded there "
                            "until there is space (a restarted core finds them by their "
                            "environment)", self.path)
            return
        WATCH.recovered(self.path)
