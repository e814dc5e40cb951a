"""What the kernel says about the other end of a local socket (real sockets, real processes)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from sprig.launcher import peers


def test_a_loopback_client_is_found_by_uid_and_inode_and_its_holder() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        child = subprocess.Popen([sys.executable, "-c", (
            f"import socket, sys; s = socket.create_connection(('127.0.0.1', {port}));"
            " print('ok', flush=True); sys.stdin.read()")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout is not None and child.stdout.readline().strip() == "ok"
            accepted, _ = server.accept()
            with accepted:
                peer = peers.tcp_peer(accepted)
                assert peer is not None and peer.uid == os.getuid()
                assert peer.inode is not None
                assert peers.holder(peer.inode, [os.getpid(), child.pid]) == child.pid
                assert peers.holder(peer.inode, [os.getpid()]) is None
        finally:
            child.kill()
            child.wait()


def test_a_closed_client_is_unknown() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        client = socket.create_connection(server.getsockname())
        accepted, _ = server.accept()
        client.close()
        with accepted:
            found = peers.tcp_peer(accepted)
            # the client's socket may linger in FIN_WAIT with no owner: never our process
            assert found is None or peers.holder(found.inode or 0, [os.getpid()]) is None


def test_unix_peer_credentials_and_process_facts() -> None:
    a, b = socket.socketpair(socket.AF_UNIX)
    with a, b:
        peer = peers.unix_peer(a)
    assert peer is not None
    assert (peer.pid, peer.uid, peer.gid) == (os.getpid(), os.getuid(), os.getgid())
    assert peers.session_of(os.getpid()) == os.getsid(0)
    assert peers.start_time(os.getpid()) == peers.start_time(os.getpid())
    assert peers.session_of(2 ** 22 + 1) is None and peers.start_time(2 ** 22 + 1) is None
