"""Stage a component's artifacts into the root: copy, verify digests, unzip, set permissions.

Source layout is the Greengrass CLI's ``--artifactDir``: ``<source>/<name>/<version>/<file>``.
Staged files go to ``packages/artifacts/<name>/<version>/`` and ZIPs are unpacked into
``packages/artifacts-unarchived/<name>/<version>/<archive name without extension>/``.

As greengrass-cli does for a local deployment, the *whole* ``<source>/<name>/<version>/`` folder
becomes the component's ``{artifacts:path}``: files the recipe does not declare (the developer
guide's HelloWorld declares none) are staged too, subfolders included, each readable by the
component's user (``Permission.Read: OWNER``, the default), executable by it when the source
file is executable by its owner. Only declared artifacts have digests, unarchiving and
permissions of their own.

The core stages as root from directories other users may have filled, so (see ``nofollow``,
``ziparchive``, ``unpack``): no symbolic link is followed anywhere below the source directory
(a link is refused, naming where it points), only regular files are read, ZIP entries are judged
before anything is unpacked, and a component version's bytes and files are bounded by
:class:`~sprig.recipe.limits.StagingLimits` while they are written.

An already staged version may be in use by running processes, so staging never edits it in
place: everything is built in a temporary directory beside the target and renamed into place.
The tree it replaces is kept aside until the deployment commits (:class:`StagedVersion`), so a
deployment refused after staging puts the device back exactly as it was. If the staged version
already holds exactly these artifacts (same names, digests, unarchive and permissions, recorded
in a small marker file), staging does nothing. Staged directories stay the core's own: only files
are given to the run-as user, so a component cannot plant a link where the core will look.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sprig.errors import ValidationError
from sprig.paths import RootLayout
from sprig.recipe._digest import ALGORITHMS, b64, decode_digest
from sprig.recipe.budget import DIR_MODE, Budget
from sprig.recipe.limits import DEFAULT_LIMITS, StagingLimits
from sprig.recipe.model import Artifact, Manifest, Permission, Recipe, Unarchive
from sprig.recipe.nofollow import (
    CHUNK,
    OverBudget,
    Refused,
    copy_bounded,
    create_file,
    open_below,
    open_dir,
    open_file,
    open_subdir,
    opened,
    read_bounded,
)

MARKER = ".sprig-staged.json"
MARKER_MAX_BYTES = 16 * 1024 * 1024
STAGING_PREFIX = ".staging-"
BACKUP_PREFIX = ".old-"
LINKS_ALLOWED = ("regular files and directories; replace the link with the file it points to "
                 "(cp -L) and deploy again")


@dataclass(frozen=True)
class _Source:
    artifact: Artifact
    index: int
    path: Path                       # where it is (or would be), as shown in messages
    digests: dict[str, bytes] | None  # algorithm -> digest of the file; None when absent

    @property
    def sha256(self) -> bytes | None:
        return self.digests["SHA-256"] if self.digests is not None else None


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


def _digests(fd: int, algorithms: Iterable[str]) -> dict[str, bytes]:
    hashes = {name: hashlib.new(ALGORITHMS[name]) for name in {"SHA-256", *algorithms}}
    while chunk := os.read(fd, CHUNK):
        for h in hashes.values():
            h.update(chunk)
    return {name: h.digest() for name, h in hashes.items()}


def _marker_entries(sources: list[_Source]) -> list[dict[str, object]]:
    return [{**s.artifact.to_dict(), "FileName": s.artifact.file_name,
             "SHA-256-of-source": b64(s.sha256) if s.sha256 is not None else None}
            for s in sources]


@dataclass(frozen=True)
class _Extra:
    """A file or folder of the source version folder that the recipe does not declare."""

    path: str                        # relative, "/"-separated
    is_dir: bool
    sha256: bytes | None = None
    executable: bool = False

    def entry(self) -> dict[str, object]:
        if self.is_dir:
            return {"path": self.path, "dir": True}
        return {"path": self.path, "sha256": b64(self.sha256 or b""),
                "executable": self.executable}

    def artifact(self) -> Artifact:
        """What budget errors name: the file, as if it were declared."""
        return Artifact(uri=f"greengrass:{self.path}", file_name=self.path)


def _marker(recipe: Recipe, sources: list[_Source],
            extras: list[_Extra] | None = None) -> dict[str, object]:
    return {"component": recipe.name, "version": recipe.version,
            "artifacts": _marker_entries(sources),
            "undeclared": [e.entry() for e in extras or []]}


def _extras(recipe: Recipe, manifest: Manifest, source_dir: Path) -> list[_Extra] | None:
    """The undeclared files and folders below ``<source>/<name>/<version>/``, sorted (None when
    there is no such folder); a link or a special file anywhere is refused (Refused)."""
    declared = {a.file_name for a in manifest.artifacts}
    shown = str(source_dir / recipe.name / recipe.version)
    try:
        top = open_dir(str(source_dir))
    except (FileNotFoundError, NotADirectoryError):
        return None
    out: list[_Extra] = []

    def visit(dir_fd: int, prefix: str) -> None:
        for name in sorted(os.listdir(dir_fd)):
            rel = f"{prefix}{name}"
            if not prefix and name in declared:
                continue
            if rel == MARKER:
                raise Refused(f"{shown}/{rel}", "has a name Sprig keeps for itself")
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                out.append(_Extra(rel, True))
                with opened(open_subdir(dir_fd, name, f"{shown}/{rel}")) as sub:
                    visit(sub, f"{rel}/")
                continue
            with opened(open_file(dir_fd, name, f"{shown}/{rel}")) as fd:
                digest = _digests(fd, [])["SHA-256"]
            out.append(_Extra(rel, False, digest, bool(st.st_mode & stat.S_IXUSR)))

    try:
        with opened(open_subdir(top, recipe.name, f"{source_dir}/{recipe.name}")) as name_fd, \
                opened(open_subdir(name_fd, recipe.version, shown)) as version_fd:
            visit(version_fd, "")
    except (FileNotFoundError, NotADirectoryError):
        return None
    finally:
        os.close(top)
    return out


def _manifest_path(recipe: Recipe, manifest: Manifest) -> str:
    for i, m in enumerate(recipe.manifests):
        if m is manifest or m == manifest:
            return f"Manifests[{i}]."
    return ""


def _refused(where: str, exc: Refused) -> ValidationError:
    return ValidationError(where, f"{exc.path} {exc.problem}", value=exc.path,
                           allowed=LINKS_ALLOWED)


def _open_staged(layout: RootLayout, recipe: Recipe) -> int | None:
    """The staged version's directory, opened without following a link; None if absent."""
    try:
        with opened(open_dir(str(layout.artifacts / recipe.name))) as parent:
            return open_subdir(parent, recipe.version, str(layout.artifact_dir(*recipe.id)))
    except (FileNotFoundError, NotADirectoryError, Refused):
        return None


