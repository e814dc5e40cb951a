"""Generate the recipe AWS IoT Greengrass generates for an imported Lambda function.

Same shape and keys as the service's output (reference §2.1, §2.2): ``aws.greengrass.lambda``,
publisher "AWS Lambda", the ARN as ComponentSource, the configuration keys the Lambda manager
reads, the three injected dependencies, one manifest per platform with the
``greengrass:lambda-artifact.zip`` artifact and an empty manifest lifecycle, and the top-level
``startup``/``setenv``/``shutdown`` lifecycle. The core takes a Lambda component's behaviour from
its configuration and from the ``setenv`` ARN, handler, runtime and artifact path — so those
``AWS_GREENGRASS_LAMBDA_*`` keys are the contract, whatever the launcher scripts say.
"""

from __future__ import annotations

import json
from typing import Any

from sprig.functions.config import LambdaConfig
from sprig.lambda_import.model import (
    JAVA_RUNTIMES,
    LAMBDA_LAUNCHER,
    LAMBDA_RUNTIMES,
    NODEJS_RUNTIMES,
    PYTHON_RUNTIMES,
    LambdaComponent,
)

RECIPE_FORMAT_VERSION = "2020-01-25"
COMPONENT_TYPE = "aws.greengrass.lambda"
PUBLISHER = "AWS Lambda"
ARTIFACT_NAME = "lambda-artifact"
ARTIFACT_FILE = f"{ARTIFACT_NAME}.zip"
ARTIFACT_URI = f"greengrass:{ARTIFACT_FILE}"

PYTHON_RUNTIME_COMMAND = "/runtime/python/lambda_runtime.py"
JAVA_RUNTIME_COMMAND = "com.amazonaws.greengrass.runtime.LambdaRuntime"
NODEJS_RUNTIME_COMMAND = "/runtime/nodejs/lambda_nodejs_runtime.js"
HANDLER_ARG = "--handler="

# setenv keys (the contract the core reads).
ENV_ARN = "AWS_GREENGRASS_LAMBDA_ARN"
ENV_HANDLER = "AWS_GREENGRASS_LAMBDA_FUNCTION_HANDLER"
ENV_ARTIFACT_PATH = "AWS_GREENGRASS_LAMBDA_ARTIFACT_PATH"
ENV_RUNTIME = "AWS_GREENGRASS_LAMBDA_RUNTIME"
ENV_EXEC_ARGS = "AWS_GREENGRASS_LAMBDA_EXEC_ARGS"
ENV_CONTAINER_MODE = "AWS_GREENGRASS_LAMBDA_CONTAINER_MODE"
ENV_CONTAINER_PARAMS = "AWS_GREENGRASS_LAMBDA_CONTAINER_PARAMS"
ENV_ENCODING_TYPE = "AWS_GREENGRASS_LAMBDA_ENCODING_TYPE"
ENV_PARAMS = "AWS_GREENGRASS_LAMBDA_PARAMS"
ENV_STATUS_TIMEOUT = "AWS_GREENGRASS_LAMBDA_STATUS_TIMEOUT_SECONDS"
ENV_RUNTIME_PATH = "AWS_GREENGRASS_LAMBDA_RUNTIME_PATH"

LAUNCHER_PATH = "{" + LAMBDA_LAUNCHER + ":artifacts:path}/lambda-launcher"


def runtime_exec_args(runtime: str, handler: str) -> list[str]:
    """The runtime-specific prefix of ``AWS_GREENGRASS_LAMBDA_EXEC_ARGS`` (reference §2.3).

    The service's table stops at python3.8/java8/nodejs12.x; later versions of each language
    follow the same pattern. ``provided`` has no runtime program: just the name and handler.
    """
    if runtime in PYTHON_RUNTIMES:
        prefix = [runtime, "-u", PYTHON_RUNTIME_COMMAND]
    elif runtime in JAVA_RUNTIMES:
        prefix = [runtime, JAVA_RUNTIME_COMMAND]
    elif runtime in NODEJS_RUNTIMES:
        prefix = [runtime, NODEJS_RUNTIME_COMMAND]
    else:
        prefix = [runtime]
    return [*prefix, HANDLER_ARG + handler]


