"""Can the run-as user reach a host path? Checked before a sandbox starts.

bubblewrap runs as the run-as user, so a bind source that user cannot reach makes bwrap exit
with ``Can't find source path ...: Permission denied`` — an exit code 1 that the function's
owner would have to decode from a log. Checking the classic permission bits of the path and of
every directory above it (what the kernel does, without ACLs) turns that into an error naming
the field, the path, the blocking directory and the fix. Paths with an ACL are not judged.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from sprig.launcher.users import Credentials

R, W, X = 4, 2, 1


def _has_acl(path: str) -> bool:
    try:
        return "system.posix_acl_access" in os.listxattr(path)
    except OSError:
        return False


def _allowed(st: os.stat_result, creds: Credentials, want: int) -> bool:
    if creds.uid == 0:
        return True
    mode = stat.S_IMODE(st.st_mode)
    if st.st_uid == creds.uid:
        bits = (mode >> 6) & 7
    elif st.st_gid in creds.groups or st.st_gid == creds.gid:
        bits = (mode >> 3) & 7
    else:
        bits = mode & 7
    return bits & want == want


def blocker(path: Path, creds: Credentials, *, write: bool = False) -> str | None:
    """None if ``creds`` can reach ``path`` (read, and write if asked), else why not."""
    p = os.path.abspath(path)
    parts = p.split("/")[1:]
    current = ""
    for part in parts[:-1]:
        current += "/" + part
        try:
            st = os.stat(current)
        except OSError:
            return None   # missing paths are reported elsewhere
        if not _allowed(st, creds, X) and not _has_acl(current):
            return (f"directory {current} (mode {stat.S_IMODE(st.st_mode):04o}, owner uid "
                    f"{st.st_uid}, gid {st.st_gid}) cannot be entered")
    try:
        st = os.stat(p)
    except OSError:
        return None
    want = R | (W if write else 0) | (X if stat.S_ISDIR(st.st_mode) else 0)
    if not _allowed(st, creds, want) and not _has_acl(p):
        kind = "read and written" if write else "read"
        return (f"{p} (mode {stat.S_IMODE(st.st_mode):04o}, owner uid {st.st_uid}, gid "
                f"{st.st_gid}) cannot be {kind}")
    return None
