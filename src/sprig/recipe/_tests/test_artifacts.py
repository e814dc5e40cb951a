"""Staging artifacts with real files and ZIPs: digests, unarchiving, permissions, idempotence."""

from __future__ import annotations

import base64
import hashlib
import os
import stat
import zipfile
from pathlib import Path
from typing import Any

import pytest

from sprig.errors import ValidationError
from sprig.paths import RootLayout
from sprig.recipe import Recipe, parse_recipe, stage_artifacts, verify_staged
from sprig.recipe.artifacts import MARKER

NAME, VERSION = "com.example.App", "1.0.0"


def sha_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def make_recipe(artifacts: list[dict[str, Any]]) -> Recipe:
    return parse_recipe({"RecipeFormatVersion": "2020-01-25", "ComponentName": NAME,
                         "ComponentVersion": VERSION,
                         "Manifests": [{"Platform": {}, "Artifacts": artifacts}]}, "app.yaml")


def make_zip(path: Path, members: dict[str, bytes], executable: tuple[str, ...] = ()) -> bytes:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o755 if name in executable else 0o644) << 16
            archive.writestr(info, data)
    return path.read_bytes()


@pytest.fixture
def src(tmp_path: Path) -> Path:
    d = tmp_path / "artifacts-in" / NAME / VERSION
    d.mkdir(parents=True)
    return d


@pytest.fixture
def layout(tmp_path: Path) -> RootLayout:
    root = RootLayout(tmp_path / "root")
    root.create()
    return root


def stage(recipe: Recipe, src: Path, layout: RootLayout) -> None:
    stage_artifacts(recipe, recipe.manifests[0], src.parent.parent, layout)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def leftovers(layout: RootLayout) -> list[str]:
    return sorted(p.name for d in (layout.artifacts / NAME, layout.artifacts_unarchived / NAME)
                  if d.exists() for p in d.iterdir() if p.name.startswith("."))


def test_plain_file_is_copied_verified_and_protected(src: Path, layout: RootLayout) -> None:
    (src / "run.sh").write_bytes(b"#!/bin/sh\necho hi\n")
    (src / "data.txt").write_bytes(b"data")
    recipe = make_recipe([
        {"URI": "s3://bucket/p/run.sh", "Digest": sha_b64(b"#!/bin/sh\necho hi\n"),
         "Algorithm": "SHA-256", "Permission": {"Read": "ALL", "Execute": "OWNER"}},
        {"URI": "s3://bucket/data.txt",
         "Digest": hashlib.sha256(b"data").hexdigest()},  # hex is accepted too
    ])
    stage(recipe, src, layout)
    staged = layout.artifact_dir(NAME, VERSION)
    assert (staged / "run.sh").read_bytes() == b"#!/bin/sh\necho hi\n"
    assert mode(staged / "run.sh") == 0o544
    assert mode(staged / "data.txt") == 0o400  # Read OWNER, Execute NONE: the defaults
    assert mode(staged) == 0o755
    assert leftovers(layout) == []


def test_zip_is_unarchived_into_its_stem(src: Path, layout: RootLayout) -> None:
    data = make_zip(src / "lambda-artifact.zip",
                    {"lambda_function.py": b"def h(e, c): return e\n", "pkg/": b"",
                     "pkg/mod.py": b"X = 1\n", "bootstrap": b"#!/bin/sh\n"},
                    executable=("bootstrap",))
    recipe = make_recipe([{"Uri": "greengrass:lambda-artifact.zip", "Digest": sha_b64(data),
                           "Unarchive": "ZIP", "Permission": {"Read": "ALL"}}])
    stage(recipe, src, layout)
    out = layout.unarchived_dir(NAME, VERSION) / "lambda-artifact"
    assert (out / "lambda_function.py").read_bytes() == b"def h(e, c): return e\n"
    assert (out / "pkg" / "mod.py").read_bytes() == b"X = 1\n"
    assert mode(out / "pkg" / "mod.py") == 0o444
    assert mode(out / "bootstrap") == 0o555  # the ZIP marks it executable
    assert mode(out / "pkg") == 0o755
    assert (layout.artifact_dir(NAME, VERSION) / "lambda-artifact.zip").read_bytes() == data


@pytest.mark.parametrize(("read", "execute", "expected"), [
    ("NONE", "NONE", 0o000), ("OWNER", "NONE", 0o400), ("ALL", "NONE", 0o444),
    ("OWNER", "OWNER", 0o500), ("NONE", "OWNER", 0o500),  # Execute implies Read
    ("OWNER", "ALL", 0o555), ("ALL", "OWNER", 0o544), ("NONE", "ALL", 0o555)])
