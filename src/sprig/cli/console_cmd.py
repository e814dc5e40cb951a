"""``sprig console login``: a one-time link to the core's web console.

Like ``greengrass-cli get-debug-password``, but with nothing to copy into a form: the link
opens a session once, within 8 hours (``--expires-in`` shortens that). Only the core's own user
can ask (the management socket is owner-only). Over TLS the certificate's SHA-256 fingerprint
is printed too, to compare with what the browser shows."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from sprig.cli.client import ManagementClient
from sprig.paths import default_root


def cmd_login(args: argparse.Namespace) -> int:
    client = ManagementClient(Path(args.root).expanduser().resolve() if args.root
                              else default_root())
    params = {} if args.expires_in is None else {"expiresIn": args.expires_in}
    link = client.call("console.login", params)
    print(link["url"])
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(link["expiresAt"]))
    print(f"Open it once, before {when}; it signs this browser in for 8 hours.")
    if link.get("sha256Fingerprint"):
        print(f"Certificate SHA-256 fingerprint: {link['sha256Fingerprint']}")
    return 0


def add_parser(sub: argparse._SubParsersAction,  # type: ignore[type-arg]
               common: argparse.ArgumentParser) -> None:
    console = sub.add_parser("console", help="the core's web console")
    console_sub = console.add_subparsers(dest="console_command", metavar="COMMAND",
                                         required=True)
    p = console_sub.add_parser("login", parents=[common],
                               help="print a one-time link that signs a browser in")
    p.add_argument("--expires-in", type=int, metavar="SECONDS",
                   help="the link's lifetime (default and most: 28800, 8 hours)")
    p.set_defaults(func=cmd_login)
