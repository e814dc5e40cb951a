"""What one component may see of a component's configuration, and secret redaction for output.

The single home of that rule (the IPC operations that return configuration all apply
:func:`readable_configuration`; the CLI and the management API use :func:`redact_secrets`):

* a component reads its own configuration fully, except secret values;
* it reads another component's configuration as Greengrass allows (no policy needed), minus a
  Lambda component's environment variables (``lambdaExecutionParameters.EnvironmentVariables``:
  they often carry credentials, and Greengrass has no policy to guard them);
* the ``aws.greengrass.SecretManager`` component's secret values (``secretString`` /
  ``secretBinary``, wherever they appear in it) are seen by no reader, that component
  included: they are served only by GetSecretValue, under its own policy.

Hidden values are replaced by :data:`REDACTED` (the keys stay, so a reader can tell that a
value exists but is not shown).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from sprig.lambda_params import ENVIRONMENT_VARIABLES_PATH
from sprig.recipe.model import ComponentType

SECRET_MANAGER: Final = "aws.greengrass.SecretManager"
SECRET_KEYS: Final = ("secretString", "secretBinary")
REDACTED: Final = "** redacted **"


def redact_secrets(value: Any) -> Any:
    """A copy of ``value`` with every ``secretString`` / ``secretBinary`` replaced, for output:
    secrets reach the secret store, never a log line, a CLI listing or an API answer."""
    if isinstance(value, Mapping):
        return {k: (REDACTED if k in SECRET_KEYS else redact_secrets(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [redact_secrets(v) for v in value]
    return value


def redact_deployment(summary: Mapping[str, Any]) -> Any:
    """A deployment's summary for a screen or an event stream: besides secrets, the values of
    Lambda environment variables its configuration updates MERGE are hidden (as
    :func:`readable_configuration` hides them from other readers)."""
    out: Any = redact_secrets(summary)
    updates = out.get("document", {}).get("configurationUpdate")
    if isinstance(updates, dict):
        for body in updates.values():
            merge = body.get("MERGE") if isinstance(body, dict) else None
            if isinstance(merge, dict):
                _redact_values_at(merge, ENVIRONMENT_VARIABLES_PATH)
    return out


def readable_configuration(reader: str, owner: str, owner_type: str | None,
                           configuration: Mapping[str, Any]) -> dict[str, Any]:
    """What component ``reader`` may see of component ``owner``'s ``configuration`` (a copy;
    ``owner_type`` is its recipe's ComponentType)."""
    if owner == SECRET_MANAGER:
        out: dict[str, Any] = redact_secrets(configuration)
    else:
        out = _copy(configuration)
    if reader != owner and owner_type == ComponentType.LAMBDA:
        _redact_values_at(out, ENVIRONMENT_VARIABLES_PATH)
    return out


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _redact_values_at(doc: dict[str, Any], path: tuple[str, ...]) -> None:
    node: Any = doc
    for key in path[:-1]:
        node = node.get(key) if isinstance(node, dict) else None
    if not isinstance(node, dict) or path[-1] not in node:
        return
    target = node[path[-1]]
    node[path[-1]] = (dict.fromkeys(target, REDACTED) if isinstance(target, Mapping)
                      else REDACTED)
