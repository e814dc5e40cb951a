"""The component store against a real S3 endpoint (moto's server): ``sprig fleet publish``
with boto3 on one side, the device's own small S3 client on the other."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sprig.deployment.builtins import builtin_recipes
from sprig.errors import SprigError, ValidationError
from sprig.fleet.aws import AwsCredentials, NoCredentials, StoreAccess, resolve_access
from sprig.fleet.publish import publish, s3_client
from sprig.fleet.s3 import S3Client, S3Error
from sprig.fleet.store import ComponentFetcher, FleetFailure
from sprig.fleet_settings import StoreSettings, parse_store
from sprig.recipe.limits import StagingLimits
from sprig.recipe.platform import current_platform
from sprig.testing import write_recipe
from sprig.testing.fleet import AWS_ENV, BUCKET, MotoServer, moto

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with moto(tmp_path_factory.mktemp("moto")) as s:
        yield s


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The operator's ordinary AWS configuration (boto3 reads it from the environment)."""
    for k, v in AWS_ENV.items():
        monkeypatch.setenv(k, v)


@pytest.fixture
def store(server: MotoServer, request: pytest.FixtureRequest) -> StoreSettings:
    """A store of its own for each test (a prefix in the shared bucket)."""
    return parse_store({"uri": f"s3://{BUCKET}/{request.node.name[:40]}",
                        "endpoint": server.url, "region": "us-east-1"}, "test")


def access(server: MotoServer) -> StoreAccess:
    return StoreAccess(server.url, "us-east-1", AwsCredentials(
        AWS_ENV["AWS_ACCESS_KEY_ID"], AWS_ENV["AWS_SECRET_ACCESS_KEY"]), True)


def generic(recipes: Path, name: str, version: str, deps: dict[str, str] | None = None,
            artifact: str | None = None, **artifact_fields: Any) -> None:
    doc: dict[str, Any] = {
        "RecipeFormatVersion": "2020-01-25", "ComponentName": name, "ComponentVersion": version,
        "ComponentDependencies": {d: {"VersionRequirement": r} for d, r in (deps or {}).items()},
        "Manifests": [{"Platform": {"os": "linux"}, "Lifecycle": {"Run": "sleep 60"},
                       "Artifacts": [{"URI": artifact, **artifact_fields}] if artifact else []}]}
    write_recipe(recipes, doc)


def put_artifact(artifacts: Path, name: str, version: str, file: str, data: bytes) -> None:
    d = artifacts / name / version
    d.mkdir(parents=True, exist_ok=True)
    (d / file).write_bytes(data)


