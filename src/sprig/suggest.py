""""Did you mean …?" for names a user typed: configuration keys, recipe keys, IPC operations.

One home for the rule, so every refusal and warning suggests the same way: the closest known
name by similarity (``difflib``), compared without regard to case, and only when it is close
enough to be a likely typo (``timeoutInSecond`` → ``timeoutInSeconds``; ``volumez`` → ``volumes``;
``foo`` → nothing).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

#: How similar (0..1, difflib's ratio) a known name must be to be suggested.
CUTOFF = 0.75


def closest(word: str, known: Iterable[str]) -> str | None:
    """The known name ``word`` most likely meant, or None when none is close."""
    names = list(dict.fromkeys(str(n) for n in known))   # StrEnum members as plain text
    by_lower = {n.lower(): n for n in names}
    lowered = word.lower()
    if lowered in by_lower and by_lower[lowered] != word:
        return by_lower[lowered]           # only the case differs
    match = difflib.get_close_matches(lowered, list(by_lower), n=1, cutoff=CUTOFF)
    return by_lower[match[0]] if match else None


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for a near miss, else ``""``: append it to a message."""
    match = closest(word, known)
    return f" (did you mean {match!r}?)" if match is not None else ""
