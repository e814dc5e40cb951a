"""The reverse of the import: a deployed Lambda component's configuration back in the
``componentLambdaParameters`` shape, so a user can round-trip (``sprig lambda export-params``).

Configuration read back from a device is looser than what we generate: numbers may have become
floats (``3.0``) or strings, maps keyed ``"0"``, ``"1"``… stand for lists, volumes may use
``source``/``destination`` (seen in a Greengrass test fixture) instead of ``sourcePath``/
``destinationPath``, and event-source types may be spelled ``Pubsub``/``IotCore`` (AWS-provided
Lambda components). All of those are accepted and normalised. Missing keys take their defaults,
so the result is the *effective* parameters. Which key goes where, and its default, is the one
table of Lambda parameters (:data:`sprig.lambda_params.PARAMETERS`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

import yaml

from sprig.lambda_import.recipe import ENV_EXEC_ARGS, HANDLER_ARG
from sprig.lambda_params import API_PARAMETERS, Kind, Parameter, get_path, set_path

ARGS_KEY = next(p.api_path for p in API_PARAMETERS if p.kind is Kind.ARGS)
_TYPE_ALIASES = {"pubsub": "PUB_SUB", "pub_sub": "PUB_SUB", "iotcore": "IOT_CORE",
                 "iot_core": "IOT_CORE"}


def _int(value: Any, default: int) -> int:
    if isinstance(value, bool) or value is None:
        return default
    if isinstance(value, int):
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return int(number) if number.is_integer() else default


def _bool(value: Any, default: bool) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return default


def _entries(value: Any) -> list[Any]:
    """A list, or a map keyed by index strings, as an ordered list."""
    if isinstance(value, list):
        return value
    if isinstance(value, Mapping):
        keys = sorted(value, key=lambda k: (0, int(k)) if str(k).isdigit() else (1, str(k)))
        return [value[k] for k in keys]
    return []


def _mount_options(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {"permission": str(entry.get("permission") or "ro").lower(),
            "addGroupOwner": _bool(entry.get("addGroupOwner"), False)}


def _volume(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {"sourcePath": str(entry.get("sourcePath", entry.get("source", ""))),
            "destinationPath": str(entry.get("destinationPath", entry.get("destination", ""))),
            **_mount_options(entry)}


def _device(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {"path": str(entry.get("path", "")), **_mount_options(entry)}


def _event_source(entry: Mapping[str, Any]) -> dict[str, Any]:
    kind = str(entry.get("type", ""))
    return {"topic": str(entry.get("topic", "")),
            "type": _TYPE_ALIASES.get(kind.lower(), str(entry.get("type", "PUB_SUB")))}


_ENTRIES = {"volumes": _volume, "devices": _device, "event_sources": _event_source}


def _lenient(param: Parameter, raw: Any) -> Any:
    """``raw`` read back from a device as the import API spells ``param``'s value."""
    default = param.default
    if param.kind is Kind.INTEGER:
        assert isinstance(default, int)
        return _int(raw, default)
    if param.kind is Kind.BOOLEAN:
        assert isinstance(default, bool)
        return _bool(raw, default)
    if param.kind is Kind.ENUM:
        assert isinstance(default, StrEnum)
        return str(raw or default.value)
    if param.kind is Kind.STRINGS:
        return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, Mapping) else {}
    if param.kind is Kind.ARGS:
        return []
    return [_ENTRIES[param.field](e) for e in _entries(raw) if isinstance(e, Mapping)]


def configuration_to_lambda_parameters(config: Mapping[str, Any]) -> dict[str, Any]:
    """Map a Lambda component's configuration (reference §2.2 keys) to
    ``componentLambdaParameters``. ``execArgs`` is not configuration (it lives in the recipe's
    setenv; see :func:`exec_args_from_recipe`), so it is returned empty."""
    out: dict[str, Any] = {}
    for param in API_PARAMETERS:
        raw = get_path(config, param.key) if param.key is not None else None
        set_path(out, param.api_path, _lenient(param, raw))
    return out


def _get_ci(doc: Mapping[str, Any], key: str) -> Any:
    """``doc[key]`` with the key matched case-insensitively, as Greengrass matches recipe keys
    (generated recipes write ``setenv``, the docs ``Setenv``)."""
    for k, v in doc.items():
        if str(k).lower() == key.lower():
            return v
    return None


def _setenv(recipe: Mapping[str, Any]) -> Mapping[str, Any]:
    lifecycle = _get_ci(recipe, "Lifecycle")
    if not isinstance(lifecycle, Mapping):
        return {}
    setenv = _get_ci(lifecycle, "Setenv")
    return setenv if isinstance(setenv, Mapping) else {}


def exec_args_from_recipe(recipe: Mapping[str, Any] | str | None) -> list[str]:
    """The user's ``execArgs``: what follows ``--handler=…`` in the setenv EXEC_ARGS array."""
    if isinstance(recipe, str):
        try:
            recipe = yaml.safe_load(recipe)
        except yaml.YAMLError:
            return []
    if not isinstance(recipe, Mapping):
        return []
    raw = _setenv(recipe).get(ENV_EXEC_ARGS)
    try:
        args = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError:
        return []
    if not isinstance(args, list):
        return []
    for i, arg in enumerate(args):
        if isinstance(arg, str) and arg.startswith(HANDLER_ARG):
            return [str(a) for a in args[i + 1:]]
    return []


def effective_lambda_function(details: Mapping[str, Any]) -> dict[str, Any]:
    """From ``component.details`` (name, version, configuration, recipe), the ``lambdaFunction``
    document that imports the same function with the parameters it has now."""
    recipe = details.get("recipe")
    config = details.get("configuration")
    params = configuration_to_lambda_parameters(config if isinstance(config, Mapping) else {})
    params[ARGS_KEY] = exec_args_from_recipe(recipe)
    out: dict[str, Any] = {}
    arn: Any = None
    if isinstance(recipe, Mapping):
        arn = _setenv(recipe).get("AWS_GREENGRASS_LAMBDA_ARN") or \
            _get_ci(recipe, "ComponentSource")
    function = details.get("function")
    if not arn and isinstance(function, Mapping):
        arn = function.get("arn")
    if arn:
        out["lambdaArn"] = str(arn)
    if details.get("name"):
        out["componentName"] = str(details["name"])
    if details.get("version"):
        out["componentVersion"] = str(details["version"])
    out["componentLambdaParameters"] = params
    return {"lambdaFunction": out}
