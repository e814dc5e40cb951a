"""``sprig fleet publish``: put recipes and artifacts into the component store (boto3).

For every recipe in ``--recipe-dir``: each artifact found in ``--artifact-dir``
(``<name>/<version>/<file>``, no link followed) is uploaded once under its SHA-256
(``artifacts/sha256/<hex>/<file name>``), and the recipe's URI is rewritten to it with
``Digest`` (base64, as Greengrass writes it) and ``Algorithm: SHA-256``; an ``s3://`` artifact
that is not in the artifact directory stays where it is and must carry a digest. A digest the
recipe already states must match the file. The rewritten recipe goes to
``recipes/<name>/<version>.json`` last, so a device never sees a recipe whose artifacts are not
there yet. A version already in the store with other content is refused (versions are
immutable, as in Greengrass); the same content again changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sprig.errors import SprigError, ValidationError
from sprig.fleet.store import artifact_key, recipe_key
from sprig.fleet_settings import StoreSettings
from sprig.recipe._digest import ALGORITHMS, b64, decode_digest
from sprig.recipe.limits import DEFAULT_LIMITS
from sprig.recipe.load import load_recipe_dir
from sprig.recipe.model import Artifact, Manifest, Recipe
from sprig.recipe.nofollow import Refused, open_below, open_dir, opened


@dataclass(frozen=True)
class Published:
    name: str
    version: str
    state: str          # "published" | "unchanged"
    uploaded: int       # artifact files uploaded (others were already there)


def s3_client(store: StoreSettings) -> Any:
    import boto3
    from botocore.config import Config

    session = boto3.Session(profile_name=store.profile) if store.profile else boto3.Session()
    addressing = "path" if store.path_style else "virtual"
    return session.client("s3", endpoint_url=store.endpoint, region_name=store.region,
                           config=Config(s3={"addressing_style": addressing},
                                         retries={"max_attempts": 3}))


def _digest_file(fd: int) -> tuple[bytes, int]:
    h = hashlib.sha256()
    size = 0
    while chunk := os.read(fd, 1 << 20):
        h.update(chunk)
        size += len(chunk)
    return h.digest(), size


def _exists(client: Any, bucket: str, key: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        client.head_object(Bucket=bucket, Key=key)
        return True
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise


def publish(recipe_dir: Path, artifact_dir: Path | None, store: StoreSettings, client: Any,
            out: Callable[[str], None] = print) -> list[Published]:
    from botocore.exceptions import BotoCoreError, ClientError

    recipes = load_recipe_dir(recipe_dir, max_bytes=DEFAULT_LIMITS.recipe_max_bytes)
    if not recipes:
        raise ValidationError("", "no recipe files (*.yaml, *.yml, *.json)",
                              source=str(recipe_dir), allowed="a directory of recipes")
    try:
        plans = [_plan(r, artifact_dir, store) for _, r in sorted(recipes.items())]
        results: list[Published] = []
        stored: dict[tuple[str, str], Any] = {}
        for recipe, _uploads in plans:
            key = recipe_key(store, recipe.name, recipe.version)
            try:
                body = client.get_object(Bucket=store.bucket, Key=key)["Body"].read()
                stored[recipe.id] = json.loads(body)
            except ClientError as e:
                if e.response.get("Error", {}).get("Code") not in ("NoSuchKey", "404"):
                    raise
        for recipe, _ in plans:
            have = stored.get(recipe.id)
            if have is not None and have != recipe.to_dict():
                raise SprigError(
                    f"{recipe.name} {recipe.version} is already in the component store "
                    f"{store.uri} with other content (recipe or artifacts differ); versions "
                    "are immutable: publish a new version")
        for recipe, uploads in plans:
            count = 0
            for path, key in uploads:
                if _exists(client, store.bucket, key):
                    continue
                with path.open("rb") as f:
                    client.put_object(Bucket=store.bucket, Key=key, Body=f)
                count += 1
            if recipe.id in stored:
                results.append(Published(recipe.name, recipe.version, "unchanged", count))
                out(f"{recipe.name} {recipe.version}: already published, unchanged")
                continue
            body = json.dumps(recipe.to_dict(), indent=1).encode()
            _put_new(client, store.bucket, recipe_key(store, recipe.name, recipe.version),
                     body, recipe, store)
            results.append(Published(recipe.name, recipe.version, "published", count))
            out(f"{recipe.name} {recipe.version}: published to {store.uri} "
                f"({count} artifact(s) uploaded)")
        return results
    except (BotoCoreError, ClientError) as e:
        raise SprigError(f"the component store {store.uri}: {e}") from None


def _put_new(client: Any, bucket: str, key: str, body: bytes, recipe: Recipe,
             store: StoreSettings) -> None:
    """Write a recipe only if nobody did meanwhile (S3's conditional write, where the store
    has it)."""
    from botocore.exceptions import ClientError

    try:
        client.put_object(Bucket=bucket, Key=key, Body=body, IfNoneMatch="*",
                          ContentType="application/json")
    except ClientError as e:
        code = e.response.get("Error", {}).get("Code")
        if code in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
            raise SprigError(f"{recipe.name} {recipe.version} was published to {store.uri} by "
                             "someone else at the same time; run publish again") from None
        if code in ("NotImplemented", "501"):
            client.put_object(Bucket=bucket, Key=key, Body=body,
                              ContentType="application/json")
            return
        raise


def _plan(recipe: Recipe, artifact_dir: Path | None,
          store: StoreSettings) -> tuple[Recipe, list[tuple[Path, str]]]:
    """The recipe as published (URIs rewritten) and the files to upload (path, key)."""
    uploads: list[tuple[Path, str]] = []
    manifests: list[Manifest] = []
    for mi, manifest in enumerate(recipe.manifests):
        artifacts: list[Artifact] = []
        for ai, a in enumerate(manifest.artifacts):
            where = f"{recipe} Manifests[{mi}].Artifacts[{ai}]"
            found = _local_file(recipe, a, artifact_dir, where)
            if found is None:
                if not a.uri.lower().startswith("s3://"):
                    place = f"{artifact_dir}/{recipe.name}/{recipe.version}/{a.file_name}" \
                        if artifact_dir else "(no --artifact-dir given)"
                    raise ValidationError(where, f"artifact {a.file_name} is missing",
                                          value=place, allowed="the file in --artifact-dir "
                                          "NAME/VERSION/, or an s3:// URI with a Digest")
                if a.digest is None or decode_digest(a.digest, a.algorithm) is None:
                    raise ValidationError(f"{where}.Digest", "an s3:// artifact left where it "
                                          "is needs its digest (devices check every download)",
                                          value=a.digest, allowed=f"the {a.algorithm} digest "
                                          "of the object, base64 or hex")
                artifacts.append(a)
                continue
            path, digest, _size = found
            if a.digest is not None:
                expected = decode_digest(a.digest, a.algorithm)
                actual = _file_digest(path, a.algorithm)
                if expected != actual:
                    raise ValidationError(f"{where}.Digest", f"{path} does not match the "
                                          "recipe's digest", value=a.digest,
                                          allowed=f"{a.algorithm} {b64(actual)}")
            key = artifact_key(store, digest.hex(), a.file_name)
            uploads.append((path, key))
            artifacts.append(replace(a, uri=f"s3://{store.bucket}/{key}", digest=b64(digest),
                                     algorithm="SHA-256"))
        manifests.append(replace(manifest, artifacts=tuple(artifacts)))
    return replace(recipe, manifests=tuple(manifests)), uploads


def _local_file(recipe: Recipe, a: Artifact, artifact_dir: Path | None,
                where: str) -> tuple[Path, bytes, int] | None:
    if artifact_dir is None:
        return None
    try:
        with opened(open_dir(str(artifact_dir))) as top, opened(open_below(
                top, (recipe.name, recipe.version, a.file_name), str(artifact_dir))) as fd:
            digest, size = _digest_file(fd)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except Refused as e:
        raise ValidationError(where, f"{e.path} {e.problem}", value=e.path,
                              allowed="regular files (links are not followed)") from None
    return artifact_dir / recipe.name / recipe.version / a.file_name, digest, size


def _file_digest(path: Path, algorithm: str) -> bytes:
    h = hashlib.new(ALGORITHMS[algorithm])
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.digest()