def sha(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


# -- publish ---------------------------------------------------------------------------------

def test_publish_content_addresses_artifacts_and_rewrites_recipes(
        server: MotoServer, store: StoreSettings, tmp_path: Path) -> None:
    recipes, artifacts = tmp_path / "r", tmp_path / "a"
    generic(recipes, "com.example.App", "1.0.0", artifact="greengrass:app.py")
    put_artifact(artifacts, "com.example.App", "1.0.0", "app.py", b"print('hi')\n")
    client = s3_client(store)
    first = publish(recipes, artifacts, store, client, out=lambda s: None)
    assert [(p.state, p.uploaded) for p in first] == [("published", 1)]
    key = f"{store.prefix}/recipes/com.example.App/1.0.0.json"
    recipe = json.loads(server.client().get_object(Bucket=BUCKET, Key=key)["Body"].read())
    art = recipe["Manifests"][0]["Artifacts"][0]
    digest = hashlib.sha256(b"print('hi')\n")
    assert art["URI"] == (f"s3://{BUCKET}/{store.prefix}/artifacts/sha256/"
                          f"{digest.hexdigest()}/app.py")
    assert art["Digest"] == base64.b64encode(digest.digest()).decode()
    assert art["Algorithm"] == "SHA-256"
    # The same again changes nothing; other content under the same version is refused.
    again = publish(recipes, artifacts, store, client, out=lambda s: None)
    assert [(p.state, p.uploaded) for p in again] == [("unchanged", 0)]
    put_artifact(artifacts, "com.example.App", "1.0.0", "app.py", b"print('changed')\n")
    with pytest.raises(SprigError, match=r"already in the component store .* with other "
                       r"content"):
        publish(recipes, artifacts, store, client, out=lambda s: None)


def test_publish_refuses_what_a_device_could_not_check(
        store: StoreSettings, tmp_path: Path) -> None:
    recipes, artifacts = tmp_path / "r", tmp_path / "a"
    generic(recipes, "com.example.Ext", "1.0.0", artifact="s3://elsewhere/x.bin")
    with pytest.raises(ValidationError, match="needs its digest"):
        publish(recipes, artifacts, store, s3_client(store), out=lambda s: None)
    generic(recipes, "com.example.Ext", "1.0.0", artifact="greengrass:x.bin",
            Digest=sha(b"one"))
    put_artifact(artifacts, "com.example.Ext", "1.0.0", "x.bin", b"two")
    with pytest.raises(ValidationError, match="does not match the recipe's digest"):
        publish(recipes, artifacts, store, s3_client(store), out=lambda s: None)
    (artifacts / "com.example.Ext" / "1.0.0" / "x.bin").unlink()
    os.symlink("/etc/shadow", artifacts / "com.example.Ext" / "1.0.0" / "x.bin")
    with pytest.raises(ValidationError, match="link"):
        publish(recipes, artifacts, store, s3_client(store), out=lambda s: None)


# -- the device's client ---------------------------------------------------------------------

def test_requests_are_signed_exactly_as_botocore_signs_them() -> None:
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    acc = StoreAccess("https://s3.eu-west-1.amazonaws.com", "eu-west-1", AwsCredentials(
        "AKIAEXAMPLE", "secret/key+x", "session-token"), False)
    client = S3Client(acc)
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    host, path = client._address("my-bucket", "store/recipes/a b/1.0.0.json")
    assert (host, path) == ("my-bucket.s3.eu-west-1.amazonaws.com",
                            "/store/recipes/a%20b/1.0.0.json")
    query = "list-type=2&prefix=store%2Frecipes%2F"
    mine = dict(client._headers("GET", host, path, query, now=when))
    request = AWSRequest(method="GET", url=f"https://{host}{path}?{query}",
                         headers={"x-amz-content-sha256": mine["x-amz-content-sha256"]})
    signer = S3SigV4Auth(Credentials("AKIAEXAMPLE", "secret/key+x", "session-token"), "s3",
                         "eu-west-1")
    signer._timestamp = lambda: when.strftime("%Y%m%dT%H%M%SZ")  # type: ignore[method-assign]
    import botocore.auth

    original = botocore.auth.datetime.datetime
    try:
        class Fixed(original):  # type: ignore[misc,valid-type]
            @classmethod
            def utcnow(cls) -> Any:
                return when.replace(tzinfo=None)

            @classmethod
            def now(cls, tz: Any = None) -> Any:
                return when if tz else when.replace(tzinfo=None)

        botocore.auth.datetime.datetime = Fixed
        signer.add_auth(request)
    finally:
        botocore.auth.datetime.datetime = original
    assert mine["authorization"] == request.headers["Authorization"]
    assert mine["x-amz-security-token"] == "session-token"


def test_the_device_client_reads_lists_and_names_s3_errors(
        server: MotoServer, store: StoreSettings) -> None:
    s3 = server.client()
    for i in range(3):
        s3.put_object(Bucket=BUCKET, Key=store.key("k", f"{i}&<x>.txt"), Body=b"v" * (i + 1))
    client = S3Client(access(server))

    async def go() -> None:
        keys = await client.list_keys(BUCKET, store.key("k") + "/")
        assert keys == [store.key("k", f"{i}&<x>.txt") for i in range(3)]
        assert await client.get_bytes(BUCKET, keys[2], 10) == b"vvv"
        with pytest.raises(S3Error) as err:
            await client.get_bytes(BUCKET, store.key("missing"), 10)
        assert err.value.code == "NoSuchKey" and err.value.status == 404
        from sprig.fleet.s3 import TooLarge

        with pytest.raises(TooLarge):
            await client.get_bytes(BUCKET, keys[2], 2)

    asyncio.run(go())


def test_the_device_finds_credentials_as_the_aws_cli_does(tmp_path: Path) -> None:
    creds = tmp_path / "credentials"
    creds.write_text("[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key = s1\n"
                     "[fleet]\naws_access_key_id = AKIAFLEET\naws_secret_access_key = s2\n")
    config = tmp_path / "config"
    config.write_text("[profile fleet]\nregion = eu-central-1\n")
    env = {"AWS_SHARED_CREDENTIALS_FILE": str(creds), "AWS_CONFIG_FILE": str(config),
           "HOME": str(tmp_path)}
    store = parse_store({"uri": "s3://b-1/p", "profile": "fleet"}, "t")
    got = resolve_access(store, "us-east-1", env)
    assert got.credentials.access_key_id == "AKIAFLEET" and got.region == "eu-central-1"
    assert got.endpoint == "https://s3.eu-central-1.amazonaws.com" and not got.path_style
    got = resolve_access(parse_store("s3://b-1", "t"), "us-west-2",
                         {**env, "AWS_ACCESS_KEY_ID": "AKIAENV", "AWS_SECRET_ACCESS_KEY": "x"})
    assert got.credentials.access_key_id == "AKIAENV" and got.region == "us-west-2"
    with pytest.raises(NoCredentials, match="no AWS credentials"):
        resolve_access(parse_store({"uri": "s3://b-1", "profile": "nope"}, "t"), "x", env)


def _fetcher(server: MotoServer, store: StoreSettings,
             limits: StagingLimits | None = None) -> ComponentFetcher:
    return ComponentFetcher(S3Client(access(server)), store, limits or StagingLimits(),
                            current_platform())


def test_the_device_resolves_dependency_ranges_against_the_store(
        server: MotoServer, store: StoreSettings, tmp_path: Path) -> None:
    recipes = tmp_path / "r"
    generic(recipes, "com.example.App", "1.0.0", deps={"com.example.Lib": "^1.0.0",
                                                       "aws.greengrass.LambdaManager": "^2.0.0"})
    for v in ("1.0.0", "1.1.0", "2.0.0"):
        generic(recipes, "com.example.Lib", v)
    publish(recipes, None, store, s3_client(store), out=lambda s: None)
    local = {r.id: r for r in builtin_recipes()}
    fetcher = _fetcher(server, store)
    got = asyncio.run(fetcher.gather({"com.example.App": "1.0.0"}, local))
    assert {n: r.version for n, r in got.chosen.items()} == {
        "com.example.App": "1.0.0", "com.example.Lib": "1.1.0",
        "aws.greengrass.LambdaManager": "2.3.9"}
    assert ("com.example.Lib", "2.0.0") not in got.recipes       # never read: out of range
    with pytest.raises(FleetFailure) as err:
        asyncio.run(_fetcher(server, store).gather({"com.example.App": "9.9.9"}, local))
    assert err.value.codes == ("NO_AVAILABLE_COMPONENT_VERSION",)
    assert "not in the component store" in str(err.value)


def test_the_device_downloads_only_what_matches_its_digest_and_its_limit(
        server: MotoServer, store: StoreSettings, tmp_path: Path) -> None:
    recipes, artifacts = tmp_path / "r", tmp_path / "a"
    generic(recipes, "com.example.Big", "1.0.0", artifact="greengrass:blob.bin")
    put_artifact(artifacts, "com.example.Big", "1.0.0", "blob.bin", b"x" * 5000)
    publish(recipes, artifacts, store, s3_client(store), out=lambda s: None)
    fetcher = _fetcher(server, store)
    recipe = asyncio.run(fetcher.recipe("com.example.Big", "1.0.0"))
    dest = tmp_path / "dl"
    assert asyncio.run(fetcher.download(recipe, dest)) == 5000
    assert (dest / "com.example.Big" / "1.0.0" / "blob.bin").read_bytes() == b"x" * 5000
    small = _fetcher(server, store, StagingLimits(artifacts_max_bytes=4096))
    with pytest.raises(FleetFailure, match="artifactsMaxSizeBytes"):
        asyncio.run(small.download(recipe, tmp_path / "dl2"))
    # Someone changes the object in the bucket: the device refuses it and keeps nothing.
    art = recipe.manifests[0].artifacts[0]
    server.client().put_object(Bucket=BUCKET, Key=art.uri.removeprefix(f"s3://{BUCKET}/"),
                               Body=b"y" * 5000)
    with pytest.raises(FleetFailure) as err:
        asyncio.run(fetcher.download(recipe, tmp_path / "dl3"))
    assert err.value.codes == ("ARTIFACT_CHECKSUM_MISMATCH",)
    assert not (tmp_path / "dl3" / "com.example.Big" / "1.0.0" / "blob.bin").exists()


def test_an_artifact_in_another_bucket_is_fetched_where_it_is(
        server: MotoServer, store: StoreSettings, tmp_path: Path) -> None:
    """A recipe AWS generated (its artifact in the account's own bucket, with a digest) works
    unchanged: publish keeps the URI, the device downloads it from there."""
    data = b"#!/bin/sh\nexec sleep 600\n"
    s3 = server.client()
    s3.create_bucket(Bucket="customer-artifacts")
    s3.put_object(Bucket="customer-artifacts", Key="app/v1/run.sh", Body=data)
    recipes = tmp_path / "r"
    generic(recipes, "com.example.Aws", "1.0.0", artifact="s3://customer-artifacts/app/v1/run.sh",
            Digest=sha(data), Algorithm="SHA-256")
    publish(recipes, None, store, s3_client(store), out=lambda s: None)
    fetcher = _fetcher(server, store)
    recipe = asyncio.run(fetcher.recipe("com.example.Aws", "1.0.0"))
    assert recipe.manifests[0].artifacts[0].uri == "s3://customer-artifacts/app/v1/run.sh"
    assert asyncio.run(fetcher.download(recipe, tmp_path / "dl")) == len(data)
    assert (tmp_path / "dl" / "com.example.Aws" / "1.0.0" / "run.sh").read_bytes() == data
