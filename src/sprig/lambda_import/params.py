"""Resolve what to import: command-line flags > lambdaFunction document > function
configuration > defaults (reference §1.3), into one validated :class:`LambdaComponent`.

Each layer is validated on its own (so an error names the flag, or the field of the file, that
caused it), turned into a partial ``lambdaFunction`` document, and the layers are merged key by
key: objects merge recursively (``environmentVariables`` from several layers combine, a higher
layer winning per variable), lists (event sources, volumes, devices, platforms, execArgs) are
replaced whole.

The ARN must name a published version: ``$LATEST`` and aliases are refused, as Greengrass does,
because they can later point to other code. With no ARN anywhere (offline import from code only)
one is built as ``arn:aws:lambda:<region>:000000000000:function:<name>:<version>``: region from
``--region`` (default us-east-1), name from ``--name``/componentName/FunctionName, version from
the configuration's numeric ``Version``, else the major of ``--version``/componentVersion, else 1.
The zero account marks the function as local; Sprig never calls AWS with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sprig.lambda_import import checks as c
from sprig.lambda_import.documents import (
    FUNCTION_CONFIGURATION_SOURCE,
    LAMBDA_FUNCTION_SOURCE,
    FunctionConfiguration,
    check_component_name,
    check_component_version,
    check_device,
    check_environment,
    check_event_source,
    check_volume,
    config_from_parameters,
)
from sprig.lambda_import.model import (
    DEFAULT_REGION,
    INJECTED_DEPENDENCY_RANGE,
    LAMBDA_LAUNCHER,
    LAMBDA_RUNTIMES,
    OFFLINE_ACCOUNT,
    RUNTIMES,
    TOKEN_EXCHANGE_SERVICE,
    LambdaComponent,
    Platform,
)
from sprig.lambda_params import BY_FIELD, ContainerMode, EventSourceType, PayloadEncoding, set_path
from sprig.recipe.model import Dependency, DependencyType

FLAGS_SOURCE = "command line"

ARN_RE = re.compile(
    r"^arn:(?P<partition>[^:]*):lambda:(?P<region>(?:[a-z]+-)+[0-9])?:(?P<account>[0-9]{12})?"
    r":function:(?P<name>[A-Za-z0-9_-]{1,64})(?::(?P<qualifier>[^:]+))?$")
ARN_FORM = "arn:aws:lambda:<region>:<account>:function:<name>:<version>"
FUNCTION_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
HANDLER_RE = re.compile(r"^[^\s]{1,128}$")


@dataclass(frozen=True)
class ImportFlags:
    """The command-line flags, as the user typed them (strings; validated here, not argparse)."""

    name: str | None = None
    version: str | None = None
    arn: str | None = None
    region: str | None = None
    runtime: str | None = None
    handler: str | None = None
    description: str | None = None
    pinned: bool | None = None
    timeout: str | None = None
    memory_kb: str | None = None
    isolation: str | None = None
    encoding: str | None = None
    event_sources: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()
    exec_args: tuple[str, ...] = ()


@dataclass(frozen=True)
class ParsedArn:
    arn: str
    region: str
    account: str
    function_name: str
    version: str


def parse_arn(arn: str, path: str, source: str | None) -> ParsedArn:
    """Check a Lambda ARN carries a published version number; refuse $LATEST and aliases."""
    m = ARN_RE.match(arn)
    if m is None:
        raise c.fail(path, "is not a Lambda function ARN", source, value=arn, allowed=ARN_FORM)
    qualifier = m.group("qualifier")
    if qualifier is None:
        raise c.fail(path, "must include the function version: Greengrass imports one "
                     "published version of a function", source, value=arn, allowed=ARN_FORM)
    if qualifier == "$LATEST":
        raise c.fail(path, "$LATEST is refused: it is not a published version and its code can "
                     "change; publish a version (aws lambda publish-version) and use its number",
                     source, value=arn, allowed=ARN_FORM)
    if not qualifier.isdigit() or qualifier.startswith("0"):
        raise c.fail(path, f"'{qualifier}' is an alias, which is refused: an alias can later "
                     "point to another version; use the version number it points to", source,
                     value=arn, allowed=ARN_FORM)
    return ParsedArn(arn, m.group("region") or DEFAULT_REGION, m.group("account") or "",
                     m.group("name"), qualifier)


# ---- flags -> partial lambdaFunction ----------------------------------------------------------

def _flag_int(text: str, flag: str, field: str) -> int:
    param = BY_FIELD[field]
    assert param.minimum is not None and param.maximum is not None
    try:
        value = int(text, 10)
    except ValueError:
        raise c.fail(flag, "must be an integer", FLAGS_SOURCE, value=text,
                     allowed=param.range_text) from None
    return c.integer(value, flag, FLAGS_SOURCE, param.minimum, param.maximum)


def _flag_event_source(text: str) -> dict[str, Any]:
    topic, sep, kind = text.rpartition(":")
    if not sep or not topic:
        raise c.fail("--event-source", "must be TOPIC:TYPE", FLAGS_SOURCE, value=text,
                     allowed=", ".join(f"TOPIC:{t.value}" for t in EventSourceType))
    return check_event_source({"topic": topic, "type": kind}, "--event-source", FLAGS_SOURCE)


def _flag_volume(text: str) -> dict[str, Any]:
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise c.fail("--volume", "must be SOURCE:DESTINATION[:ro|rw]", FLAGS_SOURCE, value=text,
                     allowed="SOURCE:DESTINATION, SOURCE:DESTINATION:ro, SOURCE:DESTINATION:rw")
    doc: dict[str, Any] = {"sourcePath": parts[0], "destinationPath": parts[1]}
    if len(parts) == 3:
        doc["permission"] = parts[2]
    return check_volume(doc, "--volume", FLAGS_SOURCE)


def _flag_device(text: str) -> dict[str, Any]:
    parts = text.split(":")
    if len(parts) not in (1, 2):
        raise c.fail("--device", "must be PATH[:ro|rw]", FLAGS_SOURCE, value=text,
                     allowed="PATH, PATH:ro, PATH:rw")
    doc: dict[str, Any] = {"path": parts[0]}
    if len(parts) == 2:
        doc["permission"] = parts[1]
    return check_device(doc, "--device", FLAGS_SOURCE)


def _flag_env(items: tuple[str, ...]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise c.fail("--env", "must be NAME=VALUE", FLAGS_SOURCE, value=item,
                         allowed="NAME=VALUE with a non-empty NAME")
        env[key] = value
    return check_environment(env, "--env", FLAGS_SOURCE)


def flags_layer(flags: ImportFlags) -> dict[str, Any]:
    """The flags as a partial, validated ``lambdaFunction`` document."""
    out: dict[str, Any] = {}
    if flags.name is not None:
        out["componentName"] = check_component_name(flags.name, "--name", FLAGS_SOURCE)
    if flags.version is not None:
        out["componentVersion"] = check_component_version(flags.version, "--version",
                                                          FLAGS_SOURCE)
    if flags.arn is not None:
        out["lambdaArn"] = flags.arn
    # Each flag sets its parameter at the import API path the table gives.
    given: dict[str, Any] = {}
    if flags.pinned is not None:
        given["pinned"] = flags.pinned
    if flags.timeout is not None:
        given["timeout_s"] = _flag_int(flags.timeout, "--timeout", "timeout_s")
    if flags.encoding is not None:
        given["encoding"] = c.enum(flags.encoding, PayloadEncoding, "--encoding",
                                   FLAGS_SOURCE).value
    if flags.event_sources:
        given["event_sources"] = [_flag_event_source(t) for t in flags.event_sources]
    if flags.env:
        given["environment"] = _flag_env(flags.env)
    if flags.exec_args:
        given["exec_args"] = list(flags.exec_args)
    if flags.isolation is not None:
        given["container_mode"] = c.enum(flags.isolation, ContainerMode, "--isolation",
                                         FLAGS_SOURCE).value
    if flags.memory_kb is not None:
        given["memory_kb"] = _flag_int(flags.memory_kb, "--memory-kb", "memory_kb")
    if flags.volumes:
        given["volumes"] = [_flag_volume(t) for t in flags.volumes]
    if flags.devices:
        given["devices"] = [_flag_device(t) for t in flags.devices]
    params: dict[str, Any] = {}
    for field, value in given.items():
        set_path(params, BY_FIELD[field].api_path, value)
    if params:
        out["componentLambdaParameters"] = params
    return out


# ---- merge and build --------------------------------------------------------------------------

def merge(low: dict[str, Any], high: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge two partial documents: objects merge, anything else from ``high`` wins."""
    out = dict(low)
    for key, value in high.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def _resolve_arn(flags: ImportFlags, doc: dict[str, Any], config: FunctionConfiguration,
                 ) -> ParsedArn:
    if flags.arn is not None:
        return parse_arn(flags.arn, "--arn", FLAGS_SOURCE)
    if "lambdaArn" in doc:
        return parse_arn(doc["lambdaArn"], "lambdaFunction.lambdaArn", LAMBDA_FUNCTION_SOURCE)
    if config.function_arn is not None:
        arn = config.function_arn
        m = ARN_RE.match(arn)
        if m is not None and m.group("qualifier") is None:
            if config.version is None:
                raise c.fail("Version", "is required when FunctionArn has no version",
                             FUNCTION_CONFIGURATION_SOURCE, has_value=False,
                             allowed="a published version number")
            arn = f"{arn}:{config.version}"
        return parse_arn(arn, "FunctionArn", FUNCTION_CONFIGURATION_SOURCE)
    # Offline: build the ARN from what we know.
    name = config.function_name or flags.name or doc.get("componentName")
    if name is None:
        raise c.fail("--name", "is required when there is no lambdaArn, FunctionArn or "
                     "FunctionName", FLAGS_SOURCE, has_value=False,
                     allowed="a function name (1-64 letters, digits, '-' or '_')")
    if not FUNCTION_NAME_RE.match(name):
        raise c.fail("--name", "cannot be a Lambda function name, which the ARN needs; give "
                     "--arn or a name of 1-64 letters, digits, '-' or '_'", FLAGS_SOURCE,
                     value=name, allowed="[A-Za-z0-9_-]{1,64}")
    version = config.version if config.version and config.version.isdigit() else None
    if version is None:
        semver = flags.version or doc.get("componentVersion")
        version = str(int(semver.split(".")[0])) if semver else "1"
        version = version if version != "0" else "1"
    region = flags.region or DEFAULT_REGION
    if not re.fullmatch(r"(?:[a-z]+-)+[0-9]", region):
        raise c.fail("--region", "is not an AWS region name", FLAGS_SOURCE, value=region,
                     allowed="e.g. us-east-1, eu-west-3")
    arn = f"arn:aws:lambda:{region}:{OFFLINE_ACCOUNT}:function:{name}:{version}"
    return parse_arn(arn, "--name", FLAGS_SOURCE)