def _read_marker(layout: RootLayout, recipe: Recipe) -> object:
    fd = _open_staged(layout, recipe)
    if fd is None:
        return None
    try:
        with opened(fd), opened(open_file(fd, MARKER, MARKER)) as marker:
            data = read_bounded(marker, MARKER_MAX_BYTES)
        return json.loads(data) if data is not None else None
    except (OSError, Refused, ValueError):
        return None


def _expected_digest(artifact: Artifact) -> bytes | None:
    if artifact.digest is None:
        return None
    return decode_digest(artifact.digest, artifact.algorithm)


def _inspect(recipe: Recipe, manifest: Manifest, source_dir: Path,
             prefix: str) -> list[_Source]:
    """Each artifact's source file and digests (None when absent); links refused."""
    base = source_dir / recipe.name / recipe.version
    try:
        top: int | None = open_dir(str(source_dir))
    except (FileNotFoundError, NotADirectoryError):
        top = None
    out: list[_Source] = []
    try:
        for i, artifact in enumerate(manifest.artifacts):
            digests = None
            if top is not None:
                parts = (recipe.name, recipe.version, artifact.file_name)
                try:
                    with opened(open_below(top, parts, str(source_dir))) as fd:
                        digests = _digests(fd, [artifact.algorithm])
                except (FileNotFoundError, NotADirectoryError):
                    pass
                except Refused as exc:
                    raise _refused(f"{prefix}Artifacts[{i}]", exc) from None
            out.append(_Source(artifact, i, base / artifact.file_name, digests))
    finally:
        if top is not None:
            os.close(top)
    return out


