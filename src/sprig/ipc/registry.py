"""The operations this server implements, by their ``operation`` header (``aws.greengrass#X``).

Anything else is answered with a ServiceError naming the operation and listing these.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

from sprig.ipc import cli_ops, config_ops, pubsub_ops, secret_ops, shadow_ops, update_ops
from sprig.ipc.call import Handler

OPERATIONS: Final = MappingProxyType[str, Handler]({
    "aws.greengrass#PublishToTopic": pubsub_ops.publish_to_topic,
    "aws.greengrass#SubscribeToTopic": pubsub_ops.subscribe_to_topic,
    "aws.greengrass#PublishToIoTCore": pubsub_ops.publish_to_iot_core,
    "aws.greengrass#SubscribeToIoTCore": pubsub_ops.subscribe_to_iot_core,
    "aws.greengrass#GetConfiguration": config_ops.get_configuration,
    "aws.greengrass#UpdateConfiguration": config_ops.update_configuration,
    "aws.greengrass#SubscribeToConfigurationUpdate": config_ops.subscribe_to_configuration_update,
    "aws.greengrass#UpdateState": config_ops.update_state,
    "aws.greengrass#GetComponentDetails": cli_ops.get_component_details,
    "aws.greengrass#ListComponents": cli_ops.list_components,
    "aws.greengrass#RestartComponent": cli_ops.restart_component,
    "aws.greengrass#StopComponent": cli_ops.stop_component,
    "aws.greengrass#GetLocalDeploymentStatus": cli_ops.get_local_deployment_status,
    "aws.greengrass#ListLocalDeployments": cli_ops.list_local_deployments,
    "aws.greengrass#SubscribeToComponentUpdates": update_ops.subscribe_to_component_updates,
    "aws.greengrass#DeferComponentUpdate": update_ops.defer_component_update,
    "aws.greengrass#SubscribeToValidateConfigurationUpdates":
        update_ops.subscribe_to_validate_configuration_updates,
    "aws.greengrass#SendConfigurationValidityReport":
        update_ops.send_configuration_validity_report,
    "aws.greengrass#GetSecretValue": secret_ops.get_secret_value,
    "aws.greengrass#GetThingShadow": shadow_ops.get_thing_shadow,
    "aws.greengrass#UpdateThingShadow": shadow_ops.update_thing_shadow,
    "aws.greengrass#DeleteThingShadow": shadow_ops.delete_thing_shadow,
    "aws.greengrass#ListNamedShadowsForThing": shadow_ops.list_named_shadows_for_thing,
})


def unsupported_message(operation: str) -> str:
    names = ", ".join(sorted(o.split("#", 1)[1] for o in OPERATIONS))
    return (f"operation: {operation!r} is not supported by Sprig's IPC server; allowed: "
            f"{names}")
