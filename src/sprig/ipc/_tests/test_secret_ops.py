"""GetSecretValue with the real awsiotsdk client over the real socket, against a real encrypted
secret store.

What is matched, and where it comes from:

* Greengrass developer guide, "Retrieve secret values" (ipc-secret-manager): IPC service
  ``aws.greengrass.SecretManager``, operation ``aws.greengrass#GetSecretValue`` or ``*``,
  resources "a Secrets Manager secret ARN, or ``*`` to allow access to all secrets"; request
  ``secretId`` (name or ARN), ``versionId``, ``versionStage``, ``refresh``; response
  ``secretId``, ``versionId``, ``versionStage``, ``secretValue``.
* aws-greengrass-secret-manager ``SecretManagerIPCAgent.handleRequest``: the id is resolved to an
  ARN (unknown name: 404 "Secret not configured <id>") and authorized on that ARN before the
  value is read; a 404 becomes ResourceNotFoundError with ``resourceType`` "secret", anything
  else ServiceError. ``SecretManager.getSecret``: "SecretId absent in the request", "Both
  versionId and Stage are set in the request", "Version Id <v> not found for secret <id>",
  "Version stage <s> not found for secret <id>", "Secret not found <id>"; no version and no
  stage means AWSCURRENT; ``translateModeltoIpc``: ``secretId`` is the ARN, ``versionStage`` all
  the version's stages, ``secretValue`` either ``secretBinary`` or ``secretString``.
* awsiotsdk ``model.py``: ``GetSecretValueRequest`` / ``GetSecretValueResponse`` /
  ``SecretValue`` field names and the base64 of ``secretBinary``.
* nucleus ``AuthorizationHandler``: "Principal <p> is not authorized to perform
  <service>:<operation> on resource <r>".
"""

from __future__ import annotations

import base64
import logging
from pathlib import Path
from typing import Any

import pytest

from sprig.ipc._tests.conftest import DictCore
from sprig.ipc.secret_ops import SHOWN_CHARS, response_body, shown
from sprig.ipc.server import IpcServer
from sprig.sdk_ipc.secrets import SecretStore, parse_secrets

ACCOUNT_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:"
DB_ARN = ACCOUNT_ARN + "db-password-AbCdEf"
KEY_ARN = "arn:aws:secretsmanager:us-east-1:000000000000:secret:api-key"
DB_VALUE = "hunter2-db-value"
KEY_BYTES = b"\x00\x01binary-key\xff"
UNAUTHORIZED = ("is not authorized to perform aws.greengrass.SecretManager:"
                "aws.greengrass#GetSecretValue on resource ")

SECRETS = {"secrets": {
    "db-password": {"secretString": DB_VALUE, "arn": DB_ARN,
                    "versionStages": ["AWSCURRENT", "prod"]},
    "api-key": {"secretBinary": base64.b64encode(KEY_BYTES).decode()},
    "staged-only": {"secretString": "staged-value", "versionStages": ["v2"]},
}}
VALUES = (DB_VALUE, "staged-value", base64.b64encode(KEY_BYTES).decode())


def secret_policy(component: str, resources: list[str],
                  ops: list[str] | None = None) -> dict[str, Any]:
    return {"accessControl": {"aws.greengrass.SecretManager": {f"{component}:secrets:1": {
        "policyDescription": "test", "operations": ops or ["aws.greengrass#GetSecretValue"],
        "resources": resources}}}}


@pytest.fixture
def store(tmp_path: Path) -> SecretStore:
    s = SecretStore(tmp_path / "secrets.enc", tmp_path / "secrets.key")
    s.replace(parse_secrets(SECRETS))
    return s


async def start(core: DictCore, store: SecretStore, server: IpcServer, drivers: Any,
                name: str, config: dict[str, Any]) -> Any:
    core.secrets = store
    core.add(name, f"tok-{name}", config)
    d = await drivers(server.socket_path, f"tok-{name}")
    assert d.connected, d.hello
    return d


async def error_of(d: Any, **kw: Any) -> dict[str, Any]:
    r: dict[str, Any] = await d.raw("get_secret", **kw)
    assert "error" in r, f"{kw} was answered: {r}"
    return r


