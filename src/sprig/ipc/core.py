"""What the IPC server needs from the core, and the errors it reports to clients.

The server never reaches into the kernel: it is given an :class:`IpcCore`. The real core (the
kernel) implements it; tests implement it with a small class around a real :class:`Bus`.

Errors a handler raises become an APPLICATION_ERROR with TERMINATE_STREAM whose
``service-model-type`` is the Greengrass error shape, so the awsiotsdk client raises the matching
exception class (``UnauthorizedError``, ``ServiceError``...) with our ``message``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Protocol

from sprig.config.protected import ProtectedKey
from sprig.errors import SprigError
from sprig.launcher.peers import Peer
from sprig.mqtt.bridge import MqttBridge
from sprig.pubsub.bus import Bus
from sprig.sdk_ipc.secrets import SecretRecord
from sprig.shadow.service import ShadowService


class IpcCore(Protocol):
    """The core as the IPC server sees it.

    Callbacks given to :meth:`subscribe_configuration` must be called on the event loop's thread
    (the server writes to the socket from them without locking).
    """

    @property
    def bus(self) -> Bus:
        """The local pub/sub bus (PublishToTopic / SubscribeToTopic)."""
        ...

    @property
    def bridge(self) -> MqttBridge | None:
        """The MQTT bridge (PublishToIoTCore / SubscribeToIoTCore); None: no broker configured."""
        ...

    def component_for_token(self, token: str) -> str | None:
        """The component a SVCUID token was issued to; None for an unknown token."""
        ...

    def verify_peer(self, component: str, peer: Peer | None) -> str | None:
        """None when ``peer`` (the connecting process, from ``SO_PEERCRED``) is a process of
        ``component``; else who it is, for the refusal. A SVCUID is only as good as the process
        presenting it: a token read from another process's environment must be useless."""
        ...

    def access_control(self, component: str) -> Mapping[str, Any]:
        """The component's ``accessControl`` configuration ({} when it has none)."""
        ...

    def get_configuration(self, component: str) -> dict[str, Any] | None:
        """The component's effective configuration; None when there is no such component."""
        ...

    def component_type(self, component: str) -> str | None:
        """The component's recipe ComponentType (``aws.greengrass.lambda``...); None when
        there is no such component."""
        ...

    def protected_configuration(self, component: str) -> Sequence[ProtectedKey]:
        """The keys of the component's configuration that IPC may not change
        (:func:`sprig.config.protected.protected_keys`)."""
        ...

    async def update_configuration(self, component: str, key_path: list[str],
                                   value_to_merge: Any) -> None:
        """Merge ``value_to_merge`` at ``key_path`` (a map merges, anything else replaces).

        Raise :class:`sprig.errors.ValidationError` for a value the core refuses.
        """
        ...

    def subscribe_configuration(self, component: str,
                                callback: Callable[[list[str]], None]) -> Callable[[], None]:
        """Call ``callback(key_path)`` whenever a key of ``component``'s configuration changes
        (``key_path`` relative to the configuration). Returns the unsubscribe function."""
        ...

    def subscribe_component_updates(self, component: str, callback: Callable[[dict[str, Any]], None]
                                    ) -> Callable[[], None]:
        """SubscribeToComponentUpdates: ``callback(event)`` with each ``preUpdateEvent`` /
        ``postUpdateEvent`` of a deployment. Returns the unsubscribe function."""
        ...

    def defer_component_update(self, component: str, deployment_id: str, message: str,
                               recheck_after_ms: int) -> None:
        """DeferComponentUpdate. Raise :class:`InvalidArgumentsError` when ``component`` did
        not subscribe, :class:`ServiceError` when no deployment waits for its answer."""
        ...

    def subscribe_configuration_validation(self, component: str,
                                           callback: Callable[[dict[str, Any]], None]
                                           ) -> Callable[[], None]:
        """SubscribeToValidateConfigurationUpdates: ``callback(event)`` with each
        ``validateConfigurationUpdateEvent``. Returns the unsubscribe function."""
        ...

    def report_configuration_validity(self, component: str, deployment_id: str, status: str,
                                      message: str) -> None:
        """SendConfigurationValidityReport. Raise :class:`InvalidArgumentsError` when no
        deployment waits for this component's report."""
        ...

    def report_state(self, component: str, state: str) -> None:
        """UpdateState: the component reports ``RUNNING`` or ``ERRORED``."""
        ...

    def component_details(self, name: str) -> dict[str, Any] | None:
        """``{componentName, version, state, configuration}``; None: no such component."""
        ...

    def list_component_details(self) -> list[dict[str, Any]]:
        """ListComponents: :meth:`component_details` of every component, in dependency order."""
        ...

    async def restart_component(self, name: str) -> bool:
        """RestartComponent (as ``sprig component restart``); False: no such component."""
        ...

    async def stop_component(self, name: str) -> bool:
        """StopComponent (as ``sprig component stop``); False: no such component."""
        ...

    def deployment_summary(self, deployment_id: str) -> dict[str, Any] | None:
        """GetLocalDeploymentStatus: ``{deploymentId, status, reason, createdAt}``; None: no
        such deployment."""
        ...

    def deployment_summaries(self) -> list[dict[str, Any]]:
        """ListLocalDeployments: the deployments the core keeps, newest first."""
        ...

    def find_secret(self, secret_id: str) -> SecretRecord | None:
        """GetSecretValue: the secret deployed with ``aws.greengrass.SecretManager`` whose name
        or ARN is ``secret_id``; None when there is none. Raise
        :class:`sprig.sdk_ipc.secrets.SecretStoreError` when the store cannot be read."""
        ...

    def shadows(self) -> ShadowService | None:
        """The local shadow service (Get/Update/DeleteThingShadow, ListNamedShadowsForThing);
        None while ``aws.greengrass.ShadowManager`` is not deployed."""
        ...


class IpcError(SprigError):
    """An error reported to the client as a Greengrass error shape."""

    shape: ClassVar[str] = "aws.greengrass#ServiceError"

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)

    def body(self) -> dict[str, Any]:
        return {"message": self.message}


class ServiceError(IpcError):
    shape = "aws.greengrass#ServiceError"


class UnauthorizedError(IpcError):
    shape = "aws.greengrass#UnauthorizedError"


class InvalidArgumentsError(IpcError):
    shape = "aws.greengrass#InvalidArgumentsError"


class ConflictError(IpcError):
    """UpdateThingShadow with a ``version`` that is not the shadow's current one."""

    shape = "aws.greengrass#ConflictError"


class ResourceNotFoundError(IpcError):
    shape = "aws.greengrass#ResourceNotFoundError"

    def __init__(self, message: str, *, resource_type: str | None = None,
                 resource_name: str | None = None) -> None:
        super().__init__(message)
        self.resource_type = resource_type
        self.resource_name = resource_name

    def body(self) -> dict[str, Any]:
        out = super().body()
        if self.resource_type is not None:
            out["resourceType"] = self.resource_type
        if self.resource_name is not None:
            out["resourceName"] = self.resource_name
        return out


def invalid(field: str, message: str, value: Any, allowed: str) -> InvalidArgumentsError:
    """An InvalidArgumentsError naming the request field, the value and what is allowed."""
    shown = repr(value)
    if len(shown) > 200:
        shown = shown[:200] + "..."
    return InvalidArgumentsError(f"{field}: {message} (got {shown}); allowed: {allowed}")
