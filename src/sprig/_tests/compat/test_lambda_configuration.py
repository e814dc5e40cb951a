"""The proof that every Lambda configuration key Sprig reads is honoured or refused, never read
and ignored (issue 13): one list of keys (``sprig.lambda_params.CONFIG_KEYS`` and ``SUBKEYS``, from
the one table of Lambda parameters), a
test of each key's effect, the parser reading nothing outside the list, and everything else
refused (``test_config.py``: unknown keys with "did you mean")."""

from __future__ import annotations

import dataclasses
import importlib
import re
from pathlib import Path
from typing import Any

from sprig.functions import config as lambda_config
from sprig.functions.config import LambdaConfig
from sprig.lambda_params import all_config_keys as all_keys

F = "sprig.functions._tests.test_function"
ENV = "sprig.functions._tests.test_worker_env"
SANDBOX = "sprig.launcher._tests.test_sandbox"
COMPAT = "sprig._tests.compat.test_lambda"

#: key -> (the LambdaConfig field it sets, or None for a parent object; tests of its effect)
EFFECTS: dict[str, tuple[str | None, tuple[str, ...]]] = {
    "pinned": ("pinned", (f"{F}::test_pinned_state_env_and_logs",
                          f"{F}::test_on_demand_overlap_up_to_max_instances")),
    "timeoutInSeconds": ("timeout_s", (f"{F}::test_timeout_kills_and_recovers",)),
    "maxIdleTimeInSeconds": ("max_idle_s", (f"{F}::test_idle_workers_are_reaped",)),
    "maxInstancesCount": ("max_instances", (f"{F}::test_on_demand_overlap_up_to_max_instances",)),
    "minInstancesCount": ("min_instances", (
        "sprig.functions._tests.test_min_instances::"
        "test_min_instances_are_started_before_any_invocation",
        "sprig.functions._tests.test_min_instances::test_idle_reaping_keeps_min_instances",
        "sprig._tests.reliability.test_min_instances::"
        "test_first_invocation_after_a_deployment_is_warm")),
    "maxQueueSize": ("max_queue_size", (f"{F}::test_queue_full_and_limits",)),
    "statusTimeoutInSeconds": ("status_timeout_s", (
        f"{COMPAT}::test_status_timeout_bounds_a_pinned_function_s_start",)),
    "inputPayloadEncodingType": ("encoding", (
        f"{ENV}::test_environment",
        "sprig.runtimes.python._tests.test_bootstrap::test_round_trip_state_errors_and_binary")),
    "containerMode": ("container_mode", (
        f"{ENV}::test_launch_spec_no_container_uses_system_limits",
        f"{F}::test_runs_as_the_run_as_user")),
    "containerParams": (None, (f"{ENV}::test_launch_spec_container",)),
    "lambdaExecutionParameters": (None, (f"{ENV}::test_environment",)),
    "pubsubTopics": ("event_sources", (
        "sprig._tests.e2e.test_messaging_e2e::test_pubsub_event_source_invokes_a_function",)),
    "containerParams.memorySize": ("memory_kb", (f"{F}::test_out_of_memory",
                                                 f"{F}::test_greengrass_container_16mb")),
    "containerParams.mountROSysfs": ("mount_ro_sysfs", (
        f"{ENV}::test_launch_spec_container", f"{SANDBOX}::test_sysfs_only_with_mount_ro_sysfs")),
    "containerParams.ephemeralStorageSize": ("ephemeral_storage_kb", (
        f"{ENV}::test_launch_spec_with_ephemeral_storage",
        "sprig._tests.reliability.test_ephemeral_storage::"
        "test_a_capped_function_cannot_fill_the_disk")),
    "containerParams.volumes": ("volumes", (f"{ENV}::test_launch_spec_container",
                                            f"{SANDBOX}::test_isolation")),
    "containerParams.devices": ("devices", (
        f"{ENV}::test_launch_spec_container",
        "sprig.launcher.cgroups._tests.test_cgroups::test_v1_leftover_is_replaced_and_devices_rule")),
    "lambdaExecutionParameters.EnvironmentVariables": ("environment", (
        f"{ENV}::test_environment",
        "sprig._tests.e2e.test_lambda_e2e::"
        "test_pinned_function_keeps_state_and_errors_are_shaped_like_aws")),
    "containerParams.volumes.*.sourcePath": (None, (f"{SANDBOX}::test_isolation",)),
    "containerParams.volumes.*.destinationPath": (None, (f"{SANDBOX}::test_isolation",)),
    "containerParams.volumes.*.permission": (None, (f"{SANDBOX}::test_isolation",)),
    "containerParams.volumes.*.addGroupOwner": (None, (f"{SANDBOX}::test_add_group_owner",)),
    "containerParams.devices.*.path": (None, (f"{ENV}::test_launch_spec_container",)),
    "containerParams.devices.*.permission": (None, (
        "sprig.launcher.cgroups._tests.test_cgroups::test_v1_leftover_is_replaced_and_devices_rule",
        "sprig.launcher._tests.test_capabilities::"
        "test_read_only_devices_need_the_v1_devices_controller_at_deployment")),
    "containerParams.devices.*.addGroupOwner": (None, (f"{SANDBOX}::test_add_group_owner",)),
    "pubsubTopics.*.topic": (None, (
        "sprig.functions._tests.test_event_sources::test_pubsub_and_iotcore_sources_with_wildcards",
    )),
    "pubsubTopics.*.type": (None, (
        "sprig.functions._tests.test_event_sources::test_pubsub_and_iotcore_sources_with_wildcards",
    )),
}

