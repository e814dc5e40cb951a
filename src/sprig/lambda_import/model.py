"""The values an import produces: a Lambda function described as Greengrass describes it.

Names, defaults and ranges follow reference/greengrass-lambda.md §1.2-1.5 (the
``LambdaFunctionRecipeSource`` and ``LambdaExecutionParameters`` API shapes) and the minimums of
§1.4, which come from the Greengrass service's own validation constants.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field


class IsolationMode(enum.StrEnum):
    GREENGRASS_CONTAINER = "GreengrassContainer"
    NO_CONTAINER = "NoContainer"


from sprig.functions.config import EventSourceType as EventSourceType  # noqa: E402  (one home)


class Permission(enum.StrEnum):
    RO = "ro"
    RW = "rw"


class EncodingType(enum.StrEnum):
    JSON = "json"
    BINARY = "binary"


class DependencyType(enum.StrEnum):
    HARD = "HARD"
    SOFT = "SOFT"


@dataclass(frozen=True)
class Range:
    default: int
    min: int
    max: int = 2147483647


# componentLambdaParameters integer fields: default, min, max (reference §1.3, §1.4).
RANGES: Mapping[str, Range] = {
    "timeoutInSeconds": Range(3, 1),
    "statusTimeoutInSeconds": Range(60, 30),
    "maxQueueSize": Range(1000, 1),
    "maxInstancesCount": Range(100, 1),
    "maxIdleTimeInSeconds": Range(60, 30),
    "memorySizeInKB": Range(16384, 2048),
}

DEFAULT_PINNED = True
DEFAULT_ISOLATION = IsolationMode.GREENGRASS_CONTAINER
DEFAULT_ENCODING = EncodingType.JSON
DEFAULT_PERMISSION = Permission.RO

DEVICE_PATH_PREFIX = "/dev"
INVALID_VOLUME_SOURCES = ("/sys",)
INVALID_VOLUME_DESTINATIONS = ("/proc",)

# Runtimes a Lambda component may use: every Lambda version of Python, Node.js and Java
# (reference §1.5: Greengrass adds no restriction on deprecated versions), plus ``provided``
# (the function brings its own ``bootstrap``), which Sprig adds.
PYTHON_RUNTIMES = ("python2.7", "python3.6", "python3.7", "python3.8", "python3.9", "python3.10",
                   "python3.11", "python3.12", "python3.13")
NODEJS_RUNTIMES = ("nodejs10.x", "nodejs12.x", "nodejs14.x", "nodejs16.x", "nodejs18.x",
                   "nodejs20.x", "nodejs22.x")
JAVA_RUNTIMES = ("java8", "java8.al2", "java11", "java17", "java21")
PROVIDED_RUNTIMES = ("provided", "provided.al2", "provided.al2023")
RUNTIMES = PYTHON_RUNTIMES + NODEJS_RUNTIMES + JAVA_RUNTIMES + PROVIDED_RUNTIMES

# The dependencies the service injects into every Lambda component (reference §2.1, §3).
LAMBDA_LAUNCHER = "aws.greengrass.LambdaLauncher"
LAMBDA_RUNTIMES = "aws.greengrass.LambdaRuntimes"
TOKEN_EXCHANGE_SERVICE = "aws.greengrass.TokenExchangeService"
INJECTED_DEPENDENCY_RANGE = ">=2.0.0 <3.0.0"

# ARN built when the user has only code (offline import): account 000000000000 marks it as local.
OFFLINE_ACCOUNT = "000000000000"
DEFAULT_REGION = "us-east-1"


@dataclass(frozen=True)
class EventSource:
    topic: str
    type: EventSourceType


@dataclass(frozen=True)
class VolumeMount:
    source_path: str
    destination_path: str
    permission: Permission = DEFAULT_PERMISSION
    add_group_owner: bool = False


@dataclass(frozen=True)
class DeviceMount:
    path: str
    permission: Permission = DEFAULT_PERMISSION
    add_group_owner: bool = False


@dataclass(frozen=True)
class ContainerParams:
    memory_size_kb: int = RANGES["memorySizeInKB"].default
    mount_ro_sysfs: bool = False
    volumes: tuple[VolumeMount, ...] = ()
    devices: tuple[DeviceMount, ...] = ()


@dataclass(frozen=True)
class LambdaParameters:
    """``componentLambdaParameters`` with every default filled in."""

    event_sources: tuple[EventSource, ...] = ()
    max_queue_size: int = RANGES["maxQueueSize"].default
    max_instances_count: int = RANGES["maxInstancesCount"].default
    max_idle_time_in_seconds: int = RANGES["maxIdleTimeInSeconds"].default
    timeout_in_seconds: int = RANGES["timeoutInSeconds"].default
    status_timeout_in_seconds: int = RANGES["statusTimeoutInSeconds"].default
    pinned: bool = DEFAULT_PINNED
    input_payload_encoding_type: EncodingType = DEFAULT_ENCODING
    exec_args: tuple[str, ...] = ()
    environment_variables: Mapping[str, str] = field(default_factory=dict)
    isolation_mode: IsolationMode = DEFAULT_ISOLATION
    container_params: ContainerParams = field(default_factory=ContainerParams)


@dataclass(frozen=True)
class Platform:
    """A ``componentPlatforms`` entry: optional friendly name and the attributes to match."""

    attributes: Mapping[str, str]
    name: str | None = None


@dataclass(frozen=True)
class Dependency:
    version_requirement: str
    dependency_type: DependencyType = DependencyType.HARD


@dataclass(frozen=True)
class LambdaComponent:
    """Everything the recipe is generated from (after precedence, defaults and validation)."""

    lambda_arn: str
    function_name: str
    function_version: str
    component_name: str
    component_version: str
    runtime: str
    handler: str
    description: str
    parameters: LambdaParameters = field(default_factory=LambdaParameters)
    platforms: tuple[Platform, ...] = ()
    dependencies: Mapping[str, Dependency] = field(default_factory=dict)
