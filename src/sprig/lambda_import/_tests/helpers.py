"""Shared test inputs: golden documents and small function sources."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

GOLDEN = Path(__file__).parent / "golden"
DIGEST_PLACEHOLDER = "<checked separately>"

PYTHON_HANDLER = "def lambda_handler(event, context):\n    return {'echo': event}\n"
NODE_HANDLER = "exports.handler = async (event) => ({ echo: event });\n"


def golden(name: str) -> Any:
    return json.loads((GOLDEN / name).read_text())


def without_digest(recipe: dict[str, Any]) -> dict[str, Any]:
    """A copy of the recipe whose artifact digests are replaced by the placeholder."""
    copy: dict[str, Any] = json.loads(json.dumps(recipe))
    for manifest in copy["Manifests"]:
        for artifact in manifest["Artifacts"]:
            artifact["Digest"] = DIGEST_PLACEHOLDER
    return copy


def python_code(tmp: Path) -> Path:
    code = tmp / "code"
    code.mkdir(parents=True)
    (code / "lambda_function.py").write_text(PYTHON_HANDLER)
    return code