#: A configuration setting every key to something other than its default.
EVERYTHING: dict[str, Any] = {
    "pinned": False, "timeoutInSeconds": 9, "maxIdleTimeInSeconds": 31,
    "maxInstancesCount": 7, "minInstancesCount": 2,
    "maxQueueSize": 11, "statusTimeoutInSeconds": 45,
    "inputPayloadEncodingType": "binary", "containerMode": "NoContainer",
    "containerParams": {"memorySize": 4096, "mountROSysfs": True, "ephemeralStorageSize": 2048,
                        "volumes": {"0": {"sourcePath": "/a", "destinationPath": "/b",
                                          "permission": "rw", "addGroupOwner": True}},
                        "devices": {"0": {"path": "/dev/null", "permission": "rw",
                                          "addGroupOwner": True}}},
    "lambdaExecutionParameters": {"EnvironmentVariables": {"X": "1"}},
    "pubsubTopics": {"0": {"topic": "t/+", "type": "IOT_CORE"}},
}


def test_every_key_sprig_reads_has_a_test_of_its_effect() -> None:
    assert set(EFFECTS) == set(all_keys()), "a key is missing here or in the table"
    for key, (_, tests) in EFFECTS.items():
        assert tests, key
        for ref in tests:
            module, _, name = ref.partition("::")
            assert callable(getattr(importlib.import_module(module), name, None)), (key, ref)


def test_every_key_reaches_the_lambda_manager() -> None:
    """Each key with a field sets it: none is read and dropped on the way."""
    parsed = LambdaConfig.from_configuration(EVERYTHING)
    default = LambdaConfig()
    for key, (fld, _) in EFFECTS.items():
        if fld is not None:
            assert getattr(parsed, fld) != getattr(default, fld), key
    volume, device = parsed.volumes[0], parsed.devices[0]
    assert (volume.source_path, volume.destination_path, volume.writable,
            volume.add_group_owner) == ("/a", "/b", True, True)
    assert (device.path, device.writable, device.add_group_owner) == ("/dev/null", True, True)
    assert dataclasses.asdict(parsed.event_sources[0]) == {"topic": "t/+", "type": "IOT_CORE"}


def test_the_parser_reads_no_key_outside_the_list() -> None:
    """grep: every key name the parser's readers are given literally is in the one list."""
    source = Path(lambda_config.__file__).read_text()
    literals = set(re.findall(
        r'(?:_int|_bool|_enum|_mapping|_abs_path|_entries)\(\w+, "(\w+)"|\.get\("(\w+)"',
        source))
    read = {name for pair in literals for name in pair if name}
    leaves = {key.rsplit(".", 1)[-1] for key in all_keys()}
    assert read, "the scan found nothing: the reader names changed"
    assert read <= leaves, f"read but not in the table: {read - leaves}"
