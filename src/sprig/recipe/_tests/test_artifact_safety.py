"""Staging as root from directories others filled: links, special files, hostile ZIPs, limits,
and undo. Real files, real ZIPs, real links and FIFOs."""

from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path

import pytest

from sprig.disk import DiskFull
from sprig.errors import ValidationError
from sprig.paths import RootLayout
from sprig.recipe import Recipe, load_recipe_dir, parse_recipe, stage_artifacts, verify_staged
from sprig.recipe.artifacts import MARKER, chown_staged, prepare_artifacts
from sprig.recipe.limits import MiB, StagingLimits

NAME, VERSION = "com.example.App", "1.0.0"


def make_recipe(artifacts: list[dict[str, object]], version: str = VERSION) -> Recipe:
    return parse_recipe({"RecipeFormatVersion": "2020-01-25", "ComponentName": NAME,
                         "ComponentVersion": version,
                         "Manifests": [{"Platform": {}, "Artifacts": artifacts}]}, "app.yaml")


ZIP = [{"URI": "s3://b/code.zip", "Unarchive": "ZIP"}]


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


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "root-only-secret"
    path.write_text("root:$6$hash:19000:0:99999:7:::\n")
    path.chmod(0o600)
    return path


def stage(recipe: Recipe, src: Path, layout: RootLayout,
          limits: StagingLimits | None = None) -> None:
    kwargs = {"limits": limits} if limits else {}
    stage_artifacts(recipe, recipe.manifests[0], src.parent.parent, layout, **kwargs)


def nothing_staged(layout: RootLayout) -> bool:
    """No version and no leftover of any kind (not even the component's directory)."""
    return all(not (d / NAME).exists() for d in (layout.artifacts, layout.artifacts_unarchived))


def refused(recipe: Recipe, src: Path, layout: RootLayout,
            limits: StagingLimits | None = None) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        stage(recipe, src, layout, limits)
    assert nothing_staged(layout), "a refused artifact leaves nothing behind"
    return info.value


# -- links and special files in the source directory ----------------------------------------

def test_symlinked_artifact_is_refused_naming_where_it_points(src: Path, layout: RootLayout,
                                                               secret: Path) -> None:
    (src / "shadow").symlink_to(secret)
    err = refused(make_recipe([{"URI": "s3://b/shadow", "Permission": {"Read": "ALL"}}]),
                  src, layout)
    assert err.path == "Manifests[0].Artifacts[0]"
    assert str(src / "shadow") in str(err) and str(secret) in str(err)
    assert "symbolic link" in str(err)


@pytest.mark.parametrize("level", ["name", "version"])
def test_symlinked_directory_on_the_way_is_refused(tmp_path: Path, layout: RootLayout,
                                                   secret: Path, level: str) -> None:
    base = tmp_path / "in"
    elsewhere = tmp_path / "elsewhere" / VERSION
    elsewhere.mkdir(parents=True)
    (elsewhere / "app.py").write_text("data")
    if level == "name":
        base.mkdir()
        (base / NAME).symlink_to(elsewhere.parent)
        link = base / NAME
    else:
        (base / NAME).mkdir(parents=True)
        (base / NAME / VERSION).symlink_to(elsewhere)
        link = base / NAME / VERSION
    recipe = make_recipe([{"URI": "s3://b/app.py"}])
    with pytest.raises(ValidationError) as info:
        stage_artifacts(recipe, recipe.manifests[0], base, layout)
    assert f"{link} is a symbolic link to" in str(info.value)
    assert nothing_staged(layout)


def test_fifo_artifact_is_refused_without_hanging(src: Path, layout: RootLayout) -> None:
    os.mkfifo(src / "pipe")
    err = refused(make_recipe([{"URI": "s3://b/pipe"}]), src, layout)
    assert "is a FIFO, not a regular file" in str(err)


# -- hostile ZIPs ---------------------------------------------------------------------------