def exec_args_json(component: LambdaComponent) -> str:
    """The JSON array string, compact as the service's Jackson writer prints it."""
    args = runtime_exec_args(component.runtime, component.handler)
    args.extend(component.exec_args)
    return json.dumps(args, separators=(",", ":"), ensure_ascii=False)


#: The order in which the service writes the configuration's top-level keys (reference §2.1);
#: a key not listed follows in the table's order.
AWS_CONFIGURATION_ORDER = ("lambdaExecutionParameters", "containerParams", "containerMode",
                           "timeoutInSeconds", "maxInstancesCount", "inputPayloadEncodingType",
                           "maxQueueSize", "pinned", "maxIdleTimeInSeconds",
                           "statusTimeoutInSeconds", "pubsubTopics")


def default_configuration(config: LambdaConfig) -> dict[str, Any]:
    """``ComponentConfiguration.DefaultConfiguration`` per the mapping of reference §2.2."""
    doc = config.to_configuration()
    rank = {key: i for i, key in enumerate(AWS_CONFIGURATION_ORDER)}
    return dict(sorted(doc.items(), key=lambda kv: rank.get(kv[0], len(rank))))


def artifact_entry(digest: str) -> dict[str, Any]:
    return {"Uri": ARTIFACT_URI, "Digest": digest, "Algorithm": "SHA-256", "Unarchive": "ZIP",
            "Permission": {"Read": "OWNER", "Execute": "NONE"}}


def lifecycle(component: LambdaComponent) -> dict[str, Any]:
    return {
        "startup": {"requiresPrivilege": True, "script": f"{LAUNCHER_PATH} start"},
        "setenv": {
            ENV_CONTAINER_MODE: "{configuration:/containerMode}",
            ENV_ARN: component.lambda_arn,
            ENV_HANDLER: component.handler,
            ENV_ARTIFACT_PATH: "{artifacts:decompressedPath}/" + ARTIFACT_NAME,
            ENV_CONTAINER_PARAMS: "{configuration:/containerParams}",
            ENV_STATUS_TIMEOUT: "{configuration:/statusTimeoutInSeconds}",
            ENV_ENCODING_TYPE: "{configuration:/inputPayloadEncodingType}",
            ENV_PARAMS: "{configuration:/lambdaExecutionParameters}",
            ENV_RUNTIME_PATH: "{" + LAMBDA_RUNTIMES + ":artifacts:decompressedPath}/runtime/",
            ENV_EXEC_ARGS: exec_args_json(component),
            ENV_RUNTIME: component.runtime,
        },
        "shutdown": {"requiresPrivilege": True,
                     "script": f"{LAUNCHER_PATH} stop; {LAUNCHER_PATH} clean"},
    }


def build_recipe(component: LambdaComponent, digest: str) -> dict[str, Any]:
    """The whole recipe; ``digest`` is the artifact's base64 SHA-256 (see artifact.py)."""
    # One manifest per platform (an empty Platform when none is given). Like the service, the
    # platform's friendly name is not copied: a manifest is matched by its attributes only.
    attributes = [dict(p.attributes) for p in component.platforms] or [{}]
    manifests = [{"Platform": attrs, "Lifecycle": {}, "Artifacts": [artifact_entry(digest)]}
                 for attrs in attributes]
    return {
        "RecipeFormatVersion": RECIPE_FORMAT_VERSION,
        "ComponentName": component.component_name,
        "ComponentVersion": component.component_version,
        "ComponentType": COMPONENT_TYPE,
        "ComponentDescription": component.description,
        "ComponentPublisher": PUBLISHER,
        "ComponentSource": component.lambda_arn,
        "ComponentConfiguration": {
            "DefaultConfiguration": default_configuration(component.config)},
        "ComponentDependencies": {
            name: {"VersionRequirement": d.version_requirement,
                   "DependencyType": d.dependency_type.value}
            for name, d in component.dependencies.items()},
        "Manifests": manifests,
        "Lifecycle": lifecycle(component),
    }
