"""The legacy subscription router: where a V1 ``iot-data.publish`` goes (reference §7.3).

Greengrass V2 routes V1 SDK publishes only through the ``aws.greengrass.LegacySubscriptionRouter``
component's ``subscriptions`` config: an object keyed by id whose values are
``{id, source, subject, target}``. ``source`` is ``component:<name>`` or a *versioned* function
ARN; ``subject`` is an MQTT topic or filter; ``target`` is ``cloud``, ``component:<name>`` or a
versioned function ARN (``$LATEST`` is refused, as in Greengrass). ``GGShadowService`` (V1's
local shadow service) may be a target (shadow requests a function may make) or a source (the
shadow service's ``accepted``/``rejected``/``delta``/``documents`` messages it receives).
Parsing validates all of it first; routing is a pure function of the parsed subscriptions, the
publisher and the topic.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sprig.errors import ValidationError
from sprig.pubsub.topic import Topic, TopicFilter

# arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]
_ARN = re.compile(r"^arn:(?P<partition>aws[a-zA-Z-]*):lambda:(?P<region>[a-z0-9-]*):"
                  r"(?P<account>\d{12}|):function:(?P<name>[A-Za-z0-9_-]{1,140})"
                  r"(?::(?P<qualifier>\$LATEST|[A-Za-z0-9_-]{1,128}))?$")


@dataclass(frozen=True)
class FunctionArn:
    """A Lambda function ARN split into its fields."""

    text: str
    region: str
    account: str
    name: str
    qualifier: str | None

    @classmethod
    def parse(cls, text: str) -> FunctionArn | None:
        m = _ARN.match(text)
        if m is None:
            return None
        return cls(text, m["region"], m["account"], m["name"], m["qualifier"])

    @property
    def unqualified(self) -> str:
        return self.text if self.qualifier is None else self.text.rsplit(":", 1)[0]


#: Greengrass V1's name of the local shadow service in subscriptions (the "Local Shadow
#: Service" of the console): a source of shadow responses, a target of shadow requests.
SHADOW_SERVICE = "GGShadowService"


class TargetKind(enum.StrEnum):
    CLOUD = "cloud"
    COMPONENT = "component"
    FUNCTION = "function"
    SHADOW = "shadow"


@dataclass(frozen=True)
class LegacySubscription:
    id: str
    source: str
    subject: TopicFilter
    target: str

    @property
    def target_kind(self) -> TargetKind:
        if self.target == "cloud":
            return TargetKind.CLOUD
        if self.target == SHADOW_SERVICE:
            return TargetKind.SHADOW
        if self.target.startswith("component:"):
            return TargetKind.COMPONENT
        return TargetKind.FUNCTION

    @property
    def target_name(self) -> str:
        """The component name (``component:`` targets) or the ARN (function targets)."""
        return self.target.removeprefix("component:")


_SOURCE_ALLOWED = ("component:<name>, a versioned function ARN (arn:aws:lambda:...:function:f:1) "
                   f"or {SHADOW_SERVICE}")
_TARGET_ALLOWED = f"cloud, component:<name>, a versioned function ARN or {SHADOW_SERVICE}"


def _check_endpoint(value: Any, path: str, *, is_target: bool, source: str | None) -> str:
    allowed = _TARGET_ALLOWED if is_target else _SOURCE_ALLOWED
    if not isinstance(value, str) or not value:
        raise ValidationError(path, "must be a non-empty string", value=value, allowed=allowed,
                              source=source, has_value=True)
    if (is_target and value == "cloud") or value == SHADOW_SERVICE:
        return value
    if value.startswith("component:"):
        if len(value) == len("component:"):
            raise ValidationError(path, "names no component", value=value, allowed=allowed,
                                  source=source)
        return value
    arn = FunctionArn.parse(value)
    if arn is None:
        raise ValidationError(path, "is not a recognised source or target", value=value,
                              allowed=allowed, source=source)
    if arn.qualifier is None or arn.qualifier == "$LATEST":
        raise ValidationError(path, "a function ARN must name a version ($LATEST and "
                              "unversioned ARNs are not routed)", value=value, allowed=allowed,
                              source=source)
    return value


def parse_subscriptions(config: Any, *, path: str = "subscriptions",
                        source: str | None = None) -> tuple[LegacySubscription, ...]:
    """Validate the router's ``subscriptions`` config (``None`` or ``{}``: no subscriptions)."""
    if config is None:
        return ()
    if not isinstance(config, Mapping):
        raise ValidationError(path, "must be an object keyed by subscription id", value=config,
                              allowed="{<id>: {id, source, subject, target}}", source=source,
                              has_value=True)
    out: list[LegacySubscription] = []
    for key, sub in config.items():
        where = f"{path}.{key}"
        if not isinstance(sub, Mapping):
            raise ValidationError(where, "must be an object", value=sub,
                                  allowed="{id, source, subject, target}", source=source,
                                  has_value=True)
        sid = sub.get("id", key)
        if sid != key:
            raise ValidationError(f"{where}.id", "must equal the subscription's key",
                                  value=sid, allowed=repr(key), source=source, has_value=True)
        subject = sub.get("subject")
        if not isinstance(subject, str):
            raise ValidationError(f"{where}.subject", "must be an MQTT topic or filter",
                                  value=subject, allowed="e.g. 'hello/world' or 'sensors/#'",
                                  source=source, has_value=True)
        try:
            filt = TopicFilter.parse(subject, path=f"{where}.subject")
        except ValidationError as e:
            raise e.with_source(source) if source else e from None
        out.append(LegacySubscription(
            str(key),
            _check_endpoint(sub.get("source"), f"{where}.source", is_target=False,
                            source=source),
            filt,
            _check_endpoint(sub.get("target"), f"{where}.target", is_target=True,
                            source=source),
        ))
    return tuple(out)


def route(subscriptions: tuple[LegacySubscription, ...], *, source_arn: str,
          source_component: str, topic: Topic) -> list[LegacySubscription]:
    """The subscriptions a publish from this function on ``topic`` goes to."""
    sources = {source_arn, f"component:{source_component}"}
    return [s for s in subscriptions if s.source in sources and s.subject.matches(topic)]


def no_subscription_message(source_arn: str, topic: str) -> str:
    """Greengrass's exact 400 text for an unrouted publish (reference §6.3)."""
    return (f"No subscription exists for the source {source_arn} and subject {topic}. Deploy and "
            "configure aws.greengrass.LegacySubscriptionRouter component to support publishing "
            "from Lambdas.")
