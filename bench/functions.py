"""The handlers every benchmark shares, written to disk once, and their Sprig components.

One echo handler per language, identical in behaviour (return the event; sleep first when the
event says ``sleep_ms``, to model I/O-bound work when measuring concurrency), so Sprig and each
baseline run exactly the same code.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sprig.functions.runtimes import installed_pythons
from sprig.lambda_import.importer import import_function
from sprig.lambda_import.params import ImportFlags

PYTHON_ECHO = '''\
import time


def handler(event, context):
    if isinstance(event, dict) and event.get("sleep_ms"):
        time.sleep(event["sleep_ms"] / 1000)
    return event
'''

PYTHON_HELLO = '''\
def handler(event, context):
    return "Hello world"
'''

NODE_ECHO = '''\
exports.handler = async (event) => {
  if (event && event.sleep_ms) await new Promise((r) => setTimeout(r, event.sleep_ms));
  return event;
};
'''

JAVA_ECHO = '''\
package bench;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;

/** Echo: the invocation's bytes back, unchanged. main() is the bare-JVM baseline. */
public class Echo {
    public static void handle(InputStream in, OutputStream out) throws IOException {
        in.transferTo(out);
    }

    public static void main(String[] args) {
    }
}
'''


@dataclass(frozen=True)
class Code:
    """Where each handler lives (directories readable by the run-as user)."""

    python_echo: Path
    python_hello: Path
    node_echo: Path
    java_jar: Path | None
    python_exe: str


def python_for_functions() -> str:
    """The interpreter Sprig picks for ``python3.11`` (a real ELF, not a pyenv shim), so the
    bare-start baseline starts the same binary."""
    found = installed_pythons()
    exe = found.get((3, 11)) or (found[max(found)] if found else None)
    return str(exe) if exe else "python3"


def write_code(work: Path) -> Code:
    for name, text, file in (("py-echo", PYTHON_ECHO, "app.py"),
                             ("py-hello", PYTHON_HELLO, "app.py"),
                             ("node-echo", NODE_ECHO, "index.js")):
        (work / name).mkdir(parents=True, exist_ok=True)
        (work / name / file).write_text(text)
    jar = None
    if shutil.which("javac") and shutil.which("jar"):
        src = work / "java-src" / "bench"
        src.mkdir(parents=True, exist_ok=True)
        (src / "Echo.java").write_text(JAVA_ECHO)
        classes = work / "java-classes"
        subprocess.run(["javac", "-d", str(classes), str(src / "Echo.java")], check=True,
                       timeout=120)
        jar = work / "echo.jar"
        subprocess.run(["jar", "cf", str(jar), "-C", str(classes), "."], check=True,
                       timeout=120)
    return Code(work / "py-echo", work / "py-hello", work / "node-echo", jar,
                python_for_functions())


@dataclass(frozen=True)
class Fn:
    """One function component to deploy."""

    name: str
    lang: str                       # python | node | java | hello
    pinned: bool
    isolation: str = "NoContainer"  # or GreengrassContainer
    memory_kb: int = 16384
    timeout_s: int = 30


def runtime_of(lang: str) -> tuple[str, str]:
    """(runtime, handler) for each language's echo."""
    if lang in ("python", "hello"):
        return "python3.11", "app.handler"
    if lang == "node":
        major = subprocess.run(["node", "-p", "process.versions.node.split('.')[0]"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return f"nodejs{major}.x", "index.handler"
    java = subprocess.run(["java", "-XshowSettings:properties", "-version"],
                          capture_output=True, text=True).stderr
    spec = next((line.split("=")[1].strip() for line in java.splitlines()
                 if "java.specification.version" in line), "17")
    return f"java{spec}", "bench.Echo::handle"


def import_all(code: Code, fns: list[Fn], out: Path) -> Path:
    """Write recipes and artifacts for ``fns`` into ``out`` (one deployment's worth)."""
    runtimes: dict[str, tuple[str, str]] = {}
    for fn in fns:
        if fn.lang not in runtimes:
            runtimes[fn.lang] = runtime_of(fn.lang)
        runtime, handler = runtimes[fn.lang]
        src = {"python": code.python_echo, "hello": code.python_hello,
               "node": code.node_echo, "java": code.java_jar}[fn.lang]
        if src is None:
            raise RuntimeError(f"no code for {fn.lang}")
        import_function(src, out, ImportFlags(
            name=fn.name, runtime=runtime, handler=handler, pinned=fn.pinned,
            isolation=fn.isolation, memory_kb=str(fn.memory_kb), timeout=str(fn.timeout_s)))
    return out
