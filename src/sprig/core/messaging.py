"""Messaging in the core: :class:`sprig.sdk_ipc.messaging.Messaging` (local bus, MQTT bridge,
event sources, Greengrass Core SDK v1 endpoints, secrets) wired to the kernel, the Lambda
manager and the management API."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from sprig.errors import SprigError, ValidationError
from sprig.functions.config import LambdaConfig
from sprig.launcher.registry import REGISTRY
from sprig.mqtt.settings import MqttSettings
from sprig.sdk_ipc.env import shim_paths
from sprig.sdk_ipc.messaging import (
    ROUTER_COMPONENT,
    SECRET_MANAGER_COMPONENT,
    SHADOW_MANAGER_COMPONENT,
    Messaging,
)
from sprig.sdk_ipc.secrets import SecretStore

if TYPE_CHECKING:
    from sprig.core.component import Component
    from sprig.core.kernel import Kernel
    from sprig.core.service import BuiltinService
    from sprig.functions.function import Function
    from sprig.functions.manager import FunctionManager

log = logging.getLogger("sprig.messaging")


class CoreMessaging:
    def __init__(self, kernel: Kernel, functions: FunctionManager) -> None:
        self.kernel = kernel
        settings = MqttSettings.from_mapping(
            kernel.settings.mqtt, str(kernel.layout.config_file),
            thing_name=kernel.settings.thing_name, base_dir=kernel.layout.root)
        self.messaging = Messaging(invoker=functions, mqtt=settings,
                                   secrets=SecretStore.for_root(kernel.layout),
                                   verify_peer=REGISTRY.stranger, state_db=kernel.db,
                                   shadows_deployed=self._shadow_manager_deployed)
        kernel.on_builtin_configured(self._builtin_configured)

    def _shadow_manager_deployed(self) -> bool:
        return SHADOW_MANAGER_COMPONENT in self.kernel.components

    @property
    def bus(self) -> Any:
        return self.messaging.bus

    @property
    def bridge(self) -> Any:
        return self.messaging.bridge

    async def start(self) -> None:
        await self.messaging.start()

    async def aclose(self) -> None:
        await self.messaging.aclose()

    # -- functions -------------------------------------------------------------------------

    def function_env(self, component: Component, function_arn: str) -> dict[str, str]:
        """Wire a Lambda component's event sources and V1 SDK identity; the variables its
        workers need (with the Core SDK v1 shims on the module path)."""
        try:
            cfg = LambdaConfig.from_configuration(component.configuration,
                                                  f"component {component.name}")
        except ValidationError:
            return {}     # the Lambda service reports the configuration error itself
        access = component.configuration.get("accessControl")
        env = self.messaging.add_function(
            component=component.name, function_arn=function_arn,
            sources=list(cfg.event_sources), encoding=str(cfg.encoding),
            access_control=access if isinstance(access, dict) else None)
        python_shims, _node_shims = shim_paths()
        env["PYTHONPATH"] = str(python_shims)
        return env

    def function_changed(self, name: str, fn: Function | None) -> None:
        if fn is None:
            self.messaging.remove_function(name)

    # -- built-in components' configuration ------------------------------------------------

    def _builtin_configured(self, service: BuiltinService) -> None:
        self.apply_builtin(service.name, service.component.configuration)

    def apply_builtin(self, name: str, configuration: dict[str, Any]) -> None:
        try:
            if name == ROUTER_COMPONENT:
                self.messaging.configure_router(configuration, source=f"{name} configuration")
            elif name == SECRET_MANAGER_COMPONENT:
                self.messaging.configure_secrets(configuration, source=f"{name} configuration",
                                                 region=self.kernel.settings.region)
            elif name == SHADOW_MANAGER_COMPONENT:
                self.messaging.configure_shadows(configuration,
                                                 source=f"{name} configuration",
                                                 core_thing=self.kernel.settings.thing_name)
        except SprigError as e:
            log.warning("%s: configuration not applied: %s", name, e)

    def apply_deployed_builtins(self) -> None:
        for name in (ROUTER_COMPONENT, SECRET_MANAGER_COMPONENT, SHADOW_MANAGER_COMPONENT):
            comp = self.kernel.components.get(name)
            if comp is not None:
                self.apply_builtin(name, comp.configuration)

    def validate_builtin(self, record: Any, recipe: Any) -> None:
        """Deployment-time check of a built-in's configuration: a ShadowManager configuration
        Sprig would refuse fails the deployment before anything changes."""
        from sprig.core.component import config_state
        from sprig.shadow.config import parse_config

        if record.name == SHADOW_MANAGER_COMPONENT:
            parse_config(config_state(record).effective, core_thing=self.kernel.settings.thing_name,
                         source=f"{record.name} configuration")

    # -- shadows (management API) --------------------------------------------------------------

    async def shadow_get(self, params: dict[str, Any]) -> Any:
        """``sprig shadow get THING [--name N]``: the local document, or a ValidationError
        saying why there is none."""
        from sprig.shadow.document import ShadowError

        service = self.messaging.deployed_shadows()
        if service is None:
            raise ValidationError("shadow", f"{SHADOW_MANAGER_COMPONENT} is not deployed",
                                  allowed=f"deploy it: sprig deployment create --merge "
                                  f"{SHADOW_MANAGER_COMPONENT}=2.3.12")
        thing, name = params.get("thing"), params.get("name") or ""
        try:
            return service.get(thing, name, rate_limited=False)
        except ShadowError as e:
            what = f"thing {thing!r}" + (f", shadow {name!r}" if name else " (classic shadow)")
            raise SprigError(f"{e.code} {e.text}: {what}") from None

    # -- management API ----------------------------------------------------------------------

    async def publish(self, params: dict[str, Any]) -> Any:
        topic = str(params.get("topic", ""))
        payload = base64.b64decode(params.get("payload", ""))
        if params.get("cloud"):
            if self.bridge is None:
                raise ValidationError("mqtt", "no MQTT broker is configured",
                                      allowed="set mqtt.host in config.yaml")
            outcome = await self.bridge.publish(topic, payload, int(params.get("qos", 0)))
            return {"outcome": str(outcome)}
        # A JSON payload travels as a JSON message (IPC subscribers get jsonMessage), anything
        # else, or --binary, as bytes (binaryMessage).
        is_json = False
        if not params.get("binary"):
            try:
                json.loads(payload)
                is_json = True
            except ValueError:
                pass
        delivered = self.bus.publish(topic, payload, source="cli", json=is_json)
        return {"subscribers": delivered}

    async def subscribe(self, params: dict[str, Any]) -> AsyncIterator[Any]:
        topic_filter = str(params.get("topic", ""))
        if params.get("cloud"):
            if self.bridge is None:
                raise ValidationError("mqtt", "no MQTT broker is configured",
                                      allowed="set mqtt.host in config.yaml")
            sub: Any = self.bridge.subscribe(topic_filter, owner="cli")
        else:
            sub = self.bus.subscribe(topic_filter, owner="cli")
        try:
            yield {"subscribed": topic_filter}
            while True:
                message = await sub.get()
                yield {"topic": message.topic, "source": message.source,
                       "payload": base64.b64encode(message.payload).decode()}
        finally:
            sub.close()