async def test_values_by_name_and_arn_stage_version_and_refresh(
        server: IpcServer, core: DictCore, store: SecretStore, drivers: Any) -> None:
    """The response shape of translateModeltoIpc; refresh answers the deployed value (Sprig
    never reaches AWS, as Greengrass falls back to its local store when the cloud fails)."""
    me = await start(core, store, server, drivers, "com.all", secret_policy("com.all", ["*"]))
    db = await me("get_secret", secretId="db-password")
    version = store.find("db-password").version_id  # type: ignore[union-attr]
    assert db == {"secretId": DB_ARN, "versionId": version, "versionStage": ["AWSCURRENT", "prod"],
                  "secretString": DB_VALUE, "secretBinary": None}
    assert await me("get_secret", secretId=DB_ARN) == db
    assert await me("get_secret", secretId="db-password", versionStage="prod") == db
    assert await me("get_secret", secretId=DB_ARN, versionId=version) == db
    assert await me("get_secret", secretId="db-password", refresh=True) == db
    assert await me("get_secret", secretId="db-password", versionStage="", versionId="") == db
    key = await me("get_secret", secretId="api-key")
    assert key["secretId"] == KEY_ARN and key["versionStage"] == ["AWSCURRENT"]
    assert key["secretString"] is None and base64.b64decode(key["secretBinary"]) == KEY_BYTES
    staged = await me("get_secret", secretId="staged-only", versionStage="v2")
    assert staged["secretString"] == "staged-value" and staged["versionStage"] == ["v2"]
    # A redeployment through another store on the same file (the core's V1 side writes it) is
    # answered at once: the store re-reads a changed file.
    other = SecretStore(store.data_file, store.key_file)
    other.replace(parse_secrets({"secrets": {"db-password": {
        "secretString": "rotated", "arn": DB_ARN}}}))
    rotated = await me("get_secret", secretId="db-password")
    assert rotated["secretString"] == "rotated" and rotated["versionId"] != version
    e = await error_of(me, secretId="api-key")
    assert e["error"] == "ResourceNotFoundError" and "Secret not configured api-key" in e["message"]
    await me.close()


async def test_error_shapes_and_messages(server: IpcServer, core: DictCore, store: SecretStore,
                                         drivers: Any) -> None:
    """SecretManager.getSecret's words; 404s are ResourceNotFoundError(resourceType "secret"),
    other refusals of the component ServiceError, as SecretManagerIPCAgent maps them; fields of
    the wrong type are InvalidArgumentsError naming the field."""
    me = await start(core, store, server, drivers, "com.all", secret_policy("com.all", ["*"]))
    version = store.find("db-password").version_id  # type: ignore[union-attr]
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({}, "ServiceError", "SecretId absent in the request"),
        ({"secretId": ""}, "ServiceError", "SecretId absent in the request"),
        ({"secretId": "nope"}, "ResourceNotFoundError", "Secret not configured nope"),
        ({"secretId": ACCOUNT_ARN + "nope-AbCdEf"}, "ResourceNotFoundError",
         f"Secret not found {ACCOUNT_ARN}nope-AbCdEf"),
        ({"secretId": "db-password", "versionStage": "AWSPREVIOUS"}, "ResourceNotFoundError",
         "Version stage AWSPREVIOUS not found for secret db-password"),
        ({"secretId": DB_ARN, "versionId": "0" * 36}, "ResourceNotFoundError",
         f"Version Id {'0' * 36} not found for secret {DB_ARN}"),
        ({"secretId": "staged-only"}, "ResourceNotFoundError", "Secret not found staged-only"),
        ({"secretId": "db-password", "versionId": version, "versionStage": "prod"},
         "ServiceError", "Both versionId and Stage are set in the request"),
        ({"secretId": 123}, "InvalidArgumentsError", "secretId: must be a string"),
        ({"secretId": "db-password", "versionStage": ["prod"]}, "InvalidArgumentsError",
         "versionStage: must be a string"),
        ({"secretId": "db-password", "versionId": 7}, "InvalidArgumentsError",
         "versionId: must be a string"),
        ({"secretId": "db-password", "refresh": "yes"}, "InvalidArgumentsError",
         "refresh: must be a boolean"),
    ]
    for request, kind, words in cases:
        e = await error_of(me, **request)
        assert e["error"] == kind and e["message"].startswith(words), (request, e)
        assert e["resourceType"] == ("secret" if kind == "ResourceNotFoundError" else None), e
        assert not any(v in e["message"] for v in VALUES), e
    await me.close()


