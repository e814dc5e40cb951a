"""Sprig's own Python runtime: ``bootstrap.py`` runs a ``package.module.function`` handler.

The bootstrap is a single stdlib-only script (Python 2.7 and 3.7+) run by the function's own
interpreter, so it lives here as a data file: :func:`bootstrap_path` finds it.
"""

from __future__ import annotations

from pathlib import Path

BOOTSTRAP_DIR = Path(__file__).resolve().parent


def bootstrap_path() -> Path:
    """The bootstrap script handed to ``pythonX.Y -u``."""
    return BOOTSTRAP_DIR / "bootstrap.py"
