"""Sprig's own Python runtime: ``bootstrap.py`` runs a ``package.module.function`` handler.

The bootstrap is a single stdlib-only script (Python 2.7 and 3.7+) run by the function's own
interpreter, so it lives here as a data file: :func:`bootstrap_path` finds it.
"""

from __future__ import annotations

from pathlib import Path

from sprig.assets import asset


def bootstrap_path() -> Path:
    """The bootstrap script handed to ``pythonX.Y -u`` (the core's published copy, readable by
    every run-as user; see :mod:`sprig.assets`)."""
    return asset("runtimes/python/bootstrap.py")
