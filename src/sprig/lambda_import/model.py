"""What an import produces: a Lambda function described as Greengrass describes it.

The function's parameters are a :class:`~sprig.functions.config.LambdaConfig` (the same value
the Lambda manager runs with; its keys, defaults and ranges are
:data:`sprig.lambda_params.PARAMETERS`) plus its ``execArgs``, which the recipe keeps in its
Setenv. The rest is what the Greengrass service adds when it imports a function (reference
§1.5, §2.1, §3): the runtimes it accepts, the dependencies it injects, the ARN of an offline
import.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sprig.functions.config import LambdaConfig
from sprig.recipe.model import Dependency

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
class Platform:
    """A ``componentPlatforms`` entry: optional friendly name and the attributes to match."""

    attributes: Mapping[str, str]
    name: str | None = None


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
    config: LambdaConfig = field(default_factory=LambdaConfig)
    exec_args: tuple[str, ...] = ()
    platforms: tuple[Platform, ...] = ()
    dependencies: Mapping[str, Dependency] = field(default_factory=dict)
