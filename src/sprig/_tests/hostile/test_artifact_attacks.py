"""Artifacts that try to trick the root core: links to a root-only file in ``--artifact-dir``, in
a Lambda code directory and inside a ZIP; ZIP path traversal; a file/directory clash; a 2 MB ZIP
that unpacks to 2.1 GB; a 60 MB recipe; a running component planting a link in its own staged
directory. Each attack is performed for real against a real core and must fail, leave the
device as it was, and say why."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import time
import uuid
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sprig._tests.reliability.support import public_dir
from sprig.cli.client import ManagementApiError
from sprig.testing import CoreProcess, write_recipe


@pytest.fixture
def secret() -> Iterator[Path]:
    """A root-only file (0600 in a 0700 directory), with content no staged file may hold."""
    with public_dir("sprig-secret-") as d:
        d.chmod(0o700)
        path = d / "shadow"
        path.write_text(f"root:$6$SPRIG-SECRET-{uuid.uuid4().hex}:19000:0:99999:7:::\n")
        path.chmod(0o600)
        yield path


def component(recipes: Path, name: str, artifacts: list[dict[str, Any]],
              run: str = "sleep 600", install: str | None = None) -> None:
    lifecycle = {"Run": run, **({"Install": install} if install else {})}
    write_recipe(recipes, {
        "RecipeFormatVersion": "2020-01-25", "ComponentName": name,
        "ComponentVersion": "1.0.0",
        "Manifests": [{"Platform": {"os": "linux"}, "Lifecycle": lifecycle,
                       "Artifacts": artifacts}]})


def refused(core: CoreProcess, recipes: Path, artifacts: Path | None, name: str) -> str:
    """Deploy ``name``; the core must refuse it and change nothing. Returns the error."""
    before = sorted(str(p.relative_to(core.root)) for p in (core.root / "packages").rglob("*"))
    with pytest.raises(ManagementApiError) as info:
        core.deploy(recipe_dir=recipes, artifact_dir=artifacts, merge={name: "1.0.0"})
    after = sorted(str(p.relative_to(core.root)) for p in (core.root / "packages").rglob("*"))
    assert after == before, "a refused deployment leaves the package store as it was"
    assert core.call("deployment.list") == [], "nothing was queued"
    assert name not in core.states()
    return str(info.value)


def holds(root: Path, needle: str) -> list[Path]:
    """Files under ``root`` (not following links) whose content contains ``needle``."""
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink() and path.stat().st_size < 2**26 \
                and needle.encode() in path.read_bytes():
            found.append(path)
    return found


def secret_word(secret: Path) -> str:
    return secret.read_text().split("$")[2].split(":")[0]


# -- links ------------------------------------------------------------------------------------

def test_symlink_to_a_root_only_file_in_the_artifact_dir_is_refused(
        core: CoreProcess, public_tmp: Path, secret: Path) -> None:
    recipes, artifacts = public_tmp / "recipes", public_tmp / "artifacts"
    files = artifacts / "com.example.Thief" / "1.0.0"
    files.mkdir(parents=True)
    (files / "shadow").symlink_to(secret)
    # Were it staged, Read ALL would hand it to sprig_user, and Run would copy it out.
    component(recipes, "com.example.Thief", [{"URI": "s3://b/shadow",
                                              "Permission": {"Read": "ALL"}}],
              run=f"cat {{artifacts:path}}/shadow > {public_tmp}/leaked; sleep 600")
    error = refused(core, recipes, artifacts, "com.example.Thief")
    assert f"{files / 'shadow'} is a symbolic link to {secret}" in error, error
    assert "Artifacts[0]" in error
    assert not (public_tmp / "leaked").exists()
    assert holds(core.root, secret_word(secret)) == []


def test_symlinked_version_directory_is_refused(core: CoreProcess, public_tmp: Path,
                                                secret: Path) -> None:
    recipes, artifacts = public_tmp / "recipes", public_tmp / "artifacts"
    (artifacts / "com.example.Thief").mkdir(parents=True)
    (artifacts / "com.example.Thief" / "1.0.0").symlink_to(secret.parent)
    component(recipes, "com.example.Thief", [{"URI": "s3://b/shadow"}])
    error = refused(core, recipes, artifacts, "com.example.Thief")
    assert f"1.0.0 is a symbolic link to {secret.parent}" in error, error
    assert holds(core.root, secret_word(secret)) == []


def test_symlink_in_a_lambda_code_directory_is_refused(core: CoreProcess, public_tmp: Path,
                                                       secret: Path) -> None:
    code = public_tmp / "code"
    code.mkdir()
    (code / "app.py").write_text("def handler(e, c):\n    return open('shadow').read()\n")
    (code / "shadow").symlink_to(secret)
    result = subprocess.run(
        [sys.executable, "-m", "sprig", "lambda", "import", str(code), "--name", "Thief",
         "--runtime", "python3.11", "--handler", "app.handler", "--deploy",
         "--root", str(core.root)], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert f"{code / 'shadow'}: is a symbolic link to {secret}" in result.stderr, result.stderr
    assert "Thief" not in core.states()
    assert holds(core.root, secret_word(secret)) == []


def link_zip(path: Path, entries: list[tuple[str, bytes, int]]) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data, mode in entries:
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = mode << 16
            archive.writestr(info, data)


def test_symlink_entry_inside_a_zip_is_refused(core: CoreProcess, public_tmp: Path,
                                               secret: Path) -> None:
    recipes, artifacts = public_tmp / "recipes", public_tmp / "artifacts"
    files = artifacts / "com.example.Thief" / "1.0.0"
    files.mkdir(parents=True)
    link_zip(files / "code.zip", [("app.py", b"print(1)\n", 0o100644),
                                  ("shadow", str(secret).encode(), 0o120777)])
    component(recipes, "com.example.Thief", [{"URI": "s3://b/code.zip", "Unarchive": "ZIP",
                                              "Permission": {"Read": "ALL"}}])
    error = refused(core, recipes, artifacts, "com.example.Thief")
    assert f"entry shadow is a symbolic link (to {secret})" in error, error
    assert holds(core.root, secret_word(secret)) == []


@pytest.mark.parametrize("evil", ["../../../../../../tmp/{tag}", "/tmp/{tag}",
                                  "a/../../{tag}", "..\\..\\{tag}"])
def test_zip_path_traversal_is_refused(core: CoreProcess, public_tmp: Path, evil: str) -> None:
    tag = f"sprig-escape-{uuid.uuid4().hex}"
    recipes, artifacts = public_tmp / "recipes", public_tmp / "artifacts"
    files = artifacts / "com.example.Escape" / "1.0.0"
    files.mkdir(parents=True)
    name = evil.format(tag=tag)
    link_zip(files / "code.zip", [("ok.txt", b"fine", 0o100644), (name, b"pwned", 0o100644)])
    component(recipes, "com.example.Escape", [{"URI": "s3://b/code.zip", "Unarchive": "ZIP"}])
    error = refused(core, recipes, artifacts, "com.example.Escape")
    assert f"entry {name} is an unsafe path" in error, error
    assert not Path(f"/tmp/{tag}").exists()
    assert not list(core.root.rglob(f"*{tag}*"))


def test_file_and_directory_clash_in_a_zip_is_a_clear_error(core: CoreProcess,
                                                            public_tmp: Path) -> None:
    recipes, artifacts = public_tmp / "recipes", public_tmp / "artifacts"
    files = artifacts / "com.example.Clash" / "1.0.0"
    files.mkdir(parents=True)
    link_zip(files / "code.zip", [("lib", b"a file", 0o100644),
                                  ("lib/mod.py", b"x = 1\n", 0o100644)])
    component(recipes, "com.example.Clash", [{"URI": "s3://b/code.zip", "Unarchive": "ZIP"}])
    error = refused(core, recipes, artifacts, "com.example.Clash")
    assert "entry lib/mod.py needs lib to be a directory, but the entry lib is a file" in error
    assert "FileExistsError" not in error and "Errno" not in error


# -- sizes ------------------------------------------------------------------------------------

def zip_bomb(path: Path, mib: int) -> int:
    """A real ZIP holding one file of ``mib`` MiB of zeros (any unzip expands it), built from
    one deflate segment repeated: a full flush resets the compressor, so every MiB of zeros
    compresses to the same bytes. Returns the expanded size."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = bytes(1 << 20)
    segment = c.compress(zeros) + c.flush(zlib.Z_FULL_FLUSH)
    data = segment * mib + c.flush()
    crc = 0
    for _ in range(mib):
        crc = zlib.crc32(zeros, crc)
    size, name = mib << 20, b"zeros.bin"
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, 0, 0x21, crc, len(data), size,
                        len(name), 0) + name
    central = struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 0x314, 20, 0, 8, 0, 0x21, crc,
                          len(data), size, len(name), 0, 0, 0, 0, 0o100644 << 16, 0) + name
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, len(central),
                      len(local) + len(data), 0)
    path.write_bytes(local + data + central + end)
    with zipfile.ZipFile(path) as check:       # a valid archive, honest about its size
        assert check.infolist()[0].file_size == size
    return size


