"""Messaging, assembled: what the core starts once and wires each function into.

The kernel (or the Lambda manager) owns one :class:`Messaging`: the local bus, the MQTT bridge
(only when ``config.yaml`` names a broker), the event sources, the V1 SDK IPC server and the
secret store, and the local shadow service (with its sync to the broker) when it is given the
core's state database. Deployments feed it the ``aws.greengrass.LegacySubscriptionRouter``,
``aws.greengrass.SecretManager`` and ``aws.greengrass.ShadowManager`` configurations; the
Lambda manager calls :meth:`add_function` for each Lambda component and merges the returned
variables into the function's environment.
Start order is bus → bridge → IPC server; ``aclose`` stops them in reverse.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from sprig.functions.event_sources import EventSources
from sprig.functions.invocation import Invoker
from sprig.mqtt.bridge import MqttBridge
from sprig.mqtt.settings import MqttSettings
from sprig.pubsub.bus import Bus
from sprig.sdk_ipc.env import new_token, sdk_env
from sprig.sdk_ipc.secrets import SecretStore, parse_secrets
from sprig.sdk_ipc.server import PeerCheck, SdkIpcServer
from sprig.shadow.config import parse_config
from sprig.shadow.service import SHADOW_MANAGER, ShadowService
from sprig.shadow.sync import ShadowSync
from sprig.state.db import StateDB

log = logging.getLogger(__name__)

ROUTER_COMPONENT = "aws.greengrass.LegacySubscriptionRouter"
SECRET_MANAGER_COMPONENT = "aws.greengrass.SecretManager"
SHADOW_MANAGER_COMPONENT = SHADOW_MANAGER


@dataclass
class _FunctionWiring:
    arn: str
    component: str
    token: str


@dataclass
class Messaging:
    """Bus + optional bridge + event sources + V1 IPC + secrets, started and stopped together."""

    invoker: Invoker
    mqtt: MqttSettings | None = None
    secrets: SecretStore | None = None
    sdk_port: int = 0
    #: who may use a function's V1 token (see SdkIpcServer); None: anyone holding it (tests)
    verify_peer: PeerCheck | None = None
    #: where local shadows are kept (the core's state.db); None: no shadow service
    state_db: StateDB | None = None
    #: is aws.greengrass.ShadowManager deployed? (its IPC, topics and V1 calls answer only then)
    shadows_deployed: Callable[[], bool] = lambda: True
    bus: Bus = field(init=False)
    shadows: ShadowService | None = field(init=False, default=None)
    shadow_sync: ShadowSync | None = field(init=False, default=None)
    bridge: MqttBridge | None = field(init=False)
    event_sources: EventSources = field(init=False)
    sdk_ipc: SdkIpcServer = field(init=False)
    _functions: dict[str, _FunctionWiring] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.bus = Bus()
        self.bridge = MqttBridge(self.mqtt) if self.mqtt is not None else None
        self.event_sources = EventSources(self.bus, self.bridge, self.invoker)
        if self.state_db is not None:
            self.shadows = ShadowService(self.state_db, self.bus, deployed=self.shadows_deployed)
            if self.bridge is not None:
                self.shadow_sync = ShadowSync(self.shadows, self.bridge, self.state_db)
        self.sdk_ipc = SdkIpcServer(invoker=self.invoker, bus=self.bus, cloud=self.bridge,
                                    secrets=self.secrets, port=self.sdk_port,
                                    verify_peer=self.verify_peer,
                                    shadows=self.deployed_shadows)

    async def start(self) -> None:
        await self.bus.start()
        if self.shadows is not None:
            self.shadows.start()
        if self.bridge is not None:
            await self.bridge.start()
        else:
            log.info("no MQTT broker configured (mqtt.host): IOT_CORE sources and cloud "
                     "publishes are inactive; everything local works")
        await self.sdk_ipc.start()
        if self.shadow_sync is not None:
            self.shadow_sync.start()

    async def aclose(self) -> None:
        if self.shadow_sync is not None:
            await self.shadow_sync.aclose()
        if self.shadows is not None:
            self.shadows.close()
        self.event_sources.close()
        await self.sdk_ipc.aclose()
        if self.bridge is not None:
            await self.bridge.aclose()
        await self.bus.aclose()

    async def __aenter__(self) -> Messaging:
        await self.start()
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    # --- deployment-time configuration -----------------------------------------------------

    def configure_router(self, configuration: Mapping[str, Any] | None, *,
                         source: str | None = None) -> None:
        """Apply the LegacySubscriptionRouter's configuration (its ``subscriptions``)."""
        self.sdk_ipc.set_subscriptions((configuration or {}).get("subscriptions"),
                                       source=source)

    def configure_secrets(self, configuration: Mapping[str, Any] | None, *,
                          source: str | None = None, region: str = "us-east-1",
                          account: str = "000000000000") -> None:
        """Apply the SecretManager's configuration: validate, then store encrypted."""
        records = parse_secrets(configuration, source=source, region=region, account=account)
        if self.secrets is None:
            raise RuntimeError("Messaging was created without a secret store")
        self.secrets.replace(records)

    def deployed_shadows(self) -> ShadowService | None:
        """The shadow service while aws.greengrass.ShadowManager is deployed, else None."""
        return self.shadows if self.shadows is not None and self.shadows_deployed() else None

    def configure_shadows(self, configuration: Mapping[str, Any] | None, *,
                          source: str | None = None, core_thing: str | None = None) -> None:
        """Apply the ShadowManager's configuration: validated whole first (a
        :class:`~sprig.errors.ValidationError` changes nothing)."""
        config = parse_config(configuration, core_thing=core_thing, source=source)
        if self.shadows is None:
            raise RuntimeError("Messaging was created without a state database for shadows")
        self.shadows.configure(config)
        if self.shadow_sync is not None:
            self.shadow_sync.configure(config)

    # --- functions -------------------------------------------------------------------------

    def add_function(self, *, component: str, function_arn: str,
                     sources: Sequence[Any] | Mapping[str, Mapping[str, Any]] = (),
                     encoding: str = "json",
                     access_control: Mapping[str, Any] | None = None) -> dict[str, str]:
        """Wire a Lambda component (event sources, V1 IPC identity); returns the environment
        variables its processes need. Calling it again re-wires (a redeployment). Call it
        after :meth:`start` (the variables carry the IPC port)."""
        if self.sdk_ipc.port == 0:
            raise RuntimeError("Messaging.add_function() before start(): the IPC port is unknown")
        self.event_sources.set_function_sources(component, sources, encoding)
        old = self._functions.get(component)
        token = old.token if old is not None and old.arn == function_arn else new_token()
        if old is not None and old.token != token:
            self.sdk_ipc.unregister_function(old.token)
        self.sdk_ipc.register_function(function_arn, token, component, access_control)
        self._functions[component] = _FunctionWiring(function_arn, component, token)
        return sdk_env(function_arn, token, self.sdk_ipc.port)

    def remove_function(self, component: str) -> None:
        self.event_sources.remove_function(component)
        wiring = self._functions.pop(component, None)
        if wiring is not None:
            self.sdk_ipc.unregister_function(wiring.token)
