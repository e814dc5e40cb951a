"""``sprig``: the command line. Word choices follow the Greengrass CLI (``greengrass-cli``).

The CLI talks to a running core over its management socket (``<root>/run/sprig.sock``); only
``core run``, ``core check`` and ``logs`` work without one.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from sprig import __version__
from sprig.cli.client import CoreNotRunning, ManagementApiError, ManagementClient
from sprig.errors import SprigError
from sprig.paths import RootLayout, default_root


def _root(args: argparse.Namespace) -> Path:
    return Path(args.root).expanduser().resolve() if args.root else default_root()


def _client(args: argparse.Namespace) -> ManagementClient:
    return ManagementClient(_root(args))


def _read_json_arg(value: str, what: str) -> Any:
    text = value
    if value.startswith("@"):
        path = Path(value[1:])
        try:
            text = path.read_text()
        except OSError as e:
            raise SprigError(f"{what}: cannot read {path}: {e.strerror}") from None
    try:
        return json.loads(text)
    except ValueError as e:
        raise SprigError(f"{what}: not valid JSON ({e}); allowed: JSON text or @file") from None


# -- core ----------------------------------------------------------------------------------

def cmd_core_run(args: argparse.Namespace) -> int:
    from sprig.daemon import run_core

    return run_core(_root(args))


def cmd_core_check(args: argparse.Namespace) -> int:
    from sprig.core.check import check_text

    print(check_text())
    print()
    print(_disk_line(_root(args)))
    return 0


def _disk_line(root: Path) -> str:
    from sprig.disk import LOW_SPACE_BYTES, free_bytes

    free = free_bytes(root)
    if free is None:
        return f"Disk: cannot tell the free space of {root}"
    state = "FULL: no space left" if free < LOW_SPACE_BYTES else "ok"
    return f"Disk: {free // (1024 * 1024)} MB free on the filesystem of {root} ({state})"


def cmd_status(args: argparse.Namespace) -> int:
    st = _client(args).call("status")
    print(f"Sprig {st['version']} core running (pid {st['pid']}, up {st['uptimeSeconds']} s)")
    print(f"  root:            {st['root']}")
    print(f"  thing name:      {st['thingName']}")
    for name, url in sorted(st["endpoints"].items()):
        print(f"  {name + ' API:':<17}{url}")
    states: dict[str, str] = st["states"]
    counts: dict[str, int] = {}
    for s in states.values():
        counts[s] = counts.get(s, 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none"
    print(f"  components:      {st['components']} ({summary})")
    if st.get("currentDeployment"):
        print(f"  deploying:       {st['currentDeployment']}")
    disk = st.get("disk") or {}
    if disk.get("low") or disk.get("full"):
        print(f"  DISK FULL:       {disk.get('freeBytes')} bytes free on {disk.get('root')}")
        for entry in disk.get("full", []):
            print(f"    no space left on {entry['path']} ({entry['what']})")
    return 0


# -- deployments -----------------------------------------------------------------------------

def _parse_run_with(values: list[str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for value in values:
        name, sep, rest = value.partition(":")
        key, eq, user = rest.partition("=")
        if not sep or key != "posixUser" or not eq or not user:
            raise SprigError(f"--run-with: {value!r} is not NAME:posixUser=user[:group]")
        out[name] = {"posixUser": user}
    return out


def cmd_deployment_create(args: argparse.Namespace) -> int:
    merge: dict[str, str] = {}
    for item in args.merge or []:
        name, sep, version = item.partition("=")
        if not sep or not name or not version:
            raise SprigError(f"--merge: {item!r} is not NAME=VERSION "
                             "(e.g. com.example.Hello=1.0.0)")
        merge[name] = version
    doc: dict[str, Any] = {"merge": merge, "remove": args.remove or [],
                           "failureHandlingPolicy": args.failure_handling}
    if args.update_config:
        doc["configurationUpdate"] = _read_json_arg(args.update_config, "--update-config")
    if args.run_with:
        doc["runWith"] = _parse_run_with(args.run_with)
    if args.system_limits:
        doc["systemLimits"] = _read_json_arg(args.system_limits, "--system-limits")
    if args.component_update_policy or args.component_update_timeout is not None:
        policy: dict[str, Any] = {"action": args.component_update_policy or "NOTIFY_COMPONENTS"}
        if args.component_update_timeout is not None:
            policy["timeoutInSeconds"] = args.component_update_timeout
        doc["componentUpdatePolicy"] = policy
    if args.configuration_validation_timeout is not None:
        doc["configurationValidationPolicy"] = {
            "timeoutInSeconds": args.configuration_validation_timeout}
    params = {
        "deployment": doc,
        "recipeDir": str(Path(args.recipe_dir).resolve()) if args.recipe_dir else None,
        "artifactDir": str(Path(args.artifact_dir).resolve()) if args.artifact_dir else None,
        "wait": False,
    }
    client = _client(args)
    result = client.call("deployment.create", params)
    _print_warnings(result)
    if args.wait:
        # A stream has no timeout: a deployment may take its whole deploymentTimeoutSeconds.
        dep_id = result["deploymentId"]
        try:
            for item in client.stream("deployment.wait", {"deploymentId": dep_id}):
                result = item
            if result.get("status") not in ("SUCCEEDED", "FAILED"):
                raise SprigError("the core closed the connection before the deployment "
                                 "finished (it may have stopped; see `sprig status`)")
        except SprigError as e:
            raise SprigError(f"deployment {dep_id} was queued, but waiting for it failed: "
                             f"{e}") from None
    return _print_deployment(result)


def _print_warnings(d: dict[str, Any]) -> None:
    for warning in d.get("warnings") or []:
        print(f"WARNING: {warning}", file=sys.stderr)


def _print_deployment(d: dict[str, Any]) -> int:
    print(f"Deployment {d['deploymentId']}: {d['status']}"
          + (f" ({d['reason']})" if d.get("reason") else ""))
    return 1 if d["status"] == "FAILED" else 0


def cmd_deployment_list(args: argparse.Namespace) -> int:
    for d in _client(args).call("deployment.list", {"limit": args.limit}):
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(d["createdAt"]))
        comps = ", ".join(f"{k}={v}" for k, v in d["document"].get("merge", {}).items())
        removed = ", ".join(d["document"].get("remove", []))
        what = comps + (f" remove {removed}" if removed else "")
        print(f"{d['deploymentId']}  {when}  {d['status']:<11} {what}"
              + (f"  ({d['reason']})" if d.get("reason") else ""))
    return 0


def cmd_deployment_status(args: argparse.Namespace) -> int:
    d = _client(args).call("deployment.status", {"deploymentId": args.id})
    print(f"{d['deploymentId']}: {d['status']}" + (f" ({d['reason']})" if d["reason"] else ""))
    details = d.get("statusDetails")
    if details:          # Greengrass's stable codes (sprig.deployment.outcome)
        print(f"  detailed status: {details['detailed-deployment-status']}")
        if details.get("deployment-error-stack"):
            print(f"  error stack:     {', '.join(details['deployment-error-stack'])}")
        if details.get("deployment-error-types"):
            print(f"  error types:     {', '.join(details['deployment-error-types'])}")
    for warning in d.get("warnings") or []:
        print(f"  warning: {warning}")
    return 1 if d["status"] == "FAILED" else 0


# -- components ------------------------------------------------------------------------------

def cmd_component_list(args: argparse.Namespace) -> int:
    comps = _client(args).call("component.list")
    if args.json:
        print(json.dumps(comps, indent=2))
        return 0
    for c in comps:
        print(f"Component Name: {c['name']}")
        print(f"    Version: {c['version']}")
        print(f"    State: {c['state']}")
    return 0


def cmd_component_details(args: argparse.Namespace) -> int:
    d = _client(args).call("component.details", {"name": args.name})
    if args.json:
        print(json.dumps(d, indent=2))
        return 0
    print(f"Component Name: {d['name']}")
    print(f"    Version: {d['version']}")
    print(f"    State: {d['state']}")
    print(f"    Type: {d['componentType']}")
    if d.get("lastError"):
        print(f"    Last error: {d['lastError']}")
    if d.get("statusDetail"):
        print(f"    Note: {d['statusDetail']}")
    fn = d.get("function")
    if fn:
        print(f"    Function: {fn['arn']} ({fn['runtime']}, handler {fn['handler']})")
        if fn.get("runtimeWarning"):
            print(f"    Runtime warning: {fn['runtimeWarning']}")
        print(f"    Workers: {fn['pool']}")
    print(f"    Configuration: {json.dumps(d['configuration'], sort_keys=True)}")
    return 0


def cmd_component_restart(args: argparse.Namespace) -> int:
    _client(args).call("component.restart", {"names": args.names})
    print("Restarted: " + ", ".join(args.names))
    return 0


def cmd_component_stop(args: argparse.Namespace) -> int:
    _client(args).call("component.stop", {"names": args.names})
    print("Stopped: " + ", ".join(args.names))
    return 0


# -- logs and invoke -----------------------------------------------------------------------

def cmd_logs(args: argparse.Namespace) -> int:
    from sprig.logs import tail_lines

    layout = RootLayout(_root(args))
    path = layout.core_log if args.name in ("sprig", "core") else layout.component_log(args.name)
    if not path.exists() and not args.follow:
        known = sorted(p.stem for p in layout.logs.glob("*.log")) if layout.logs.exists() else []
        raise SprigError(f"no log for {args.name!r} in {layout.logs}; logs: "
                         + (", ".join(known) or "(none yet)"))
    if not args.follow:
        for line in tail_lines(path, args.lines):
            print(line)
        return 0
    import asyncio

    from sprig.logs import follow

    async def _follow() -> None:
        async for line in follow(path, last=args.lines):
            print(line, flush=True)

    try:
        asyncio.run(_follow())
    except KeyboardInterrupt:
        pass
    return 0


def cmd_invoke(args: argparse.Namespace) -> int:
    payload = b""
    if args.payload is not None:
        if args.payload.startswith("@"):
            try:
                payload = Path(args.payload[1:]).read_bytes()
            except OSError as e:
                raise SprigError(f"--payload: cannot read {args.payload[1:]}: "
                                 f"{e.strerror}") from None
        else:
            payload = args.payload.encode()
    context = _read_json_arg(args.client_context, "--client-context") \
        if args.client_context else None
    params = {"function": args.name, "payload": base64.b64encode(payload).decode(),
              "invocationType": args.invocation_type, "clientContext": context,
              "logTail": args.log_type == "Tail"}
    try:
        r = _client(args).call("invoke", params)
    except ManagementApiError as e:
        if e.kind == "QueueFull":
            print(f"sprig invoke: throttled: {e}", file=sys.stderr)
            return 2
        raise
    if args.log_type == "Tail" and r.get("logTail"):
        sys.stderr.write(base64.b64decode(r["logTail"]).decode("utf-8", "replace"))
    if r["statusCode"] != 200:
        print(f"StatusCode: {r['statusCode']}")
        return 0
    out = base64.b64decode(r["payload"])
    sys.stdout.write(out.decode("utf-8", "replace"))
    if not out.endswith(b"\n"):
        sys.stdout.write("\n")
    if r.get("functionError"):
        print(f"FunctionError: {r['functionError']}", file=sys.stderr)
        return 1
    return 0


# -- parser ----------------------------------------------------------------------------------

def build_parser(core_only: bool = False) -> argparse.ArgumentParser:
    """The whole command line, or with ``core_only`` just ``sprig core ...``: the core is a
    long-running process, and the other commands' modules (the management client's
    ``http.client`` and ``email``, ``lambda import``'s ZIP and recipe writers, the fleet and
    console commands) would stay in its resident set for nothing (~2 MB, issue 18)."""
    parser = argparse.ArgumentParser(
        prog="sprig", description="Run AWS Lambda functions on your own Linux devices.")
    parser.add_argument("--version", action="version", version=f"sprig {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--root", help="Sprig root directory (default $SPRIG_ROOT or ~/.sprig)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    core = sub.add_parser("core", help="run or check the core")
    core_sub = core.add_subparsers(dest="core_command", metavar="COMMAND", required=True)
    p = core_sub.add_parser("run", parents=[common], help="run the core in the foreground")
    p.set_defaults(func=cmd_core_run)
    p = core_sub.add_parser("check", parents=[common],
                            help="what this device supports (cgroups, sandbox, runtimes)")
    p.set_defaults(func=cmd_core_check)
    if core_only:
        return parser

    p = sub.add_parser("status", parents=[common], help="is the core running, and where")
    p.set_defaults(func=cmd_status)

    dep = sub.add_parser("deployment", help="create and inspect deployments")
    dep_sub = dep.add_subparsers(dest="deployment_command", metavar="COMMAND", required=True)
    p = dep_sub.add_parser("create", parents=[common], help="deploy, update or remove components")
    p.add_argument("--recipe-dir", "-r", help="folder of recipe files (YAML or JSON)")
    p.add_argument("--artifact-dir", "-a", help="folder laid out as NAME/VERSION/files")
    p.add_argument("--merge", "-m", action="append", metavar="NAME=VERSION",
                   help="component to add or update (repeatable)")
    p.add_argument("--remove", action="append", metavar="NAME", help="component to remove")
    p.add_argument("--update-config", "-c", metavar="JSON|@FILE",
                   help='{"NAME": {"MERGE": {...}, "RESET": ["/pointer"]}}')
    p.add_argument("--run-with", action="append", metavar="NAME:posixUser=USER[:GROUP]",
                   help="run-as user of a component")
    p.add_argument("--system-limits", metavar="JSON|@FILE",
                   help='{"NAME": {"cpus": 0.5, "memory": 102400}} (memory in KB)')
    p.add_argument("--failure-handling", choices=["ROLLBACK", "DO_NOTHING"], default="ROLLBACK")
    p.add_argument("--component-update-policy",
                   choices=["NOTIFY_COMPONENTS", "SKIP_NOTIFY_COMPONENTS"],
                   help="NOTIFY_COMPONENTS: components subscribed to component updates may "
                        "defer this deployment (default for a local one: SKIP, as Greengrass)")
    p.add_argument("--component-update-timeout", type=int, metavar="SECONDS",
                   help="how long to wait for their answers (default 60; implies NOTIFY)")
    p.add_argument("--configuration-validation-timeout", type=int, metavar="SECONDS",
                   help="how long components that validate configuration have to answer "
                        "(default 20)")
    p.add_argument("--wait", action="store_true", help="wait for SUCCEEDED or FAILED")
    p.set_defaults(func=cmd_deployment_create)
    p = dep_sub.add_parser("list", parents=[common], help="recent deployments")
    p.add_argument("--limit", type=int, default=10)
    p.set_defaults(func=cmd_deployment_list)
    p = dep_sub.add_parser("status", parents=[common], help="one deployment's status")
    p.add_argument("id")
    p.set_defaults(func=cmd_deployment_status)

    comp = sub.add_parser("component", help="inspect and control components")
    comp_sub = comp.add_subparsers(dest="component_command", metavar="COMMAND", required=True)
    p = comp_sub.add_parser("list", parents=[common], help="name, version and state of each")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_component_list)
    p = comp_sub.add_parser("details", parents=[common],
                            help="recipe, configuration, state, last error")
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_component_details)
    p = comp_sub.add_parser("restart", parents=[common], help="restart components")
    p.add_argument("names", nargs="+")
    p.set_defaults(func=cmd_component_restart)
    p = comp_sub.add_parser("stop", parents=[common], help="stop components")
    p.add_argument("names", nargs="+")
    p.set_defaults(func=cmd_component_stop)

    p = sub.add_parser("logs", parents=[common], help="a component's log ('core' for the core)")
    p.add_argument("name")
    p.add_argument("--follow", "-f", action="store_true")
    p.add_argument("--lines", "-n", type=int, default=50)
    p.set_defaults(func=cmd_logs)

    p = sub.add_parser("invoke", parents=[common], help="invoke a Lambda function")
    p.add_argument("name", help="component name, function name or ARN")
    p.add_argument("--payload", metavar="JSON|@FILE")
    p.add_argument("--invocation-type", choices=["RequestResponse", "Event", "DryRun"],
                   default="RequestResponse")
    p.add_argument("--client-context", metavar="JSON|@FILE")
    p.add_argument("--log-type", choices=["None", "Tail"], default="None")
    p.set_defaults(func=cmd_invoke)

    from sprig.cli import lambda_cmd

    lambda_cmd.add_parser(sub)
    for action in sub.choices["lambda"]._subparsers._group_actions:  # type: ignore[union-attr]
        for subparser in getattr(action, "choices", {}).values():
            if not any(a.dest == "root" for a in subparser._actions):
                subparser.add_argument("--root", help="Sprig root directory")
    from sprig.cli import pubsub_cmd

    pubsub_cmd.add_parser(sub, common)
    from sprig.cli import shadow_cmd

    shadow_cmd.add_parser(sub, common)
    from sprig.cli import fleet_cmd

    fleet_cmd.add_parser(sub, common)
    from sprig.cli import console_cmd

    console_cmd.add_parser(sub, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    parser = build_parser(core_only=words[:1] == ["core"])
    args = parser.parse_args(words)
    try:
        return int(args.func(args))
    except CoreNotRunning as e:
        print(f"sprig: {e}", file=sys.stderr)
        return 3
    except SprigError as e:
        print(f"sprig: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:          # `sprig logs core | head`
        return 1
    except OSError as e:
        print(f"sprig: {e.strerror or e}" + (f": {e.filename}" if e.filename else ""),
              file=sys.stderr)
        return 1
    except Exception as e:           # a bug: still one sentence, the details on request
        if os.environ.get("SPRIG_DEBUG"):
            raise
        print(f"sprig: internal error ({type(e).__name__}: {e}); run again with SPRIG_DEBUG=1 "
              "for the traceback", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
