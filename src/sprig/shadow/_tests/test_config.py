"""The ShadowManager configuration: every key Greengrass documents is read, anything else or any
bad value is refused naming the field, the value and what is allowed.

Source: the Greengrass "Shadow manager" component page (configuration: ``synchronize``
``coreThing`` / ``shadowDocuments`` / ``direction``, ``strategy`` ``type`` realTime|periodic and
``delay``, ``rateLimits`` ``maxOutboundSyncUpdatesPerSecond`` 100 / ``maxTotalLocalRequestsRate``
200 / ``maxLocalRequestsPerSecondPerThing`` 20, ``shadowDocumentSizeLimitBytes`` default 8192,
at most 30720) and the component's README (``shadowDocumentsMap``).
"""

from __future__ import annotations

from typing import Any

import pytest

from sprig.errors import ValidationError
from sprig.shadow.config import Direction, ShadowId, Strategy, parse_config


def test_defaults() -> None:
    c = parse_config(None, core_thing="Core")
    assert (c.size_limit, c.max_outbound_per_second, c.max_local_total,
            c.max_local_per_thing) == (8192, 100, 200, 20)
    assert c.strategy is Strategy.REAL_TIME and c.direction is Direction.BETWEEN_DEVICE_AND_CLOUD
    assert c.synchronized == frozenset()


def test_every_key_is_read() -> None:
    c = parse_config({
        "shadowDocumentSizeLimitBytes": 30720,
        "rateLimits": {"maxOutboundSyncUpdatesPerSecond": 5, "maxTotalLocalRequestsRate": 50,
                       "maxLocalRequestsPerSecondPerThing": 10},
        "strategy": {"type": "periodic", "delay": 300},
        "synchronize": {
            "direction": "devicetocloud",
            "coreThing": {"classic": False, "namedShadows": ["a", "b"]},
            "shadowDocuments": [{"thingName": "T1"}, {"thingName": "T2", "classic": False,
                                                       "namedShadows": ["x"]}],
            "shadowDocumentsMap": {"T3": {"classic": True}}},
        "accessControl": {}}, core_thing="Core")
    assert c.size_limit == 30720 and c.max_outbound_per_second == 5
    assert c.max_local_total == 50 and c.max_local_per_thing == 10
    assert c.strategy is Strategy.PERIODIC and c.delay_seconds == 300
    assert c.direction is Direction.DEVICE_TO_CLOUD
    assert c.synchronized == {ShadowId("Core", "a"), ShadowId("Core", "b"), ShadowId("T1", ""),
                              ShadowId("T2", "x"), ShadowId("T3", "")}


@pytest.mark.parametrize("cfg,field,words", [
    ({"shadowDocumentSizeLimitBytes": 40000}, "shadowDocumentSizeLimitBytes", "1 to 30720"),
    ({"shadowDocumentSizeLimitBytes": "big"}, "shadowDocumentSizeLimitBytes", "1 to 30720"),
    ({"rateLimits": {"maxOutboundSyncUpdatesPerSecond": 0}},
     "rateLimits.maxOutboundSyncUpdatesPerSecond", "greater than 0"),
    ({"rateLimits": {"maxLocalRequestsPerThing": 5}}, "rateLimits.maxLocalRequestsPerThing",
     "maxLocalRequestsPerSecondPerThing"),
    ({"strategy": {"type": "sometimes"}}, "strategy.type", "realTime, periodic"),
    ({"strategy": {"type": "periodic"}}, "strategy.delay", "greater than 0"),
    ({"strategy": {"type": "realTime", "delay": 5}}, "strategy.delay", "periodic"),
    ({"synchronize": {"direction": "sideways"}}, "synchronize.direction",
     "betweenDeviceAndCloud, deviceToCloud, cloudToDevice"),
    ({"synchronize": {"coreThing": {"namedShadow": ["a"]}}}, "synchronize.coreThing.namedShadow",
     "classic, namedShadows"),
    ({"synchronize": {"coreThing": {"classic": "yes"}}}, "synchronize.coreThing.classic",
     "true"),
    ({"synchronize": {"coreThing": {"namedShadows": ["bad/name"]}}},
     "synchronize.coreThing.namedShadows[0]", "a-z A-Z 0-9"),
    ({"synchronize": {"shadowDocuments": [{"classic": True}]}},
     "synchronize.shadowDocuments[0].thingName", "1 to 128"),
    ({"synchronize": {"shadowDocuments": {"T": {}}}}, "synchronize.shadowDocuments",
     "thingName"),
    ({"synchronize": {"things": []}}, "synchronize.things", "coreThing"),
    ({"sync": {}}, "sync", "synchronize"),
])
def test_bad_values_are_refused_with_field_value_and_allowed(cfg: dict[str, Any], field: str,
                                                             words: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_config(cfg, core_thing="Core", source="aws.greengrass.ShadowManager configuration")
    e = info.value
    assert e.path == field and words in (e.allowed or ""), str(e)
    assert str(e).startswith("aws.greengrass.ShadowManager configuration: ")


def test_core_thing_needs_a_thing_name() -> None:
    with pytest.raises(ValidationError, match="thingName"):
        parse_config({"synchronize": {"coreThing": {}}}, core_thing=None)
