"""Configuration keys that only a deployment may change: the guard of IPC UpdateConfiguration.

A component may change its own configuration over IPC (Greengrass's UpdateConfiguration), but
some keys decide isolation, identity, resources or what root runs. If a component could change
those itself, configuration would be a way to grant privilege: a Lambda function adding a volume
or ``containerMode: NoContainer`` for its next worker, a component rewriting a value its own
``RequiresPrivilege`` step interpolates. So these keys are *protected*:

* ``accessControl`` of every component (its IPC authorization policies);
* for a Lambda component (``aws.greengrass.lambda``), every key the Lambda manager reads
  (:class:`sprig.functions.config.Key`: the one list, shared with the parser);
* every key a privileged text interpolates (:class:`Reference`): what a ``RequiresPrivilege``
  step (or a step of a component running as root) runs — its script, Skipif and Setenv, and the
  component-level Setenv — and, for a Lambda component, its Setenv (the Lambda manager reads
  it). A reference in component B's recipe to ``{A:configuration:/x}`` protects A's ``/x``.

A protected path covers its whole subtree, and an update at an ancestor is refused when the
value it merges would reach the protected key (a MERGE at ``/`` holding ``containerMode``); an
update at an ancestor that leaves the key alone is allowed. Everything here is pure: the caller
gathers the component's type and the references (see ``sprig.core.component``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sprig.config.pointer import format_pointer
from sprig.lambda_params import CONFIG_KEYS
from sprig.recipe.model import ComponentType


@dataclass(frozen=True)
class ProtectedKey:
    """A configuration key path only a deployment may change, and why (shown in refusals)."""

    path: tuple[str, ...]
    reason: str

    @property
    def pointer(self) -> str:
        """The key as a JSON pointer (``/containerParams``; ``""`` is the whole document)."""
        return format_pointer(self.path)


@dataclass(frozen=True)
class Reference:
    """``{[owner:]configuration:<pointer>}`` found in a privileged text.

    ``owner`` is the component whose configuration is read (already resolved: the recipe's own
    component when the variable names none), ``where`` says which text reads it, for refusals.
    """

    owner: str
    path: tuple[str, ...]
    where: str


ACCESS_CONTROL: Final = ProtectedKey(
    ("accessControl",), "it holds the component's IPC authorization policies")

LAMBDA_KEYS: Final = tuple(
    ProtectedKey((str(key),), "the Lambda manager reads it (isolation, identity, resources or "
                 "the topics that invoke the function)")
    for key in CONFIG_KEYS)


def protected_keys(name: str, component_type: str,
                   references: Iterable[Reference]) -> list[ProtectedKey]:
    """Every key of component ``name``'s configuration that IPC may not change.

    ``references`` are those found in the privileged texts of every component on the core (the
    ones owned by other components are ignored here).
    """
    keys = [ACCESS_CONTROL]
    if component_type == ComponentType.LAMBDA:
        keys.extend(LAMBDA_KEYS)
    for ref in references:
        if ref.owner == name:
            keys.append(ProtectedKey(ref.path, f"{ref.where} interpolates it"))
    return keys


def reached_key(keys: Sequence[ProtectedKey], key_path: Sequence[str],
                value: Any) -> ProtectedKey | None:
    """The first protected key a MERGE of ``value`` at ``key_path`` would change, if any."""
    for key in keys:
        if _reaches(tuple(key_path), value, key.path):
            return key
    return None


def _reaches(at: tuple[str, ...], value: Any, protected: tuple[str, ...]) -> bool:
    n = min(len(at), len(protected))
    if at[:n] != protected[:n]:
        return False                    # disjoint subtrees
    if len(at) >= len(protected):
        return True                     # at the protected key or inside it
    # ``at`` is an ancestor: a MERGE descends into maps only, key by key; anything else
    # (a scalar, a list, null) replaces the whole node at ``at``, protected key included.
    node = value
    for token in protected[len(at):]:
        if not isinstance(node, Mapping):
            return True
        if token not in node:
            return False
        node = node[token]
    return True