def _resolve_runtime(flags: ImportFlags, config: FunctionConfiguration) -> str:
    if flags.runtime is not None:
        value, path, source = flags.runtime, "--runtime", FLAGS_SOURCE
    elif config.runtime is not None:
        value, path, source = config.runtime, "Runtime", FUNCTION_CONFIGURATION_SOURCE
    else:
        raise c.fail("--runtime", "is required (or Runtime in the function configuration)",
                     FLAGS_SOURCE, has_value=False, allowed=", ".join(RUNTIMES))
    if value not in RUNTIMES:
        raise c.fail(path, "is not a runtime Greengrass can run (Python, Node.js and Java "
                     "Lambda runtimes, plus Sprig's 'provided')", source, value=value,
                     allowed=", ".join(RUNTIMES))
    return value


def _resolve_handler(flags: ImportFlags, config: FunctionConfiguration) -> str:
    if flags.handler is not None:
        value, path, source = flags.handler, "--handler", FLAGS_SOURCE
    elif config.handler is not None:
        value, path, source = config.handler, "Handler", FUNCTION_CONFIGURATION_SOURCE
    else:
        raise c.fail("--handler", "is required (or Handler in the function configuration)",
                     FLAGS_SOURCE, has_value=False,
                     allowed="e.g. lambda_function.lambda_handler, index.handler, "
                     "example.Hello::handleRequest")
    if not HANDLER_RE.match(value):
        raise c.fail(path, "is not a Lambda handler", source, value=value,
                     allowed="1-128 characters without spaces")
    return value


