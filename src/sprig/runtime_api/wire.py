"""Every string the Lambda Runtime API (2018-06-01) puts on the wire, in one place.

The official runtime interface clients (awslambdaric, aws-lambda-ric) are picky about these:
see client-protocols.md §0 and §1.4. Header names are matched case-insensitively by clients, but we
send them with AWS's spelling.
"""

from __future__ import annotations

API_VERSION = "2018-06-01"
# Sprig's own runtimes connect here (a Unix socket path) instead of AWS_LAMBDA_RUNTIME_API.
ENV_UNIX_SOCKET = "SPRIG_RUNTIME_API_SOCKET"
# Set ("1") for Sprig's own Python runtime: speak the framed lane on that socket
# (sprig.runtime_api.frames) instead of HTTP.
ENV_FRAMES = "SPRIG_RUNTIME_API_FRAMES"
PREFIX = f"/{API_VERSION}/runtime"

PATH_NEXT = f"{PREFIX}/invocation/next"
PATH_INIT_ERROR = f"{PREFIX}/init/error"
INVOCATION_PREFIX = f"{PREFIX}/invocation/"
SUFFIX_RESPONSE = "/response"
SUFFIX_ERROR = "/error"

# /next response headers.
H_REQUEST_ID = "Lambda-Runtime-Aws-Request-Id"
H_DEADLINE_MS = "Lambda-Runtime-Deadline-Ms"
H_FUNCTION_ARN = "Lambda-Runtime-Invoked-Function-Arn"
H_TRACE_ID = "Lambda-Runtime-Trace-Id"
H_CLIENT_CONTEXT = "Lambda-Runtime-Client-Context"
H_COGNITO_IDENTITY = "Lambda-Runtime-Cognito-Identity"
# Request header naming the error type on /error and /init/error (lower case: we match on it).
H_FUNCTION_ERROR_TYPE = "lambda-runtime-function-error-type"

# Content types. The Python RIC parses JSON only for exactly "application/json" (§0.2).
CT_JSON = "application/json"
CT_BINARY = "application/octet-stream"

# Largest response a function may return, as AWS Lambda and its emulator count it.
MAX_RESPONSE_BYTES = 6 * 1024 * 1024 + 100

# Error types the Runtime API answers with (RIE spelling) and the ones a caller sees.
ERR_INVALID_STATE = "InvalidStateTransition"
ERR_INVALID_REQUEST_ID = "InvalidRequestID"
ERR_TOO_LARGE = "RequestEntityTooLarge"
ERR_NOT_FOUND = "NotFound"
ERR_BAD_REQUEST = "InvalidRequest"
ERR_CONTAINER = "Runtime.Unavailable"
CONTAINER_ERROR_MESSAGE = "Container error. Non-recoverable state. Runtime should exit promptly."
FN_RESPONSE_TOO_LARGE = "Function.ResponseSizeTooLarge"
FN_UNHANDLED = "Unhandled"


def too_large_message(size: int | None = None) -> str:
    """AWS's wording for an oversize response (the 413 body and the caller's error)."""
    if size is None:
        return f"Exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes)."
    return (f"Response payload size ({size} bytes) exceeded maximum allowed payload size "
            f"({MAX_RESPONSE_BYTES} bytes).")


STATUS_OK_BODY = b'{"status":"OK"}'
