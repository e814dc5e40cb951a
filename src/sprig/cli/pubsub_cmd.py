"""``sprig pubsub publish|subscribe``: the local bus (or, with ``--cloud``, the MQTT broker)."""

from __future__ import annotations

import argparse
import base64
import sys
from pathlib import Path

from sprig.cli.client import ManagementClient
from sprig.paths import default_root


def _client(args: argparse.Namespace) -> ManagementClient:
    return ManagementClient(Path(args.root).resolve() if args.root else default_root())


def cmd_publish(args: argparse.Namespace) -> int:
    payload = args.payload.encode() if args.payload is not None else b""
    if args.payload is not None and args.payload.startswith("@"):
        payload = Path(args.payload[1:]).read_bytes()
    result = _client(args).call("pubsub.publish", {
        "topic": args.topic, "payload": base64.b64encode(payload).decode(),
        "cloud": args.cloud, "qos": args.qos, "binary": args.binary})
    if args.cloud:
        print(f"Published to the broker: {result['outcome']}")
    else:
        print(f"Published to {result['subscribers']} subscriber(s)")
    return 0


def cmd_subscribe(args: argparse.Namespace) -> int:
    count = 0
    try:
        for item in _client(args).stream("pubsub.subscribe",
                                         {"topic": args.topic, "cloud": args.cloud}):
            if "subscribed" in item:
                print(f"Subscribed to {item['subscribed']}", file=sys.stderr, flush=True)
                continue
            payload = base64.b64decode(item["payload"]).decode("utf-8", "replace")
            print(f"{item['topic']}: {payload}", flush=True)
            count += 1
            if args.count and count >= args.count:
                return 0
    except KeyboardInterrupt:
        return 0
    return 0


def add_parser(sub: argparse._SubParsersAction,  # type: ignore[type-arg]
               common: argparse.ArgumentParser) -> None:
    ps = sub.add_parser("pubsub", help="publish to and subscribe on local topics")
    ps_sub = ps.add_subparsers(dest="pubsub_command", metavar="COMMAND", required=True)
    p = ps_sub.add_parser("publish", parents=[common], help="publish one message")
    p.add_argument("topic")
    p.add_argument("--payload", metavar="TEXT|@FILE", help="the message (JSON or any bytes)")
    p.add_argument("--cloud", action="store_true", help="publish to the MQTT broker instead")
    p.add_argument("--qos", type=int, choices=[0, 1], default=0)
    p.add_argument("--binary", action="store_true",
                   help="send as bytes even if the payload is JSON")
    p.set_defaults(func=cmd_publish)
    p = ps_sub.add_parser("subscribe", parents=[common],
                          help="print messages on a topic filter until interrupted")
    p.add_argument("topic", help="topic filter (MQTT wildcards + and #)")
    p.add_argument("--cloud", action="store_true", help="subscribe on the MQTT broker instead")
    p.add_argument("--count", type=int, default=0, help="exit after this many messages")
    p.set_defaults(func=cmd_subscribe)