def resolve(flags: ImportFlags, lambda_function: dict[str, Any] | None = None,
            config: FunctionConfiguration | None = None) -> LambdaComponent:
    """Combine the validated layers into the component to generate.

    ``lambda_function`` is the output of :func:`documents.check_lambda_function`, ``config`` of
    :func:`documents.check_function_configuration`.
    """
    config = config or FunctionConfiguration()
    doc = merge(merge({"componentLambdaParameters": config.parameters}, lambda_function or {}),
                flags_layer(flags))
    arn = _resolve_arn(flags, doc, config)
    runtime = _resolve_runtime(flags, config)
    handler = _resolve_handler(flags, config)
    name = doc.get("componentName") or arn.function_name
    version = doc.get("componentVersion") or f"{arn.version}.0.0"
    description = flags.description or config.description or \
        f"AWS Lambda function {arn.function_name} version {arn.version}"
    platforms = tuple(Platform(dict(p["attributes"]), p.get("name"))
                      for p in doc.get("componentPlatforms", []))
    deps = {n: Dependency(n, d["versionRequirement"], DependencyType(d["dependencyType"]))
            for n, d in doc.get("componentDependencies", {}).items()}
    # Injected as the service does, overriding any user entry with the same name.
    for injected, kind in ((LAMBDA_LAUNCHER, DependencyType.HARD),
                           (TOKEN_EXCHANGE_SERVICE, DependencyType.HARD),
                           (LAMBDA_RUNTIMES, DependencyType.SOFT)):
        deps[injected] = Dependency(injected, INJECTED_DEPENDENCY_RANGE, kind)
    parameters, exec_args = config_from_parameters(doc.get("componentLambdaParameters", {}))
    return LambdaComponent(
        lambda_arn=arn.arn, function_name=arn.function_name, function_version=arn.version,
        component_name=name, component_version=version, runtime=runtime, handler=handler,
        description=description, config=parameters, exec_args=exec_args,
        platforms=platforms, dependencies=deps)