def test_permission_modes(src: Path, layout: RootLayout, read: str, execute: str,
                          expected: int) -> None:
    (src / "f").write_bytes(b"x")
    recipe = make_recipe([{"URI": "s3://b/f", "Permission": {"Read": read, "Execute": execute}}])
    stage(recipe, src, layout)
    assert mode(layout.artifact_dir(NAME, VERSION) / "f") == expected


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")
def test_owner_gets_the_staged_files_and_the_core_keeps_the_directories(
        src: Path, layout: RootLayout) -> None:
    make_zip(src / "code.zip", {"d/a.py": b"A"})
    recipe = make_recipe([{"URI": "s3://b/code.zip", "Unarchive": "ZIP"}])
    nobody = (65534, 65534)
    stage_artifacts(recipe, recipe.manifests[0], src.parent.parent, layout, owner=nobody)
    staged = [layout.artifact_dir(NAME, VERSION) / "code.zip",
              layout.unarchived_dir(NAME, VERSION) / "code" / "d" / "a.py"]
    assert all((p.stat().st_uid, p.stat().st_gid) == nobody for p in staged)
    # A component owning a directory could plant a link where the core looks next time.
    dirs = [layout.artifact_dir(NAME, VERSION), layout.unarchived_dir(NAME, VERSION) / "code",
            layout.unarchived_dir(NAME, VERSION) / "code" / "d"]
    assert all((p.stat().st_uid, p.stat().st_gid) == (0, 0) for p in dirs)
    # Already staged: only the owner changes, in place.
    ino = staged[1].stat().st_ino
    stage_artifacts(recipe, recipe.manifests[0], src.parent.parent, layout, owner=(0, 0))
    assert staged[1].stat().st_ino == ino and staged[1].stat().st_uid == 0


def test_missing_artifact_names_it(src: Path, layout: RootLayout) -> None:
    recipe = make_recipe([{"URI": "s3://bucket/app.py"}])
    with pytest.raises(ValidationError) as info:
        stage(recipe, src, layout)
    err = info.value
    assert err.path == "Manifests[0].Artifacts[0]"
    assert "app.py" in str(err) and str(src / "app.py") in str(err)
    assert not layout.artifact_dir(NAME, VERSION).exists()


def test_digest_mismatch_names_expected_and_actual(src: Path, layout: RootLayout) -> None:
    (src / "app.py").write_bytes(b"tampered")
    expected = sha_b64(b"original")
    recipe = make_recipe([{"URI": "s3://bucket/app.py", "Digest": expected}])
    with pytest.raises(ValidationError) as info:
        stage(recipe, src, layout)
    text = str(info.value)
    assert info.value.path == "Manifests[0].Artifacts[0].Digest"
    assert "app.py" in text and expected in text and sha_b64(b"tampered") in text
    assert not layout.artifact_dir(NAME, VERSION).exists()
    assert leftovers(layout) == []


def test_malformed_digest_is_reported(src: Path, layout: RootLayout) -> None:
    (src / "app.py").write_bytes(b"x")
    recipe = make_recipe([{"URI": "s3://bucket/app.py", "Digest": "…"}])
    with pytest.raises(ValidationError, match="malformed digest"):
        stage(recipe, src, layout)


def test_staging_is_idempotent_and_leaves_staged_files_alone(src: Path,
                                                             layout: RootLayout) -> None:
    data = make_zip(src / "code.zip", {"a.py": b"A"})
    recipe = make_recipe([{"URI": "s3://b/code.zip", "Digest": sha_b64(data),
                           "Unarchive": "ZIP"}])
    stage(recipe, src, layout)
    staged_zip = layout.artifact_dir(NAME, VERSION) / "code.zip"
    unzipped = layout.unarchived_dir(NAME, VERSION) / "code" / "a.py"
    before = (staged_zip.stat().st_ino, unzipped.stat().st_ino)
    stage(recipe, src, layout)
    assert (staged_zip.stat().st_ino, unzipped.stat().st_ino) == before
    # Already staged: the source directory is no longer needed.
    (src / "code.zip").unlink()
    stage(recipe, src, layout)
    assert (staged_zip.stat().st_ino, unzipped.stat().st_ino) == before
    assert leftovers(layout) == []


def test_changed_artifacts_replace_the_staged_version(src: Path, layout: RootLayout) -> None:
    make_zip(src / "code.zip", {"a.py": b"A"})
    recipe = make_recipe([{"URI": "s3://b/code.zip", "Unarchive": "ZIP"}])
    stage(recipe, src, layout)
    make_zip(src / "code.zip", {"b.py": b"B"})
    stage(recipe, src, layout)
    out = layout.unarchived_dir(NAME, VERSION) / "code"
    assert sorted(p.name for p in out.iterdir()) == ["b.py"]
    assert leftovers(layout) == []


