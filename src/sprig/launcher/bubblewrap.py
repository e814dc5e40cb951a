"""The bubblewrap command line of a GreengrassContainer sandbox, as a pure function.

:func:`build_argv` turns a :class:`LaunchSpec` plus a :class:`HostView` (what exists on the
host, probed by :mod:`sprig.launcher.sandbox`) into the ``bwrap`` argv. Keeping it pure means
every mount decision is visible and testable without starting anything.

The sandbox starts from an empty root: nothing of the host is visible unless listed here. In
particular nothing of Sprig's root directory (state, credentials, other functions' code and
work directories) and no home directory appears, except paths the spec lists explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sprig.launcher.spec import LaunchSpec

# Host directories with the shared libraries and programs every runtime needs (python3, node,
# java, sh, coreutils). /usr holds them all on a merged-/usr system (Debian 12, Raspberry Pi OS
# bookworm); on older layouts /bin, /sbin and /lib* are real directories and are bound too.
SYSTEM_DIRS: tuple[str, ...] = ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32")

# Single files and directories of /etc, each for a reason; anything else of /etc (shadow,
# ssh keys, sudoers, the core's own configuration) stays invisible.
ETC_PATHS: tuple[str, ...] = (
    "/etc/passwd", "/etc/group",        # uid/gid → names (getpass, `id`, Java's user.name)
    "/etc/nsswitch.conf",                # how glibc resolves names, users and hosts
    "/etc/hosts", "/etc/resolv.conf",    # DNS: the network is shared with the host
    "/etc/host.conf", "/etc/gai.conf",   # resolver and getaddrinfo ordering
    "/etc/ssl", "/etc/ca-certificates",  # CA bundle: TLS to AWS endpoints from the function
    "/etc/alternatives",                 # Debian's /usr/bin/java, node... are symlinks into it
    "/etc/java-17-openjdk",              # JVM security/config files (symlinked from /usr/lib/jvm)
    "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d",  # dynamic linker lookup
    "/etc/localtime", "/etc/timezone",   # local time in logs and datetime
    "/etc/mime.types",                   # Python mimetypes, Java URLConnection
    "/etc/protocols", "/etc/services",   # getprotobyname / getservbyname (sockets)
    "/etc/os-release",                   # platform detection (boto3 user agent, node os)
    "/etc/python3", "/etc/python3.11",   # Debian's python3 site configuration
)

# The only thing the function sees beyond the system is what the spec lists; the sandbox
# user's home (HOME) does not exist inside unless listed.


@dataclass(frozen=True)
class HostView:
    """What exists on the host, as probed by :func:`sprig.launcher.sandbox.probe_host`.

    ``symlinks`` are top-level links such as ``/lib -> usr/lib`` (recreated as links);
    ``system_dirs`` and ``etc`` are existing paths bound read-only; ``runtime_prefixes`` are
    installation directories of the interpreter outside /usr (e.g. a pyenv or a venv), bound
    read-only at the same path so ``argv[0]`` works inside.
    """

    symlinks: tuple[tuple[str, str], ...] = ()
    system_dirs: tuple[str, ...] = ()
    etc: tuple[str, ...] = ()
    runtime_prefixes: tuple[str, ...] = ()
    etc_dir: str | None = None     # a prepared copy of ``etc`` (see launcher.etc_view)


def _bind(flag: str, source: Path | str, dest: Path | str) -> list[str]:
    return [flag, str(source), str(dest)]


def _mounts_under(spec: LaunchSpec, top: str) -> bool:
    """True if the spec mounts something at or below ``top`` (a prepared directory bound
    read-only there would leave bubblewrap no way to make the mount point)."""
    paths = (*spec.read_only_paths, *spec.writable_paths, *spec.ephemeral_paths,
             *(m.destination for m in (*spec.volumes, *spec.devices)))
    return any(str(p) == top or str(p).startswith(top + "/") for p in paths)


def _skeleton_dirs(spec: LaunchSpec, host: HostView, cmd: list[str]) -> list[str]:
    """The directories bwrap creates on the way to Sprig's own mounts (the function's code,
    runtime, work directory, sockets): made traversable but not listable (0111), so a function
    cannot list the core's root directory or the names in it — it reaches what it was given by
    path, and nothing tells it what else is there. The sandbox's root is read-only, so the
    function cannot change them back (below a private ``/tmp`` it could: the core's root lives
    in /var/lib/sprig, not in /tmp, on a device)."""
    binds = {cmd[i + 2] for i, arg in enumerate(cmd)
             if arg in ("--bind", "--ro-bind", "--dev-bind")}
    binds |= {"/proc", "/dev", *host.system_dirs}
    # /tmp is the sandbox's own tmpfs (not the host's): the way to a mount below it is chmodded
    mounted = binds | {cmd[i + 2] for i, arg in enumerate(cmd) if arg == "--symlink"}
    mounted |= {"/", "/tmp"}
    system = (*host.system_dirs, *host.etc, *host.runtime_prefixes)
    out: list[str] = []
    for path in (*spec.read_only_paths, *spec.writable_paths, *spec.ephemeral_paths):
        for parent in Path(path).parents:
            p = str(parent)
            if (p in mounted or p in out or any(s == p or s.startswith(p + "/") for s in system)
                    or any(p.startswith(b + "/") for b in binds)):
                continue        # a mount point, a way to a system path, or inside a mount
            out.append(p)
    return sorted(out, key=lambda p: (p.count("/"), p))


def build_argv(spec: LaunchSpec, host: HostView, *, bwrap: str = "bwrap",
               argv: tuple[str, ...] | None = None,
               user_map: tuple[int, int] | None = None) -> list[str]:
    """The full command line: ``bwrap <options> -- <argv>``.

    ``user_map`` (uid, gid): the ids the process has inside, when bwrap runs as another host
    uid (a sandbox uid): its own user namespace maps that host uid to them.

    Mount order matters: bwrap applies options left to right and later mounts cover earlier
    ones, so the private /tmp comes before the spec's paths (a function directory under /tmp
    stays visible) and the final ``--remount-ro /`` makes the root itself read-only.
    """
    cmd: list[str] = [
        bwrap,
        "--die-with-parent",   # the core dies → the sandbox dies, no orphans
        "--new-session",       # no TIOCSTI into the core's terminal
        "--cap-drop", "ALL",   # bwrap started as root (posixUser root) would keep them all
        *(("--unshare-user", "--uid", str(user_map[0]), "--gid", str(user_map[1]))
          if user_map else ()),
        "--unshare-pid",       # host processes invisible; pid 1 is bwrap's init
        "--unshare-ipc",       # no System V IPC / POSIX mqueues shared with the host
        "--unshare-uts",       # own hostname namespace
        # the mount namespace is always new; the network namespace is shared on purpose
        # (Runtime API on loopback, MQTT, AWS endpoints), as in Greengrass.
        "--proc", "/proc",     # a /proc of the new PID namespace only
        "--dev", "/dev",       # minimal /dev: null zero full random urandom tty, pts, shm
        *(("--size", str(spec.ephemeral_storage_kb * 1024)) if spec.ephemeral_storage_kb
          else ()),
        "--tmpfs", "/tmp",     # private writable /tmp
    ]
    for link, target in host.symlinks:
        cmd += ["--symlink", target, link]
    for d in host.system_dirs:
        cmd += _bind("--ro-bind", d, d)
    if host.etc_dir is not None and not _mounts_under(spec, "/etc"):
        cmd += _bind("--ro-bind", host.etc_dir, "/etc")     # one mount instead of one per path
    else:
        for p in host.etc:
            cmd += _bind("--ro-bind", p, p)
    for p in host.runtime_prefixes:
        cmd += _bind("--ro-bind", p, p)
    if spec.mount_ro_sysfs:
        cmd += _bind("--ro-bind", "/sys", "/sys")
    for path in spec.read_only_paths:
        if not any(str(path) == d or str(path).startswith(d + "/") for d in host.system_dirs):
            cmd += _bind("--ro-bind", path, path)   # (a system directory is bound already)
    for path in spec.writable_paths:
        cmd += _bind("--bind", path, path)
    for path in spec.ephemeral_paths:
        # a directory of its own, in memory, bounded: writes never reach the host's disk
        size = ("--size", str(spec.ephemeral_storage_kb * 1024)) if spec.ephemeral_storage_kb \
            else ()
        cmd += [*size, "--tmpfs", str(path)]
    for m in spec.volumes:
        cmd += _bind("--bind" if m.writable else "--ro-bind", m.source, m.destination)
    for m in spec.devices:
        # bubblewrap mounts plain binds "nodev", so a device always needs --dev-bind; read-only
        # devices are enforced by the devices cgroup (see sandbox.prepare).
        cmd += _bind("--dev-bind", m.source, m.destination)
    for d in _skeleton_dirs(spec, host, cmd):
        cmd += ["--chmod", "0111", d]
    cmd += ["--remount-ro", "/", "--chdir", str(spec.cwd), "--"]
    cmd += list(argv if argv is not None else spec.argv)
    return cmd
