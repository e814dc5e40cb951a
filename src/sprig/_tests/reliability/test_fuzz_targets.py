"""The fuzz targets (fuzz/targets.py) run here on their seeds and on random bytes, without
atheris, so a target that rots (an import, a signature) fails the suite, not the long run."""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path
from types import ModuleType

import pytest

FUZZ_DIR = Path(__file__).resolve().parents[4] / "fuzz"


def load_targets() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sprig_fuzz_targets", FUZZ_DIR / "targets.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


targets = load_targets()


@pytest.mark.parametrize("name", sorted(targets.TARGETS))
def test_fuzz_target_survives_seeds_and_random_bytes(name: str) -> None:
    target = targets.TARGETS[name]
    rng = random.Random(1234)
    inputs = list(targets.SEEDS.get(name, []))
    for seed in list(inputs):
        for _ in range(100):         # mutate the seeds a little, as libFuzzer would
            b = bytearray(seed)
            for _ in range(rng.randrange(1, 4)):
                if b:
                    b[rng.randrange(len(b))] = rng.randrange(256)
            inputs.append(bytes(b))
    inputs += [rng.randbytes(rng.randrange(0, 300)) for _ in range(200)]
    for data in inputs:
        target(data)
