"""The environment contract between Sprig and a function using the Greengrass Core SDK v1.

The Lambda manager adds :func:`sdk_env` to every function's environment and puts
:func:`shim_paths` on ``PYTHONPATH`` / ``NODE_PATH``; the shims (``greengrass_common``,
``greengrass_ipc_python_sdk``, ``aws-greengrass-*-js``) read exactly these variables, as the
modules shipped with Greengrass do (client-protocols §3.3).
"""

from __future__ import annotations

import secrets
from pathlib import Path

from sprig.assets import asset

ROUTER_FUNCTION_ARN = "arn:aws:lambda:::function:GGRouter"
SHADOW_FUNCTION_ARN = "arn:aws:lambda:::function:GGShadowService"
SECRETS_MANAGER_FUNCTION_ARN = "arn:aws:lambda:::function:GGSecretManager:1"
GGC_MAX_INTERFACE_VERSION = "1.5"


def sdk_env(function_arn: str, token: str, port: int) -> dict[str, str]:
    """The variables the V1 SDK and its shims need inside a function's process."""
    return {
        "GG_DAEMON_PORT": str(port),
        "AWS_GREENGRASS_LAMBDA_MESSAGE_PORT": str(port),
        "AWS_CONTAINER_AUTHORIZATION_TOKEN": token,
        "MY_FUNCTION_ARN": function_arn,
        "AWS_GREENGRASS_LAMBDA_ARN": function_arn,
        "ROUTER_FUNCTION_ARN": ROUTER_FUNCTION_ARN,
        "SHADOW_FUNCTION_ARN": SHADOW_FUNCTION_ARN,
        "SECRETS_MANAGER_FUNCTION_ARN": SECRETS_MANAGER_FUNCTION_ARN,
        "GGC_MAX_INTERFACE_VERSION": GGC_MAX_INTERFACE_VERSION,
    }


def new_token() -> str:
    """A fresh per-function token for ``AWS_CONTAINER_AUTHORIZATION_TOKEN``."""
    return secrets.token_urlsafe(24)


def shim_paths() -> tuple[Path, Path]:
    """``(python, nodejs)``: add the first to ``PYTHONPATH`` and the second to ``NODE_PATH``."""
    return asset("shims/python"), asset("shims/nodejs/node_modules")
