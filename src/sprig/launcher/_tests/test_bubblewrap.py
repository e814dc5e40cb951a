"""The pure bwrap argv builder and the host probing around it."""

from __future__ import annotations

from pathlib import Path

from sprig.lambda_params import ContainerMode
from sprig.launcher.bubblewrap import HostView, build_argv
from sprig.launcher.sandbox import probe_host, runtime_prefixes
from sprig.launcher.spec import LaunchSpec, Mount

HOST = HostView(symlinks=(("/lib", "usr/lib"),), system_dirs=("/usr",),
                etc=("/etc/passwd", "/etc/resolv.conf"), runtime_prefixes=("/opt/py",))


def spec(**kw: object) -> LaunchSpec:
    return LaunchSpec(argv=("/usr/bin/python3", "-c", "pass"), env={}, cwd=Path("/fn"),
                      container_mode=ContainerMode.GREENGRASS_CONTAINER,
                      **kw)  # type: ignore[arg-type]


def triples(argv: list[str], flag: str) -> list[tuple[str, str]]:
    return [(argv[i + 1], argv[i + 2]) for i, a in enumerate(argv) if a == flag]


def test_namespaces_and_basics() -> None:
    argv = build_argv(spec(), HOST, bwrap="/usr/bin/bwrap")
    assert argv[0] == "/usr/bin/bwrap"
    for flag in ("--unshare-pid", "--unshare-ipc", "--unshare-uts", "--die-with-parent",
                 "--new-session"):
        assert flag in argv
    assert argv[argv.index("--cap-drop") + 1] == "ALL"
    assert "--unshare-net" not in argv and "--unshare-all" not in argv   # network shared
    assert "--share-net" not in argv
    sep = argv.index("--")
    assert argv[sep + 1:] == ["/usr/bin/python3", "-c", "pass"]
    assert argv[sep - 4:sep] == ["--remount-ro", "/", "--chdir", "/fn"]
    assert triples(argv, "--ro-bind")[:4] == [("/usr", "/usr"), ("/etc/passwd", "/etc/passwd"),
                                              ("/etc/resolv.conf", "/etc/resolv.conf"),
                                              ("/opt/py", "/opt/py")]
    assert argv[argv.index("--symlink"):][:3] == ["--symlink", "usr/lib", "/lib"]
    assert ("/sys", "/sys") not in triples(argv, "--ro-bind")


def test_sysfs_only_when_asked() -> None:
    assert ("/sys", "/sys") in triples(build_argv(spec(mount_ro_sysfs=True), HOST), "--ro-bind")


def test_paths_volumes_devices_after_private_tmp() -> None:
    s = spec(read_only_paths=(Path("/tmp/code"),), writable_paths=(Path("/var/w"),),
             volumes=(Mount(Path("/srv/a"), Path("/data/a")),
                      Mount(Path("/srv/b"), Path("/data/b"), writable=True)),
             devices=(Mount(Path("/dev/ttyS0"), Path("/dev/ttyS0"), writable=True),
                      Mount(Path("/dev/i2c-1"), Path("/dev/i2c-1"))))
    argv = build_argv(s, HOST)
    ro, rw, dev = (triples(argv, "--ro-bind"), triples(argv, "--bind"),
                   triples(argv, "--dev-bind"))
    assert ("/tmp/code", "/tmp/code") in ro and ("/srv/a", "/data/a") in ro
    assert rw == [("/var/w", "/var/w"), ("/srv/b", "/data/b")]
    assert dev == [("/dev/ttyS0", "/dev/ttyS0"), ("/dev/i2c-1", "/dev/i2c-1")]
    # the private /tmp comes first so a function directory under /tmp stays visible
    assert argv.index("/tmp") < argv.index("/tmp/code")
    # nothing of the host root, /root or /home is bound
    sources = [src for src, _ in ro + rw]
    assert "/" not in sources
    assert not any(src.startswith(("/root", "/home")) for src in sources)