def test_failed_staging_keeps_the_staged_version(src: Path, layout: RootLayout) -> None:
    (src / "app.py").write_bytes(b"v1")
    good = make_recipe([{"URI": "s3://b/app.py", "Digest": sha_b64(b"v1")}])
    stage(good, src, layout)
    (src / "app.py").write_bytes(b"v2")
    bad = make_recipe([{"URI": "s3://b/app.py", "Digest": sha_b64(b"v3")}])
    with pytest.raises(ValidationError):
        stage(bad, src, layout)
    assert (layout.artifact_dir(NAME, VERSION) / "app.py").read_bytes() == b"v1"


def test_unsafe_zip_member_is_rejected(src: Path, layout: RootLayout) -> None:
    make_zip(src / "evil.zip", {"../escape.txt": b"x"})
    recipe = make_recipe([{"URI": "s3://b/evil.zip", "Unarchive": "ZIP"}])
    with pytest.raises(ValidationError) as info:
        stage(recipe, src, layout)
    assert "unsafe path" in str(info.value) and "../escape.txt" in str(info.value)
    assert not (layout.artifacts_unarchived / NAME / "escape.txt").exists()
    assert not layout.artifact_dir(NAME, VERSION).exists()
    assert leftovers(layout) == []


def test_broken_zip_is_rejected(src: Path, layout: RootLayout) -> None:
    (src / "code.zip").write_bytes(b"this is not a zip")
    recipe = make_recipe([{"URI": "s3://b/code.zip", "Unarchive": "ZIP"}])
    with pytest.raises(ValidationError, match="not a valid ZIP") as info:
        stage(recipe, src, layout)
    assert info.value.path == "Manifests[0].Artifacts[0].Unarchive"


def test_verify_staged_detects_a_changed_file(src: Path, layout: RootLayout) -> None:
    (src / "app.py").write_bytes(b"v1")
    recipe = make_recipe([{"URI": "s3://b/app.py", "Digest": sha_b64(b"v1")}])
    stage(recipe, src, layout)
    verify_staged(recipe, recipe.manifests[0], layout)
    staged = layout.artifact_dir(NAME, VERSION) / "app.py"
    staged.chmod(0o600)
    staged.write_bytes(b"changed")
    with pytest.raises(ValidationError, match="does not match its digest"):
        verify_staged(recipe, recipe.manifests[0], layout)
    assert (layout.artifact_dir(NAME, VERSION) / MARKER).exists()


def test_the_whole_version_folder_is_staged_as_greengrass_cli_does(src: Path,
                                                                   layout: RootLayout) -> None:
    """greengrass-cli makes ``<artifact-dir>/<name>/<version>/`` the component's
    ``{artifacts:path}``: the developer guide's HelloWorld declares no Artifacts at all."""
    (src / "hello_world.py").write_bytes(b"print('hi')\n")
    (src / "bin").mkdir()
    (src / "bin" / "tool").write_bytes(b"#!/bin/sh\n")
    (src / "bin" / "tool").chmod(0o755)
    (src / "declared.txt").write_bytes(b"D")
    recipe = make_recipe([{"URI": "s3://b/declared.txt", "Permission": {"Read": "ALL"}}])
    stage(recipe, src, layout)
    out = layout.artifact_dir(NAME, VERSION)
    assert (out / "hello_world.py").read_bytes() == b"print('hi')\n"
    assert mode(out / "hello_world.py") == 0o400            # Read OWNER, the default
    assert mode(out / "bin" / "tool") == 0o500              # executable at the source
    assert mode(out / "bin") == 0o755
    assert mode(out / "declared.txt") == 0o444              # its own Permission
    first = (out / "hello_world.py").stat().st_ino
    stage(recipe, src, layout)                               # unchanged: left alone
    assert (out / "hello_world.py").stat().st_ino == first
    (src / "hello_world.py").write_bytes(b"print('changed')\n")
    stage(recipe, src, layout)                               # changed: staged again
    assert (out / "hello_world.py").read_bytes() == b"print('changed')\n"
    assert leftovers(layout) == []


def test_a_link_in_the_version_folder_is_refused(src: Path, layout: RootLayout) -> None:
    (src / "sub").mkdir()
    (src / "sub" / "passwd").symlink_to("/etc/passwd")
    with pytest.raises(ValidationError) as e:
        stage(make_recipe([]), src, layout)
    assert "sub/passwd" in str(e.value) and "symbolic link to /etc/passwd" in str(e.value)
    assert not layout.artifact_dir(NAME, VERSION).exists()
