"""Stage a component's artifacts into the root: copy, verify digests, unzip, set permissions.

Source layout is the Greengrass CLI's ``--artifactDir``: ``<source>/<name>/<version>/<file>``.
Staged files go to ``packages/artifacts/<name>/<version>/`` and ZIPs are unpacked into
``packages/artifacts-unarchived/<name>/<version>/<archive name without extension>/``.

An already staged version may be in use by running processes, so staging never edits it in
place: everything is built in a temporary directory beside the target and renamed into place.
If the staged version already holds exactly these artifacts (same names, digests, unarchive and
permissions, recorded in a small marker file), staging does nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from sprig.errors import ValidationError
from sprig.paths import RootLayout
from sprig.recipe._digest import b64, decode_digest, file_digest
from sprig.recipe.model import Artifact, Manifest, Permission, Recipe, Unarchive

MARKER = ".sprig-staged.json"


@dataclass(frozen=True)
class _Source:
    artifact: Artifact
    index: int
    path: Path
    digest: bytes | None  # actual digest of the source file, None when it is absent


def file_mode(read: Permission, execute: Permission, *, zip_executable: bool = False) -> int:
    """The mode bits of a staged file.

    OWNER gives the bit to the file's owner (the component's run-as user once
    :func:`chown_staged` has run), ALL to everyone; Execute implies Read. Files are never
    writable: artifacts are immutable. A file the ZIP marks executable keeps its owner execute
    bit (AWS Lambda honours it: a ``provided`` runtime's ``bootstrap``), and everyone who may
    read it may also execute it.
    """
    # "The Execute permission implies the Read permission" (recipe reference).
    if execute is Permission.ALL or (execute is Permission.OWNER and read is Permission.NONE):
        read = execute
    mode = 0
    if read is not Permission.NONE:
        mode |= stat.S_IRUSR
    if read is Permission.ALL:
        mode |= stat.S_IRGRP | stat.S_IROTH
    if execute is not Permission.NONE:
        mode |= stat.S_IXUSR
    if execute is Permission.ALL:
        mode |= stat.S_IXGRP | stat.S_IXOTH
    if zip_executable:
        mode |= stat.S_IXUSR
        if read is Permission.ALL:
            mode |= stat.S_IXGRP | stat.S_IXOTH
    return mode


DIR_MODE = 0o755  # directories are traversable; file modes decide who reads what


def _marker_entries(sources: list[_Source]) -> list[dict[str, object]]:
    return [{**s.artifact.to_dict(), "FileName": s.artifact.file_name,
             "SHA-256-of-source": b64(s.digest) if s.digest is not None else None}
            for s in sources]


def _marker(recipe: Recipe, sources: list[_Source]) -> dict[str, object]:
    return {"component": recipe.name, "version": recipe.version,
            "artifacts": _marker_entries(sources)}


def _manifest_path(recipe: Recipe, manifest: Manifest) -> str:
    for i, m in enumerate(recipe.manifests):
        if m is manifest or m == manifest:
            return f"Manifests[{i}]."
    return ""


def _read_marker(directory: Path) -> object:
    try:
        return json.loads((directory / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _expected_digest(artifact: Artifact) -> bytes | None:
    if artifact.digest is None:
        return None
    return decode_digest(artifact.digest, artifact.algorithm)


def _inspect(recipe: Recipe, manifest: Manifest, source_dir: Path) -> list[_Source]:
    base = source_dir / recipe.name / recipe.version
    out: list[_Source] = []
    for i, artifact in enumerate(manifest.artifacts):
        path = base / artifact.file_name
        digest = file_digest(path, "SHA-256") if path.is_file() else None
        out.append(_Source(artifact, i, path, digest))
    return out


def _already_staged(recipe: Recipe, sources: list[_Source], layout: RootLayout) -> bool:
    """True when the staged version holds exactly these artifacts (sources may be absent)."""
    marker = _read_marker(layout.artifact_dir(recipe.name, recipe.version))
    if not isinstance(marker, dict):
        return False
    if marker.get("component") != recipe.name or marker.get("version") != recipe.version:
        return False
    staged = marker.get("artifacts")
    if not isinstance(staged, list) or len(staged) != len(sources):
        return False
    for want, have, src in zip(_marker_entries(sources), staged, sources, strict=True):
        if not isinstance(have, dict):
            return False
        if src.digest is None:  # no source: the recipe must still describe the staged file
            have = {**have, "SHA-256-of-source": None}
        if have != want:
            return False
    if any(s.artifact.unarchive is Unarchive.ZIP for s in sources):
        return layout.unarchived_dir(recipe.name, recipe.version).is_dir()
    return True


def _verify_source(recipe: Recipe, src: _Source, where: str, *, check_digest: bool = True,
                   shown: Path | None = None) -> None:
    """Raise unless ``src`` exists and matches the recipe's digest; errors name ``shown``."""
    a = src.artifact
    shown = shown or src.path
    if src.digest is None:
        raise ValidationError(where, f"artifact {a.file_name} of {recipe} is missing",
                              value=str(shown), allowed=f"the file {shown}")
    if a.digest is None or not check_digest:
        return
    expected = _expected_digest(a)
    if expected is None:
        raise ValidationError(f"{where}.Digest", f"artifact {a.file_name} of {recipe} has a "
                              "malformed digest", value=a.digest,
                              allowed=f"the {a.algorithm} digest of the file, base64 or hex")
    actual = file_digest(src.path, a.algorithm)
    if actual != expected:
        raise ValidationError(
            f"{where}.Digest", f"artifact {a.file_name} of {recipe} does not match its digest: "
            f"expected {a.algorithm} {a.digest}, actual {b64(actual)} (hex {actual.hex()})",
            value=str(shown), allowed=f"a file whose {a.algorithm} is {a.digest}")


def stage_artifacts(recipe: Recipe, manifest: Manifest, source_dir: Path,
                    layout: RootLayout, *, owner: tuple[int, int] | None = None) -> None:
    """Copy, verify, unpack and protect the artifacts of ``manifest``.

    ``owner`` (uid, gid) is the component's run-as user: Greengrass's ``OWNER`` permission
    means "readable by the user that runs the component", so staged files are given to it.

    Idempotent: staging the same artifacts again changes nothing on disk (but the owner).

    Raises:
        ValidationError: an artifact is missing, does not match its digest, or is a broken or
            unsafe ZIP; names the artifact, and for digests the expected and actual values.
    """
    sources = _inspect(recipe, manifest, source_dir)
    if not _already_staged(recipe, sources, layout):
        _stage(recipe, manifest, sources, layout)
    if owner is not None:
        chown_staged(recipe, layout, *owner)


def _stage(recipe: Recipe, manifest: Manifest, sources: list[_Source],
           layout: RootLayout) -> None:
    prefix = _manifest_path(recipe, manifest)
    for src in sources:
        _verify_source(recipe, src, f"{prefix}Artifacts[{src.index}]", check_digest=False)
    target = layout.artifact_dir(recipe.name, recipe.version)
    unarchived = layout.unarchived_dir(recipe.name, recipe.version)
    target.parent.mkdir(parents=True, exist_ok=True)
    unarchived.parent.mkdir(parents=True, exist_ok=True)
    tmp_files = Path(tempfile.mkdtemp(prefix=f".staging-{recipe.version}-", dir=target.parent))
    tmp_unzip = Path(tempfile.mkdtemp(prefix=f".staging-{recipe.version}-",
                                      dir=unarchived.parent))
    try:
        copied: list[_Source] = []
        for src in sources:
            a = src.artifact
            dest = tmp_files / a.file_name
            shutil.copyfile(src.path, dest)
            # Verify the copy, not the source: what is checked is what gets staged.
            copy = _Source(a, src.index, dest, file_digest(dest, "SHA-256"))
            _verify_source(recipe, copy, f"{prefix}Artifacts[{src.index}]", shown=src.path)
            os.chmod(dest, file_mode(a.read, a.execute))
            if a.unarchive is Unarchive.ZIP:
                _unzip(recipe, copy, tmp_unzip / a.unarchived_name, prefix, shown=src.path)
            copied.append(copy)
        (tmp_files / MARKER).write_text(json.dumps(_marker(recipe, copied), indent=1),
                                        encoding="utf-8")
        os.chmod(tmp_files / MARKER, 0o444)
        os.chmod(tmp_files, DIR_MODE)
        os.chmod(tmp_unzip, DIR_MODE)
        # The unarchived tree goes first: the marker (in the artifact directory) is what says
        # "staged", so a crash between the two renames only causes a re-stage next time.
        _replace_dir(tmp_unzip, unarchived)
        _replace_dir(tmp_files, target)
    finally:
        for leftover in (tmp_files, tmp_unzip):
            if leftover.exists():
                _rmtree(leftover)


def chown_staged(recipe: Recipe, layout: RootLayout, uid: int, gid: int) -> None:
    """Give a staged version's files and directories to ``uid:gid`` (the run-as user).

    Changes ownership only, in place, so it is safe while the version is in use; run it again
    when a deployment changes the component's run-as user.
    """
    for top in (layout.artifact_dir(recipe.name, recipe.version),
                layout.unarchived_dir(recipe.name, recipe.version)):
        if not top.exists():
            continue
        for path in [top, *top.rglob("*")]:
            st = path.lstat()
            if (st.st_uid, st.st_gid) != (uid, gid):
                os.lchown(path, uid, gid)


def _replace_dir(new: Path, final: Path) -> None:
    """Put ``new`` at ``final``; an old tree is renamed aside first, then removed."""
    if final.exists():
        old = Path(tempfile.mkdtemp(prefix=f".old-{final.name}-", dir=final.parent))
        os.rename(final, old / final.name)
        os.rename(new, final)
        _rmtree(old)
    else:
        os.rename(new, final)


def _rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _unzip(recipe: Recipe, src: _Source, dest: Path, prefix: str, *, shown: Path) -> None:
    import zipfile  # only when unpacking (a deployment): the idle core does without it

    a = src.artifact
    where = f"{prefix}Artifacts[{src.index}].Unarchive"
    try:
        with zipfile.ZipFile(src.path) as archive:
            infos = archive.infolist()
            for info in infos:
                _check_member(recipe, a, info.filename, where)
            dest.mkdir(mode=DIR_MODE)
            for info in infos:
                target = dest.joinpath(*PurePosixPath(info.filename).parts)
                if info.is_dir():
                    target.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
                with archive.open(info) as fin, target.open("wb") as fout:
                    shutil.copyfileobj(fin, fout)
                unix_mode = info.external_attr >> 16
                os.chmod(target, file_mode(a.read, a.execute,
                                           zip_executable=bool(unix_mode & stat.S_IXUSR)))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
        raise ValidationError(where, f"artifact {a.file_name} of {recipe} is not a valid ZIP "
                              f"({exc})", value=str(shown),
                              allowed="a ZIP archive, or Unarchive: NONE") from None
    for d in [dest, *(p for p in dest.rglob("*") if p.is_dir())]:
        os.chmod(d, DIR_MODE)


def _check_member(recipe: Recipe, artifact: Artifact, name: str, where: str) -> None:
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if name.startswith("/") or ".." in parts or not parts:
        raise ValidationError(where, f"artifact {artifact.file_name} of {recipe} holds an unsafe "
                              f"path", value=name, allowed="relative paths inside the archive")


def verify_staged(recipe: Recipe, manifest: Manifest, layout: RootLayout) -> None:
    """Check the staged files still match their recipe digests (and exist).

    Raises:
        ValidationError: a staged file is missing or was changed.
    """
    target = layout.artifact_dir(recipe.name, recipe.version)
    prefix = _manifest_path(recipe, manifest)
    for i, a in enumerate(manifest.artifacts):
        path = target / a.file_name
        src = _Source(a, i, path, file_digest(path, "SHA-256") if path.is_file() else None)
        _verify_source(recipe, src, f"{prefix}Artifacts[{i}]")
