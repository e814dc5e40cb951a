"""The variables Sprig sets in a function's environment for the Core SDK v1.

They are read once, at import, as the SDK expects module-level constants.
"""

from __future__ import annotations

import os

AUTH_TOKEN = os.getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN")
MY_FUNCTION_ARN = os.getenv("MY_FUNCTION_ARN")
SHADOW_FUNCTION_ARN = os.getenv("SHADOW_FUNCTION_ARN")
ROUTER_FUNCTION_ARN = os.getenv("ROUTER_FUNCTION_ARN")
SECRETS_MANAGER_FUNCTION_ARN = os.getenv("SECRETS_MANAGER_FUNCTION_ARN")
GG_DAEMON_PORT = os.getenv("GG_DAEMON_PORT") or os.getenv("AWS_GREENGRASS_LAMBDA_MESSAGE_PORT")
GGC_MAX_INTERFACE_VERSION = os.getenv("GGC_MAX_INTERFACE_VERSION", "1.5")