def write_zip(path: Path, entries: list[tuple[str, bytes, int]]) -> None:
    """(name, data, unix mode incl. file type) entries, written as a Unix zip would."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data, mode in entries:
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = mode << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)


FILE = stat.S_IFREG | 0o644


def test_zip_symlink_entry_is_refused(src: Path, layout: RootLayout, secret: Path) -> None:
    write_zip(src / "code.zip", [("ok.py", b"x", FILE),
                                 ("shadow", str(secret).encode(), stat.S_IFLNK | 0o777)])
    err = refused(make_recipe(ZIP), src, layout)
    assert err.path == "Manifests[0].Artifacts[0].Unarchive"
    assert "entry shadow is a symbolic link" in str(err) and str(secret) in str(err)


@pytest.mark.parametrize("name", ["../escape.txt", "/etc/cron.d/evil", "a/../../b",
                                  "..\\..\\evil.txt", ""])
def test_zip_traversal_is_refused(src: Path, layout: RootLayout, tmp_path: Path,
                                  name: str) -> None:
    write_zip(src / "code.zip", [("fine.txt", b"x", FILE), (name, b"evil", FILE)])
    err = refused(make_recipe(ZIP), src, layout)
    assert "unsafe path" in str(err) and repr(name) in str(err)
    assert not (layout.artifacts_unarchived / NAME / "escape.txt").exists()
    assert not list(tmp_path.rglob("evil*"))


def test_zip_fifo_entry_is_refused(src: Path, layout: RootLayout) -> None:
    write_zip(src / "code.zip", [("pipe", b"", stat.S_IFIFO | 0o644)])
    assert "entry pipe is a FIFO" in str(refused(make_recipe(ZIP), src, layout))


@pytest.mark.parametrize(("entries", "words"), [
    ([("a", b"file", FILE), ("a/b", b"under a file", FILE)],
     "entry a/b needs a to be a directory, but the entry a is a file"),
    ([("a/b", b"x", FILE), ("a", b"file over a directory", FILE)],
     "makes a a file and a directory at once"),
    ([("a", b"1", FILE), ("a", b"2", FILE)], "makes a the same file twice"),
])
def test_zip_file_and_directory_clash_is_a_clear_error(src: Path, layout: RootLayout,
                                                       entries: list[tuple[str, bytes, int]],
                                                       words: str) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # zipfile warns about the duplicate name
        write_zip(src / "code.zip", entries)
    err = refused(make_recipe(ZIP), src, layout)
    assert words in str(err), str(err)
    assert not isinstance(err.__cause__, FileExistsError)


# -- limits ---------------------------------------------------------------------------------

def test_zip_bomb_is_stopped_before_anything_is_unpacked(src: Path, layout: RootLayout) -> None:
    with zipfile.ZipFile(src / "code.zip", "w", zipfile.ZIP_DEFLATED) as archive, \
            archive.open("zeros.bin", "w", force_zip64=True) as f:
        chunk = bytes(MiB)
        for _ in range(64):
            f.write(chunk)
    assert (src / "code.zip").stat().st_size < MiB // 4
    limits = StagingLimits(artifacts_max_bytes=8 * MiB)
    err = refused(make_recipe(ZIP), src, layout, limits)
    text = str(err)
    assert "artifact code.zip of com.example.App 1.0.0 unpacks to 67108864 bytes" in text, text
    assert "over the limit of 8388608 bytes" in text
    assert "deploymentLimits.artifactsMaxSizeBytes in config.yaml" in text


def test_too_many_files_are_refused_from_the_zip_directory(src: Path,
                                                          layout: RootLayout) -> None:
    write_zip(src / "code.zip", [(f"f{i}.txt", b"", FILE) for i in range(50)])
    err = refused(make_recipe(ZIP), src, layout, StagingLimits(artifacts_max_files=20))
    assert "artifact code.zip of com.example.App 1.0.0 holds more than 18 entries" in str(err)
    assert "would reach more than 20 files, over the limit of 20 files" in str(err), str(err)
    assert "deploymentLimits.artifactsMaxFiles" in str(err)


def test_implied_directories_count_as_files(src: Path, layout: RootLayout) -> None:
    write_zip(src / "code.zip", [("a/b/c/d/e.txt", b"", FILE)])
    err = refused(make_recipe(ZIP), src, layout, StagingLimits(artifacts_max_files=5))
    assert "unpacks 5 files and directories" in str(err), str(err)


def test_plain_artifact_over_the_byte_limit_is_refused(src: Path, layout: RootLayout) -> None:
    (src / "big.bin").write_bytes(bytes(3 * MiB))
    err = refused(make_recipe([{"URI": "s3://b/big.bin"}]), src, layout,
                  StagingLimits(artifacts_max_bytes=2 * MiB))
    assert "artifact big.bin of com.example.App 1.0.0 is 3145728 bytes" in str(err)


def test_the_disk_keeps_its_reserve(src: Path, layout: RootLayout) -> None:
    """Too little space is a full disk (``DiskFull``, "no space left on <path>"), not a bad
    deployment, and nothing is written."""
    (src / "f.bin").write_bytes(b"x")
    free = os.statvfs(layout.root).f_bavail * os.statvfs(layout.root).f_frsize
    # a reserve far above what is free: other processes freeing space meanwhile (a core of
    # an earlier test cleaning up) must not make the byte count pass
    with pytest.raises(DiskFull) as info:
        stage(make_recipe([{"URI": "s3://b/f.bin"}]), src, layout,
              StagingLimits(free_space_reserve_bytes=free + 1024 * MiB))
    assert nothing_staged(layout)
    err = str(info.value)
    assert err.startswith("no space left on ") and "needs 1 bytes but only" in err, err


def test_oversized_or_linked_recipe_is_refused(tmp_path: Path, secret: Path) -> None:
    big = tmp_path / "big"
    big.mkdir()
    (big / "huge.yaml").write_text("ComponentName: x\n" + "# padding\n" * 200_000)
    with pytest.raises(ValidationError) as info:
        load_recipe_dir(big)
    assert "huge.yaml" in str(info.value)
    assert "over the limit of 1048576 bytes for one recipe" in str(info.value)
    assert "deploymentLimits.recipeMaxSizeBytes" in str(info.value)
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "r.yaml").symlink_to(secret)
    with pytest.raises(ValidationError) as info:
        load_recipe_dir(linked)
    assert f"is a symbolic link to {secret}" in str(info.value) and "r.yaml" in str(info.value)


# -- undo, and the staged tree in a component's hands ----------------------------------------

def test_rollback_puts_the_replaced_version_back(src: Path, layout: RootLayout) -> None:
    write_zip(src / "code.zip", [("a.py", b"A", FILE)])
    stage(make_recipe(ZIP), src, layout)
    before = (layout.unarchived_dir(NAME, VERSION) / "code" / "a.py").stat().st_ino
    write_zip(src / "code.zip", [("b.py", b"B", FILE)])
    recipe = make_recipe(ZIP)
    staged = prepare_artifacts(recipe, recipe.manifests[0], src.parent.parent, layout)
    assert (layout.unarchived_dir(NAME, VERSION) / "code" / "b.py").exists()
    staged.rollback()
    out = layout.unarchived_dir(NAME, VERSION) / "code"
    assert sorted(p.name for p in out.iterdir()) == ["a.py"]
    assert (out / "a.py").stat().st_ino == before
    assert sorted(p.name for p in (layout.artifacts / NAME).iterdir()) == [VERSION]
    assert sorted(p.name for p in (layout.artifacts_unarchived / NAME).iterdir()) == [VERSION]


def test_rollback_of_a_new_version_removes_it(src: Path, layout: RootLayout) -> None:
    (src / "f").write_bytes(b"x")
    recipe = make_recipe([{"URI": "s3://b/f"}])
    staged = prepare_artifacts(recipe, recipe.manifests[0], src.parent.parent, layout)
    assert layout.artifact_dir(NAME, VERSION).is_dir()
    staged.rollback()
    assert nothing_staged(layout)


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")
def test_chown_never_follows_a_planted_link_nor_a_hard_link(src: Path, layout: RootLayout,
                                                            secret: Path) -> None:
    write_zip(src / "code.zip", [("a.py", b"A", FILE)])
    recipe = make_recipe(ZIP)
    stage(recipe, src, layout)
    code = layout.unarchived_dir(NAME, VERSION) / "code"
    (code / "planted").symlink_to(secret)         # as a component owning an old tree could
    chown_staged(recipe, layout, 65534, 65534)
    assert secret.stat().st_uid == 0
    assert (code / "a.py").stat().st_uid == 65534
    os.link(secret, code / "hard")
    with pytest.raises(ValidationError, match="hard links"):
        chown_staged(recipe, layout, 1, 1)
    assert secret.stat().st_uid == 0


def test_staged_file_replaced_by_a_link_or_fifo_is_refused(src: Path, layout: RootLayout,
                                                          secret: Path) -> None:
    (src / "app.py").write_bytes(b"v1")
    recipe = make_recipe([{"URI": "s3://b/app.py"}])
    stage(recipe, src, layout)
    staged = layout.artifact_dir(NAME, VERSION) / "app.py"
    staged.unlink()
    staged.symlink_to(secret)
    with pytest.raises(ValidationError, match="is a symbolic link to"):
        verify_staged(recipe, recipe.manifests[0], layout)
    staged.unlink()
    os.mkfifo(staged)
    with pytest.raises(ValidationError, match="is a FIFO"):
        verify_staged(recipe, recipe.manifests[0], layout)


def test_marker_replaced_by_an_endless_file_is_not_read(src: Path, layout: RootLayout) -> None:
    (src / "app.py").write_bytes(b"v1")
    recipe = make_recipe([{"URI": "s3://b/app.py"}])
    stage(recipe, src, layout)
    marker = layout.artifact_dir(NAME, VERSION) / MARKER
    marker.unlink()
    marker.symlink_to("/dev/zero")
    stage(recipe, src, layout)                    # not staged as far as the core can tell
    assert not (layout.artifact_dir(NAME, VERSION) / MARKER).is_symlink()
