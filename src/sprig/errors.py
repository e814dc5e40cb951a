"""The root of Sprig's exceptions.

Every error a user can cause is a :class:`SprigError` whose ``str()`` is the sentence shown to the
user. Packages extend the tree in their own ``errors`` modules::

    * SprigError
      x ValidationError      bad input: names the file, field path, value and what is allowed
      x DeploymentError      a deployment could not be applied (raised after validation passed)
      x LaunchError          a process or sandbox could not be started
        + SandboxUnavailable   the device cannot honour GreengrassContainer (names what is missing)
      x FunctionError        see sprig.functions.errors
      x LifecycleError       a component's lifecycle step failed (sprig.core.service)
      x CgroupError          a cgroup could not be set up (also an OSError; sprig.launcher.cgroups)
      x IpcError             an IPC v2 error in AWS's words (ServiceError, UnauthorizedError …)
      x InvokeApiError       the Lambda API's answer in AWS's shape (sprig.local_api.invoke_api)
      x ManagementApiError   the management API refused a CLI call (sprig.cli.client)
      x ...                  each package's own (ShadowError, DiskFull, MqttPublishError …)

Every exception class has a unique name (``sprig/_tests/test_errors.py`` checks both rules).
Two kinds stay outside on purpose: the code that runs *inside* a function's process
(``sprig.runtimes``' bootstraps, ``sprig.shims``), which cannot import Sprig, and private
signals caught where they are raised, never shown to anyone (listed in that test).
"""

from __future__ import annotations

from typing import Any


class SprigError(Exception):
    """Base class of every error Sprig raises on purpose."""


class ValidationError(SprigError):
    """Input that Sprig refuses: raised before anything is changed.

    The message names where the problem is (``source``: a file or a document), the field path,
    the offending value and what is allowed.
    """

    def __init__(
        self,
        path: str,
        message: str,
        *,
        value: Any = None,
        allowed: str | None = None,
        source: str | None = None,
        has_value: bool = False,
    ) -> None:
        self.path = path
        self.message = message
        self.value = value
        self.allowed = allowed
        self.source = source
        self.has_value = has_value or value is not None
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.source}: " if self.source else ""
        field = f"{self.path}: " if self.path else ""
        text = f"{where}{field}{self.message}"
        if self.has_value:
            text += f" (got {self.value!r})"
        if self.allowed:
            text += f"; allowed: {self.allowed}"
        return text

    def with_source(self, source: str) -> ValidationError:
        """Return the same error attributed to ``source`` (a file name) if it has none yet."""
        if self.source:
            return self
        return ValidationError(
            self.path,
            self.message,
            value=self.value,
            allowed=self.allowed,
            source=source,
            has_value=self.has_value,
        )

    def under(self, prefix: str) -> ValidationError:
        """Return the same error with its field path placed under ``prefix``."""
        path = f"{prefix}.{self.path}" if self.path else prefix
        return ValidationError(
            path,
            self.message,
            value=self.value,
            allowed=self.allowed,
            source=self.source,
            has_value=self.has_value,
        )


class DeploymentError(SprigError):
    """A validated deployment failed while being applied (install, startup, timeout, BROKEN)."""


class LaunchError(SprigError):
    """A process or its sandbox could not be started."""


class SandboxUnavailable(LaunchError):
    """The device lacks what GreengrassContainer needs; the message names it and how to fix it."""
