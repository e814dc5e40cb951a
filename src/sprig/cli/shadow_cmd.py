"""``sprig shadow get THING [--name N]``: a local device shadow of ``aws.greengrass.ShadowManager``,
as GetThingShadow answers it (state with its delta, metadata, version)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sprig.cli.client import ManagementClient
from sprig.paths import default_root


def cmd_get(args: argparse.Namespace) -> int:
    client = ManagementClient(Path(args.root).resolve() if args.root else default_root())
    document = client.call("shadow.get", {"thing": args.thing, "name": args.name or ""})
    print(json.dumps(document, indent=2, sort_keys=True))
    return 0


def add_parser(sub: argparse._SubParsersAction,  # type: ignore[type-arg]
               common: argparse.ArgumentParser) -> None:
    sh = sub.add_parser("shadow", help="read local device shadows")
    sh_sub = sh.add_subparsers(dest="shadow_command", metavar="COMMAND", required=True)
    p = sh_sub.add_parser("get", parents=[common],
                          help="print a thing's shadow document (classic, or --name N)")
    p.add_argument("thing", help="the thing name")
    p.add_argument("--name", "-n", help="a named shadow (default: the classic shadow)")
    p.set_defaults(func=cmd_get)
