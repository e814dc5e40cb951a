"""MQTT topic names and topic filters, validated once and matched many times.

The local bus, the IOT_CORE bridge and the legacy subscription router all speak MQTT topic
semantics (MQTT 3.1.1 §4.7), so they share these two value types: a :class:`Topic` is what a
message is published to (no wildcards); a :class:`TopicFilter` is what a subscriber asks for
(``+`` matches one level, ``#`` the rest, both only as whole levels). Filters that start with a
wildcard never match topics starting with ``$`` (``$aws/...`` system topics).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sprig.errors import ValidationError

MAX_TOPIC_BYTES = 65535


class InvalidTopic(ValidationError):
    """A topic or filter breaks an MQTT rule; the message names the topic and the rule."""


def _check_common(kind: str, text: object, path: str) -> str:
    if not isinstance(text, str):
        raise InvalidTopic(path, f"the {kind} must be a string", value=text,
                           allowed="a UTF-8 string of 1 to 65535 bytes")
    if text == "":
        raise InvalidTopic(path, f"the {kind} is empty", value=text, has_value=True,
                           allowed="a UTF-8 string of 1 to 65535 bytes")
    if "\x00" in text:
        raise InvalidTopic(path, f"the {kind} contains a NUL character", value=text,
                           allowed="any characters but U+0000")
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidTopic(path, f"the {kind} is not valid UTF-8 (lone surrogate)", value=text,
                           allowed="a UTF-8 string") from None
    if size > MAX_TOPIC_BYTES:
        raise InvalidTopic(path, f"the {kind} is {size} bytes long in UTF-8",
                           value=text[:64] + "...", allowed=f"at most {MAX_TOPIC_BYTES} bytes")
    return text


@dataclass(frozen=True)
class Topic:
    """A topic name a message is published to: no ``+`` or ``#``; empty levels are allowed."""

    value: str
    levels: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        text = _check_common("topic", self.value, "topic")
        if "+" in text or "#" in text:
            raise InvalidTopic("topic", "wildcards '+' and '#' are not allowed in a topic name "
                               "(only in subscription filters)", value=text,
                               allowed="a topic without '+' or '#'")
        object.__setattr__(self, "levels", tuple(text.split("/")))

    @classmethod
    def parse(cls, text: str, *, path: str = "topic") -> Topic:
        """Validate ``text``; errors are reported at ``path``."""
        try:
            return cls(text)
        except InvalidTopic as e:
            raise InvalidTopic(path, e.message, value=e.value, allowed=e.allowed,
                               source=e.source, has_value=e.has_value) from None

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class TopicFilter:
    """A subscription filter: ``+`` (one level) and ``#`` (the rest, last level only)."""

    value: str
    levels: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        text = _check_common("topic filter", self.value, "topicFilter")
        levels = tuple(text.split("/"))
        for i, level in enumerate(levels):
            if "#" in level and (level != "#" or i != len(levels) - 1):
                raise InvalidTopic("topicFilter", "'#' must be a whole level and the last one",
                                   value=text, allowed="e.g. 'a/#' or '#'")
            if "+" in level and level != "+":
                raise InvalidTopic("topicFilter", "'+' must be a whole level", value=text,
                                   allowed="e.g. 'a/+/c'")
        object.__setattr__(self, "levels", levels)

    @classmethod
    def parse(cls, text: str, *, path: str = "topicFilter") -> TopicFilter:
        """Validate ``text``; errors are reported at ``path``."""
        try:
            return cls(text)
        except InvalidTopic as e:
            raise InvalidTopic(path, e.message, value=e.value, allowed=e.allowed,
                               source=e.source, has_value=e.has_value) from None

    @property
    def has_wildcards(self) -> bool:
        return "+" in self.levels or "#" in self.levels

    def matches(self, topic: Topic | str) -> bool:
        """True if ``topic`` matches this filter under MQTT rules (including the ``$`` rule)."""
        levels = topic.levels if isinstance(topic, Topic) else Topic(topic).levels
        return match_levels(self.levels, levels)

    def __str__(self) -> str:
        return self.value


def match_levels(filt: tuple[str, ...], topic: tuple[str, ...]) -> bool:
    """MQTT matching on pre-split levels (pure; validated input assumed)."""
    if topic[0].startswith("$") and filt[0] in ("+", "#"):
        return False
    for i, f in enumerate(filt):
        if f == "#":
            return True          # also matches the parent level: 'a/#' matches 'a'
        if i >= len(topic):
            return False
        if f != "+" and f != topic[i]:
            return False
    return len(filt) == len(topic)