def _already_staged(recipe: Recipe, sources: list[_Source], layout: RootLayout,
                    extras: list[_Extra] | None) -> bool:
    """True when the staged version holds exactly these artifacts (sources may be absent)."""
    marker = _read_marker(layout, recipe)
    if not isinstance(marker, dict):
        return False
    if marker.get("component") != recipe.name or marker.get("version") != recipe.version:
        return False
    if extras is not None and marker.get("undeclared", []) != [e.entry() for e in extras]:
        return False     # (no source folder: what is staged stands, as for declared files)
    staged = marker.get("artifacts")
    if not isinstance(staged, list) or len(staged) != len(sources):
        return False
    for want, have, src in zip(_marker_entries(sources), staged, sources, strict=True):
        if not isinstance(have, dict):
            return False
        if src.digests is None:  # no source: the recipe must still describe the staged file
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
    if src.digests is None:
        raise ValidationError(where, f"artifact {a.file_name} of {recipe} is missing",
                              value=str(shown), allowed=f"the file {shown}")
    if a.digest is None or not check_digest:
        return
    expected = _expected_digest(a)
    if expected is None:
        raise ValidationError(f"{where}.Digest", f"artifact {a.file_name} of {recipe} has a "
                              "malformed digest", value=a.digest,
                              allowed=f"the {a.algorithm} digest of the file, base64 or hex")
    actual = src.digests[a.algorithm]
    if actual != expected:
        raise ValidationError(
            f"{where}.Digest", f"artifact {a.file_name} of {recipe} does not match its digest: "
            f"expected {a.algorithm} {a.digest}, actual {b64(actual)} (hex {actual.hex()})",
            value=str(shown), allowed=f"a file whose {a.algorithm} is {a.digest}")


@dataclass
class StagedVersion:
    """A component version staged by a deployment that has not committed yet.

    :meth:`commit` keeps it (and drops the trees it replaced); :meth:`rollback` removes what
    was staged and puts the replaced trees back, so a refused deployment changes nothing.
    """

    recipe: Recipe
    layout: RootLayout
    #: (final directory, the tree it replaced or None) for each directory renamed into place
    replaced: list[tuple[Path, Path | None]] = field(default_factory=list)
    #: the owner to give an already staged version when the deployment commits
    owner_on_commit: tuple[int, int] | None = None
    #: component directories staging created (removed again by a rollback if left empty)
    created: list[Path] = field(default_factory=list)

    def commit(self) -> None:
        for _, backup in self.replaced:
            if backup is not None:
                _rmtree(backup.parent)
        self.replaced.clear()
        if self.owner_on_commit is not None:
            chown_staged(self.recipe, self.layout, *self.owner_on_commit)
            self.owner_on_commit = None

    def rollback(self) -> None:
        for final, backup in reversed(self.replaced):
            if final.exists():
                aside = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}undo-", dir=final.parent))
                os.rename(final, aside / final.name)
                _rmtree(aside)
            if backup is not None:
                os.rename(backup, final)
                _rmtree(backup.parent)
        self.replaced.clear()
        self.owner_on_commit = None
        for directory in self.created:
            try:
                directory.rmdir()
            except OSError:
                pass                 # not empty: another version lives there
        self.created.clear()


