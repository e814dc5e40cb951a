"""Validate the two documents a user exports from AWS: the Greengrass ``lambdaFunction``
(``aws greengrassv2 create-component-version --cli-input-json``) and the Lambda function
configuration (``aws lambda get-function-configuration``).

Each validator returns a *partial* document in the ``lambdaFunction`` shape: only the fields the
input gave, already type- and range-checked, so :mod:`sprig.lambda_import.params` can layer them
(flags > lambdaFunction > function configuration > defaults) without re-checking. The keys of
``componentLambdaParameters``, their types and ranges come from the one table of Lambda
parameters (:data:`sprig.lambda_params.PARAMETERS`), and so does the conversion between that
document and the :class:`~sprig.functions.config.LambdaConfig` it describes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nodesemver
import yaml

from sprig.functions.config import LambdaConfig
from sprig.lambda_import import checks as c
from sprig.lambda_params import (
    API_PARAMETERS,
    BY_API,
    BY_FIELD,
    CONFIGURATION,
    DEVICE_DIRECTORY,
    VOLUME_DESTINATIONS_REFUSED,
    VOLUME_SOURCES_REFUSED,
    EventSourceType,
    Kind,
    MountPermission,
    Parameter,
    api_keys,
    entry_document,
    entry_from_document,
    get_path,
    set_path,
)
from sprig.recipe.model import DependencyType

LAMBDA_FUNCTION_KEYS = ("lambdaArn", "componentName", "componentVersion", "componentPlatforms",
                        "componentDependencies", "componentLambdaParameters")
CREATE_COMPONENT_VERSION_KEYS = ("inlineRecipe", "lambdaFunction", "tags", "clientToken")
VOLUME_KEYS = BY_FIELD["volumes"].items
DEVICE_KEYS = BY_FIELD["devices"].items
EVENT_SOURCE_KEYS = BY_FIELD["event_sources"].items
PLATFORM_KEYS = ("name", "attributes")
DEPENDENCY_KEYS = ("versionRequirement", "dependencyType")

LAMBDA_FUNCTION_SOURCE = "lambdaFunction document"
_IDS = r"[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*"
SEMVER_RE = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
                       + f"(?:-{_IDS})?(?:\\+{_IDS})?$")
FUNCTION_CONFIGURATION_SOURCE = "function configuration"


def read_document(path: Path) -> Any:
    """Load a JSON (or YAML) file; a parse error names the file and the position."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise c.fail("", f"cannot read the file: {exc.strerror}", str(path),
                     has_value=False) from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        json_error = exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        raise c.fail("", f"is not valid JSON: {json_error.msg} at line {json_error.lineno} "
                     f"column {json_error.colno}", str(path), has_value=False) from json_error


# ---- componentLambdaParameters -----------------------------------------------------------------

def check_event_source(value: Any, path: str, source: str | None) -> dict[str, Any]:
    doc = c.obj(value, path, source, EVENT_SOURCE_KEYS)
    for key in EVENT_SOURCE_KEYS:
        if c.get(doc, key) is None:
            raise c.fail(f"{path}.{key}", "is required", source, has_value=False)
    kind = c.enum(doc["type"], EventSourceType, f"{path}.type", source)
    return {"topic": c.mqtt_filter(doc["topic"], f"{path}.topic", source), "type": kind.value}