def test_zip_bomb_is_stopped_at_the_limit_with_the_disk_barely_touched(
        core: CoreProcess, public_tmp: Path) -> None:
    recipes, artifacts = public_tmp / "recipes", public_tmp / "artifacts"
    files = artifacts / "com.example.Bomb" / "1.0.0"
    files.mkdir(parents=True)
    expanded = zip_bomb(files / "bomb.zip", 2100)
    packed = (files / "bomb.zip").stat().st_size
    component(recipes, "com.example.Bomb", [{"URI": "s3://b/bomb.zip", "Unarchive": "ZIP"}])
    started = time.monotonic()
    error = refused(core, recipes, artifacts, "com.example.Bomb")
    took = time.monotonic() - started
    print(f"zip bomb: {packed / 1e6:.1f} MB expanding to {expanded / 1e9:.2f} GB refused in "
          f"{took:.2f} s")
    assert packed < 2.5e6 and expanded > 2.1e9
    assert f"unpacks to {expanded} bytes" in error, error
    assert "over the limit of 1073741824 bytes" in error
    assert "deploymentLimits.artifactsMaxSizeBytes" in error
    used = sum(p.stat().st_size for p in (core.root / "packages").rglob("*") if p.is_file())
    assert used < 1e6, f"{used} bytes left in the package store"


