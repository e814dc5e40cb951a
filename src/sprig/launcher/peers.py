"""Who is on the other end of a local socket: the facts the core's listeners check.

A token or a port number proves nothing about the process using it (a token can be read from
another process's environment, a port found in ``/proc/net/tcp``). What the kernel says about the
connecting socket can't be forged:

* a Unix socket's peer credentials (``SO_PEERCRED``: pid, uid, gid at ``connect()``);
* a loopback TCP connection's client socket, looked up by its address pair through the kernel's
  socket-diagnostics netlink interface (``NETLINK_SOCK_DIAG``, ``inet_diag``): the uid that created
  it and its inode, and from the inode the processes holding it (``/proc/<pid>/fd``).

The listeners then ask :mod:`sprig.launcher.registry` whether that process belongs to the
component (or worker) the endpoint serves. Everything here is a plain, synchronous /proc or
netlink read: microseconds to a millisecond, done once per connection.
"""

from __future__ import annotations

import os
import socket
import struct
from dataclasses import dataclass

# linux/sock_diag.h, linux/inet_diag.h, linux/netlink.h
_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST = 1
_NLMSG_ERROR = 2
_NLMSG_HDR = struct.Struct("=IHHII")
# inet_diag_req_v2: family, protocol, ext, pad, states, then inet_diag_sockid
_REQ = struct.Struct("=BBBxI")
# inet_diag_sockid: sport, dport (big endian), src[4], dst[4] (network order words), if, cookie[2]
_SOCKID = struct.Struct(">HH16s16sI8s")
# inet_diag_msg: family, state, timer, retrans, sockid, expires, rqueue, wqueue, uid, inode
_MSG = struct.Struct("=BBBB48sIIIII")
_NO_COOKIE = b"\xff" * 8
_ALL_STATES = 0xFFFFFFFF


@dataclass(frozen=True)
class Peer:
    """The process side of a connection.

    ``pid`` is known for Unix sockets (``SO_PEERCRED``); for TCP it is the holder found by
    :func:`holder`, or None. ``inode`` is the TCP client socket's inode (None for Unix sockets).
    """

    uid: int
    pid: int | None = None
    gid: int | None = None
    inode: int | None = None

    def describe(self) -> str:
        who = f"pid {self.pid}" if self.pid is not None else "an unknown process"
        return f"{who} (uid {self.uid})"


def unix_peer(sock: socket.socket) -> Peer | None:
    """``SO_PEERCRED`` of a connected Unix socket (pid, uid and gid at ``connect()``)."""
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    pid, uid, gid = struct.unpack("3i", raw)
    return Peer(uid=uid, pid=pid if pid > 0 else None, gid=gid)


def tcp_peer(sock: socket.socket) -> Peer | None:
    """The client end of an accepted IPv4 loopback TCP connection: its owner uid and inode.

    None if the kernel has no such socket (the client already closed it) or the connection is
    not IPv4.
    """
    try:
        client = sock.getpeername()
        server = sock.getsockname()
    except OSError:
        return None
    if sock.family != socket.AF_INET:
        return None
    return _inet_diag_lookup(client, server)


def _inet_diag_lookup(local: tuple[str, int], remote: tuple[str, int]) -> Peer | None:
    """The socket bound to ``local`` and connected to ``remote`` (one exact lookup)."""
    sockid = _SOCKID.pack(local[1], remote[1], socket.inet_aton(local[0]).ljust(16, b"\0"),
                          socket.inet_aton(remote[0]).ljust(16, b"\0"), 0, _NO_COOKIE)
    body = _REQ.pack(socket.AF_INET, socket.IPPROTO_TCP, 0, _ALL_STATES) + sockid
    header = _NLMSG_HDR.pack(_NLMSG_HDR.size + len(body), _SOCK_DIAG_BY_FAMILY,
                             _NLM_F_REQUEST, 1, 0)
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG) as nl:
        nl.sendto(header + body, (0, 0))
        data = nl.recv(8192)
    if len(data) < _NLMSG_HDR.size:
        return None
    length, kind, _flags, _seq, _pid = _NLMSG_HDR.unpack_from(data)
    if kind == _NLMSG_ERROR or kind != _SOCK_DIAG_BY_FAMILY:
        return None
    if length < _NLMSG_HDR.size + _MSG.size:
        return None
    *_, uid, inode = _MSG.unpack_from(data, _NLMSG_HDR.size)
    return Peer(uid=uid, inode=inode)


def socket_inodes(pid: int) -> set[int]:
    """Inodes of the sockets process ``pid`` holds (empty if it is gone or unreadable)."""
    found: set[int] = set()
    fd_dir = f"/proc/{pid}/fd"
    try:
        names = os.listdir(fd_dir)
    except OSError:
        return found
    for name in names:
        try:
            target = os.readlink(f"{fd_dir}/{name}")
        except OSError:
            continue
        if target.startswith("socket:["):
            found.add(int(target[8:-1]))
    return found


def holder(inode: int, pids: list[int]) -> int | None:
    """The first of ``pids`` that holds the socket ``inode``."""
    for pid in pids:
        if inode in socket_inodes(pid):
            return pid
    return None


def _stat_fields(pid: int) -> list[bytes] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (field 3 onwards)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None


def session_of(pid: int) -> int | None:
    """The session id of ``pid`` (field 6 of ``/proc/<pid>/stat``), None if it is gone."""
    fields = _stat_fields(pid)
    return int(fields[3]) if fields else None


def start_time(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot, field 22 of its stat): with the pid, an
    identity that survives pid reuse."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def cgroup_paths(pid: int) -> set[str]:
    """The cgroup paths of ``pid`` in every hierarchy (``/proc/<pid>/cgroup``)."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            return {line.rstrip("\n").split(":", 2)[2] for line in f if line.count(":") >= 2}
    except OSError:
        return set()