def prepare_artifacts(recipe: Recipe, manifest: Manifest, source_dir: Path,
                      layout: RootLayout, *, owner: tuple[int, int] | None = None,
                      limits: StagingLimits = DEFAULT_LIMITS) -> StagedVersion:
    """Copy, verify, unpack and protect the artifacts of ``manifest``; undoable until commit.

    ``owner`` (uid, gid) is the component's run-as user: Greengrass's ``OWNER`` permission
    means "readable by the user that runs the component", so staged files are given to it.

    Raises:
        ValidationError: an artifact is missing, a link or not a regular file, does not match
            its digest, is a broken or unsafe ZIP, or passes a limit; names the artifact, and
            for digests the expected and actual values, for limits the figure and the limit.
            Nothing is left behind.
    """
    prefix = _manifest_path(recipe, manifest)
    sources = _inspect(recipe, manifest, source_dir, prefix)
    try:
        extras = _extras(recipe, manifest, source_dir)
    except Refused as exc:
        raise _refused(f"{recipe.name}.artifacts", exc) from None
    staged = StagedVersion(recipe, layout)
    if _already_staged(recipe, sources, layout, extras):
        staged.owner_on_commit = owner
        return staged
    _stage(recipe, sources, layout, limits, prefix, source_dir, owner, staged, extras)
    return staged


def stage_artifacts(recipe: Recipe, manifest: Manifest, source_dir: Path,
                    layout: RootLayout, *, owner: tuple[int, int] | None = None,
                    limits: StagingLimits = DEFAULT_LIMITS) -> None:
    """:func:`prepare_artifacts` and commit at once.

    Idempotent: staging the same artifacts again changes nothing on disk (but the owner).
    """
    prepare_artifacts(recipe, manifest, source_dir, layout, owner=owner, limits=limits).commit()


def _copy(recipe: Recipe, src: _Source, source_dir: Path, dest_fd: int, budget: Budget,
          where: str, tmp: Path) -> None:
    a = src.artifact
    parts = (recipe.name, recipe.version, a.file_name)
    try:
        with opened(open_dir(str(source_dir))) as top, \
                opened(open_below(top, parts, str(source_dir))) as fin:
            size = os.fstat(fin).st_size
            budget.take_files(1, a, where, src.path, "is one more file")
            budget.take_bytes(size, a, where, src.path, f"is {size} bytes")
            budget.bytes_used -= size          # counted again while copying
            budget.check_disk(tmp, size, a, where, src.path)
            with opened(create_file(dest_fd, a.file_name)) as fout:
                try:
                    written = copy_bounded(fin, fout, budget.bytes_left)
                except OverBudget as exc:
                    raise budget.over_bytes(exc.attempted, a, where, src.path,
                                            "grew while it was copied") from None
                budget.bytes_used += written
                os.fchmod(fout, 0o600)
    except Refused as exc:
        raise _refused(where, exc) from None
    except FileNotFoundError:
        raise ValidationError(where, f"artifact {a.file_name} of {recipe} disappeared while "
                              "it was staged", value=str(src.path),
                              allowed=f"the file {src.path}") from None


