"""Errors of the Lambda manager, with the exact error types AWS Lambda uses."""

from __future__ import annotations

from sprig.disk import DiskFull
from sprig.errors import SprigError

# Error types as AWS Lambda and its Runtime Interface Emulator spell them.
SANDBOX_TIMEOUT = "Sandbox.Timeout"
RUNTIME_EXIT_ERROR = "Runtime.ExitError"
RUNTIME_OUT_OF_MEMORY = "Runtime.OutOfMemory"
RESPONSE_TOO_LARGE = "Function.ResponseSizeTooLarge"
RUNTIME_INIT_ERROR = "Runtime.InitError"
# Sprig's, in the same family: a worker could not start because a disk it writes is full.
RUNTIME_DISK_FULL = "Runtime.DiskFull"


class FunctionError(SprigError):
    """Base class of the Lambda manager's errors."""


class FunctionNotFound(FunctionError):
    """No deployed Lambda component matches the name or ARN (ResourceNotFoundException)."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"Function not found: {name}")


class QueueFull(FunctionError):
    """The function's queue holds maxQueueSize invocations already (TooManyRequestsException)."""

    def __init__(self, name: str, max_queue_size: int) -> None:
        self.name = name
        self.max_queue_size = max_queue_size
        super().__init__(
            f"Rate Exceeded: the queue of function {name} is full "
            f"(maxQueueSize {max_queue_size}); try again later"
        )


class PayloadTooLarge(FunctionError):
    """The request payload exceeds the limit for its invocation type (RequestTooLargeException)."""

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(
            f"Request must be smaller than {limit} bytes for the InvokeFunction operation "
            f"(got {size} bytes)"
        )


class FunctionNotRunnable(FunctionError):
    """The function's component is BROKEN or stopped and cannot take invocations."""


class FunctionInitError(FunctionError):
    """A worker could not initialise (``/init/error``, exit before its first /next, or a
    timeout); ``error_type`` is AWS's (``Runtime.ImportModuleError``, ``Runtime.ExitError``...)."""

    def __init__(self, name: str, error_type: str, message: str) -> None:
        self.name = name
        self.error_type = error_type
        self.error_message = message
        super().__init__(f"function {name} failed to initialise: {error_type}: {message}")


class EventNotStored(FunctionError, DiskFull):
    """An ``Event`` invocation could not be stored (``state.db``'s disk is full): it was not
    accepted, nothing is queued, the caller may retry (ServiceException, 500)."""

    def __init__(self, cause: DiskFull, function: str) -> None:
        DiskFull.__init__(self, cause.path, f"the Event invocation of {function} was not "
                          "accepted (nothing is queued); retry once there is space")
