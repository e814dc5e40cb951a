"""Every process tree this core started, with the component it belongs to.

The launcher registers each process it spawns (:func:`sprig.launcher.process.spawn`, for specs
that name an ``owner``) and forgets it when it is closed. The core's listeners — the Runtime API
of each worker, the Greengrass IPC socket, the V1 SDK endpoint — ask it who a connecting process
is: a token or a port proves nothing, membership of a tree the core started does.

What "belongs to a tree" means, and why it can't be faked by another component's process:

* a tree with a cgroup (every GreengrassContainer worker, and any process with resource limits):
  the pid is in the cgroup. Only root can move a process between the core's cgroups.
* a tree without one (NoContainer workers, generic components): the pid is in the session the
  core created for it (``setsid`` at spawn). A process can leave its session but never join
  another one, so a process of another component — even one of the same user — can't get in.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterable
from typing import Protocol

from sprig.launcher import peers


class Tree(Protocol):
    """What the registry needs of a launched process (``LaunchedProcess`` implements it)."""

    @property
    def owner(self) -> str | None: ...

    def has_member(self, pid: int) -> bool:
        """True if ``pid`` is a live process of this tree."""
        ...

    def member_pids(self) -> list[int]:
        """The live processes of this tree."""
        ...


class ProcessRegistry:
    """The live trees of this core, by owner. Thread-safe (spawns run in threads)."""

    def __init__(self) -> None:
        self._trees: dict[int, Tree] = {}
        self._lock = threading.Lock()

    def add(self, tree: Tree) -> None:
        with self._lock:
            self._trees[id(tree)] = tree

    def discard(self, tree: Tree) -> None:
        with self._lock:
            self._trees.pop(id(tree), None)

    def trees(self, owner: str | None = None) -> list[Tree]:
        with self._lock:
            trees = list(self._trees.values())
        return trees if owner is None else [t for t in trees if t.owner == owner]

    def owner_of(self, pid: int) -> str | None:
        """The component whose tree holds ``pid``, or None."""
        for tree in self.trees():
            if tree.owner is not None and tree.has_member(pid):
                return tree.owner
        return None

    def belongs(self, pid: int, owner: str) -> bool:
        return any(t.has_member(pid) for t in self.trees(owner))

    def socket_holder(self, inode: int, trees: Iterable[Tree] | None = None
                      ) -> tuple[int, str | None] | None:
        """(pid, owner) of the first process of ``trees`` (default: all) holding ``inode``."""
        for tree in self.trees() if trees is None else trees:
            pid = peers.holder(inode, tree.member_pids())
            if pid is not None:
                return pid, tree.owner
        return None

    def stranger(self, owner: str, sock: socket.socket | None) -> str | None:
        """None if the process at the other end of ``sock`` (a Unix socket, or an accepted
        loopback TCP connection) is a process of ``owner``; else who it is, for a refusal."""
        if sock is None:
            return "an unknown peer"
        if sock.family == socket.AF_UNIX:
            peer = peers.unix_peer(sock)
            if peer is not None and peer.pid is not None and self.belongs(peer.pid, owner):
                return None
        else:
            peer = peers.tcp_peer(sock)
            if (peer is not None and peer.inode is not None
                    and self.socket_holder(peer.inode, self.trees(owner)) is not None):
                return None
        return self.describe(peer) if peer is not None else "an unknown peer"

    def describe(self, peer: peers.Peer) -> str:
        """``component X (pid N, uid U)`` for a log line, as far as it can be known."""
        pid = peer.pid
        owner = None
        if pid is None and peer.inode is not None:
            found = self.socket_holder(peer.inode)
            if found is not None:
                pid, owner = found
        elif pid is not None:
            owner = self.owner_of(pid)
        where = f"pid {pid}, uid {peer.uid}" if pid is not None else f"uid {peer.uid}"
        if owner is not None:
            return f"component {owner} ({where})"
        return f"a process that is no component's ({where})"


def peer_in(sock: socket.socket, tree: Tree) -> tuple[bool, peers.Peer | None]:
    """Whether the process at the other end of ``sock`` (a Unix socket or an accepted loopback
    TCP connection) is a process of ``tree``; and who it is, as far as the kernel says."""
    if sock.family == socket.AF_UNIX:
        peer = peers.unix_peer(sock)
        ok = peer is not None and peer.pid is not None and tree.has_member(peer.pid)
        return ok, peer
    peer = peers.tcp_peer(sock)
    if peer is None or peer.inode is None:
        return False, peer
    pid = peers.holder(peer.inode, tree.member_pids())
    return pid is not None, peer


class Refusals:
    """When a refused peer deserves a log line: its 1st, 10th, 100th... refusal (by key), so a
    peer retrying in a loop costs a handful of lines, not one per attempt."""

    def __init__(self) -> None:
        self._counts: dict[object, int] = {}

    def count(self, key: object) -> int | None:
        """Count one refusal; the running total if it should be logged now, else None."""
        n = self._counts.get(key, 0) + 1
        self._counts[key] = n
        return n if n == 10 ** (len(str(n)) - 1) else None


def descendants(pid: int) -> list[int]:
    """``pid`` and every live descendant still parented in its tree (all threads' children)."""
    out: list[int] = []
    pending = [pid]
    while pending:
        p = pending.pop()
        out.append(p)
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{p}/task/{tid}/children") as f:
                    pending.extend(int(c) for c in f.read().split())
            except OSError:
                continue
    return out


#: The registry of this core process (one core per process).
REGISTRY = ProcessRegistry()
