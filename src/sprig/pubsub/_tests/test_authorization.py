from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sprig.errors import ValidationError
from sprig.pubsub.authorization import (
    PUBLISH_TO_IOT_CORE,
    PUBLISH_TO_TOPIC,
    SUBSCRIBE_TO_IOT_CORE,
    SUBSCRIBE_TO_TOPIC,
    AuthorizationError,
    IpcService,
    authorize,
    check,
    resource_matches,
    validate_access_control,
)
from sprig.pubsub.topic import TopicFilter

PUBSUB = IpcService.PUBSUB
MQTT = IpcService.MQTT_PROXY


def policies(service: str, ops: list[str], resources: list[str]) -> dict[str, object]:
    return {service: {"c:1": {"policyDescription": "d", "operations": ops,
                              "resources": resources}}}


# (service, policy resource, requested resource, allowed) — reference §7.4
TABLE = [
    (PUBSUB, "*", "any/topic/at/all", True),
    (PUBSUB, "a/b", "a/b", True),
    (PUBSUB, "a/b", "a/c", False),
    (PUBSUB, "sensors/*", "sensors/x/y", True),      # '*' crosses levels
    (PUBSUB, "s*s/t", "sensors/t", True),             # partial '*'
    (PUBSUB, "a/+", "a/b", False),                    # MQTT wildcards literal for pubsub
    (PUBSUB, "a/+", "a/+", True),
    (PUBSUB, "a/#", "a/b/c", False),
    (PUBSUB, "a/#", "a/#", True),
    (PUBSUB, "a?", "ab", False),                      # '?' is not a wildcard
    (PUBSUB, "a?", "a?", True),
    (PUBSUB, "a/${*}", "a/*", True),                  # escapes
    (PUBSUB, "a/${*}", "a/b", False),
    (PUBSUB, "${$}aws/${?}", "$aws/?", True),
    (MQTT, "*", "x/y", True),
    (MQTT, "a/+/c", "a/b/c", True),
    (MQTT, "a/+/c", "a/b/d/c", False),
    (MQTT, "a/#", "a", True),
    (MQTT, "a/#", "a/b/c", True),
    (MQTT, "a/#", "ab", False),
    (MQTT, "a/#", "a/#", True),                       # subscribing with the same filter
    (MQTT, "a/+", "a/#", False),                      # a broader filter is not granted
    (MQTT, "a/+", "a/+", True),
    (MQTT, "a/b#", "a/bc", False),                    # misplaced '#' is literal
    (MQTT, "a/*bc/#", "a/xyzbc/1/2", True),           # '*' and '#' together
    (MQTT, "+/+", "/x", True),
    (MQTT, "+", "/x", False),
]


@pytest.mark.parametrize(("service", "pattern", "resource", "allowed"), TABLE)
def test_table(service: str, pattern: str, resource: str, allowed: bool) -> None:
    op = PUBLISH_TO_TOPIC if service == PUBSUB else PUBLISH_TO_IOT_CORE
    assert authorize(policies(service, [op], [pattern]), service, op, resource) is allowed
    assert resource_matches(pattern, resource, mqtt=service == MQTT) is allowed


def test_operation_must_be_listed_or_star() -> None:
    p = policies(PUBSUB, [PUBLISH_TO_TOPIC], ["*"])
    assert authorize(p, PUBSUB, PUBLISH_TO_TOPIC, "t")
    assert not authorize(p, PUBSUB, SUBSCRIBE_TO_TOPIC, "t")
    assert authorize(policies(PUBSUB, ["*"], ["*"]), PUBSUB, SUBSCRIBE_TO_TOPIC, "t")
    # another service's policy does not count
    assert not authorize(policies(MQTT, ["*"], ["*"]), PUBSUB, PUBLISH_TO_TOPIC, "t")
    assert not authorize(None, PUBSUB, PUBLISH_TO_TOPIC, "t")
    assert not authorize({}, MQTT, SUBSCRIBE_TO_IOT_CORE, "t")


def test_any_of_several_policies() -> None:
    p = {PUBSUB: {
        "x:1": {"operations": [SUBSCRIBE_TO_TOPIC], "resources": ["a"]},
        "x:2": {"operations": [PUBLISH_TO_TOPIC], "resources": ["b", "c/*"]},
    }}
    assert authorize(p, PUBSUB, PUBLISH_TO_TOPIC, "c/d")
    assert not authorize(p, PUBSUB, PUBLISH_TO_TOPIC, "a")


def test_check_message_names_component_operation_resource() -> None:
    with pytest.raises(AuthorizationError) as ei:
        check("com.example.Pub", {}, PUBSUB, PUBLISH_TO_TOPIC, "secret/topic")
    text = str(ei.value)
    assert "com.example.Pub" in text and PUBLISH_TO_TOPIC in text and "secret/topic" in text


def test_validate_access_control() -> None:
    validate_access_control(policies(PUBSUB, [PUBLISH_TO_TOPIC], ["*"]))
    with pytest.raises(ValidationError, match=r"operations.*unknown operation.*PublishToTopi"):
        validate_access_control(policies(PUBSUB, ["aws.greengrass#PublishToTopi"], ["*"]))
    with pytest.raises(ValidationError, match=r"resources: must be a non-empty list"):
        validate_access_control(policies(PUBSUB, ["*"], []))
    with pytest.raises(ValidationError, match=r"accessControl: must be an object"):
        validate_access_control(["x"])


# --- properties ------------------------------------------------------------------------------

_level = st.sampled_from(["a", "b", "", "ab"])
_topic = st.lists(_level, min_size=1, max_size=4).map("/".join).filter(bool)
_flevel = st.sampled_from(["a", "b", "", "+"])
_filter = st.builds(lambda levels, hash_: "/".join(levels + (["#"] if hash_ else [])),
                    st.lists(_flevel, min_size=0, max_size=3), st.booleans()).filter(bool)


@given(_filter, _topic)
def test_mqttproxy_policy_is_mqtt_matching(filt: str, topic: str) -> None:
    """A policy resource that is a plain MQTT filter grants exactly the topics it matches."""
    assert resource_matches(filt, topic, mqtt=True) is TopicFilter(filt).matches(topic)


@given(_topic, _topic)
def test_pubsub_star_suffix_is_prefix_match(prefix: str, rest: str) -> None:
    assert resource_matches(prefix + "*", prefix + rest, mqtt=False)
    assert resource_matches(prefix + "*", rest, mqtt=False) is rest.startswith(prefix)


@given(_filter)
def test_pubsub_wildcards_are_literal(filt: str) -> None:
    assert resource_matches(filt, filt, mqtt=False)
    concrete = filt.replace("+", "x").replace("#", "y")
    assert resource_matches(filt, concrete, mqtt=False) is (concrete == filt)
