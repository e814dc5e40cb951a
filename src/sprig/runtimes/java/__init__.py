"""The Java runtime: build its jar once, and start it.

The runtime ships as Java sources (``src/``: the aws-lambda-java-core interfaces, so existing
handlers compile and run, plus ``io.sprig.runtime.Bootstrap``, the Runtime API loop). They are
compiled on the device, once per source version, into a cached jar: the package stays free of
binaries and the jar matches the local JDK (``--release 8`` when the JDK can target Java 8, so
java8 functions can use it too).
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

from sprig.errors import LaunchError

SOURCES = Path(__file__).resolve().parent / "src"
MAIN_CLASS = "io.sprig.runtime.Bootstrap"
JAR_PREFIX = "sprig-java-runtime-"
# Small-footprint JVM flags for short-lived, small-heap workers: one GC thread, C1 only (fast
# start), class-data sharing when available, no /tmp/hsperfdata files (read-only sandboxes).
JVM_FLAGS = ("-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xshare:auto", "-XX:-UsePerfData",
             "-Dfile.encoding=UTF-8")


class JavaRuntimeUnavailable(LaunchError):
    """The Java runtime jar cannot be built or a Java executable cannot be used."""


def _source_files() -> list[Path]:
    return sorted(SOURCES.rglob("*.java"))


def sources_digest() -> str:
    """A short SHA-256 of the runtime sources (relative paths and contents)."""
    h = hashlib.sha256()
    for path in _source_files():
        h.update(path.relative_to(SOURCES).as_posix().encode())
        h.update(b"\0")
        h.update(path.read_bytes())
        h.update(b"\0")
    return h.hexdigest()[:16]


def runtime_jar_path(cache_dir: Path) -> Path:
    """Where :func:`ensure_runtime_jar` puts the jar for the current sources."""
    return cache_dir / f"{JAR_PREFIX}{sources_digest()}.jar"


def ensure_runtime_jar(cache_dir: Path, *, javac: str | None = None) -> Path:
    """Return the runtime jar in ``cache_dir``, compiling it first if it is not there yet.

    Safe to call from several processes at once: compilers are serialized by a lock file, and
    the jar appears by an atomic rename, so a reader never sees half a jar.

    Raises:
        JavaRuntimeUnavailable: there is no cached jar and no ``javac`` (a JDK), or it failed.
    """
    jar = runtime_jar_path(cache_dir)
    if jar.is_file():
        return jar
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        with open(cache_dir / f"{JAR_PREFIX}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if jar.is_file():  # built by another process while we waited
                return jar
            _build(jar, javac)
    except OSError as exc:
        raise JavaRuntimeUnavailable(
            f"Cannot build the Sprig Java runtime jar in {cache_dir}: {exc}") from exc
    return jar


def _build(jar: Path, javac: str | None) -> None:
    """Compile and package the jar beside its final name, then rename it into place."""
    cache_dir = jar.parent
    compiler = javac or shutil.which("javac")
    if compiler is None:
        raise JavaRuntimeUnavailable(
            f"Java functions need the Sprig Java runtime jar ({jar.name} in {cache_dir}), "
            "and it cannot be built: javac was not found on PATH; install a JDK "
            "(e.g. apt-get install default-jdk-headless), version 8 or later")
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".build-") as tmp:
        classes = Path(tmp) / "classes"
        _compile(compiler, classes)
        partial = Path(tmp) / jar.name
        _write_jar(classes, partial)
        os.replace(partial, jar)


def _compile(javac: str, out: Path) -> None:
    sources = [str(p) for p in _source_files()]
    errors = ""
    # --release 8 keeps the jar usable by java8 functions; a JDK that dropped 8 gets 11.
    for release in ("8", "11"):
        try:
            proc = subprocess.run(
                [javac, "--release", release, "-encoding", "UTF-8", "-nowarn", "-d", str(out),
                 *sources],
                capture_output=True, text=True, check=False)
        except OSError as exc:
            raise JavaRuntimeUnavailable(
                f"Could not compile the Sprig Java runtime: cannot run {javac}: {exc}") from exc
        if proc.returncode == 0:
            return
        errors = (proc.stderr or proc.stdout).strip()
        if "release" not in errors:
            break
    raise JavaRuntimeUnavailable(f"Could not compile the Sprig Java runtime with {javac}: "
                                 f"{errors[-2000:]}")


def _write_jar(classes: Path, jar: Path) -> None:
    manifest = f"Manifest-Version: 1.0\r\nMain-Class: {MAIN_CLASS}\r\nCreated-By: sprig\r\n\r\n"
    with zipfile.ZipFile(jar, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("META-INF/MANIFEST.MF", manifest)
        for path in sorted(classes.rglob("*.class")):
            zf.write(path, path.relative_to(classes).as_posix())


_VERSION = re.compile(r'version "(\d+)(?:\.(\d+))?')


@functools.lru_cache(maxsize=16)
def java_major_version(java: str) -> int:
    """The major version of a ``java`` executable (8 for ``1.8.0_x``, 17 for ``17.0.x``).

    Raises:
        JavaRuntimeUnavailable: it cannot be run or its version cannot be read.
    """
    try:
        proc = subprocess.run([java, "-version"], capture_output=True, text=True, check=False,
                              timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise JavaRuntimeUnavailable(f"Cannot run {java} -version: {exc}") from exc
    match = _VERSION.search(proc.stderr + proc.stdout)
    if proc.returncode != 0 or match is None:
        raise JavaRuntimeUnavailable(
            f"Cannot read the Java version from {java} -version (exit {proc.returncode}): "
            f"{(proc.stderr or proc.stdout).strip()[:500]}")
    major = int(match.group(1))
    if major == 1 and match.group(2):
        major = int(match.group(2))
    return major


def heap_mb(memory_mb: int) -> int | None:
    """-Xmx for a memory size: most of it, leaving room for the JVM's own memory (metaspace,
    code cache, thread stacks: some 40-50 MB with our flags), so the cgroup limit is not hit
    before the heap is full. None when there is no memory size."""
    if memory_mb <= 0:
        return None
    return max(16, min(memory_mb * 85 // 100, memory_mb - 48))


def classpath(runtime_jar: Path, code_dir: Path) -> str:
    """The runtime jar, then the code: a jar, or a directory with ``classes/`` and ``lib/*``."""
    entries = [str(runtime_jar)]
    if code_dir.suffix in (".jar", ".zip"):
        if code_dir.suffix == ".jar":
            entries.append(str(code_dir))
    else:
        entries += [str(code_dir), str(code_dir / "classes"), str(code_dir / "lib" / "*"),
                    str(code_dir / "*")]
    return os.pathsep.join(entries)


def launch_argv(java: str, runtime_jar: Path, code_dir: Path, handler: str,
                memory_mb: int) -> list[str]:
    """The argv of a Java worker.

    ``code_dir`` is the function's code: a directory (with its ``.class`` files at the top or in
    ``classes/``, and jars in ``lib/`` or at the top), a ``.jar``, or a ``.zip`` deployment
    package (unpacked by the bootstrap). ``memory_mb`` sets -Xmx (0: the JVM's default).
    """
    argv = [java, *JVM_FLAGS]
    heap = heap_mb(memory_mb)
    if heap is not None:
        argv.append(f"-Xmx{heap}m")
    if code_dir.suffix == ".zip":
        argv.append(f"-Dsprig.codeZip={code_dir}")
    argv += ["-cp", classpath(runtime_jar, code_dir), MAIN_CLASS, handler]
    return argv


__all__ = [
    "MAIN_CLASS",
    "JavaRuntimeUnavailable",
    "classpath",
    "ensure_runtime_jar",
    "heap_mb",
    "java_major_version",
    "launch_argv",
    "runtime_jar_path",
    "sources_digest",
]
