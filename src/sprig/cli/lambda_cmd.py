"""``sprig lambda import`` and ``sprig lambda export-params``.

``import`` turns function code (+ optionally the function configuration from ``aws lambda
get-function-configuration`` and a Greengrass ``lambdaFunction`` document) into
``OUT/recipes`` and ``OUT/artifacts``; ``--deploy`` then asks the running core to deploy it and
waits. ``export-params NAME`` prints a deployed function's effective parameters in the
``componentLambdaParameters`` shape (``--full``: a whole ``lambdaFunction`` document that
``--lambda-function`` accepts back).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from sprig.errors import SprigError
from sprig.lambda_import.documents import (
    FUNCTION_CONFIGURATION_SOURCE,
    LAMBDA_FUNCTION_SOURCE,
    read_document,
)
from sprig.lambda_import.export import effective_lambda_function
from sprig.lambda_import.importer import ImportResult, RecipeFormat, import_function
from sprig.lambda_import.params import ImportFlags
from sprig.paths import default_root


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``lambda import`` and ``lambda export-params``."""
    lam = subparsers.add_parser("lambda", help="import AWS Lambda functions as components")
    sub = lam.add_subparsers(dest="lambda_command", metavar="COMMAND", required=True)

    imp = sub.add_parser(
        "import", help="make a component (recipe + artifact) from a Lambda function",
        description="Precedence: flags > --lambda-function > --function-config > defaults.")
    imp.add_argument("code", type=Path,
                     help="the function code: the Lambda .zip, a directory, or a Java .jar")
    imp.add_argument("--function-config", type=Path, metavar="FILE",
                     help="output of `aws lambda get-function-configuration` (JSON)")
    imp.add_argument("--lambda-function", type=Path, metavar="FILE",
                     help="the Greengrass lambdaFunction document (create-component-version "
                          "--cli-input-json shape)")
    imp.add_argument("--out", type=Path, metavar="DIR",
                     help="write OUT/recipes and OUT/artifacts here (required without --deploy)")
    imp.add_argument("--format", choices=[f.value for f in RecipeFormat], default="json",
                     help="recipe file format (default json)")
    imp.add_argument("--deploy", action="store_true",
                     help="deploy the component to the running core and wait for the result")
    imp.add_argument("--name", help="componentName (default: the function name)")
    imp.add_argument("--version", help="componentVersion (default: function version N → N.0.0)")
    imp.add_argument("--arn", help="lambdaArn, with its version number")
    imp.add_argument("--region", help="region of the ARN built when there is none "
                                      "(default us-east-1)")
    imp.add_argument("--runtime", help="e.g. python3.11, nodejs20.x, java17, provided")
    imp.add_argument("--handler", help="e.g. lambda_function.lambda_handler, index.handler")
    imp.add_argument("--description", help="ComponentDescription")
    pin = imp.add_mutually_exclusive_group()
    pin.add_argument("--pinned", dest="pinned", action="store_const", const=True,
                     help="long-lived function (the default)")
    pin.add_argument("--on-demand", dest="pinned", action="store_const", const=False,
                     help="start instances on demand")
    imp.add_argument("--timeout", metavar="SECONDS", help="timeoutInSeconds (default 3)")
    imp.add_argument("--memory-kb", metavar="KB", help="memorySizeInKB (default 16384)")
    imp.add_argument("--isolation", metavar="MODE",
                     help="GreengrassContainer (default) or NoContainer")
    imp.add_argument("--encoding", metavar="TYPE", help="inputPayloadEncodingType: json|binary")
    imp.add_argument("--event-source", action="append", default=[], metavar="TOPIC:TYPE",
                     help="TYPE is PUB_SUB or IOT_CORE (repeatable)")
    imp.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                     help="environment variable (repeatable)")
    imp.add_argument("--volume", action="append", default=[], metavar="SRC:DST[:ro|rw]",
                     help="volume mounted in the container (repeatable)")
    imp.add_argument("--device", action="append", default=[], metavar="PATH[:ro|rw]",
                     help="device under /dev (repeatable)")
    imp.add_argument("--exec-arg", action="append", default=[], metavar="ARG",
                     help="argument appended to the runtime's arguments (repeatable; write "
                          "--exec-arg=-x for one that starts with -)")
    imp.add_argument("--root", help="Sprig root directory (default $SPRIG_ROOT or ~/.sprig)")
    imp.set_defaults(func=run_import)

    exp = sub.add_parser("export-params",
                         help="print a deployed function's effective componentLambdaParameters")
    exp.add_argument("name", help="component name")
    exp.add_argument("--full", action="store_true",
                     help="print a whole lambdaFunction document instead")
    exp.add_argument("--root", help="Sprig root directory (default $SPRIG_ROOT or ~/.sprig)")
    exp.set_defaults(func=run_export_params)


