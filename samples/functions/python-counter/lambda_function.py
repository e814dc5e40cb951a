"""A pinned (long-lived) Python function: module state survives between invocations."""

import os

invocations = 0


def lambda_handler(event, context):
    global invocations
    invocations += 1
    return {
        "message": f"Hello from Python, {event.get('name', 'world')}!",
        "invocations": invocations,
        "function": context.function_name,
        "worker_pid": os.getpid(),
        "remaining_ms": context.get_remaining_time_in_millis(),
    }
