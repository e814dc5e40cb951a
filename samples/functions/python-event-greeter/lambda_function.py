"""An event-driven Greengrass V1-style function: triggered by messages on demo/greet/+, it
publishes a greeting with the unmodified Greengrass Core SDK v1 (greengrasssdk), routed by the
LegacySubscriptionRouter's subscriptions to local subscribers."""

import json

import greengrasssdk

iot = greengrasssdk.client("iot-data")


def lambda_handler(event, context):
    topic = context.client_context.custom["subject"]       # the topic that triggered us
    room = topic.split("/")[-1]
    greeting = {"greeting": f"Hello {event.get('name', 'world')} in the {room}!", "from": topic}
    iot.publish(topic="demo/greetings", payload=json.dumps(greeting))
    return greeting