def flags_from_args(args: argparse.Namespace) -> ImportFlags:
    return ImportFlags(
        name=args.name, version=args.version, arn=args.arn, region=args.region,
        runtime=args.runtime, handler=args.handler, description=args.description,
        pinned=args.pinned, timeout=args.timeout, memory_kb=args.memory_kb,
        isolation=args.isolation, encoding=args.encoding,
        event_sources=tuple(args.event_source), env=tuple(args.env),
        volumes=tuple(args.volume), devices=tuple(args.device), exec_args=tuple(args.exec_arg))


def _management_client(args: argparse.Namespace) -> Any:
    """The core's management client; imported late so the import works without a core."""
    try:
        client_module = importlib.import_module("sprig.cli.client")
    except ImportError as exc:
        raise SprigError(f"cannot reach the core: its management client is missing ({exc})",
                         ) from exc
    root = getattr(args, "root", None)
    return client_module.ManagementClient(Path(root).expanduser().resolve() if root
                                          else default_root())


def _core_not_running(exc: BaseException) -> bool:
    """The client's CoreNotRunning goes up to ``sprig``'s main, which has its own exit code."""
    return type(exc).__name__ == "CoreNotRunning"


def _call(args: argparse.Namespace, method: str, params: dict[str, Any]) -> Any:
    try:
        return _management_client(args).call(method, params)
    except OSError as exc:
        raise SprigError(f"cannot reach the core ({exc.strerror or exc}); is `sprig core run` "
                         "running with the same --root?") from exc


def _load(path: Path | None, source: str) -> Any:
    if path is None:
        return None
    try:
        return read_document(path)
    except SprigError as exc:
        raise SprigError(f"{source}: {exc}") from exc


def _do_import(args: argparse.Namespace, out: Path) -> ImportResult:
    return import_function(
        args.code, out, flags_from_args(args),
        lambda_function=_load(args.lambda_function, LAMBDA_FUNCTION_SOURCE),
        function_configuration=_load(args.function_config, FUNCTION_CONFIGURATION_SOURCE),
        fmt=RecipeFormat(args.format))


def run_import(args: argparse.Namespace) -> int:
    if args.out is None and not args.deploy:
        print("sprig lambda import: --out: is required unless --deploy is given; allowed: a "
              "directory", file=sys.stderr)
        return 2
    try:
        if args.out is not None:
            result = _do_import(args, args.out)
            _report(result)
            return _deploy(args, result) if args.deploy else 0
        with tempfile.TemporaryDirectory(prefix="sprig-lambda-") as tmp:
            return _deploy(args, _do_import(args, Path(tmp)))
    except SprigError as exc:
        if _core_not_running(exc):
            raise
        print(f"sprig lambda import: {exc}", file=sys.stderr)
        return 1


def _report(result: ImportResult) -> None:
    c = result.component
    print(f"Wrote {result.recipe_path}")
    print(f"Wrote {result.artifact_path} (SHA-256 {result.digest})")
    print(f"Deploy with: sprig deployment create --recipe-dir {result.recipe_dir} "
          f"--artifact-dir {result.artifact_dir} "
          f"--merge {c.component_name}={c.component_version}")


def deployment_params(result: ImportResult) -> dict[str, Any]:
    """The ``deployment.create`` call that deploys the imported component and waits."""
    c = result.component
    return {"deployment": {"merge": {c.component_name: c.component_version}},
            "recipeDir": str(result.recipe_dir.resolve()),
            "artifactDir": str(result.artifact_dir.resolve()),
            "wait": True}


def _deploy(args: argparse.Namespace, result: ImportResult) -> int:
    reply = _call(args, "deployment.create", deployment_params(result))
    reply = reply if isinstance(reply, dict) else {}
    status = str(reply.get("status", "")).upper()
    line = f"Deployment {reply.get('deploymentId', '?')}: {status or 'SUBMITTED'}"
    if reply.get("reason"):
        line += f" ({reply['reason']})"
    print(line, file=sys.stderr if status == "FAILED" else sys.stdout)
    return 1 if status == "FAILED" else 0


def run_export_params(args: argparse.Namespace) -> int:
    try:
        details = _call(args, "component.details", {"name": args.name})
    except SprigError as exc:
        if _core_not_running(exc):
            raise
        print(f"sprig lambda export-params: {exc}", file=sys.stderr)
        return 1
    details = details if isinstance(details, dict) else {}
    recipe = details.get("recipe")
    ctype = details.get("componentType") or (
        recipe.get("ComponentType") if isinstance(recipe, dict) else None)
    if ctype is not None and ctype != "aws.greengrass.lambda":
        print(f"sprig lambda export-params: name: component {args.name} is not a Lambda "
              f"function (got ComponentType {ctype!r}); allowed: a component of type "
              "aws.greengrass.lambda", file=sys.stderr)
        return 1
    doc = effective_lambda_function(details)
    print(json.dumps(doc if args.full else doc["lambdaFunction"]["componentLambdaParameters"],
                     indent=2))
    return 0
