"""A test driver around the REAL awsiotsdk GreengrassCoreIPCClientV2.

Runs as a subprocess (env AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT and SVCUID set by the
test). Reads one JSON command per line on stdin, answers one JSON line on stdout:
``{"ok": result}`` or ``{"error": "<exception class>", "message": "..."}``. The first line is
the connection result. Stream events are collected per subscription and fetched with ``events``.
"""

from __future__ import annotations

import base64
import json
import sys
import threading
from typing import Any

from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
from awsiot.greengrasscoreipc.model import (
    BinaryMessage,
    ComponentUpdatePolicyEvents,
    ConfigurationUpdateEvents,
    ConfigurationValidityReport,
    IoTCoreMessage,
    JsonMessage,
    PublishMessage,
    SubscriptionResponseMessage,
    ValidateConfigurationUpdateEvents,
)


class Collector:
    def __init__(self) -> None:
        self.events: list[Any] = []
        self.errors: list[str] = []
        self.closed = False
        self.cond = threading.Condition()

    def on_event(self, e: Any) -> None:
        with self.cond:
            self.events.append(serialize_event(e))
            self.cond.notify_all()

    def on_error(self, e: Exception) -> bool:
        with self.cond:
            self.errors.append(f"{type(e).__name__}: {e}")
            self.cond.notify_all()
        return True

    def on_closed(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()


def serialize_event(e: Any) -> Any:
    if isinstance(e, SubscriptionResponseMessage):
        if e.json_message is not None:
            return {"json": e.json_message.message, "topic": e.json_message.context.topic}
        assert e.binary_message is not None
        return {"binary": base64.b64encode(e.binary_message.message).decode(),
                "topic": e.binary_message.context.topic}
    if isinstance(e, IoTCoreMessage):
        return {"topic": e.message.topic_name,
                "payload": base64.b64encode(e.message.payload).decode()}
    if isinstance(e, ComponentUpdatePolicyEvents):
        if e.pre_update_event is not None:
            return {"pre": e.pre_update_event.deployment_id,
                    "isGgcRestarting": e.pre_update_event.is_ggc_restarting}
        assert e.post_update_event is not None
        return {"post": e.post_update_event.deployment_id}
    if isinstance(e, ValidateConfigurationUpdateEvents):
        ev = e.validate_configuration_update_event
        return {"validate": ev.deployment_id, "configuration": ev.configuration}
    if isinstance(e, ConfigurationUpdateEvents):
        ev = e.configuration_update_event
        return {"component": ev.component_name, "keyPath": ev.key_path}
    return repr(e)


def main() -> None:
    subs: dict[int, tuple[Collector, Any]] = {}
    try:
        client = GreengrassCoreIPCClientV2(executor=None)   # callbacks in order
    except Exception as e:
        print(json.dumps({"error": type(e).__name__, "message": str(e)}), flush=True)
        return
    print(json.dumps({"ok": "connected"}), flush=True)

    def subscribe(fn: Any, **kw: Any) -> int:
        c = Collector()
        _resp, op = fn(on_stream_event=c.on_event, on_stream_error=c.on_error,
                       on_stream_closed=c.on_closed, **kw)
        sid = len(subs) + 1
        subs[sid] = (c, op)
        return sid

    for line in sys.stdin:
        cmd = json.loads(line)
        name = cmd.pop("cmd")
        try:
            result: Any = None
            if name == "publish_json":
                client.publish_to_topic(topic=cmd["topic"], publish_message=PublishMessage(
                    json_message=JsonMessage(message=cmd["message"])))
            elif name == "publish_binary":
                client.publish_to_topic(topic=cmd["topic"], publish_message=PublishMessage(
                    binary_message=BinaryMessage(message=base64.b64decode(cmd["b64"]))))
            elif name == "subscribe":
                result = subscribe(client.subscribe_to_topic, topic=cmd["topic"],
                                   receive_mode=cmd.get("mode"))
            elif name == "publish_iot":
                client.publish_to_iot_core(topic_name=cmd["topic"], qos=cmd.get("qos", "1"),
                                           payload=base64.b64decode(cmd["b64"]))
            elif name == "subscribe_iot":
                result = subscribe(client.subscribe_to_iot_core, topic_name=cmd["topic"],
                                   qos=cmd.get("qos", "1"))
            elif name == "get_config":
                r = client.get_configuration(component_name=cmd.get("component"),
                                             key_path=cmd.get("keyPath"))
                result = {"componentName": r.component_name, "value": r.value}
            elif name == "update_config":
                client.update_configuration(key_path=cmd["keyPath"],
                                            value_to_merge=cmd["value"])
            elif name == "subscribe_config":
                result = subscribe(client.subscribe_to_configuration_update,
                                   component_name=cmd.get("component"),
                                   key_path=cmd.get("keyPath"))
            elif name == "update_state":
                client.update_state(state=cmd["state"])
            elif name == "details":
                d = client.get_component_details(component_name=cmd["component"])
                cd = d.component_details
                result = {"componentName": cd.component_name, "version": cd.version,
                          "state": cd.state, "configuration": cd.configuration}
            elif name == "get_secret":
                r = client.get_secret_value(
                    secret_id=cmd.get("secretId"), version_id=cmd.get("versionId"),
                    version_stage=cmd.get("versionStage"), refresh=cmd.get("refresh"))
                v = r.secret_value
                result = {"secretId": r.secret_id, "versionId": r.version_id,
                          "versionStage": r.version_stage,
                          "secretString": v.secret_string if v else None,
                          "secretBinary": base64.b64encode(v.secret_binary).decode()
                          if v and v.secret_binary is not None else None}
            elif name == "get_shadow":
                r = client.get_thing_shadow(thing_name=cmd.get("thing"),
                                            shadow_name=cmd.get("name"))
                result = json.loads(r.payload)
            elif name == "update_shadow":
                r = client.update_thing_shadow(thing_name=cmd.get("thing"),
                                               shadow_name=cmd.get("name"),
                                               payload=cmd["payload"].encode())
                result = json.loads(r.payload)
            elif name == "delete_shadow":
                r = client.delete_thing_shadow(thing_name=cmd.get("thing"),
                                               shadow_name=cmd.get("name"))
                result = base64.b64encode(r.payload or b"").decode()
            elif name == "list_shadows":
                r = client.list_named_shadows_for_thing(thing_name=cmd.get("thing"),
                                                        next_token=cmd.get("nextToken"),
                                                        page_size=cmd.get("pageSize"))
                result = {"results": r.results, "nextToken": r.next_token,
                          "timestamp": r.timestamp.timestamp() if r.timestamp else None}
            elif name == "subscribe_updates":
                result = subscribe(client.subscribe_to_component_updates)
            elif name == "defer":
                client.defer_component_update(deployment_id=cmd["deploymentId"],
                                              message=cmd.get("message"),
                                              recheck_after_ms=cmd.get("recheckAfterMs"))
            elif name == "subscribe_validation":
                result = subscribe(client.subscribe_to_validate_configuration_updates)
            elif name == "report_validity":
                client.send_configuration_validity_report(
                    configuration_validity_report=ConfigurationValidityReport(
                        status=cmd["status"], deployment_id=cmd["deploymentId"],
                        message=cmd.get("message")))
            elif name == "list_components":
                r = client.list_components()
                result = [{"componentName": c.component_name, "version": c.version,
                           "state": c.state, "configuration": c.configuration}
                          for c in r.components]
            elif name == "pause":
                client.pause_component(component_name=cmd["component"])
            elif name == "restart":
                result = client.restart_component(component_name=cmd["component"]).restart_status
            elif name == "stop":
                result = client.stop_component(component_name=cmd["component"]).stop_status
            elif name == "local_deployment":
                d = client.get_local_deployment_status(deployment_id=cmd["deploymentId"]).deployment
                details = d.deployment_status_details
                result = {"deploymentId": d.deployment_id, "status": d.status,
                          "createdOn": d.created_on,
                          "cause": details.deployment_failure_cause if details else None}
            elif name == "local_deployments":
                result = [{"deploymentId": d.deployment_id, "status": d.status,
                           "createdOn": d.created_on}
                          for d in client.list_local_deployments().local_deployments]
            elif name == "events":
                c, _op = subs[cmd["sub"]]
                n = cmd["n"]
                with c.cond:
                    c.cond.wait_for(lambda c=c, n=n: len(c.events) >= n or bool(c.errors),
                                    timeout=cmd.get("timeout", 10))
                    result = {"events": list(c.events), "errors": list(c.errors)}
            elif name == "close_sub":
                c, op = subs[cmd["sub"]]
                op.close().result(5)
            elif name == "close":
                client.close()
                print(json.dumps({"ok": None}), flush=True)
                return
            else:
                raise ValueError(f"unknown driver command {name}")
            print(json.dumps({"ok": result}), flush=True)
        except Exception as e:
            print(json.dumps({"error": type(e).__name__,
                              "message": getattr(e, "message", None) or str(e),
                              "resourceType": getattr(e, "resource_type", None)}), flush=True)


if __name__ == "__main__":
    main()
