"""Read recipe files: YAML or JSON (told apart by content), one file or a whole directory.

YAML is read with PyYAML's safe loader, minus two surprises: timestamps stay strings (so
``RecipeFormatVersion: 2020-01-25`` and dates in configuration stay JSON-able) and a key given
twice in one mapping is an error rather than silently overwritten.

The core reads recipe directories as root: a recipe file is never read through a symbolic link
(refused, naming where it points) and is measured before it is read (a 60 MB recipe is refused
without being parsed; see :mod:`sprig.recipe.limits`).
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sprig.errors import ValidationError
from sprig.recipe.limits import DEFAULT_LIMITS, RECIPE_KEY
from sprig.recipe.model import Recipe
from sprig.recipe.nofollow import Refused, open_dir, open_file, opened, read_bounded
from sprig.recipe.parse import parse_recipe

RECIPE_SUFFIXES = (".yaml", ".yml", ".json")


class _RecipeYamlLoader(yaml.SafeLoader):
    """SafeLoader without timestamp conversion and with duplicate-key detection."""


_RecipeYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Hashable, Any]:
    loader.flatten_mapping(node)
    out: dict[Hashable, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, Hashable):
            raise yaml.constructor.ConstructorError(
                None, None, "found an unhashable key", key_node.start_mark)
        if key in out:
            raise yaml.constructor.ConstructorError(
                None, None, f"found the key {key!r} twice in one mapping", key_node.start_mark)
        out[key] = loader.construct_object(value_node, deep=True)
    return out


_RecipeYamlLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                                  _construct_mapping)


def load_document(text: str, source: str) -> Any:
    """Parse ``text`` as JSON when it starts with ``{``, else as YAML.

    Raises:
        ValidationError: a syntax error, naming ``source``, the line and the column.
    """
    if text.lstrip().startswith("{"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValidationError("", f"JSON syntax error at line {exc.lineno}, column "
                                  f"{exc.colno}: {exc.msg}", source=source) from None
    try:
        return yaml.load(text, Loader=_RecipeYamlLoader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise ValidationError("", f"YAML syntax error{where}: {problem}",
                              source=source) from None
    except yaml.YAMLError as exc:
        raise ValidationError("", f"YAML error: {exc}", source=source) from None


def _decode(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8-sig")  # tolerate a byte-order mark
    except UnicodeDecodeError as exc:
        raise ValidationError("", f"is not UTF-8 text ({exc.reason} at byte {exc.start})",
                              source=source) from None


def _too_big(size: int, max_bytes: int, source: str) -> ValidationError:
    return ValidationError("", f"is {size} bytes, over the limit of {max_bytes} bytes for one "
                           "recipe", value=size, source=source, allowed=f"at most {max_bytes} "
                           f"bytes ({DEFAULT_LIMITS.setting(RECIPE_KEY)})")


def _read_recipe_file(dir_fd: int, name: str, source: str, max_bytes: int) -> bytes:
    """The bytes of a recipe file: never through a link, measured before it is read."""
    try:
        with opened(open_file(dir_fd, name, source)) as fd:
            size = os.fstat(fd).st_size
            if size > max_bytes:
                raise _too_big(size, max_bytes, source)
            data = read_bounded(fd, max_bytes)
    except Refused as exc:
        raise ValidationError("", exc.problem, value=exc.path, source=source,
                              allowed="regular files (the core does not follow links)") from None
    except OSError as exc:
        raise ValidationError("", f"cannot be read: {exc.strerror}", source=source) from None
    if data is None:
        raise _too_big(max_bytes + 1, max_bytes, source)
    return data


def _parse(text: str, source: str) -> Recipe:
    data = load_document(text, source)
    if not isinstance(data, dict):
        raise ValidationError("", "a recipe must be an object (a mapping of keys)",
                              value=type(data).__name__, allowed="a YAML mapping or JSON object",
                              source=source)
    return parse_recipe(data, source)


def load_recipe(path: Path | str, *, max_bytes: int = DEFAULT_LIMITS.recipe_max_bytes) -> Recipe:
    """Read and validate one recipe file (not through a link, at most ``max_bytes``)."""
    path = Path(path)
    source = str(path)
    try:
        with opened(open_dir(str(path.parent))) as dir_fd:
            data = _read_recipe_file(dir_fd, path.name, source, max_bytes)
    except OSError as exc:
        raise ValidationError("", f"cannot be read: {exc.strerror}", source=source) from None
    return _parse(_decode(data, source), source)


def load_recipe_dir(directory: Path | str, *, max_bytes: int = DEFAULT_LIMITS.recipe_max_bytes,
                    ) -> dict[tuple[str, str], Recipe]:
    """Every recipe file (``*.yaml``, ``*.yml``, ``*.json``) directly in ``directory``.

    A recipe file that is a symbolic link is refused (naming where it points), as is one over
    ``max_bytes``; other entries that are not regular files are ignored.

    Raises:
        ValidationError: a bad, linked or oversized recipe, or two files declaring the same
            name and version.
    """
    folder = load_recipe_folder(directory, max_bytes=max_bytes)
    for error in folder.unusable.values():
        raise error
    return folder.recipes


@dataclass(frozen=True)
class RecipeFolder:
    """A ``--recipe-dir``: the recipes Sprig can use, and those it cannot, by (name, version).

    A deployment needs only the recipes it uses (greengrass-cli copies the folder, and the
    nucleus reads a recipe only when a component needs it): a plugin recipe or a recipe for a
    newer format beside the one deployed must not refuse the deployment. So a file that reads as
    a recipe document (YAML/JSON, a name and a version) but fails validation is kept aside with
    its error, raised only if the deployment uses that name and version.
    """

    recipes: dict[tuple[str, str], Recipe] = field(default_factory=dict)
    unusable: dict[tuple[str, str], ValidationError] = field(default_factory=dict)


def _identity(data: Any) -> tuple[str, str] | None:
    """(ComponentName, ComponentVersion) of a recipe document, keys case-insensitive."""
    if not isinstance(data, dict):
        return None
    keys = {str(k).lower(): v for k, v in data.items()}
    name, version = keys.get("componentname"), keys.get("componentversion")
    if isinstance(name, str) and isinstance(version, str) and name and version:
        return name, version
    return None


def load_recipe_folder(directory: Path | str, *,
                       max_bytes: int = DEFAULT_LIMITS.recipe_max_bytes) -> RecipeFolder:
    """Every recipe file directly in ``directory``; see :class:`RecipeFolder`.

    Raises:
        ValidationError: a linked, oversized or unreadable file, one that is not a recipe
            document at all (syntax, no name or version), or two files declaring the same name
            and version.
    """
    directory = Path(directory)
    try:
        dir_fd = open_dir(str(directory))
    except OSError:
        raise ValidationError("", "is not a directory", source=str(directory)) from None
    folder = RecipeFolder()
    origin: dict[tuple[str, str], Path] = {}
    with opened(dir_fd):
        for name in sorted(os.listdir(dir_fd)):
            path = directory / name
            if path.suffix.lower() not in RECIPE_SUFFIXES:
                continue
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode) or not (stat.S_ISREG(st.st_mode)
                                                or stat.S_ISLNK(st.st_mode)):
                continue
            data = _read_recipe_file(dir_fd, name, str(path), max_bytes)
            text = _decode(data, str(path))
            try:
                recipe: Recipe | None = _parse(text, str(path))
                key = recipe.id if recipe is not None else ("", "")
                error = None
            except ValidationError as exc:
                ident = _identity(load_document(text, str(path)))
                if ident is None:
                    raise
                recipe, key, error = None, ident, exc
            if key in origin:
                raise ValidationError(
                    "ComponentVersion", f"{key[0]} {key[1]} is also defined in "
                    f"{origin[key]}", value=key[1],
                    allowed="one recipe file per component name and version", source=str(path))
            origin[key] = path
            if recipe is not None:
                folder.recipes[key] = recipe
            elif error is not None:
                folder.unusable[key] = error
    return folder
