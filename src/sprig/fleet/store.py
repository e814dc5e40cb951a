"""The component store in a bucket: its layout, and what a device fetches from it.

Layout below ``s3://bucket/prefix`` (written by ``sprig fleet publish``)::

    recipes/<component>/<version>.json              the recipe, artifact URIs rewritten
    artifacts/sha256/<hex digest>/<file name>       each artifact, content-addressed

A device resolves a deployment's components against the store (dependency ranges included:
the versions of a dependency are listed, the recipes of those that fit are read), then
downloads the artifacts of the versions it does not have yet, checking each one's digest while
it streams, into a private directory laid out as ``--recipe-dir`` / ``--artifact-dir``; the
deployment pipeline then stages them as any local deployment (links refused, sizes bounded,
digests checked again on the copy). Any recipe whose artifacts are ``s3://`` URIs with digests
works, whatever bucket they name (the device's credentials must reach it): AWS-generated
recipes included.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sprig.errors import SprigError, ValidationError
from sprig.fleet.s3 import S3Client, S3Error, TooLarge
from sprig.fleet_settings import StoreSettings, parse_s3_uri
from sprig.recipe._digest import ALGORITHMS, b64, decode_digest
from sprig.recipe._semver import is_strict_version, satisfies, sort_versions
from sprig.recipe.limits import StagingLimits
from sprig.recipe.load import load_document
from sprig.recipe.model import Recipe
from sprig.recipe.parse import parse_recipe
from sprig.recipe.platform import select_manifest
from sprig.recipe.resolve import resolve

#: At most this many versions of one dependency are read to resolve a range (the highest).
MAX_CANDIDATES = 20


class FleetFailure(SprigError):
    """A fleet deployment that cannot go on; ``codes``: the nucleus's error codes."""

    def __init__(self, message: str, *codes: str) -> None:
        self.codes = codes
        super().__init__(message)


def recipe_key(store: StoreSettings, name: str, version: str) -> str:
    return store.key("recipes", name, f"{version}.json")


def artifact_key(store: StoreSettings, sha256_hex: str, file_name: str) -> str:
    return store.key("artifacts", "sha256", sha256_hex, file_name)


def _s3_failure(e: S3Error, what: str) -> FleetFailure:
    if e.code == "NetworkError":
        return FleetFailure(f"{what}: {e}", "NETWORK_ERROR")
    if e.code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
        return FleetFailure(f"{what}: {e}", "S3_GET_OBJECT_ACCESS_DENIED")
    if e.code in ("NoSuchKey", "NoSuchBucket"):
        return FleetFailure(f"{what}: {e}", "S3_GET_OBJECT_RESOURCE_NOT_FOUND")
    if e.status >= 500:
        return FleetFailure(f"{what}: {e}", "S3_SERVER_ERROR")
    return FleetFailure(f"{what}: {e}", "S3_ERROR")


@dataclass
class Fetched:
    """Recipes read from the store for one deployment, and the versions chosen."""

    recipes: dict[tuple[str, str], Recipe]
    chosen: dict[str, Recipe]


