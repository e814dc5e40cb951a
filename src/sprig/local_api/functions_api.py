"""The Lambda API's read operations: ``ListFunctions``, ``GetFunction``,
``GetFunctionConfiguration``, so ``aws lambda list-functions --endpoint-url …`` and boto3 (its
``list_functions`` paginator, ``get_function``, ``get_function_configuration``) show the functions
deployed on this core.

Shapes follow the Lambda API reference (botocore ``lambda/2015-03-31``): ``GET
/2015-03-31/functions/`` answers ``{"Functions": [FunctionConfiguration…], "NextMarker"}`` with
``MaxItems`` (1-10000, default 50) and the opaque ``Marker``; ``GET …/functions/{FunctionName}``
answers ``{"Configuration", "Code", "Tags"}``; ``GET …/functions/{FunctionName}/configuration``
one ``FunctionConfiguration``. ``FunctionName`` is a name, a (partial) ARN, or ``name:qualifier``.

What differs, because a core has one deployed version of each function and no AWS account
behind it: ``Version`` and ``FunctionArn`` are the deployed version's (what ``Invoke`` answers as
``X-Amz-Executed-Version``); ``Role`` is absent; ``Code`` is the staged package on this device
(``RepositoryType: "Local"``, a ``file://`` location); ``Tags`` name the Greengrass component;
``State`` comes from the component's state (RUNNING/FINISHED ``Active``, on its way ``Pending``,
ERRORED/BROKEN ``Failed`` with the reason, stopped ``Inactive``).

The handlers are pure but for the :class:`FunctionCatalog` they read; errors are
:class:`~sprig.local_api.invoke_api.ApiError` in AWS's shape.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import unquote

from sprig.functions.errors import FunctionNotFound
from sprig.httpserver import HttpRequest, Response, Router
from sprig.local_api.invoke_api import ApiError, ErrorType, invalid_parameter

API_VERSION = "2015-03-31"
LIST_ROUTE = rf"/{API_VERSION}/functions/?"
GET_ROUTE = rf"/{API_VERSION}/functions/(?P<function_name>[^/]+)/?"
CONFIGURATION_ROUTE = rf"/{API_VERSION}/functions/(?P<function_name>[^/]+)/configuration/?"
DEFAULT_MAX_ITEMS = 50
MAX_ITEMS = 10000


@dataclass(frozen=True)
class FunctionInfo:
    """What the Lambda API tells about one deployed function."""

    name: str
    arn: str                         # versioned
    version: str
    runtime: str
    handler: str
    component: str
    component_version: str
    timeout_s: float
    memory_kb: int
    state: str                       # Active | Pending | Inactive | Failed
    description: str = ""
    state_reason: str = ""
    environment: Mapping[str, str] = field(default_factory=dict)
    last_modified: float = 0.0       # epoch seconds
    code_sha256: str = ""            # base64, as AWS writes it
    code_size: int = 0
    code_location: str = ""
    architecture: str = "x86_64"

    def matches(self, name: str) -> bool:
        """Does ``FunctionName`` (name, ARN, partial ARN, ``name:qualifier``) name it?"""
        unversioned = self.arn.rsplit(":", 1)[0]
        qualifiers = ("", "$LATEST", self.version)
        if name.startswith("arn:"):
            return name in (self.arn, unversioned, f"{unversioned}:$LATEST")
        if ":function:" in name:             # 123456789012:function:name[:qualifier]
            tail = name.split(":function:", 1)[1]
            account = name.split(":", 1)[0]
            if account != self.arn.split(":")[4]:
                return False
            name = tail
        fname, _, qualifier = name.partition(":")
        return fname in (self.name, self.component) and qualifier in qualifiers


class FunctionCatalog(Protocol):
    """The deployed functions, as the core knows them now."""

    def deployed_functions(self) -> Sequence[FunctionInfo]:
        """Every deployed Lambda component's function, in any state."""
        ...


def _iso(epoch: float) -> str:
    """AWS's ``LastModified``: ``2024-05-01T12:34:56.789+0000``."""
    stamp = datetime.fromtimestamp(epoch, UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}+0000"


