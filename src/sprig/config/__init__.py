"""Component configuration: JSON pointers and the Greengrass MERGE/RESET update rules.

Pure functions only; the config store (persistence, subscriptions) builds on them.
"""

from __future__ import annotations

from sprig.config.merge import (
    ConfigState,
    ConfigUpdate,
    apply_update,
    compact_updates,
    deep_merge,
    effective_configuration,
    merge_defaults,
    parse_api_configuration_update,
    parse_update_document,
)
from sprig.config.pointer import (
    MISSING,
    Missing,
    format_pointer,
    parse_pointer,
    resolve,
)

__all__ = [
    "MISSING",
    "ConfigState",
    "ConfigUpdate",
    "Missing",
    "apply_update",
    "compact_updates",
    "deep_merge",
    "effective_configuration",
    "format_pointer",
    "merge_defaults",
    "parse_api_configuration_update",
    "parse_pointer",
    "parse_update_document",
    "resolve",
]