def _copy_extras(recipe: Recipe, extras: list[_Extra], source_dir: Path, dest_fd: int,
                 budget: Budget, tmp: Path) -> None:
    """Copy the undeclared files and folders, verifying each copy against what was inspected."""
    base = (recipe.name, recipe.version)
    dirs: list[str] = []
    for extra in extras:
        a = extra.artifact()
        where = f"{recipe.name}.artifacts.{extra.path}"
        shown = source_dir / recipe.name / recipe.version / extra.path
        budget.take_files(1, a, where, shown, "is one more file")
        if extra.is_dir:
            os.mkdir(extra.path, 0o700, dir_fd=dest_fd)
            dirs.append(extra.path)
            continue
        try:
            with opened(open_dir(str(source_dir))) as top, \
                    opened(open_below(top, (*base, *extra.path.split("/")),
                                      str(source_dir))) as fin:
                size = os.fstat(fin).st_size
                budget.take_bytes(size, a, where, shown, f"is {size} bytes")
                budget.bytes_used -= size
                budget.check_disk(tmp, size, a, where, shown)
                with opened(create_file(dest_fd, extra.path)) as fout:
                    try:
                        written = copy_bounded(fin, fout, budget.bytes_left)
                    except OverBudget as exc:
                        raise budget.over_bytes(exc.attempted, a, where, shown,
                                                "grew while it was copied") from None
                    budget.bytes_used += written
        except Refused as exc:
            raise _refused(where, exc) from None
        except FileNotFoundError:
            raise ValidationError(where, f"{extra.path} of {recipe} disappeared while it was "
                                  "staged", value=str(shown), allowed="a stable artifact folder"
                                  ) from None
        with opened(open_file(dest_fd, extra.path, extra.path)) as fd:
            if _digests(fd, [])["SHA-256"] != extra.sha256:
                raise ValidationError(where, f"{extra.path} of {recipe} changed while it was "
                                      "staged", value=str(shown), allowed="a stable artifact "
                                      "folder")
            os.fchmod(fd, file_mode(Permission.OWNER,
                                    Permission.OWNER if extra.executable else Permission.NONE))
    for path in reversed(dirs):
        os.chmod(path, DIR_MODE, dir_fd=dest_fd)


def _stage(recipe: Recipe, sources: list[_Source], layout: RootLayout, limits: StagingLimits,
           prefix: str, source_dir: Path, owner: tuple[int, int] | None,
           staged: StagedVersion, extras: list[_Extra] | None = None) -> None:
    for src in sources:
        _verify_source(recipe, src, f"{prefix}Artifacts[{src.index}]", check_digest=False)
    target = layout.artifact_dir(recipe.name, recipe.version)
    unarchived = layout.unarchived_dir(recipe.name, recipe.version)
    for parent in (target.parent, unarchived.parent):
        if not parent.is_dir():
            parent.mkdir(parents=True)
            staged.created.append(parent)
    tmp_files = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{recipe.version}-",
                                      dir=target.parent))
    tmp_unzip = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{recipe.version}-",
                                      dir=unarchived.parent))
    budget = Budget(recipe, limits)
    try:
        copied: list[_Source] = []
        with opened(open_dir(str(tmp_files))) as files_fd, \
                opened(open_dir(str(tmp_unzip))) as unzip_fd:
            for src in sources:
                a = src.artifact
                where = f"{prefix}Artifacts[{src.index}]"
                _copy(recipe, src, source_dir, files_fd, budget, where, tmp_files)
                # Verify the copy, not the source: what is checked is what gets staged.
                with opened(open_file(files_fd, a.file_name, a.file_name)) as fd:
                    copy = _Source(a, src.index, tmp_files / a.file_name,
                                   _digests(fd, [a.algorithm]))
                    _verify_source(recipe, copy, where, shown=src.path)
                    os.fchmod(fd, file_mode(a.read, a.execute))
                if a.unarchive is Unarchive.ZIP:
                    _unzip_into(recipe, copy, unzip_fd, budget, f"{where}.Unarchive", src.path)
                copied.append(copy)
            _copy_extras(recipe, extras or [], source_dir, files_fd, budget, tmp_files)
            with opened(create_file(files_fd, MARKER)) as fd:
                os.write(fd, json.dumps(_marker(recipe, copied, extras),
                                        indent=1).encode("utf-8"))
                os.fchmod(fd, 0o444)
            os.fchmod(files_fd, DIR_MODE)
            os.fchmod(unzip_fd, DIR_MODE)
        if owner is not None:
            for tree in (tmp_files, tmp_unzip):
                _chown_tree(tree, *owner)
        # The unarchived tree goes first: the marker (in the artifact directory) is what says
        # "staged", so a crash between the two renames only causes a re-stage next time.
        staged.replaced.append((unarchived, _replace_dir(tmp_unzip, unarchived)))
        staged.replaced.append((target, _replace_dir(tmp_files, target)))
    except BaseException:
        _remove_temporary(tmp_files, tmp_unzip)
        staged.rollback()
        raise
    _remove_temporary(tmp_files, tmp_unzip)


