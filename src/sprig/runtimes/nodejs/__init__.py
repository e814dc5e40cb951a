"""The Node.js runtime: where its bootstrap lives and how to start it.

The bootstrap (``bootstrap.js`` and its Runtime API client ``runtime_api_client.js``, no npm
dependencies; a container must see their whole directory, :func:`runtime_paths`) reads
everything else from the environment the Lambda manager sets: ``AWS_LAMBDA_RUNTIME_API`` (or
``SPRIG_RUNTIME_API_SOCKET``, a Unix socket, preferred when set), ``_HANDLER``,
``LAMBDA_TASK_ROOT``, the ``AWS_LAMBDA_FUNCTION_*`` / ``AWS_LAMBDA_LOG_*`` context variables,
``AWS_GREENGRASS_LAMBDA_ENCODING_TYPE`` and ``NODE_PATH`` (see :func:`node_path`).
"""

from __future__ import annotations

import os
from pathlib import Path

from sprig.assets import asset


def bootstrap_path() -> Path:
    """The absolute path of ``bootstrap.js`` (mount it read-only into a container); the core's
    published copy, readable by every run-as user (see :mod:`sprig.assets`)."""
    return asset("runtimes/nodejs/bootstrap.js")


def shims_dir() -> Path | None:
    """The shim ``node_modules`` shipped with Sprig (the Greengrass Core SDK v1 modules)."""
    shims = asset("shims/nodejs/node_modules")
    return shims if shims.is_dir() else None


def runtime_paths() -> tuple[Path, ...]:
    """What a container must see read-only for Node workers: the bootstrap's directory and, when
    it exists, the shims directory that :func:`node_path` names."""
    here = bootstrap_path().parent
    shims = shims_dir()
    return (here,) if shims is None else (here, shims)


def launch_argv(node: str) -> list[str]:
    """The argv of a Node.js worker; ``node`` is the interpreter (a path or a name on PATH)."""
    return [node, str(bootstrap_path())]


def node_path(code_dir: Path) -> str:
    """``NODE_PATH`` for a function: its code dir, its ``node_modules``, then Sprig's shims.

    Greengrass sets ``/lambda/:/runtime/nodejs/node_modules:/lambda/node_modules``; we keep the
    function's own modules first so that a function that bundles a package wins over our shim.
    ``NODE_PATH`` serves ``require``; ESM ``import`` resolves ``node_modules`` from the file's
    own directory upwards and ignores it.
    """
    entries = [str(code_dir), str(code_dir / "node_modules")]
    shims = shims_dir()
    if shims is not None:
        entries.append(str(shims))
    return os.pathsep.join(entries)