def test_sixty_megabyte_recipe_is_refused_and_state_db_does_not_grow(
        core: CoreProcess, public_tmp: Path) -> None:
    recipes = public_tmp / "recipes"
    recipes.mkdir()
    path = recipes / "com.example.Huge-1.0.0.yaml"
    with path.open("w") as f:
        f.write("RecipeFormatVersion: '2020-01-25'\nComponentName: com.example.Huge\n"
                "ComponentVersion: 1.0.0\nComponentConfiguration:\n  DefaultConfiguration:\n"
                "    blob: '")
        f.write("x" * (60 * 2**20))
        f.write("'\nManifests:\n  - Lifecycle:\n      Run: sleep 600\n")
    db_before = sum(p.stat().st_size for p in core.root.glob("state.db*"))
    error = refused(core, recipes, None, "com.example.Huge")
    assert str(path) in error and f"is {path.stat().st_size} bytes" in error, error
    assert "over the limit of 1048576 bytes for one recipe" in error
    db_after = sum(p.stat().st_size for p in core.root.glob("state.db*"))
    assert db_after - db_before < 2**20, (db_before, db_after)


# -- a component against its own staged files ---------------------------------------------------

def test_component_cannot_plant_a_link_in_its_staged_directory(core: CoreProcess,
                                                               public_tmp: Path,
                                                               secret: Path) -> None:
    recipes, artifacts = public_tmp / "recipes", public_tmp / "artifacts"
    files = artifacts / "com.example.Planter" / "1.0.0"
    files.mkdir(parents=True)
    link_zip(files / "code.zip", [("app.sh", b"echo hi\n", 0o100755)])
    out = public_tmp / "out"
    out.mkdir()
    out.chmod(0o777)
    # Install runs as the component's user and is over before the component is RUNNING.
    component(recipes, "com.example.Planter", [{"URI": "s3://b/code.zip", "Unarchive": "ZIP"}],
              install=f"ln -s {secret} {{artifacts:decompressedPath}}/code/planted 2>{out}/err; "
                      f"ln -s {secret} {{artifacts:path}}/.sprig-staged.json 2>>{out}/err; "
                      f"echo done $(id -un) > {out}/result; exit 0")
    result = core.deploy(recipe_dir=recipes, artifact_dir=artifacts,
                         merge={"com.example.Planter": "1.0.0"})
    assert result["status"] == "SUCCEEDED", result
    assert (out / "result").read_text().strip() == "done sprig_user"
    assert "Permission denied" in (out / "err").read_text()
    staged = core.layout.unarchived_dir("com.example.Planter", "1.0.0") / "code"
    assert not (staged / "planted").is_symlink()
    assert os.stat(staged / "app.sh").st_uid != 0, "files still belong to the run-as user"
    assert os.stat(staged).st_uid == 0, "directories stay the core's"
    # Deploying again reads the marker and re-checks the tree: still nothing followed.
    assert core.deploy(recipe_dir=recipes, artifact_dir=artifacts,
                       merge={"com.example.Planter": "1.0.0"})["status"] == "SUCCEEDED"
    assert secret.stat().st_uid == 0 and oct(secret.stat().st_mode)[-3:] == "600"


def test_a_twelve_megabyte_deployment_document_is_refused(core: CoreProcess,
                                                           public_tmp: Path) -> None:
    recipes = public_tmp / "recipes"
    names = ["com.example.Small1", "com.example.Small2"]
    for name in names:
        component(recipes, name, [])
    assert core.deploy(recipe_dir=recipes, merge=dict.fromkeys(names, "1.0.0"))["status"] \
        == "SUCCEEDED"
    db_before = sum(p.stat().st_size for p in core.root.glob("state.db*"))
    # each MERGE under its own 10 MB, not the whole
    with pytest.raises(ManagementApiError) as info:
        core.deploy(configuration_update={
            name: {"MERGE": {"blob": "x" * (6 * 2**20)}} for name in names})
    assert "over the limit of 10485760 bytes" in str(info.value), str(info.value)
    assert len(core.call("deployment.list")) == 1
    db_after = sum(p.stat().st_size for p in core.root.glob("state.db*"))
    assert db_after - db_before < 2**20