def configuration(info: FunctionInfo) -> dict[str, Any]:
    """A ``FunctionConfiguration`` as AWS Lambda answers it."""
    doc: dict[str, Any] = {
        "FunctionName": info.name,
        "FunctionArn": info.arn,
        "Runtime": info.runtime,
        "Handler": info.handler,
        "CodeSize": info.code_size,
        "Description": info.description,
        "Timeout": int(info.timeout_s),
        "MemorySize": max(1, info.memory_kb // 1024),
        "LastModified": _iso(info.last_modified),
        "CodeSha256": info.code_sha256,
        "Version": info.version,
        "Environment": {"Variables": dict(info.environment)},
        "TracingConfig": {"Mode": "PassThrough"},
        "State": info.state,
        "LastUpdateStatus": "Successful",
        "PackageType": "Zip",
        "Architectures": [info.architecture],
    }
    if info.state_reason:
        doc["StateReason"] = info.state_reason
    return doc


def get_function(info: FunctionInfo) -> dict[str, Any]:
    """``GetFunction``'s answer."""
    return {
        "Configuration": configuration(info),
        "Code": {"RepositoryType": "Local", "Location": info.code_location},
        "Tags": {"greengrass:component": info.component,
                 "greengrass:componentVersion": info.component_version},
    }


def _marker(name: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": name}).encode()).decode()


def _after(marker: str) -> str:
    try:
        after = json.loads(base64.urlsafe_b64decode(marker.encode()))["after"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        after = None
    if not isinstance(after, str):
        raise invalid_parameter("marker", marker, "Member must be a NextMarker this API "
                                "returned")
    return after


def list_functions(catalog: FunctionCatalog, query: Mapping[str, str]) -> dict[str, Any]:
    """``ListFunctions``: by name, ``MaxItems`` at a time, from ``Marker`` on."""
    raw = query.get("MaxItems")
    limit = DEFAULT_MAX_ITEMS
    if raw is not None:
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_ITEMS:
            raise invalid_parameter("maxItems", raw, f"Member must have value between 1 and "
                                     f"{MAX_ITEMS}")
        limit = int(raw)
    version = query.get("FunctionVersion")
    if version is not None and version != "ALL":
        raise invalid_parameter("functionVersion", version,
                                 "Member must satisfy enum value set: [ALL]")
    if query.get("MasterRegion") is not None:
        raise invalid_parameter("masterRegion", query["MasterRegion"],
                                 "Lambda@Edge replicas do not exist on a core: omit MasterRegion")
    infos = sorted(catalog.deployed_functions(), key=lambda i: i.name)
    marker = query.get("Marker")
    if marker:
        after = _after(marker)
        infos = [i for i in infos if i.name > after]
    page = infos[:limit]
    doc: dict[str, Any] = {"Functions": [configuration(i) for i in page]}
    if len(infos) > limit:
        doc["NextMarker"] = _marker(page[-1].name)
    return doc


def find(catalog: FunctionCatalog, name: str, qualifier: str | None) -> FunctionInfo:
    """The function ``FunctionName`` (and ``Qualifier``) names; FunctionNotFound otherwise."""
    wanted = f"{name}:{qualifier}" if qualifier and ":" not in name.split(":function:")[-1] \
        else name
    for info in catalog.deployed_functions():
        if info.matches(wanted):
            return info
    raise FunctionNotFound(wanted)


class FunctionsApi:
    """Adds the three read operations to a Lambda API router."""

    def __init__(self, catalog: FunctionCatalog) -> None:
        self.catalog = catalog

    def register(self, router: Router) -> None:
        router.add("GET", LIST_ROUTE, self.list)
        router.add("GET", CONFIGURATION_ROUTE, self.get_configuration)
        router.add("GET", GET_ROUTE, self.get)

    async def list(self, request: HttpRequest) -> Response:
        return _json(list_functions(self.catalog, request.query))

    def _find(self, request: HttpRequest) -> FunctionInfo:
        name = unquote(request.params["function_name"])
        try:
            return find(self.catalog, name, request.query.get("Qualifier"))
        except FunctionNotFound as exc:
            raise ApiError(404, ErrorType.RESOURCE_NOT_FOUND, str(exc)) from None

    async def get(self, request: HttpRequest) -> Response:
        return _json(get_function(self._find(request)))

    async def get_configuration(self, request: HttpRequest) -> Response:
        return _json(configuration(self._find(request)))


def _json(doc: Mapping[str, Any]) -> Response:
    return Response(200, json.dumps(doc).encode(), "application/json")
