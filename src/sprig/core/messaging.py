"""Messaging in the core: the local bus, the MQTT bridge, functions' event sources, and the
Greengrass Core SDK v1 endpoints — wired to the kernel and the Lambda manager."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from sprig.errors import ValidationError
from sprig.mqtt.bridge import MqttBridge
from sprig.mqtt.settings import MqttSettings
from sprig.pubsub.bus import Bus
from sprig.pubsub.event_sources import EventSources
from sprig.sdk_ipc.env import sdk_env, shim_paths
from sprig.sdk_ipc.server import SdkIpcServer

if TYPE_CHECKING:
    from sprig.core.component import Component
    from sprig.core.kernel import Kernel
    from sprig.core.service import BuiltinService
    from sprig.functions.function import Function
    from sprig.functions.manager import FunctionManager

log = logging.getLogger("sprig.messaging")

ROUTER = "aws.greengrass.LegacySubscriptionRouter"


class Messaging:
    def __init__(self, kernel: Kernel, functions: FunctionManager) -> None:
        self.kernel = kernel
        self.functions = functions
        self.bus = Bus()
        settings = MqttSettings.from_mapping(
            kernel.settings.mqtt, str(kernel.layout.config_file),
            thing_name=kernel.settings.thing_name, base_dir=kernel.layout.root)
        self.bridge = MqttBridge(settings) if settings is not None else None
        self.events = EventSources(self.bus, self.bridge, functions)
        self.sdk = SdkIpcServer(invoker=functions, bus=self.bus, cloud=self.bridge)
        self._tokens: dict[str, str] = {}
        kernel.builtin_listeners.append(self._builtin_configured)

    async def start(self) -> None:
        await self.bus.start()
        if self.bridge is not None:
            await self.bridge.start()
        await self.sdk.start()

    async def aclose(self) -> None:
        self.events.close()
        await self.sdk.aclose()
        if self.bridge is not None:
            await self.bridge.aclose()
        await self.bus.aclose()

    # -- functions -------------------------------------------------------------------------

    def function_env(self, component: Component, function_arn: str) -> dict[str, str]:
        """What a function needs to use the Greengrass Core SDK v1 (shims on the module path)."""
        token = self.kernel.token_for(component.name)
        python_shims, node_shims = shim_paths()
        env = sdk_env(function_arn, token, self.sdk.port)
        env["PYTHONPATH"] = str(python_shims)
        env["SPRIG_NODE_SHIMS"] = str(node_shims)
        return env

    def function_changed(self, name: str, fn: Function | None) -> None:
        """Hook: a function started (or was reconfigured), or stopped (``fn`` None)."""
        if fn is None:
            self.events.remove_function(name)
            token = self._tokens.pop(name, None)
            if token is not None:
                self.sdk.unregister_function(token)
            return
        cfg = fn.spec.config
        sources = [{"topic": s.topic, "type": str(s.type)} for s in cfg.event_sources]
        try:
            self.events.set_function_sources(name, sources, str(cfg.encoding))
        except ValidationError as e:
            log.warning("function %s: event sources not wired: %s", name, e)
        token = self.kernel.token_for(name)
        self._tokens[name] = token
        component = self.kernel.components.get(name)
        access = component.configuration.get("accessControl") if component else None
        self.sdk.register_function(fn.spec.function_arn, token, name,
                                   access if isinstance(access, dict) else None)

    def _builtin_configured(self, service: BuiltinService) -> None:
        if service.name == ROUTER:
            self.apply_router(service.component.configuration)

    def apply_router(self, configuration: dict[str, Any]) -> None:
        try:
            self.sdk.set_subscriptions(configuration.get("subscriptions") or {},
                                       source=f"{ROUTER} configuration")
        except ValidationError as e:
            log.warning("%s: subscriptions not applied: %s", ROUTER, e)

    def start_router_if_deployed(self) -> None:
        comp = self.kernel.components.get(ROUTER)
        if comp is not None:
            self.apply_router(comp.configuration)

    # -- CLI -------------------------------------------------------------------------------

    async def publish(self, params: dict[str, Any]) -> Any:
        import base64

        topic = str(params.get("topic", ""))
        payload = base64.b64decode(params.get("payload", ""))
        if params.get("cloud"):
            if self.bridge is None:
                raise ValidationError("mqtt", "no MQTT broker is configured",
                                      allowed="set mqtt.host in config.yaml")
            outcome = await self.bridge.publish(topic, payload, int(params.get("qos", 0)))
            return {"outcome": str(outcome)}
        delivered = self.bus.publish(topic, payload, source="cli")
        return {"subscribers": delivered}

    async def subscribe(self, params: dict[str, Any]) -> AsyncIterator[Any]:
        import base64

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
