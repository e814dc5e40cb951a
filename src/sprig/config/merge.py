"""The Greengrass configuration-update rules, as pure functions over JSON documents.

Rules (Greengrass developer guide, "Update component configurations"; reference §8.2):

* RESET runs before MERGE, pointer by pointer, in order.
* RESET ``""`` replaces the whole configuration with the defaults; the other pointers of that
  RESET list are then ignored (as Greengrass does).
* RESET ``/p`` restores the default value at ``/p``; when the defaults have nothing at ``/p`` the
  key is removed. Missing parent objects are created (a non-object parent is replaced by an
  object) so the restored value sits exactly at ``/p``.
* Only whole lists can be reset: a pointer that steps into a list (in the current configuration
  or in the defaults) is refused.
* A pointer that names nothing, neither in the current configuration nor in the defaults, is
  refused — it is almost always a typo.
* MERGE: objects merge member by member, recursively; anything else (lists, strings, numbers,
  ``null``, and objects replacing non-objects) replaces the old value whole. Lists cannot be
  appended to.

The configuration state of a component
--------------------------------------
A component's configuration is **(defaults, the updates deployments applied, in order)** —
:class:`ConfigState`. The effective configuration is those updates replayed over the defaults
(:func:`effective_configuration`); :func:`apply_update` is one step of that replay, so
``apply_update(effective_configuration(d, us), d, u) == effective_configuration(d, [*us, u])``.

When a new component version brings new DefaultConfiguration, the same updates are replayed
over the new defaults (:func:`merge_defaults`). That is "new config = deep-merge(new defaults,
values previously set by deployments)": keys no deployment set follow the new defaults; keys a
deployment set keep the deployment's value; keys a deployment reset follow the new default.
During a replay a RESET pointer that names nothing any more is skipped, not refused: the user
was right when they sent it. History is compacted at every RESET ``""`` (:func:`compact_updates`),
which makes all earlier updates irrelevant.

(Greengrass itself merges the new defaults under the running configuration by timestamp, so a
key that only the *old* defaults had survives there; here it disappears, which is what a user who
never set it expects.)
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sprig.config.pointer import MISSING, crosses_list, parse_pointer, resolve
from sprig.config.update import (
    ConfigUpdate,
    parse_api_configuration_update,
    parse_update_document,
)
from sprig.errors import ValidationError

__all__ = [
    "ConfigState",
    "ConfigUpdate",
    "apply_update",
    "compact_updates",
    "deep_merge",
    "effective_configuration",
    "merge_defaults",
    "parse_api_configuration_update",
    "parse_update_document",
]


def deep_merge(base: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """A new document: ``patch`` merged into ``base`` with the MERGE rule (inputs untouched)."""
    result = copy.deepcopy(dict(base))
    _merge_into(result, patch)
    return result


def _merge_into(target: dict[str, Any], patch: Mapping[str, Any]) -> None:
    for key, value in patch.items():
        old = target.get(key, MISSING)
        if isinstance(value, Mapping) and isinstance(old, dict):
            _merge_into(old, value)
        else:
            target[key] = copy.deepcopy(value)


def apply_update(
    current: Mapping[str, Any],
    defaults: Mapping[str, Any],
    update: ConfigUpdate,
    *,
    strict: bool = True,
) -> dict[str, Any]:
    """The configuration after ``update``: RESET (against ``defaults``) then MERGE.

    Pure: returns a new dict. With ``strict`` (the default, for a deployment being validated) a
    RESET pointer into a list or to nothing raises :class:`ValidationError` naming it (path
    ``RESET[i]``: the caller places it with ``.under(component)`` / ``.with_source(...)``);
    without (a replay over new defaults) such a pointer is skipped.
    """
    if update.resets_everything:
        # Greengrass: with "" in RESET the other pointers are ignored.
        doc: dict[str, Any] = copy.deepcopy(dict(defaults))
        pointers: tuple[str, ...] = ()
    else:
        doc = copy.deepcopy(dict(current))
        pointers = update.reset
    for index, pointer in enumerate(pointers):
        where = f"RESET[{index}]"
        tokens = parse_pointer(pointer, path=where)
        if crosses_list(doc, tokens) or crosses_list(defaults, tokens):
            if strict:
                raise ValidationError(
                    where, "only whole lists can be reset; this pointer points into a list",
                    value=pointer, allowed="a pointer to an object member or to a whole list",
                )
            continue
        default = resolve(defaults, tokens)
        present = resolve(doc, tokens)
        if default is MISSING and present is MISSING:
            if strict:
                raise ValidationError(
                    where,
                    "RESET pointer names nothing: no such key in the current configuration "
                    "or in the default configuration",
                    value=pointer,
                    allowed="a pointer to an existing key or to a key with a default value",
                )
            continue
        if default is MISSING:
            parent = resolve(doc, tokens[:-1])
            assert isinstance(parent, dict)  # present is not MISSING and no list was crossed
            del parent[tokens[-1]]
        else:
            _set(doc, tokens, copy.deepcopy(default))
    if update.merge is not None:
        _merge_into(doc, update.merge)
    return doc


def _set(doc: dict[str, Any], tokens: Sequence[str], value: Any) -> None:
    node = doc
    for token in tokens[:-1]:
        child = node.get(token)
        if not isinstance(child, dict):
            child = {}
            node[token] = child
        node = child
    node[tokens[-1]] = value


def effective_configuration(
    defaults: Mapping[str, Any], applied_updates: Iterable[ConfigUpdate]
) -> dict[str, Any]:
    """``applied_updates`` replayed, in order, over ``defaults`` (RESET pointers to nothing or
    into lists are skipped: see the module docstring)."""
    return functools.reduce(
        lambda doc, update: apply_update(doc, defaults, update, strict=False),
        applied_updates,
        copy.deepcopy(dict(defaults)),
    )


def merge_defaults(
    new_defaults: Mapping[str, Any], applied_updates: Iterable[ConfigUpdate]
) -> dict[str, Any]:
    """The configuration after a version change: the deployments' updates over the new defaults.

    Keys no deployment set follow ``new_defaults``; values deployments set are kept.
    """
    return effective_configuration(new_defaults, applied_updates)


def compact_updates(updates: Iterable[ConfigUpdate]) -> tuple[ConfigUpdate, ...]:
    """Drop what can no longer matter: no-op updates and everything before a RESET ``""``."""
    kept: list[ConfigUpdate] = []
    for update in updates:
        if update.is_noop:
            continue
        if update.resets_everything:
            kept.clear()
        kept.append(update)
    return tuple(kept)


@dataclass(frozen=True)
class ConfigState:
    """A component's configuration as (defaults, updates applied by deployments, in order).

    Persist this (``to_document``), not the effective configuration: it is what lets a new
    component version's defaults show through where no deployment set a value.
    """

    defaults: Mapping[str, Any] = field(default_factory=dict)
    updates: tuple[ConfigUpdate, ...] = ()

    @functools.cached_property
    def effective(self) -> dict[str, Any]:
        """The configuration the component sees. Computed once and shared: do not mutate it
        (``copy.deepcopy`` it to hand it out)."""
        return effective_configuration(self.defaults, self.updates)

    def apply(self, update: ConfigUpdate) -> ConfigState:
        """The state after one more deployment's update; validated strictly (raises first)."""
        apply_update(self.effective, self.defaults, update, strict=True)
        return ConfigState(self.defaults, compact_updates((*self.updates, update)))

    def with_defaults(self, new_defaults: Mapping[str, Any]) -> ConfigState:
        """The state for a new component version with ``new_defaults``."""
        return ConfigState(copy.deepcopy(dict(new_defaults)), self.updates)

    def to_document(self) -> dict[str, Any]:
        """A JSON-serializable form: ``{"defaults": {...}, "updates": [{MERGE, RESET}, ...]}``."""
        return {
            "defaults": copy.deepcopy(dict(self.defaults)),
            "updates": [u.to_document() for u in self.updates],
        }

    @classmethod
    def from_document(cls, doc: object, *, source: str | None = None) -> ConfigState:
        """Inverse of :meth:`to_document`."""
        if not isinstance(doc, dict) or set(doc) - {"defaults", "updates"}:
            raise ValidationError(
                "", "a configuration state must be an object", value=doc, has_value=True,
                allowed='{"defaults": {...}, "updates": [...]}', source=source,
            )
        defaults = doc.get("defaults", {})
        if not isinstance(defaults, dict):
            raise ValidationError(
                "defaults", "must be an object", value=defaults, has_value=True,
                allowed="a JSON object", source=source,
            )
        raw_updates = doc.get("updates", [])
        if not isinstance(raw_updates, list):
            raise ValidationError(
                "updates", "must be a list", value=raw_updates, has_value=True,
                allowed="a list of {MERGE, RESET} objects", source=source,
            )
        updates = tuple(
            ConfigUpdate.from_document(u, path=f"updates[{i}]", source=source)
            for i, u in enumerate(raw_updates)
        )
        return cls(copy.deepcopy(defaults), updates)
