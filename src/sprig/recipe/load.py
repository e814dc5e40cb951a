"""Read recipe files: YAML or JSON (told apart by content), one file or a whole directory.

YAML is read with PyYAML's safe loader, minus two surprises: timestamps stay strings (so
``RecipeFormatVersion: 2020-01-25`` and dates in configuration stay JSON-able) and a key given
twice in one mapping is an error rather than silently overwritten.
"""

from __future__ import annotations

import json
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import yaml

from sprig.errors import ValidationError
from sprig.recipe.model import Recipe
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


def load_recipe(path: Path | str) -> Recipe:
    """Read and validate one recipe file."""
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # tolerate a byte-order mark
    except UnicodeDecodeError as exc:
        raise ValidationError("", f"is not UTF-8 text ({exc.reason} at byte {exc.start})",
                              source=source) from None
    except OSError as exc:
        raise ValidationError("", f"cannot be read: {exc.strerror}", source=source) from None
    data = load_document(text, source)
    if not isinstance(data, dict):
        raise ValidationError("", "a recipe must be an object (a mapping of keys)",
                              value=type(data).__name__, allowed="a YAML mapping or JSON object",
                              source=source)
    return parse_recipe(data, source)


def load_recipe_dir(directory: Path | str) -> dict[tuple[str, str], Recipe]:
    """Every recipe file (``*.yaml``, ``*.yml``, ``*.json``) directly in ``directory``.

    Raises:
        ValidationError: a bad recipe, or two files declaring the same name and version.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ValidationError("", "is not a directory", source=str(directory))
    recipes: dict[tuple[str, str], Recipe] = {}
    origin: dict[tuple[str, str], Path] = {}
    for path in sorted(directory.iterdir()):
        if path.suffix.lower() not in RECIPE_SUFFIXES or not path.is_file():
            continue
        recipe = load_recipe(path)
        if recipe.id in recipes:
            raise ValidationError(
                "ComponentVersion", f"{recipe.name} {recipe.version} is also defined in "
                f"{origin[recipe.id]}", value=recipe.version,
                allowed="one recipe file per component name and version", source=str(path))
        recipes[recipe.id] = recipe
        origin[recipe.id] = path
    return recipes