async def test_policies_open_only_the_secrets_they_name(
        server: IpcServer, core: DictCore, store: SecretStore, drivers: Any) -> None:
    """Resources are ARNs (a request by name is checked against its secret's ARN); ``*`` and
    other wildcards match as in every other IPC service; another service's policy, or a policy
    without the operation, opens nothing."""
    a = await start(core, store, server, drivers, "com.a", secret_policy("com.a", [DB_ARN]))
    assert (await a("get_secret", secretId="db-password"))["secretString"] == DB_VALUE
    assert (await a("get_secret", secretId=DB_ARN))["secretString"] == DB_VALUE
    for other in ("api-key", KEY_ARN):
        e = await error_of(a, secretId=other)
        assert e["error"] == "UnauthorizedError", e
        assert e["message"].startswith(f"Principal com.a {UNAUTHORIZED}{KEY_ARN}"), e
    # Authorization comes before the argument checks, as in Greengrass.
    e = await error_of(a, secretId="api-key", versionId="x", versionStage="y")
    assert e["error"] == "UnauthorizedError", e
    e = await error_of(a, secretId=ACCOUNT_ARN + "ghost-AbCdEf")
    assert e["error"] == "UnauthorizedError", e
    # A policy on the name (not the ARN) opens nothing: resources are ARNs.
    by_name = await start(core, store, server, drivers, "com.byname",
                          secret_policy("com.byname", ["db-password"]))
    assert (await error_of(by_name, secretId="db-password"))["error"] == "UnauthorizedError"
    glob = await start(core, store, server, drivers, "com.glob",
                       secret_policy("com.glob", [ACCOUNT_ARN + "db-*"], ops=["*"]))
    assert (await glob("get_secret", secretId="db-password"))["secretString"] == DB_VALUE
    assert (await error_of(glob, secretId="api-key"))["error"] == "UnauthorizedError"
    refused: list[tuple[str, dict[str, Any]]] = [
        ("com.none", {}),
        ("com.pubsub", {"accessControl": {"aws.greengrass.ipc.pubsub": {"p:1": {
            "operations": ["*"], "resources": ["*"]}}}}),
        ("com.otherop", secret_policy("com.otherop", ["*"],
                                      ops=["aws.greengrass#PublishToTopic"])),
    ]
    for name, config in refused:
        d = await start(core, store, server, drivers, name, config)
        for secret in ("db-password", DB_ARN, "api-key"):
            e = await error_of(d, secretId=secret)
            assert e["error"] == "UnauthorizedError", (name, secret, e)
            assert not any(v in e["message"] for v in VALUES), e
        await d.close()
    await a.close()
    await by_name.close()
    await glob.close()


async def test_refusals_are_one_warning_line_without_values(
        server: IpcServer, core: DictCore, store: SecretStore, drivers: Any,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="sprig")
    me = await start(core, store, server, drivers, "com.a", secret_policy("com.a", [DB_ARN]))
    asks: list[dict[str, Any]] = [
        {"secretId": "api-key"}, {"secretId": KEY_ARN}, {"secretId": "nope"},
        {"secretId": "db-password", "versionStage": "AWSPREVIOUS"}, {"secretId": 5},
        {"secretId": "forged\nWARNING sprig.ipc: fake line"},
        {"secretId": ACCOUNT_ARN + "x" * 5000},
    ]
    for ask in asks:
        caplog.clear()
        await error_of(me, **ask)
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1, [r.getMessage() for r in caplog.records]
        line = warnings[0].getMessage()
        assert "GetSecretValue by com.a refused for secret " in line, line
        asked = ask["secretId"]
        assert (shown(asked) if isinstance(asked, str) else repr(asked)) in line, line
        for r in caplog.records:                      # the server's own INFO line too
            text = r.getMessage()
            assert "\n" not in text and len(text) < 3 * SHOWN_CHARS, text
            assert not any(v in text for v in VALUES), text
    caplog.clear()
    assert (await me("get_secret", secretId="db-password"))["secretString"] == DB_VALUE
    granted = [r.getMessage() for r in caplog.records if "GetSecretValue" in r.getMessage()]
    assert granted == [f"ipc: GetSecretValue: com.a read secret {DB_ARN} (version "
                       f"{store.find(DB_ARN).version_id})"], granted  # type: ignore[union-attr]
    assert not any(DB_VALUE in r.getMessage() for r in caplog.records)
    await me.close()


async def test_unreadable_store_is_a_service_error(
        server: IpcServer, core: DictCore, store: SecretStore, drivers: Any) -> None:
    me = await start(core, store, server, drivers, "com.all", secret_policy("com.all", ["*"]))
    blob = bytearray(store.data_file.read_bytes())
    blob[-1] ^= 1
    store.data_file.write_bytes(bytes(blob))
    e = await error_of(me, secretId="db-password")
    assert e["error"] == "ServiceError", e
    assert "the local secret store cannot be read" in e["message"], e
    await me.close()


async def test_no_store_means_not_configured(server: IpcServer, core: DictCore,
                                             drivers: Any) -> None:
    core.add("com.all", "tok", secret_policy("com.all", ["*"]))
    me = await drivers(server.socket_path, "tok")
    e = await error_of(me, secretId="db-password")
    assert e["error"] == "ResourceNotFoundError" and "Secret not configured" in e["message"]
    await me.close()


def test_shown_and_response_body(store: SecretStore) -> None:
    assert shown("db-password") == "db-password" and shown(DB_ARN) == DB_ARN
    assert shown("a\nb\x1b[31m") == "a\\x0ab\\x1b[31m"
    long = shown("x" * (SHOWN_CHARS + 10))
    assert long.endswith(f"...({SHOWN_CHARS + 10} characters)")
    key = store.find("api-key")
    assert key is not None
    assert response_body(key)["secretValue"] == {
        "secretBinary": base64.b64encode(KEY_BYTES).decode()}