def test_runtime_prefixes(tmp_path: Path) -> None:
    assert runtime_prefixes("/usr/bin/python3") == ()
    real = tmp_path / "pyenv" / "versions" / "3.11.7" / "bin"
    real.mkdir(parents=True)
    (real / "python3.11").write_text("")
    venv = tmp_path / "venv" / "bin"
    venv.mkdir(parents=True)
    (venv / "python").symlink_to(real / "python3.11")
    assert runtime_prefixes(str(venv / "python")) == (str(tmp_path / "venv"),
                                                       str(real.parent))
    assert runtime_prefixes(str(tmp_path / "tool")) == (str(tmp_path),)


def test_no_prefix_for_an_executable_inside_listed_paths(tmp_path: Path) -> None:
    code = tmp_path / "root" / "artifacts" / "fn" / "bin"
    code.mkdir(parents=True)
    (code / "bootstrap").write_text("")
    exe = str(code / "bootstrap")
    assert probe_host(exe).runtime_prefixes == (str(code.parent),)   # would widen the view
    assert probe_host(exe, (str(code),)).runtime_prefixes == ()


def test_a_sandbox_uid_is_mapped_to_the_run_as_user_inside() -> None:
    argv = build_argv(spec(), HOST, user_map=(999, 995))
    i = argv.index("--unshare-user")
    assert argv[i:i + 5] == ["--unshare-user", "--uid", "999", "--gid", "995"]
    assert "--unshare-user" not in build_argv(spec(), HOST)


def test_the_directories_leading_to_sprigs_mounts_are_not_listable() -> None:
    s = spec(read_only_paths=(Path("/var/lib/sprig/packages/code"),
                              Path("/var/lib/sprig/runtime-assets/x")),
             writable_paths=(Path("/var/lib/sprig/work/Fn"), Path("/var/lib/sprig/ipc.socket")),
             volumes=(Mount(Path("/srv/a"), Path("/data/a")),))
    argv = build_argv(s, HOST)
    chmod = triples(argv, "--chmod")
    assert chmod == [("0111", "/var"), ("0111", "/var/lib"), ("0111", "/var/lib/sprig"),
                     ("0111", "/var/lib/sprig/packages"),
                     ("0111", "/var/lib/sprig/runtime-assets"),
                     ("0111", "/var/lib/sprig/work")]
    # after every bind (they create the directories), before the root goes read-only
    last_bind = max(i for i, a in enumerate(argv) if a in ("--bind", "--ro-bind"))
    assert last_bind < argv.index("--chmod") < argv.index("--remount-ro")
    # system directories and a volume's parents stay as they are
    assert not any(p in ("/usr", "/etc", "/data", "/tmp", "/") for _, p in chmod)


def test_nothing_inside_a_mount_is_chmodded() -> None:
    """A runtime below a bound system directory (Java's /usr/lib/jvm/...): its parents are the
    host's, inside a read-only bind, and stay as they are."""
    s = spec(read_only_paths=(Path("/usr/lib/jvm/java-17/lib"), Path("/tmp/code/fn")))
    chmod = [p for _, p in triples(build_argv(s, HOST), "--chmod")]
    assert chmod == ["/tmp/code"]


def test_ephemeral_storage_is_a_sized_tmpfs_for_tmp_and_the_listed_paths() -> None:
    argv = build_argv(spec(ephemeral_storage_kb=2048, ephemeral_paths=(Path("/var/w/fn"),)),
                      HOST)
    sized = [argv[i + 1:i + 4] for i, a in enumerate(argv) if a == "--size"]
    assert sized == [[str(2048 * 1024), "--tmpfs", "/tmp"],
                     [str(2048 * 1024), "--tmpfs", "/var/w/fn"]]
    assert ("/var/w/fn", "/var/w/fn") not in triples(argv, "--bind")
    assert "--size" not in build_argv(spec(), HOST)
