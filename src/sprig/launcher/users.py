"""Run-as users: turn ``user[:group]`` names into the ids the child process switches to.

Greengrass runs functions and components as ``ggc_user:ggc_group`` unless a deployment says
otherwise; Sprig's set-up creates ``sprig_user:sprig_group`` for the same role. Resolution
happens in the parent (before fork) so a bad name is a clear :class:`LaunchError` instead of a
child that dies between fork and exec.
"""

from __future__ import annotations

import grp
import os
import pwd
from dataclasses import dataclass

from sprig.errors import LaunchError
from sprig.run_as import RunAs

DEFAULT_RUN_AS = RunAs("sprig_user", "sprig_group")


@dataclass(frozen=True)
class Credentials:
    """Numeric identity of a run-as user: what setgroups/setgid/setuid receive."""

    user: str
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str

    def as_host_uid(self, uid: int) -> Credentials:
        """The same user seen from the host as ``uid`` (a sandbox identity: same gid and
        groups, so group permissions on volumes and devices still apply)."""
        return Credentials(self.user, uid, self.gid, self.groups, self.home)

    @property
    def is_current(self) -> bool:
        """True when the core already runs with exactly this uid and gid (no switch needed)."""
        return os.geteuid() == self.uid and os.getegid() == self.gid


def _lookup_user(name: str) -> pwd.struct_passwd:
    try:
        if name.isdigit():
            return pwd.getpwuid(int(name))
        return pwd.getpwnam(name)
    except KeyError:
        raise LaunchError(
            f"posixUser: unknown user {name!r}; allowed: a user that exists on this device "
            f"(create it, e.g. `useradd --system {name}`, or choose another runWith.posixUser)"
        ) from None


def _lookup_group(name: str) -> grp.struct_group:
    try:
        if name.isdigit():
            return grp.getgrgid(int(name))
        return grp.getgrnam(name)
    except KeyError:
        raise LaunchError(
            f"posixUser: unknown group {name!r}; allowed: a group that exists on this device "
            f"(create it, e.g. `groupadd --system {name}`, or choose another runWith.posixUser)"
        ) from None


_ACCOUNT_FILES = ("/etc/passwd", "/etc/group")
_resolved: dict[RunAs, tuple[tuple[int, ...], Credentials]] = {}


def _accounts_stamp() -> tuple[int, ...]:
    """When the account databases last changed: a cached resolution stays valid until then."""
    stamp: list[int] = []
    for path in _ACCOUNT_FILES:
        try:
            st = os.stat(path)
        except OSError:
            stamp += [-1, -1]
        else:
            stamp += [st.st_mtime_ns, st.st_ino]
    return tuple(stamp)


def resolve(run_as: RunAs) -> Credentials:
    """Resolve ``run_as`` to ids; without a group, the user's primary group is used.

    Supplementary groups are the user's memberships (what ``initgroups`` would set) plus the
    chosen group, so a ``user:group`` choice never loses the user's other groups. Cached
    until ``/etc/passwd`` or ``/etc/group`` changes (two stats instead of the lookups on every
    worker start; ``useradd``/``usermod`` replace the files, so a change is seen at once).
    """
    stamp = _accounts_stamp()
    hit = _resolved.get(run_as)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    creds = _resolve(run_as)
    _resolved[run_as] = (stamp, creds)
    return creds


def _resolve(run_as: RunAs) -> Credentials:
    pw = _lookup_user(run_as.user)
    gid = _lookup_group(run_as.group).gr_gid if run_as.group else pw.pw_gid
    groups = set(os.getgrouplist(pw.pw_name, gid))
    groups.add(gid)
    return Credentials(pw.pw_name, pw.pw_uid, gid, tuple(sorted(groups)), pw.pw_dir)


def current() -> Credentials:
    """The core's own identity (used when a spec has no run-as user)."""
    uid, gid = os.geteuid(), os.getegid()
    try:
        pw = pwd.getpwuid(uid)
        name, home = pw.pw_name, pw.pw_dir
    except KeyError:
        name, home = str(uid), "/"
    return Credentials(name, uid, gid, tuple(sorted(set(os.getgroups()) | {gid})), home)


def credentials_for(run_as: RunAs | None) -> Credentials | None:
    """Ids to switch to for ``run_as``, or None when no switch is needed.

    Raises LaunchError when the core is not root and ``run_as`` is another user: only root can
    change identity, and running silently as the core's user would be a privilege surprise.
    """
    if run_as is None:
        return None
    creds = resolve(run_as)
    if creds.is_current:
        return None
    if os.geteuid() != 0:
        me = current().user
        raise LaunchError(
            f"posixUser: cannot run as {run_as} because the core runs as {me!r}, not root; "
            f"allowed: run the core as root, or use posixUser={me}"
        )
    return creds
