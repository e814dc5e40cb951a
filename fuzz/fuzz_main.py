"""``python fuzz/fuzz_main.py TARGET [libFuzzer flags]``: run one target under atheris."""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))

with atheris.instrument_imports():
    import targets


def main() -> None:
    name = sys.argv.pop(1)
    target = targets.TARGETS[name]
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
