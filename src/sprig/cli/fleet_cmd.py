"""``sprig fleet publish|deploy|status|cancel``: the operator's commands (``docs/fleet.md``).

They read the broker (``mqtt:``) and the component store (``fleet.store``) from a
``config.yaml``-shaped file: ``--config FILE``, else the root's ``config.yaml``; ``--broker``,
``--store``, ``--endpoint-url`` and ``--prefix`` override it. ``publish`` needs boto3 (the
``sprig[fleet]`` extra); the others only a broker.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sprig.errors import SprigError, ValidationError
from sprig.paths import default_root

OPERATOR_ID = "sprig-operator"


@dataclass
class OperatorConfig:
    mqtt: Any
    prefix: str
    store: Any
    region: str


def _load(args: argparse.Namespace, need_store: bool = False,
          need_broker: bool = True) -> OperatorConfig:
    from sprig.fleet_settings import DEFAULT_PREFIX, PREFIX_RE, parse_s3_uri, parse_store
    from sprig.mqtt.settings import MqttSettings

    path = Path(args.config) if args.config else (
        (Path(args.root).resolve() if args.root else default_root()) / "config.yaml")
    data: dict[str, Any] = {}
    if args.config or path.exists():
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise SprigError(f"--config {path}: cannot be read: {e}") from None
        if not isinstance(data, dict):
            raise ValidationError("", "must be a mapping", source=str(path), value=data)
    fleet = data.get("fleet") or {}
    if not isinstance(fleet, dict):
        raise ValidationError("fleet", "must be a mapping", value=fleet, source=str(path))
    mqtt_cfg = dict(data.get("mqtt") or {})
    if args.broker:
        host, _, port = args.broker.rpartition(":") if ":" in args.broker else (
            args.broker, "", "")
        mqtt_cfg["host"] = host
        if port:
            if not port.isdigit():
                raise SprigError(f"--broker {args.broker!r}: the port is not a number; "
                                 "allowed: HOST or HOST:PORT")
            mqtt_cfg["port"] = int(port)
    mqtt = MqttSettings.from_mapping(mqtt_cfg or None, str(path), thing_name=OPERATOR_ID,
                                     base_dir=path.parent) if mqtt_cfg else None
    if mqtt is None and need_broker:
        raise SprigError(f"no broker: give --broker HOST[:PORT], or mqtt.host in {path} "
                         "(or --config FILE)")
    prefix = args.prefix or fleet.get("topicPrefix") or DEFAULT_PREFIX
    if not isinstance(prefix, str) or not PREFIX_RE.fullmatch(prefix):
        raise SprigError(f"topic prefix {prefix!r}: allowed: MQTT topic levels without "
                         "wildcards or '$'")
    store = None
    raw_store = fleet.get("store")
    if args.store:
        parse_s3_uri(args.store, "--store")
        raw_store = {**(raw_store if isinstance(raw_store, dict) else {}), "uri": args.store}
    if raw_store is not None:
        if isinstance(raw_store, str):
            raw_store = {"uri": raw_store}
        if args.endpoint_url:
            raw_store = {**raw_store, "endpoint": args.endpoint_url}
        store = parse_store(raw_store, str(path))
    if store is None and need_store:
        raise SprigError(f"no component store: give --store s3://bucket/prefix, or "
                         f"fleet.store in {path} (or --config FILE)")
    region = (store.region if store is not None and store.region else None) or \
        str(data.get("awsRegion") or "us-east-1")
    return OperatorConfig(mqtt, prefix, store, region)


def _target(args: argparse.Namespace) -> Any:
    from sprig.fleet.topics import THING, THING_GROUP, Target

    if bool(args.group) == bool(args.thing):
        raise SprigError("give one of --group G (a thing group) or --thing T (one thing)")
    return Target.parse(f"{THING_GROUP}/{args.group}" if args.group else f"{THING}/{args.thing}",
                        "--group" if args.group else "--thing")


def _read_json(value: str, what: str) -> Any:
    text = value
    if value.startswith("@"):
        try:
            text = Path(value[1:]).read_text()
        except OSError as e:
            raise SprigError(f"{what}: cannot read {value[1:]}: {e.strerror}") from None
    try:
        return json.loads(text)
    except ValueError as e:
        raise SprigError(f"{what}: not valid JSON ({e}); allowed: JSON text or @file") from None


def _rollout(args: argparse.Namespace) -> Any:
    from sprig.fleet.rollout import RolloutConfig

    doc: dict[str, Any] = _read_json(args.rollout_config, "--rollout-config") \
        if args.rollout_config else {}
    if not isinstance(doc, dict):
        raise SprigError("--rollout-config: must be an iotJobConfiguration object")
    if args.rate:
        m = re.fullmatch(r"(\d+)(/min)?", args.rate)
        if m is None:
            raise SprigError(f"--rate {args.rate!r}: allowed: N/min (things notified per "
                             "minute, 1-1000)")
        doc.setdefault("jobExecutionsRolloutConfig", {})["maximumPerMinute"] = int(m.group(1))
    if args.abort_after_failures:
        m = re.fullmatch(r"(\d+(?:\.\d+)?)%?", args.abort_after_failures)
        if m is None:
            raise SprigError(f"--abort-after-failures {args.abort_after_failures!r}: allowed: "
                             "P% (0 < P <= 100)")
        doc["abortConfig"] = {"criteriaList": [{
            "failureType": "ALL", "action": "CANCEL",
            "thresholdPercentage": float(m.group(1)),
            "minNumberOfExecutedThings": args.min_executed}]}
    elif args.min_executed != 1:
        raise SprigError("--min-executed goes with --abort-after-failures P%")
    if args.timeout_per_device is not None:
        if args.timeout_per_device < 60:
            raise SprigError(f"--timeout-per-device {args.timeout_per_device}: allowed: 60 to "
                             "604800 seconds (timeoutConfig.inProgressTimeoutInMinutes is 1 to "
                             "10080 minutes)")
        doc["timeoutConfig"] = {"inProgressTimeoutInMinutes": args.timeout_per_device / 60}
    return RolloutConfig.from_json(doc, "--rollout-config" if args.rollout_config
                                   else "rollout options")


def cmd_publish(args: argparse.Namespace) -> int:
    try:
        import boto3  # noqa: F401
    except ImportError:
        raise SprigError("sprig fleet publish needs boto3: pip install 'sprig[fleet]'"
                         ) from None
    from sprig.fleet.publish import publish, s3_client

    cfg = _load(args, need_store=True, need_broker=False)
    results = publish(Path(args.recipe_dir), Path(args.artifact_dir) if args.artifact_dir
                      else None, cfg.store, s3_client(cfg.store))
    print(f"{len(results)} component version(s) in {cfg.store.uri}")
    return 0


def cmd_deploy(args: argparse.Namespace) -> int:
    from sprig.fleet.controller import Controller, DeployRequest
    from sprig.fleet.topics import FleetTopics

    cfg = _load(args)
    merge: dict[str, str] = {}
    for item in args.merge or []:
        name, sep, version = item.partition("=")
        if not sep or not name or not version:
            raise SprigError(f"--merge {item!r}: allowed: NAME=VERSION (e.g. "
                             "com.example.Hello=1.0.0)")
        merge[name] = version
    updates = _read_json(args.update_config, "--update-config") if args.update_config else {}
    if args.update_config:
        from sprig.config.update import parse_update_document

        parse_update_document(updates, "--update-config")
    run_with: dict[str, dict[str, Any]] = {}
    for value in args.run_with or []:
        name, sep, rest = value.partition(":")
        key, eq, user = rest.partition("=")
        if not sep or key != "posixUser" or not eq or not user:
            raise SprigError(f"--run-with {value!r}: allowed: NAME:posixUser=user[:group]")
        run_with[name] = {"posixUser": user}
    req = DeployRequest(target=_target(args), merge=merge, remove=args.remove or [],
                        config_updates=updates, run_with=run_with,
                        failure_handling=args.failure_handling, rollout=_rollout(args),
                        name=args.name, wait=args.wait)
    controller = Controller(cfg.mqtt, FleetTopics(cfg.prefix), req.target, region=cfg.region,
                            out=lambda s: print(s, flush=True))
    return asyncio.run(controller.deploy(req))


def cmd_status(args: argparse.Namespace) -> int:
    from sprig.fleet.topics import FleetTopics
    from sprig.fleet.view import as_json, fleet_state, render

    cfg = _load(args)
    state = asyncio.run(fleet_state(cfg.mqtt, FleetTopics(cfg.prefix)))
    if args.json:
        print(as_json(state, args.group))
        return 0
    return render(state, args.group, print)


def cmd_cancel(args: argparse.Namespace) -> int:
    from sprig.fleet.controller import Controller
    from sprig.fleet.topics import FleetTopics

    cfg = _load(args)
    target = _target(args)
    return asyncio.run(Controller(cfg.mqtt, FleetTopics(cfg.prefix), target,
                                  region=cfg.region, out=print).cancel())


def add_parser(sub: argparse._SubParsersAction,  # type: ignore[type-arg]
               common: argparse.ArgumentParser) -> None:
    opts = argparse.ArgumentParser(add_help=False, parents=[common])
    opts.add_argument("--config", help="a config.yaml with mqtt: and fleet: (default: the "
                      "root's config.yaml)")
    opts.add_argument("--broker", metavar="HOST[:PORT]", help="the MQTT broker")
    opts.add_argument("--prefix", help="the fleet topic prefix (default sprig)")
    opts.add_argument("--store", metavar="S3URI", help="the component store s3://bucket/prefix")
    opts.add_argument("--endpoint-url", help="an S3-compatible store's URL")
    fl = sub.add_parser("fleet", help="publish components and deploy them to many devices")
    fl_sub = fl.add_subparsers(dest="fleet_command", metavar="COMMAND", required=True)

    p = fl_sub.add_parser("publish", parents=[opts],
                          help="upload recipes and artifacts to the component store")
    p.add_argument("--recipe-dir", "-r", required=True)
    p.add_argument("--artifact-dir", "-a")
    p.set_defaults(func=cmd_publish)

    target = argparse.ArgumentParser(add_help=False)
    target.add_argument("--group", "-g", help="a thing group")
    target.add_argument("--thing", help="one thing")

    p = fl_sub.add_parser("deploy", parents=[opts, target],
                          help="deploy to a thing group (or a thing), paced and resumable")
    p.add_argument("--merge", "-m", action="append", metavar="NAME=VERSION")
    p.add_argument("--remove", action="append", metavar="NAME")
    p.add_argument("--update-config", "-c", metavar="JSON|@FILE",
                   help='{"NAME": {"MERGE": {...}, "RESET": ["/pointer"]}}')
    p.add_argument("--run-with", action="append", metavar="NAME:posixUser=USER[:GROUP]")
    p.add_argument("--failure-handling", choices=["ROLLBACK", "DO_NOTHING"], default="ROLLBACK")
    p.add_argument("--rate", metavar="N/min", help="things notified per minute (1-1000)")
    p.add_argument("--abort-after-failures", metavar="P%",
                   help="abort when P%% of finished executions failed")
    p.add_argument("--min-executed", type=int, default=1, metavar="K",
                   help="... once at least K executions finished (default 1)")
    p.add_argument("--timeout-per-device", type=int, metavar="S",
                   help="an execution IN_PROGRESS longer than S seconds is TIMED_OUT (>= 60)")
    p.add_argument("--rollout-config", metavar="JSON|@FILE",
                   help="a whole iotJobConfiguration (jobExecutionsRolloutConfig with "
                   "exponentialRate, abortConfig, timeoutConfig)")
    p.add_argument("--name", help="deploymentName")
    p.add_argument("--wait", action="store_true",
                   help="stay until every online device has finished (abort and timeouts "
                   "are enforced while the command runs)")
    p.set_defaults(func=cmd_deploy)

    p = fl_sub.add_parser("status", parents=[opts], help="every device and rollout")
    p.add_argument("--group", "-g", help="only this thing group")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = fl_sub.add_parser("cancel", parents=[opts, target],
                          help="stop a rollout; queued executions are canceled")
    p.set_defaults(func=cmd_cancel)
