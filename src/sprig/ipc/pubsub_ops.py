"""Local pub/sub and IoT Core operations: PublishToTopic, SubscribeToTopic, PublishToIoTCore,
SubscribeToIoTCore (client-protocols §4.4, greengrass-lambda §7.2 option B).

Topics are checked by :mod:`sprig.pubsub.topic` and every request by the ``accessControl``
policies of :mod:`sprig.pubsub.authorization` (service ``aws.greengrass.ipc.pubsub`` for the
local bus, ``aws.greengrass.ipc.mqttproxy`` for IoT Core); the resource is the topic or filter
exactly as the client wrote it. Messages go through the real :class:`Bus` / :class:`MqttBridge`,
so each IPC subscription has its own bounded queue and delivery task owned by them.
"""

from __future__ import annotations

import json
from typing import Any, Final

from sprig.ipc.call import (
    Call,
    Reply,
    b64,
    base64_bytes,
    check_size,
    required_string,
)
from sprig.ipc.core import ServiceError, invalid
from sprig.mqtt.bridge import MqttPublishError
from sprig.pubsub.authorization import (
    PUBLISH_TO_IOT_CORE,
    PUBLISH_TO_TOPIC,
    SUBSCRIBE_TO_IOT_CORE,
    SUBSCRIBE_TO_TOPIC,
    IpcService,
    check,
)
from sprig.pubsub.bus import Message
from sprig.pubsub.topic import Topic, TopicFilter

RECEIVE_ALL: Final = "RECEIVE_ALL_MESSAGES"
RECEIVE_FROM_OTHERS: Final = "RECEIVE_MESSAGES_FROM_OTHERS"
SUBSCRIPTION_MESSAGE: Final = "aws.greengrass#SubscriptionResponseMessage"
IOT_CORE_MESSAGE: Final = "aws.greengrass#IoTCoreMessage"

#: MQTT 5 features the bridge cannot carry: refused rather than silently dropped.
_UNSUPPORTED_MQTT5: Final = ("userProperties", "messageExpiryIntervalSeconds",
                             "correlationData", "responseTopic", "payloadFormat", "contentType")


def _authorize(call: Call, service: IpcService, operation: str, resource: str) -> None:
    check(call.component, call.core.access_control(call.component), service, operation,
          resource)


def subscription_event(m: Message) -> dict[str, Any]:
    """The SubscriptionResponseMessage body for a bus message (JSON stays JSON)."""
    context = {"topic": m.topic}
    if m.is_json:
        return {"jsonMessage": {"message": json.loads(m.payload), "context": context}}
    return {"binaryMessage": {"message": b64(m.payload), "context": context}}


async def publish_to_topic(call: Call, req: dict[str, Any]) -> Reply:
    topic = Topic.parse(required_string(req, "topic"), path="topic")
    pm = req.get("publishMessage")
    kinds = [k for k in ("jsonMessage", "binaryMessage")
             if isinstance(pm, dict) and pm.get(k) is not None]
    if not isinstance(pm, dict) or len(kinds) != 1:
        raise invalid("publishMessage", "must hold exactly one of jsonMessage or binaryMessage",
                      pm, '{"jsonMessage": {"message": <JSON>}} or '
                      '{"binaryMessage": {"message": <base64>}}')
    inner = pm[kinds[0]]
    if not isinstance(inner, dict):
        raise invalid(f"publishMessage.{kinds[0]}", "must be an object", inner,
                      '{"message": ..., "context": {"topic": ...}}')
    _authorize(call, IpcService.PUBSUB, PUBLISH_TO_TOPIC, topic.value)
    is_json = kinds[0] == "jsonMessage"
    if is_json:
        data = json.dumps(inner.get("message"), separators=(",", ":")).encode()
    else:
        data = base64_bytes(inner.get("message"), "publishMessage.binaryMessage.message")
    check_size(len(data), f"publishMessage.{kinds[0]}.message", call.max_payload)
    call.core.bus.publish(topic, data, source=call.component, json=is_json)
    return Reply("aws.greengrass#PublishToTopicResponse", {})


async def subscribe_to_topic(call: Call, req: dict[str, Any]) -> Reply:
    text = required_string(req, "topic")
    filt = TopicFilter.parse(text, path="topic")
    mode = req.get("receiveMode") or RECEIVE_ALL
    if mode not in (RECEIVE_ALL, RECEIVE_FROM_OTHERS):
        raise invalid("receiveMode", "unknown receive mode", mode,
                      f"{RECEIVE_ALL} (default) or {RECEIVE_FROM_OTHERS}")
    _authorize(call, IpcService.PUBSUB, SUBSCRIBE_TO_TOPIC, text)
    skip_own = mode == RECEIVE_FROM_OTHERS
    me = call.component

    async def deliver(m: Message) -> None:
        if skip_own and m.source == me:
            return
        call.emit(SUBSCRIPTION_MESSAGE, subscription_event(m))
        await call.drain()

    sub = call.core.bus.subscribe(filt, deliver, owner=me)
    return Reply("aws.greengrass#SubscribeToTopicResponse", {"topicName": text}, close=sub.close)


def _qos(value: Any) -> int:
    if value in ("0", "1", 0, 1) and not isinstance(value, bool):
        return int(value)
    raise invalid("qos", "unsupported QoS", value, '"0" (AT_MOST_ONCE) or "1" (AT_LEAST_ONCE)')


def _no_broker(operation: str, topic: str) -> ServiceError:
    return ServiceError(f"{operation} on {topic!r}: no MQTT broker is configured for this core "
                        "(set mqtt.host in config.yaml)")


async def publish_to_iot_core(call: Call, req: dict[str, Any]) -> Reply:
    topic = Topic.parse(required_string(req, "topicName"), path="topicName")
    qos = _qos(req.get("qos"))
    if req.get("retain"):
        raise invalid("retain", "retained messages are not supported by Sprig's MQTT bridge",
                      req.get("retain"), "false or absent")
    for name in _UNSUPPORTED_MQTT5:
        if req.get(name) not in (None, [], ""):
            raise invalid(name, "this MQTT 5 property is not supported by Sprig's MQTT bridge",
                          req.get(name), "absent")
    payload = base64_bytes(req.get("payload"), "payload")
    check_size(len(payload), "payload", call.max_payload)
    _authorize(call, IpcService.MQTT_PROXY, PUBLISH_TO_IOT_CORE, topic.value)
    bridge = call.core.bridge
    if bridge is None:
        raise _no_broker("PublishToIoTCore", topic.value)
    try:
        await bridge.publish(topic.value, payload, qos)
    except MqttPublishError as e:
        raise ServiceError(str(e)) from None
    return Reply("aws.greengrass#PublishToIoTCoreResponse", {})


async def subscribe_to_iot_core(call: Call, req: dict[str, Any]) -> Reply:
    text = required_string(req, "topicName")
    filt = TopicFilter.parse(text, path="topicName")
    _qos(req.get("qos"))
    _authorize(call, IpcService.MQTT_PROXY, SUBSCRIBE_TO_IOT_CORE, text)
    bridge = call.core.bridge
    if bridge is None:
        raise _no_broker("SubscribeToIoTCore", text)

    async def deliver(m: Message) -> None:
        call.emit(IOT_CORE_MESSAGE, {"message": {"topicName": m.topic,
                                                 "payload": b64(m.payload)}})
        await call.drain()

    sub = bridge.subscribe(filt, deliver, owner=call.component)
    return Reply("aws.greengrass#SubscribeToIoTCoreResponse", {}, close=sub.close)
