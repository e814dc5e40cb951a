"""The kernel as the Greengrass IPC v2 server sees it (:class:`sprig.ipc.core.IpcCore`)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any

from sprig.config.protected import ACCESS_CONTROL, ProtectedKey, protected_keys
from sprig.core.component import privileged_references
from sprig.core.state import State
from sprig.errors import SprigError
from sprig.ipc.notices import ComponentNotices, Deferral, ValidityReport
from sprig.launcher.peers import Peer
from sprig.launcher.registry import REGISTRY
from sprig.sdk_ipc.secrets import SecretStore

if TYPE_CHECKING:
    from sprig.core.component import Component
    from sprig.core.kernel import Kernel
    from sprig.mqtt.bridge import MqttBridge
    from sprig.pubsub.bus import Bus
    from sprig.sdk_ipc.secrets import SecretRecord
    from sprig.shadow.service import ShadowService
    from sprig.state.db import DeploymentRecord

log = logging.getLogger("sprig.ipc")

#: ListLocalDeployments answers with the newest deployments the core keeps (as many as the
#: Greengrass CLI's history shows at most).
_LISTED_DEPLOYMENTS = 50


def _summary(record: DeploymentRecord) -> dict[str, Any]:
    return {"deploymentId": record.id, "status": record.status, "reason": record.reason,
            "createdAt": record.created}


class KernelIpcCore:
    def __init__(self, kernel: Kernel, bus: Bus, bridge: MqttBridge | None,
                 shadows: Callable[[], ShadowService | None] = lambda: None,
                 notices: ComponentNotices | None = None,
                 restart: Callable[[str], Awaitable[None]] | None = None,
                 stop: Callable[[str], Awaitable[None]] | None = None) -> None:
        self.kernel = kernel
        self._restart = restart
        self._stop = stop
        self._notices = notices if notices is not None else ComponentNotices()
        self._shadows = shadows
        self._bus = bus
        self._bridge = bridge
        self._config_subscribers: dict[str, list[Callable[[list[str]], None]]] = {}
        kernel.on_configuration_change(self._config_changed)

    @property
    def bus(self) -> Bus:
        return self._bus

    @property
    def bridge(self) -> MqttBridge | None:
        return self._bridge

    def component_for_token(self, token: str) -> str | None:
        return self.kernel.component_for_token(token)

    def verify_peer(self, component: str, peer: Peer | None) -> str | None:
        if peer is not None and peer.pid is not None and REGISTRY.belongs(peer.pid, component):
            return None
        return REGISTRY.describe(peer) if peer is not None else "an unknown peer"

    def access_control(self, component: str) -> Mapping[str, Any]:
        comp = self.kernel.components.get(component)
        access = comp.configuration.get("accessControl") if comp else None
        return access if isinstance(access, dict) else {}

    def get_configuration(self, component: str) -> dict[str, Any] | None:
        comp = self.kernel.components.get(component)
        return comp.configuration if comp is not None else None

    def component_type(self, component: str) -> str | None:
        comp = self.kernel.components.get(component)
        return comp.component_type if comp is not None else None

    def protected_configuration(self, component: str) -> list[ProtectedKey]:
        comp = self.kernel.components.get(component)
        if comp is None:
            return [ACCESS_CONTROL]
        references = [ref for other in self.kernel.components.values()
                      for ref in privileged_references(other,
                                                       runs_as_root=self._runs_as_root(other))]
        return protected_keys(component, comp.component_type, references)

    def _runs_as_root(self, comp: Component) -> bool:
        try:
            run_as = self.kernel.run_as_for(comp)
        except SprigError:
            return True       # cannot tell: protect what its steps read
        return run_as is not None and run_as.user in ("root", "0")

    async def update_configuration(self, component: str, key_path: list[str],
                                   value_to_merge: Any) -> None:
        self.kernel.update_configuration(component, key_path, value_to_merge)

    def subscribe_configuration(self, component: str,
                                callback: Callable[[list[str]], None]) -> Callable[[], None]:
        subs = self._config_subscribers.setdefault(component, [])
        subs.append(callback)

        def unsubscribe() -> None:
            if callback in subs:
                subs.remove(callback)

        return unsubscribe

    def _config_changed(self, component: str, key_path: list[str]) -> None:
        for callback in list(self._config_subscribers.get(component, ())):
            try:
                callback(key_path)
            except Exception:
                log.exception("configuration update subscriber of %s failed", component)

    def subscribe_component_updates(self, component: str,
                                    callback: Callable[[dict[str, Any]], None]
                                    ) -> Callable[[], None]:
        return self._notices.subscribe_updates(component, callback)

    def defer_component_update(self, component: str, deployment_id: str, message: str,
                               recheck_after_ms: int) -> None:
        self._notices.defer(component, Deferral(deployment_id, recheck_after_ms, message))

    def subscribe_configuration_validation(self, component: str,
                                           callback: Callable[[dict[str, Any]], None]
                                           ) -> Callable[[], None]:
        return self._notices.subscribe_validation(component, callback)

    def report_configuration_validity(self, component: str, deployment_id: str, status: str,
                                      message: str) -> None:
        self._notices.report_validity(component, ValidityReport(deployment_id, status, message))

    def report_state(self, component: str, state: str) -> None:
        svc = self.kernel.services.get(component)
        if svc is None:
            return
        if state == "ERRORED":
            svc.report_error("the component reported ERRORED through IPC UpdateState")
        elif state == "RUNNING" and svc.state is State.STARTING:
            svc.set_state(State.RUNNING)

    def component_details(self, name: str) -> dict[str, Any] | None:
        svc = self.kernel.services.get(name)
        if svc is None:
            return None
        return {"componentName": name, "version": svc.component.version,
                "state": str(svc.state), "configuration": svc.component.configuration}

    def list_component_details(self) -> list[dict[str, Any]]:
        names = self.kernel.dependency_order(sorted(self.kernel.services))
        return [d for n in names if (d := self.component_details(n)) is not None]

    async def restart_component(self, name: str) -> bool:
        if name not in self.kernel.services or self._restart is None:
            return False
        await self._restart(name)
        return True

    async def stop_component(self, name: str) -> bool:
        if name not in self.kernel.services or self._stop is None:
            return False
        await self._stop(name)
        return True

    def deployment_summary(self, deployment_id: str) -> dict[str, Any] | None:
        record = self.kernel.db.deployment(deployment_id)
        return None if record is None else _summary(record)

    def deployment_summaries(self) -> list[dict[str, Any]]:
        return [_summary(r) for r in self.kernel.db.deployments(_LISTED_DEPLOYMENTS)]

    @cached_property
    def _secret_store(self) -> SecretStore:
        """A store on the root's ``secrets.enc``: the messaging's own store writes that file on
        every SecretManager deployment and this one re-reads it when it changed."""
        return SecretStore.for_root(self.kernel.layout)

    def find_secret(self, secret_id: str) -> SecretRecord | None:
        return self._secret_store.find(secret_id)

    def shadows(self) -> ShadowService | None:
        """The local shadow service while ``aws.greengrass.ShadowManager`` is deployed."""
        return self._shadows()
