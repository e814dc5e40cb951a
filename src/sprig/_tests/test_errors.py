"""Every exception Sprig defines is a SprigError, and no two share a name.

Found by parsing the production code (``sprig/errors.py`` says why the few exceptions are).
"""

from __future__ import annotations

import ast
import importlib
from collections import defaultdict
from pathlib import Path

from sprig.errors import SprigError

SPRIG = Path(__file__).resolve().parents[1]

#: Code that runs inside a function's process: it cannot import Sprig.
IN_FUNCTION_PROCESS = ("runtimes/python/", "shims/")

#: Private signals, caught where they are raised and never shown to a user.
SIGNALS = {
    "sprig.http1._Refusal",                     # becomes the HTTP error answer at once
    "sprig.httpserver.NoRoute",                 # becomes 404/405
    "sprig.events.StreamClosed",                # the end of an event stream
    "sprig.runtime_api.session.SessionAborted",  # the worker's Runtime API session ended
    "sprig.runtime_api.session.InitFailedError",  # the runtime reported init/error: an outcome
    "sprig.functions.worker.WorkerTimeout",     # outcomes of one invocation, mapped to AWS's
    "sprig.functions.worker.WorkerExited",      # errors by sprig.functions.results
}


def _exception_classes() -> list[tuple[str, int, str]]:
    """(module, line, class name) of every class in production code deriving from something
    named like an exception."""
    found = []
    for path in sorted(SPRIG.rglob("*.py")):
        rel = path.relative_to(SPRIG).as_posix()
        if "_tests/" in rel or rel.endswith("conftest.py") or rel.startswith(IN_FUNCTION_PROCESS):
            continue
        module = "sprig." + rel[:-3].replace("/", ".").removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and any(
                    (isinstance(b, ast.Name) and (b.id.endswith(("Error", "Exception"))
                                                  or b.id in {"Refused", "DiskFull"}))
                    or isinstance(b, ast.Attribute) for b in node.bases):
                found.append((module, node.lineno, node.name))
    return found


def test_every_exception_is_a_sprig_error() -> None:
    outside = []
    for module, line, name in _exception_classes():
        cls = getattr(importlib.import_module(module), name)
        if not isinstance(cls, type) or not issubclass(cls, BaseException):
            continue
        if f"{module}.{name}" not in SIGNALS and not issubclass(cls, SprigError):
            outside.append(f"{module}:{line}: {name} is not a SprigError")
    assert not outside, "\n".join(outside)


def test_exception_names_are_unique() -> None:
    where: dict[str, list[str]] = defaultdict(list)
    for module, _line, name in _exception_classes():
        cls = getattr(importlib.import_module(module), name)
        if isinstance(cls, type) and issubclass(cls, BaseException):
            where[name].append(module)
    twice = {name: modules for name, modules in where.items() if len(modules) > 1}
    assert not twice, f"exception names defined more than once: {twice}"


def test_the_signals_listed_exist() -> None:
    for dotted in SIGNALS:
        module, name = dotted.rsplit(".", 1)
        assert isinstance(getattr(importlib.import_module(module), name), type), dotted