def _remove_temporary(*dirs: Path) -> None:
    for leftover in dirs:
        if leftover.exists():
            _rmtree(leftover)


def _unzip_into(recipe: Recipe, copy: _Source, unzip_fd: int, budget: Budget, where: str,
                shown: Path) -> None:
    from sprig.recipe.unpack import unpack_zip  # only when unpacking: the idle core lacks zipfile

    a = copy.artifact
    os.mkdir(a.unarchived_name, 0o700, dir_fd=unzip_fd)
    with opened(open_subdir(unzip_fd, a.unarchived_name, a.unarchived_name)) as dest:
        budget.take_files(1, a, where, shown, "unpacks one more directory")
        modes = {flag: file_mode(a.read, a.execute, zip_executable=flag)
                 for flag in (False, True)}
        unpack_zip(recipe, a, copy.path, dest, budget, where, shown, modes)
        os.fchmod(dest, DIR_MODE)


def chown_staged(recipe: Recipe, layout: RootLayout, uid: int, gid: int) -> None:
    """Give a staged version's files to ``uid:gid`` (the run-as user); its directories stay
    the core's own.

    Changes ownership only, in place, so it is safe while the version is in use; run it again
    when a deployment changes the component's run-as user.
    """
    for top in (layout.artifact_dir(recipe.name, recipe.version),
                layout.unarchived_dir(recipe.name, recipe.version)):
        if top.is_dir() and not top.is_symlink():
            _chown_tree(top, uid, gid)


def _chown_tree(top: Path, uid: int, gid: int) -> None:
    """Files to ``uid:gid``, directories to the core; never through a link (``fwalk`` opens
    each directory by descriptor and does not descend into links), never a hard-linked file."""
    me = (os.geteuid(), os.getegid())
    for _, dirnames, filenames, dir_fd in os.fwalk(str(top), follow_symlinks=False):
        st = os.fstat(dir_fd)
        if (st.st_uid, st.st_gid) != me:
            os.fchown(dir_fd, *me)
        for name in [*filenames, *dirnames]:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode) or (st.st_uid, st.st_gid) == (uid, gid):
                continue
            if st.st_nlink != 1:
                raise ValidationError("", f"staged file {top}/…/{name} has {st.st_nlink} hard "
                                      "links: the core will not change its owner",
                                      value=name, allowed="files staged by Sprig only")
            os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)


def _replace_dir(new: Path, final: Path) -> Path | None:
    """Put ``new`` at ``final``; the tree it replaces is renamed aside and returned (the
    caller removes it on commit or puts it back on rollback)."""
    if final.exists() or final.is_symlink():
        old = Path(tempfile.mkdtemp(prefix=f"{BACKUP_PREFIX}{final.name}-", dir=final.parent))
        os.rename(final, old / final.name)
        os.rename(new, final)
        return old / final.name
    os.rename(new, final)
    return None


def _rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)   # never follows links (fd-based on Linux)


def verify_staged(recipe: Recipe, manifest: Manifest, layout: RootLayout) -> None:
    """Check the staged files still match their recipe digests (and exist).

    Raises:
        ValidationError: a staged file is missing, was changed or replaced by a link.
    """
    target = layout.artifact_dir(recipe.name, recipe.version)
    prefix = _manifest_path(recipe, manifest)
    staged = _open_staged(layout, recipe)
    try:
        for i, a in enumerate(manifest.artifacts):
            digests = None
            if staged is not None:
                try:
                    with opened(open_file(staged, a.file_name, str(target / a.file_name))) as fd:
                        digests = _digests(fd, [a.algorithm])
                except FileNotFoundError:
                    pass
                except Refused as exc:
                    raise _refused(f"{prefix}Artifacts[{i}]", exc) from None
            _verify_source(recipe, _Source(a, i, target / a.file_name, digests),
                           f"{prefix}Artifacts[{i}]")
    finally:
        if staged is not None:
            os.close(staged)
