"""``deploymentLimits`` in config.yaml: honoured when valid, refused clearly when not."""

from __future__ import annotations

from pathlib import Path

import pytest

from sprig.errors import ValidationError
from sprig.recipe.limits import DEFAULT_LIMITS, StagingLimits
from sprig.settings import CoreSettings


def load(tmp_path: Path, text: str) -> CoreSettings:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return CoreSettings.load(path)


def test_defaults_without_the_section(tmp_path: Path) -> None:
    assert load(tmp_path, "thingName: t\n").deployment_limits == DEFAULT_LIMITS


def test_each_key_is_honoured(tmp_path: Path) -> None:
    settings = load(tmp_path, "deploymentLimits:\n  recipeMaxSizeBytes: 65536\n"
                              "  artifactsMaxSizeBytes: 10485760\n  artifactsMaxFiles: 500\n")
    assert settings.deployment_limits == StagingLimits(
        recipe_max_bytes=65536, artifacts_max_bytes=10485760, artifacts_max_files=500)


@pytest.mark.parametrize(("text", "words"), [
    ("deploymentLimits: 5\n", "deploymentLimits: must be a mapping"),
    ("deploymentLimits:\n  maxBytes: 5\n", "deploymentLimits.maxBytes: unknown key"),
    ("deploymentLimits:\n  artifactsMaxFiles: 0\n", "artifactsMaxFiles: must be a whole number"),
    ("deploymentLimits:\n  recipeMaxSizeBytes: 1.5e6\n", "recipeMaxSizeBytes: must be a whole"),
    ("deploymentLimits:\n  artifactsMaxSizeBytes: true\n", "artifactsMaxSizeBytes: must be"),
])
def test_bad_values_are_refused_naming_the_key(tmp_path: Path, text: str, words: str) -> None:
    with pytest.raises(ValidationError) as info:
        load(tmp_path, text)
    assert words in str(info.value) and "config.yaml" in str(info.value)