class ComponentFetcher:
    def __init__(self, client: S3Client, store: StoreSettings, limits: StagingLimits,
                 platform: Mapping[str, str]) -> None:
        self.client = client
        self.store = store
        self.limits = limits
        self.platform = dict(platform)
        self._listed: dict[str, list[str]] = {}
        self.requests = 0

    async def _list(self, name: str) -> list[str]:
        if name not in self._listed:
            prefix = self.store.key("recipes", name) + "/"
            try:
                self.requests += 1
                keys = await self.client.list_keys(self.store.bucket, prefix)
            except S3Error as e:
                raise _s3_failure(e, f"listing the versions of {name} in {self.store.uri}"
                                  ) from None
            versions = [k[len(prefix):-len(".json")] for k in keys
                        if k.endswith(".json") and "/" not in k[len(prefix):]]
            self._listed[name] = [v for v in versions if is_strict_version(v)]
        return self._listed[name]

    async def recipe(self, name: str, version: str) -> Recipe:
        key = recipe_key(self.store, name, version)
        where = f"s3://{self.store.bucket}/{key}"
        try:
            self.requests += 1
            data = await self.client.get_bytes(self.store.bucket, key,
                                               self.limits.recipe_max_bytes)
        except TooLarge as e:
            raise FleetFailure(f"{where}: the recipe is over {self.limits.recipe_max_bytes} "
                               f"bytes ({e.size} read; deploymentLimits.recipeMaxSizeBytes)",
                               "RECIPE_PARSE_ERROR") from None
        except S3Error as e:
            if e.code == "NoSuchKey":
                raise FleetFailure(f"{name} {version} is not in the component store "
                                   f"{self.store.uri} (no {where}); publish it with `sprig "
                                   "fleet publish`", "NO_AVAILABLE_COMPONENT_VERSION") from None
            raise _s3_failure(e, f"reading the recipe of {name} {version}") from None
        try:
            doc = load_document(data.decode("utf-8"), where)
            recipe = parse_recipe(doc, where)
        except (ValidationError, UnicodeDecodeError) as e:
            raise FleetFailure(f"{where}: {e}", "RECIPE_PARSE_ERROR") from None
        if recipe.id != (name, version):
            raise FleetFailure(f"{where} holds the recipe of {recipe.name} {recipe.version}, "
                               f"not {name} {version}: the store was changed by hand",
                               "RECIPE_PARSE_ERROR")
        return recipe

    async def gather(self, roots: Mapping[str, str],
                     local: Mapping[tuple[str, str], Recipe]) -> Fetched:
        """Read what the store has that resolving ``roots`` (exact versions) needs, given the
        recipes the device already has (``local``, built-ins included); resolve."""
        fetched: dict[tuple[str, str], Recipe] = {}
        requirements: dict[str, set[str]] = {}
        pending: list[tuple[str, str]] = sorted(roots.items())
        local_names = {n for n, _ in local}
        while pending:
            name, wanted = pending.pop(0)
            if wanted in requirements.setdefault(name, set()):
                continue
            requirements[name].add(wanted)
            if is_strict_version(wanted):
                candidates = [wanted]
            else:
                have = {v for n, v in local if n == name}
                listed = [] if _builtin_only(name, local_names, have) else \
                    await self._list(name)
                candidates = sort_versions(v for v in listed if satisfies(v, wanted))
                candidates = candidates[::-1][:MAX_CANDIDATES]
            for version in candidates:
                key = (name, version)
                if key in local or key in fetched:
                    continue
                try:
                    recipe = await self.recipe(name, version)
                except FleetFailure:
                    if is_strict_version(wanted) and key not in local:
                        raise
                    continue
                fetched[key] = recipe
                for dep in recipe.dependencies.values():
                    pending.append((dep.name, dep.version_requirement))
        available: dict[str, list[Recipe]] = {}
        for (name, _), recipe in sorted({**local, **fetched}.items()):
            available.setdefault(name, []).append(recipe)
        try:
            chosen = resolve(dict(roots), available, self.platform)
        except ValidationError as e:
            code = ("COMPONENT_CIRCULAR_DEPENDENCY_ERROR" if "cycle" in str(e)
                    else "COMPONENT_VERSION_REQUIREMENTS_NOT_MET")
            raise FleetFailure(str(e), "NO_AVAILABLE_COMPONENT_VERSION", code) from None
        return Fetched(fetched, chosen)

    async def download(self, recipe: Recipe, dest: Path) -> int:
        """Download the artifacts of ``recipe``'s manifest for this device into
        ``dest/<name>/<version>/``, each checked against its digest; bytes downloaded."""
        manifest = select_manifest(recipe, self.platform)
        target = dest / recipe.name / recipe.version
        target.mkdir(parents=True, exist_ok=True)
        budget = self.limits.artifacts_max_bytes
        total = 0
        for i, a in enumerate(manifest.artifacts):
            where = f"{recipe} Artifacts[{i}] {a.uri}"
            if not a.uri.lower().startswith("s3://"):
                raise FleetFailure(f"{where}: only s3:// artifacts come from the component "
                                   "store (greengrass: URIs need a local deployment with "
                                   "--artifact-dir)", "UNSUPPORTED_ARTIFACT_SCHEME")
            expected = decode_digest(a.digest, a.algorithm) if a.digest else None
            if expected is None:
                raise FleetFailure(f"{where}: no valid {a.algorithm} Digest: a fleet device "
                                   "accepts an artifact only with a digest to check it "
                                   "against", "RECIPE_MISSING_ARTIFACT_HASH_ALGORITHM")
            try:
                bucket, key = parse_s3_uri(a.uri[:5].lower() + a.uri[5:], where)
            except ValidationError as e:
                raise FleetFailure(str(e), "S3_ARTIFACT_URI_NOT_VALID") from None
            path = target / a.file_name
            digest = hashlib.new(ALGORITHMS[a.algorithm])
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            try:
                def sink(data: bytes, fd: int = fd, digest: hashlib._Hash = digest) -> None:
                    digest.update(data)
                    os.write(fd, data)

                self.requests += 1
                size = await self.client.get(bucket, key, sink, budget - total)
            except TooLarge as e:
                raise FleetFailure(f"{where}: {recipe}'s artifacts pass "
                                   f"deploymentLimits.artifactsMaxSizeBytes ({budget} bytes; "
                                   f"this one reached {e.size})", "ARTIFACT_DOWNLOAD_ERROR",
                                   "DISK_SPACE_CRITICAL") from None
            except S3Error as e:
                raise _s3_failure(e, f"downloading {where}") from None
            finally:
                os.close(fd)
            total += size
            actual = digest.digest()
            if actual != expected:
                path.unlink()
                raise FleetFailure(
                    f"{where}: does not match its digest: expected {a.algorithm} {a.digest}, "
                    f"downloaded {b64(actual)} ({size} bytes); the artifact was not used",
                    "ARTIFACT_CHECKSUM_MISMATCH")
        return total


def write_recipe(recipe: Recipe, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{recipe.name}-{recipe.version}.json"
    path.write_text(json.dumps(recipe.to_dict()))
    return path


def _builtin_only(name: str, local_names: set[str], have: set[str]) -> bool:
    """Built-in components (aws.greengrass.*) are never in the store."""
    return name.startswith("aws.greengrass.") and bool(have) and name in local_names
