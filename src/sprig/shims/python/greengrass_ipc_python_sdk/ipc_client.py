"""A client of the Greengrass Core SDK v1 local HTTP IPC that Sprig serves.

``POST {base}/{arn}`` queues work for a function (or publishes, through the router ARN) and
answers with ``X-Amz-InvocationId``; ``GET {base}/{arn}`` with that id returns the result and
``X-Amz-Function-Error``. Every request carries the function's token in ``Authorization``.
Only the standard library is used, so it works in any function's interpreter.
"""

from __future__ import annotations

import logging
import urllib.error
import urllib.request

from greengrass_common import env_vars

log = logging.getLogger(__name__)

HEADER_INVOCATION_ID = "X-Amz-InvocationId"
HEADER_CLIENT_CONTEXT = "X-Amz-Client-Context"
HEADER_INVOCATION_TYPE = "X-Amz-Invocation-Type"
HEADER_FUNCTION_ERROR = "X-Amz-Function-Error"
HEADER_AUTH_TOKEN = "Authorization"
API_VERSION = "2016-11-01"
DEFAULT_PORT = 8000
RESULT_TIMEOUT_SECONDS = 900


class IPCException(Exception):
    """Any failure to talk to the IPC server, or an error status (>= 400) from it."""


class WorkItem:
    def __init__(self, invocation_id, payload, client_context):
        self.invocation_id = invocation_id
        self.payload = payload
        self.client_context = client_context


class GetWorkResultOutput:
    """The result of an invocation: ``payload`` (bytes) and ``func_err`` ('' on success)."""

    def __init__(self, payload, func_err):
        self.payload = payload
        self.func_err = func_err


def _as_text(value):
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return str(value)


def _as_bytes(value):
    if value is None:
        return b""
    if isinstance(value, str):
        return value.encode("utf-8")
    return bytes(value)


class IPCClient:
    """Talks to Sprig's V1 IPC on ``endpoint`` and ``$GG_DAEMON_PORT``."""

    def __init__(self, endpoint="localhost", port=None):
        # Sprig serves IPv4 loopback only; skip a useless ::1 attempt for "localhost".
        self.endpoint = "127.0.0.1" if endpoint == "localhost" else endpoint
        self.port = int(port or env_vars.GG_DAEMON_PORT or DEFAULT_PORT)
        self.auth_token = env_vars.AUTH_TOKEN or ""

    def _url(self, function_arn):
        # The ARN goes raw, colons included.
        return f"http://{self.endpoint}:{self.port}/{API_VERSION}/functions/{function_arn}"

    def _send(self, request, timeout):
        request.add_header(HEADER_AUTH_TOKEN, self.auth_token)
        try:
            return urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as e:
            detail = e.read().decode("utf-8", "replace")
            raise IPCException(f"HTTP Error {e.code}:{e.reason}, {detail}") from None
        except (urllib.error.URLError, OSError) as e:
            where = f"{self.endpoint}:{self.port}"
            raise IPCException(f"cannot reach the Greengrass IPC at {where}: {e}") from None

    def post_work(self, function_arn, payload, client_context, invocation_type="RequestResponse"):
        """Queue ``payload`` for ``function_arn``; returns the invocation id."""
        request = urllib.request.Request(self._url(function_arn), data=_as_bytes(payload),
                                         method="POST")
        request.add_header(HEADER_CLIENT_CONTEXT, _as_text(client_context))
        request.add_header(HEADER_INVOCATION_TYPE, invocation_type or "RequestResponse")
        with self._send(request, timeout=60) as response:
            response.read()
            return response.headers.get(HEADER_INVOCATION_ID)

    def get_work_result(self, function_arn, invocation_id):
        """Wait for and return the result of ``invocation_id``."""
        request = urllib.request.Request(self._url(function_arn), method="GET")
        request.add_header(HEADER_INVOCATION_ID, invocation_id or "")
        while True:
            try:
                with self._send(request, timeout=RESULT_TIMEOUT_SECONDS) as response:
                    payload = response.read()
                    func_err = response.headers.get(HEADER_FUNCTION_ERROR, "")
                    return GetWorkResultOutput(payload, func_err)
            except IPCException as e:
                if "HTTP Error 504" in str(e):
                    continue        # not ready yet: the server asks us to fetch again
                raise
