"""Invocations and their results: the contract between callers and the Lambda manager.

Every way of invoking a function (the invoke REST API, ``sprig invoke``, event sources, the
Greengrass Core SDK v1) builds an :class:`Invocation` and awaits an :class:`InvocationResult`
through an :class:`Invoker`.
"""

from __future__ import annotations

import asyncio
import enum
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol


class InvocationType(enum.StrEnum):
    REQUEST_RESPONSE = "RequestResponse"
    EVENT = "Event"
    DRY_RUN = "DryRun"


class FunctionErrorKind(enum.StrEnum):
    """Who reported a function error: the function (Handled) or Sprig (Unhandled).

    The Greengrass Core SDK v1 shows it as is (``X-Amz-Function-Error`` of Greengrass V1:
    "Handled errors are errors that are reported by the function"); the Lambda API says
    :attr:`lambda_api` instead.
    """

    HANDLED = "Handled"
    UNHANDLED = "Unhandled"

    @property
    def lambda_api(self) -> str:
        """``FunctionError`` as AWS Lambda answers ``Invoke`` today: ``Unhandled`` for every
        function error, an exception the handler raised included (every current runtime posts
        it to the Runtime API's ``/invocation/{id}/error``, which Lambda reports as Unhandled;
        ``Handled`` was the old Node.js ``callback(err)``)."""
        return FunctionErrorKind.UNHANDLED.value


#: Where an ``Event`` invocation's caller only has the 202 to rely on: these are stored before
#: the answer and run at least once (see :mod:`sprig.functions.durable`). Event-source deliveries
#: ("pubsub", "iotcore") are not.
DURABLE_SOURCES = frozenset({"api", "cli", "sdk"})

# Limits as AWS Lambda: 6 MB synchronous request and response, 256 KB for Event invocations.
SYNC_PAYLOAD_LIMIT = 6 * 1024 * 1024
EVENT_PAYLOAD_LIMIT = 256 * 1024


@dataclass
class Invocation:
    """One work item for a function.

    ``client_context`` is the decoded JSON object (not base64); ``payload`` is the raw body.
    """

    payload: bytes
    invocation_type: InvocationType = InvocationType.REQUEST_RESPONSE
    client_context: dict[str, Any] | None = None
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    source: str = "api"   # "api", "cli", "pubsub", "iotcore", "sdk": for logs and metrics

    @property
    def durable(self) -> bool:
        """An Event stored before it is acknowledged (:data:`DURABLE_SOURCES`)."""
        return self.invocation_type is InvocationType.EVENT and self.source in DURABLE_SOURCES


@dataclass(frozen=True)
class InvocationResult:
    """What the caller gets back.

    ``function_error`` is None on success; otherwise ``payload`` is the JSON error document
    (``errorMessage``, ``errorType``, ``stackTrace``) as AWS Lambda returns it.
    ``log_tail`` holds the last 4 KB of the invocation's log lines when asked for.
    """

    request_id: str
    payload: bytes
    function_error: FunctionErrorKind | None = None
    executed_version: str = "$LATEST"
    log_tail: bytes = b""

    @property
    def ok(self) -> bool:
        return self.function_error is None


class Invoker(Protocol):
    """Finds a function by component name, function name or ARN and runs an invocation."""

    async def invoke(self, function: str, invocation: Invocation, *,
                     want_log_tail: bool = False) -> InvocationResult:
        """Run ``invocation`` (queueing it); for Event, return as soon as it is queued.

        Raises:
            FunctionNotFound: no deployed function has that name or ARN.
            QueueFull: the function's queue (maxQueueSize) is full.
            PayloadTooLarge: the payload is over the limit for its invocation type.
            EventNotStored: a durable Event could not be stored (full disk): not accepted.
        """
        ...

    def submit(self, function: str, invocation: Invocation, *,
               want_log_tail: bool = False) -> asyncio.Future[InvocationResult]:
        """A RequestResponse invocation queued now, without a task (the hot path); the
        future gets its result. Raises what :meth:`invoke` raises, and ValueError for
        another invocation type."""
        ...
