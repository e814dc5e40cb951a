"""Properties: for any valid parameters, recipe configuration → export gives them back, also
after a device turned the numbers into floats; and validated documents re-validate unchanged."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sprig.functions.config import LambdaConfig
from sprig.lambda_import.documents import (
    check_lambda_parameters,
    config_from_parameters,
    parameters_document,
)
from sprig.lambda_import.export import configuration_to_lambda_parameters
from sprig.lambda_import.recipe import default_configuration
from sprig.lambda_params import (
    BY_FIELD,
    ContainerMode,
    DeviceMount,
    EventSource,
    EventSourceType,
    PayloadEncoding,
    VolumeMount,
)

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=12)
paths = st.lists(names, min_size=1, max_size=3).map(lambda parts: "/" + "/".join(parts))


def ranged(field: str) -> st.SearchStrategy[int]:
    param = BY_FIELD[field]
    return st.integers(param.minimum, param.maximum)


config_strategy = st.builds(
    LambdaConfig,
    event_sources=st.lists(st.builds(EventSource, names, st.sampled_from(EventSourceType)),
                           max_size=3).map(tuple),
    max_queue_size=ranged("max_queue_size"),
    max_instances=ranged("max_instances"),
    max_idle_s=ranged("max_idle_s"),
    timeout_s=ranged("timeout_s"),
    status_timeout_s=ranged("status_timeout_s"),
    pinned=st.booleans(),
    encoding=st.sampled_from(PayloadEncoding),
    # (NUL cannot be in an environment value: the Lambda manager refuses it)
    environment=st.dictionaries(
        names, st.text(st.characters(blacklist_characters="\0"), max_size=10), max_size=3),
    container_mode=st.sampled_from(ContainerMode),
    memory_kb=ranged("memory_kb"),
    mount_ro_sysfs=st.booleans(),
    volumes=st.lists(st.builds(VolumeMount, paths.map(lambda p: "/srv" + p),
                               paths.map(lambda p: "/mnt" + p), st.booleans(), st.booleans()),
                     max_size=3).map(tuple),
    devices=st.lists(st.builds(DeviceMount, paths.map(lambda p: "/dev" + p), st.booleans(),
                               st.booleans()),
                     max_size=3).map(tuple),
)


def _floats(value: Any) -> Any:
    """What a device's configuration store may make of the numbers: floats."""
    if isinstance(value, dict):
        return {k: _floats(v) for k, v in value.items()}
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


@settings(max_examples=150, deadline=None)
@given(config_strategy)
def test_configuration_round_trip(config: LambdaConfig) -> None:
    written = default_configuration(config)
    expected = parameters_document(config)
    assert configuration_to_lambda_parameters(written) == expected
    assert configuration_to_lambda_parameters(_floats(json.loads(json.dumps(written)))) == \
        expected
    # ... and the Lambda manager reads back exactly the value it was written from.
    assert LambdaConfig.from_configuration(written, strict=True) == config


@settings(max_examples=150, deadline=None)
@given(config_strategy, st.lists(st.text(max_size=5), max_size=3).map(tuple))
def test_exported_parameters_validate_and_rebuild_the_same(config: LambdaConfig,
                                                           exec_args: tuple[str, ...]) -> None:
    doc = parameters_document(config, exec_args)
    checked = check_lambda_parameters(doc, "componentLambdaParameters", "test")
    assert config_from_parameters(checked) == (config, exec_args)