def _mount_options(doc: dict[str, Any], path: str, source: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if c.get(doc, "permission") is not None:
        out["permission"] = c.enum(doc["permission"], MountPermission, f"{path}.permission",
                                   source).value
    if c.get(doc, "addGroupOwner") is not None:
        out["addGroupOwner"] = c.boolean(doc["addGroupOwner"], f"{path}.addGroupOwner", source)
    return out


def check_volume(value: Any, path: str, source: str | None) -> dict[str, Any]:
    """A ``LambdaVolumeMount``: not from /sys, not onto /proc (Greengrass's own rule)."""
    doc = c.obj(value, path, source, VOLUME_KEYS)
    for key in ("sourcePath", "destinationPath"):
        if c.get(doc, key) is None:
            raise c.fail(f"{path}.{key}", "is required", source, has_value=False)
    src = c.abs_path(doc["sourcePath"], f"{path}.sourcePath", source)
    for bad in VOLUME_SOURCES_REFUSED:
        if c.is_under(src, bad):
            raise c.fail(f"{path}.sourcePath", f"must not be under {bad} (use mountROSysfs "
                         "to read /sys)", source, value=doc["sourcePath"],
                         allowed=f"an absolute path outside {', '.join(VOLUME_SOURCES_REFUSED)}")
    dst = c.abs_path(doc["destinationPath"], f"{path}.destinationPath", source)
    for bad in VOLUME_DESTINATIONS_REFUSED:
        if c.is_under(dst, bad):
            raise c.fail(f"{path}.destinationPath", f"must not be under {bad}", source,
                         value=doc["destinationPath"], allowed="an absolute path outside "
                         f"{', '.join(VOLUME_DESTINATIONS_REFUSED)}")
    return {"sourcePath": src, "destinationPath": dst, **_mount_options(doc, path, source)}


def check_device(value: Any, path: str, source: str | None) -> dict[str, Any]:
    """A ``LambdaDeviceMount``: the path must be under /dev."""
    doc = c.obj(value, path, source, DEVICE_KEYS)
    if c.get(doc, "path") is None:
        raise c.fail(f"{path}.path", "is required", source, has_value=False)
    dev = c.abs_path(doc["path"], f"{path}.path", source)
    if not dev.startswith(DEVICE_DIRECTORY + "/"):
        raise c.fail(f"{path}.path", f"must be a device under {DEVICE_DIRECTORY}/", source,
                     value=doc["path"], allowed=f"a path under {DEVICE_DIRECTORY}/")
    return {"path": dev, **_mount_options(doc, path, source)}


def check_environment(value: Any, path: str, source: str | None) -> dict[str, str]:
    env = c.string_map(value, path, source)
    for key in env:
        if "=" in key or "\0" in key:
            raise c.fail(path, "environment variable names must not contain '=' or NUL",
                         source, value=key)
    return env


_ENTRY_CHECKS = {"volumes": check_volume, "devices": check_device,
                 "event_sources": check_event_source}


def _check_value(param: Parameter, value: Any, path: str, source: str | None) -> Any:
    """One parameter's value in the import API, checked as its table row says."""
    if param.kind is Kind.INTEGER:
        assert param.minimum is not None and param.maximum is not None
        return c.integer(value, path, source, param.minimum, param.maximum)
    if param.kind is Kind.BOOLEAN:
        return c.boolean(value, path, source)
    if param.kind is Kind.ENUM:
        assert param.choices is not None
        return c.enum(value, param.choices, path, source).value
    if param.kind is Kind.STRINGS:
        return check_environment(value, path, source)
    if param.kind is Kind.ARGS:
        return c.string_list(value, path, source)
    check = _ENTRY_CHECKS[param.field]
    return [check(v, f"{path}[{i}]", source) for i, v in enumerate(c.array(value, path, source))]


def _check_object(value: Any, path: str, source: str | None, prefix: str) -> dict[str, Any]:
    """The object at API path ``prefix`` (``""``: ``componentLambdaParameters`` itself)."""
    keys = api_keys(prefix)
    doc = c.obj(value, path, source, keys)
    out: dict[str, Any] = {}
    for key in keys:
        if c.get(doc, key) is None:
            continue
        full = f"{prefix}.{key}" if prefix else key
        param = BY_API.get(full)
        out[key] = (_check_object(doc[key], f"{path}.{key}", source, full) if param is None
                    else _check_value(param, doc[key], f"{path}.{key}", source))
    return out


def check_lambda_parameters(value: Any, path: str, source: str | None) -> dict[str, Any]:
    """Validate ``componentLambdaParameters`` (``LambdaExecutionParameters``)."""
    return _check_object(value, path, source, "")


def config_from_parameters(doc: dict[str, Any]) -> tuple[LambdaConfig, tuple[str, ...]]:
    """A validated (possibly partial) ``componentLambdaParameters``: the configuration it
    describes (defaults for what it omits) and its ``execArgs``."""
    values: dict[str, Any] = {}
    for param in CONFIGURATION:
        if param.api is None:
            continue
        raw = get_path(doc, param.api)
        if raw is None:
            continue
        if param.kind is Kind.ENUM:
            assert param.choices is not None
            values[param.field] = param.choices(raw)
        elif param.kind is Kind.ENTRIES:
            values[param.field] = tuple(entry_from_document(param.field, e) for e in raw)
        elif param.kind is Kind.STRINGS:
            values[param.field] = dict(raw)
        else:
            values[param.field] = raw
    return LambdaConfig(**values), tuple(doc.get(BY_FIELD["exec_args"].api_path, ()))


def parameters_document(config: LambdaConfig, exec_args: tuple[str, ...] = ()) -> dict[str, Any]:
    """The whole ``componentLambdaParameters`` of ``config`` and ``exec_args`` (every key)."""
    out: dict[str, Any] = {}
    for param in API_PARAMETERS:
        value: Any = exec_args if param.kind is Kind.ARGS else getattr(config, param.field)
        if param.kind is Kind.ENUM:
            value = value.value
        elif param.kind is Kind.ENTRIES:
            value = [entry_document(e) for e in value]
        elif param.kind in (Kind.STRINGS, Kind.ARGS):
            value = dict(value) if param.kind is Kind.STRINGS else list(value)
        set_path(out, param.api_path, value)
    return out


# ---- lambdaFunction ----------------------------------------------------------------------------

def check_component_version(value: Any, path: str, source: str | None) -> str:
    text = c.string(value, path, source, max_len=64)
    if not SEMVER_RE.match(text):
        raise c.fail(path, "is not a semantic version", source, value=text,
                     allowed="MAJOR.MINOR.PATCH, e.g. 1.0.0")
    return text


def check_component_name(value: Any, path: str, source: str | None) -> str:
    text = c.string(value, path, source, max_len=128)
    if not all(ch.isalnum() or ch in "._-" for ch in text) or text.startswith("."):
        raise c.fail(path, "is not a valid component name", source, value=text,
                     allowed="1-128 letters, digits, '.', '_' or '-', not starting with '.'")
    return text


def _check_platform(value: Any, path: str, source: str | None) -> dict[str, Any]:
    doc = c.obj(value, path, source, PLATFORM_KEYS)
    out: dict[str, Any] = {}
    if c.get(doc, "name") is not None:
        out["name"] = c.string(doc["name"], f"{path}.name", source)
    out["attributes"] = (c.string_map(doc["attributes"], f"{path}.attributes", source)
                         if c.get(doc, "attributes") is not None else {})
    return out


def _check_dependency(value: Any, path: str, source: str | None) -> dict[str, Any]:
    doc = c.obj(value, path, source, DEPENDENCY_KEYS)
    out: dict[str, Any] = {"versionRequirement": "*", "dependencyType": DependencyType.HARD.value}
    if c.get(doc, "versionRequirement") is not None:
        req = c.string(doc["versionRequirement"], f"{path}.versionRequirement", source)
        if nodesemver.valid_range(req, False) is None:
            raise c.fail(f"{path}.versionRequirement", "is not an npm-style semver range",
                         source, value=req, allowed="e.g. >=1.0.0 <2.0.0, ^1.2.0, ~1.2.0, *")
        out["versionRequirement"] = req
    if c.get(doc, "dependencyType") is not None:
        out["dependencyType"] = c.enum(doc["dependencyType"], DependencyType,
                                       f"{path}.dependencyType", source).value
    return out


def check_lambda_function(value: Any, source: str | None = LAMBDA_FUNCTION_SOURCE,
                          ) -> dict[str, Any]:
    """Validate a ``lambdaFunction`` document, given whole (``{"lambdaFunction": {...}}``, as
    ``--cli-input-json`` takes it) or as the inner object. ``lambdaArn`` is optional here: an
    offline import may build one (see :mod:`sprig.lambda_import.params`)."""
    path = "lambdaFunction"
    if isinstance(value, dict) and ("lambdaFunction" in value or "inlineRecipe" in value):
        # The whole CreateComponentVersion input: tags and clientToken are accepted and unused.
        outer = c.obj(value, "", source, CREATE_COMPONENT_VERSION_KEYS)
        if "inlineRecipe" in outer:
            raise c.fail("inlineRecipe", "is refused: this input already holds a recipe; deploy "
                         "it as it is with `sprig deployment create --recipe-dir`", source,
                         has_value=False, allowed="lambdaFunction")
        value = outer["lambdaFunction"]
    doc = c.obj(value, path, source, LAMBDA_FUNCTION_KEYS)
    out: dict[str, Any] = {}
    if c.get(doc, "lambdaArn") is not None:
        out["lambdaArn"] = c.string(doc["lambdaArn"], f"{path}.lambdaArn", source)
    if c.get(doc, "componentName") is not None:
        out["componentName"] = check_component_name(doc["componentName"],
                                                    f"{path}.componentName", source)
    if c.get(doc, "componentVersion") is not None:
        out["componentVersion"] = check_component_version(
            doc["componentVersion"], f"{path}.componentVersion", source)
    if c.get(doc, "componentPlatforms") is not None:
        ppath = f"{path}.componentPlatforms"
        out["componentPlatforms"] = [_check_platform(p, f"{ppath}[{i}]", source)
                                     for i, p in enumerate(c.array(doc["componentPlatforms"],
                                                                   ppath, source))]
    if c.get(doc, "componentDependencies") is not None:
        dpath = f"{path}.componentDependencies"
        deps = c.obj(doc["componentDependencies"], dpath, source)
        out["componentDependencies"] = {
            check_component_name(name, dpath, source): _check_dependency(d, f"{dpath}.{name}",
                                                                         source)
            for name, d in deps.items()}
    if c.get(doc, "componentLambdaParameters") is not None:
        out["componentLambdaParameters"] = check_lambda_parameters(
            doc["componentLambdaParameters"], f"{path}.componentLambdaParameters", source)
    return out


# ---- get-function-configuration ---------------------------------------------------------------

_STR, _INT, _OBJ, _LIST = "string", "integer", "object", "array"
FUNCTION_CONFIGURATION_KEYS: dict[str, str] = {
    "FunctionName": _STR, "FunctionArn": _STR, "Runtime": _STR, "Role": _STR, "Handler": _STR,
    "CodeSize": _INT, "Description": _STR, "Timeout": _INT, "MemorySize": _INT,
    "LastModified": _STR, "CodeSha256": _STR, "Version": _STR, "VpcConfig": _OBJ,
    "DeadLetterConfig": _OBJ, "Environment": _OBJ, "KMSKeyArn": _STR, "TracingConfig": _OBJ,
    "MasterArn": _STR, "RevisionId": _STR, "Layers": _LIST, "State": _STR, "StateReason": _STR,
    "StateReasonCode": _STR, "LastUpdateStatus": _STR, "LastUpdateStatusReason": _STR,
    "LastUpdateStatusReasonCode": _STR, "FileSystemConfigs": _LIST, "PackageType": _STR,
    "ImageConfigResponse": _OBJ, "SigningProfileVersionArn": _STR, "SigningJobArn": _STR,
    "Architectures": _LIST, "EphemeralStorage": _OBJ, "SnapStart": _OBJ,
    "RuntimeVersionConfig": _OBJ, "LoggingConfig": _OBJ, "ResponseMetadata": _OBJ,
}
ARCHITECTURES = ("x86_64", "arm64")


@dataclass(frozen=True)
class FunctionConfiguration:
    """The fields of ``get-function-configuration`` that an import uses.

    ``parameters`` is the partial ``componentLambdaParameters`` they imply: Timeout →
    timeoutInSeconds and Environment.Variables → environmentVariables. MemorySize is checked
    but *not* mapped: it sizes the cloud sandbox (128 MB at least), and the service's own
    generated recipe (reference §2.1) keeps the 16384 KB container default regardless.
    """

    function_name: str | None = None
    function_arn: str | None = None
    version: str | None = None
    runtime: str | None = None
    handler: str | None = None
    description: str | None = None
    architectures: tuple[str, ...] = ()
    parameters: dict[str, Any] = field(default_factory=dict)


def _check_kind(value: Any, kind: str, path: str, source: str | None) -> None:
    if kind == _STR:
        c.string(value, path, source, min_len=0)
    elif kind == _INT:
        c.integer(value, path, source, 0)
    elif kind == _OBJ:
        c.obj(value, path, source)
    else:
        c.array(value, path, source)


def check_function_configuration(value: Any, source: str | None = FUNCTION_CONFIGURATION_SOURCE,
                                 ) -> FunctionConfiguration:
    """Validate ``aws lambda get-function-configuration`` output (or ``get-function``'s, whose
    ``Configuration`` member is the same document)."""
    if isinstance(value, dict) and isinstance(value.get("Configuration"), dict):
        value = value["Configuration"]
    doc = c.obj(value, "", source, FUNCTION_CONFIGURATION_KEYS)
    for key, kind in FUNCTION_CONFIGURATION_KEYS.items():
        if c.get(doc, key) is not None:
            _check_kind(doc[key], kind, key, source)
    if doc.get("PackageType") not in (None, "Zip"):
        raise c.fail("PackageType", "is refused: a container-image function has no .zip code "
                     "package, and Greengrass runs only functions packaged as .zip archives",
                     source, value=doc["PackageType"], allowed="Zip")
    params: dict[str, Any] = {}
    if c.get(doc, "Timeout") is not None:
        timeout = BY_FIELD["timeout_s"]
        assert timeout.minimum is not None and timeout.maximum is not None
        params[timeout.api_path] = c.integer(doc["Timeout"], "Timeout", source, timeout.minimum,
                                        timeout.maximum)
    env_doc = doc.get("Environment")
    if env_doc is not None:
        env = c.obj(env_doc, "Environment", source, ("Variables", "Error"))
        if c.get(env, "Variables") is not None:
            params[BY_FIELD["environment"].api_path] = check_environment(
                env["Variables"], "Environment.Variables", source)
    arches = tuple(c.string_list(doc.get("Architectures") or [], "Architectures", source))
    for i, arch in enumerate(arches):
        if arch not in ARCHITECTURES:
            raise c.fail(f"Architectures[{i}]", "is not a Lambda architecture", source,
                         value=arch, allowed=", ".join(ARCHITECTURES))
    return FunctionConfiguration(
        function_name=doc.get("FunctionName") or None,
        function_arn=doc.get("FunctionArn") or None,
        version=doc.get("Version") or None,
        runtime=doc.get("Runtime") or None,
        handler=doc.get("Handler") or None,
        description=doc.get("Description") or None,
        architectures=arches,
        parameters=params,
    )
