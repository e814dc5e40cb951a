"""Properties: for any valid parameters, recipe configuration → export gives them back, also
after a device turned the numbers into floats; and validated documents re-validate unchanged."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sprig.lambda_import.documents import check_lambda_parameters
from sprig.lambda_import.export import (
    configuration_to_lambda_parameters,
    lambda_parameters_to_document,
)
from sprig.lambda_import.model import (
    RANGES,
    ContainerParams,
    DeviceMount,
    EncodingType,
    EventSource,
    EventSourceType,
    IsolationMode,
    LambdaParameters,
    Permission,
    VolumeMount,
)
from sprig.lambda_import.params import build_parameters
from sprig.lambda_import.recipe import default_configuration

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=12)
paths = st.lists(names, min_size=1, max_size=3).map(lambda parts: "/" + "/".join(parts))


def ranged(name: str) -> st.SearchStrategy[int]:
    r = RANGES[name]
    return st.integers(r.min, r.max)


params_strategy = st.builds(
    LambdaParameters,
    event_sources=st.lists(st.builds(EventSource, names, st.sampled_from(EventSourceType)),
                           max_size=3).map(tuple),
    max_queue_size=ranged("maxQueueSize"),
    max_instances_count=ranged("maxInstancesCount"),
    max_idle_time_in_seconds=ranged("maxIdleTimeInSeconds"),
    timeout_in_seconds=ranged("timeoutInSeconds"),
    status_timeout_in_seconds=ranged("statusTimeoutInSeconds"),
    pinned=st.booleans(),
    input_payload_encoding_type=st.sampled_from(EncodingType),
    exec_args=st.just(()),
    environment_variables=st.dictionaries(names, st.text(max_size=10), max_size=3),
    isolation_mode=st.sampled_from(IsolationMode),
    container_params=st.builds(
        ContainerParams,
        memory_size_kb=ranged("memorySizeInKB"),
        mount_ro_sysfs=st.booleans(),
        volumes=st.lists(st.builds(VolumeMount, paths.map(lambda p: "/srv" + p),
                                   paths.map(lambda p: "/mnt" + p),
                                   st.sampled_from(Permission), st.booleans()),
                         max_size=3).map(tuple),
        devices=st.lists(st.builds(DeviceMount, paths.map(lambda p: "/dev" + p),
                                   st.sampled_from(Permission), st.booleans()),
                         max_size=3).map(tuple)),
)


def _floats(value: Any) -> Any:
    """What a device's configuration store may make of the numbers: floats."""
    if isinstance(value, dict):
        return {k: _floats(v) for k, v in value.items()}
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


@settings(max_examples=150, deadline=None)
@given(params_strategy)
def test_configuration_round_trip(params: LambdaParameters) -> None:
    config = default_configuration(params)
    expected = lambda_parameters_to_document(params)
    assert configuration_to_lambda_parameters(config) == expected
    assert configuration_to_lambda_parameters(_floats(json.loads(json.dumps(config)))) == \
        expected


@settings(max_examples=150, deadline=None)
@given(params_strategy)
def test_exported_parameters_validate_and_rebuild_the_same(params: LambdaParameters) -> None:
    doc = lambda_parameters_to_document(params)
    checked = check_lambda_parameters(doc, "componentLambdaParameters", "test")
    assert build_parameters(checked) == params
