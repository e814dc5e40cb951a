"""The fleet's pure parts: the ``fleet:`` settings, the deployment document, the union of
targets, the rollout policy, the status words and the Fleet Status message."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sprig.deployment.request import UpdatePolicy
from sprig.errors import ValidationError
from sprig.fleet.device_state import ExecutionRecord
from sprig.fleet.document import parse_document
from sprig.fleet.health import ComponentInfo, health_message
from sprig.fleet.rollout import (
    RolloutConfig,
    abort_reason,
    current_rate,
    next_notify_at,
    timed_out,
)
from sprig.fleet.status import classify_local_failure, error_types, failed, rejected
from sprig.fleet.targets import TargetRoots, VersionConflict, plan_roots
from sprig.fleet.topics import FleetTopics, Target, target_of_configuration_arn
from sprig.fleet_settings import FleetSettings
from sprig.settings import CoreSettings

STORE = {"uri": "s3://my-bucket/sprig", "endpoint": "http://127.0.0.1:9000"}


# -- settings ------------------------------------------------------------------------------

def test_fleet_settings_are_read_with_their_defaults() -> None:
    s = FleetSettings.from_mapping({"thingGroups": ["line-1"], "store": STORE}, "config.yaml")
    assert s.thing_groups == ("line-1",) and s.topic_prefix == "sprig"
    assert s.status_interval_s == 86_400
    assert (s.store.bucket, s.store.prefix, s.store.path_style) == ("my-bucket", "sprig", True)
    short = FleetSettings.from_mapping({"thingGroups": [], "store": "s3://b-1"}, "c")
    assert short.store.prefix == "" and not short.store.path_style


@pytest.mark.parametrize(("cfg", "where", "words"), [
    ({"thingGroups": ["a"], "store": STORE, "thingGroup": "a"}, "fleet.thingGroup",
     "unknown key"),
    ({"store": STORE}, "fleet.thingGroups", "is required"),
    ({"thingGroups": ["a b"], "store": STORE}, "fleet.thingGroups", "not a valid"),
    ({"thingGroups": ["a", "a"], "store": STORE}, "fleet.thingGroups", "twice"),
    ({"thingGroups": ["a"]}, "fleet.store", "is required"),
    ({"thingGroups": ["a"], "store": "http://bucket"}, "fleet.store.uri", "s3://"),
    ({"thingGroups": ["a"], "store": "s3://Bad_Bucket"}, "fleet.store.uri", "bucket name"),
    ({"thingGroups": ["a"], "store": {**STORE, "endpoint": "ftp://x"}}, "fleet.store.endpoint",
     "http(s)"),
    ({"thingGroups": ["a"], "store": {**STORE, "addressing": "dns"}},
     "fleet.store.addressing", "unknown"),
    ({"thingGroups": ["a"], "store": {**STORE, "bucket": "x"}}, "fleet.store.bucket",
     "unknown key"),
    ({"thingGroups": ["a"], "store": STORE, "topicPrefix": "sprig/#"}, "fleet.topicPrefix",
     "wildcards"),
    ({"thingGroups": ["a"], "store": STORE, "topicPrefix": "$aws"}, "fleet.topicPrefix", "'$'"),
    ({"thingGroups": ["a"], "store": STORE, "statusPublishIntervalSeconds": 5},
     "fleet.statusPublishIntervalSeconds", "from 60"),
])
def test_every_fleet_key_is_honoured_or_refused_by_name(cfg: dict[str, Any], where: str,
                                                        words: str) -> None:
    with pytest.raises(ValidationError) as err:
        FleetSettings.from_mapping(cfg, "config.yaml")
    assert err.value.path == where and words in str(err.value), str(err.value)
    assert "config.yaml" in str(err.value)


def test_a_fleet_needs_a_broker() -> None:
    with pytest.raises(ValidationError) as err:
        CoreSettings.from_mapping({"fleet": {"thingGroups": ["a"], "store": STORE}}, "c.yaml")
    assert err.value.path == "fleet" and "mqtt" in str(err.value)
    ok = CoreSettings.from_mapping({"mqtt": {"host": "localhost"},
                                    "fleet": {"thingGroups": ["a"], "store": STORE}}, "c.yaml")
    assert ok.fleet is not None and ok.fleet.thing_groups == ("a",)


# -- topics and targets ---------------------------------------------------------------------

def test_topics_and_targets_round_trip() -> None:
    t = FleetTopics("plant/sprig")
    g = Target("thinggroup", "line-1")
    assert t.notify("dev1", g) == "plant/sprig/things/dev1/jobs/thinggroup/line-1/notify"
    assert t.parse_job_topic(t.update("dev1", g)) == ("dev1", g, "update")
    assert t.parse_job_topic("plant/sprig/things/dev1/jobs/thinggroup/line-1/other") is None
    assert t.thing_of(t.presence("dev-9"), "presence") == "dev-9"
    assert t.target_of_deployment_topic(t.deployment(g)) == g
    arn = g.configuration_arn("eu-west-1", 7)
    assert target_of_configuration_arn(arn) == g
    assert target_of_configuration_arn(
        "arn:aws:greengrass:us-east-1:123456789012:configuration:thing/core-1:3") == \
        Target("thing", "core-1")
    with pytest.raises(ValidationError):
        target_of_configuration_arn("arn:aws:iot:us-east-1:1:thinggroup/x")


# -- the deployment document ----------------------------------------------------------------

def _doc(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "deploymentId": "d-1", "creationTimestamp": 1700000000000,
        "configurationArn": "arn:aws:greengrass:us-east-1:000000000000:configuration:"
                            "thinggroup/line-1:2",
        "components": {"com.example.App": {
            "version": "1.2.0",
            "configurationUpdate": {"merge": {"greeting": "hi"}, "reset": ["/old"]},
            "runWith": {"posixUser": "app:app",
                        "systemResourceLimits": {"memory": 102400, "cpus": 0.5}}}},
        "failureHandlingPolicy": "DO_NOTHING",
        "componentUpdatePolicy": {"timeout": 120, "action": "SKIP_NOTIFY_COMPONENTS"},
        "requiredCapabilities": ["LINUX_RESOURCE_LIMITS"]}
    doc.update(changes)
    return doc


def test_the_greengrass_document_becomes_a_local_deployment() -> None:
    dep = parse_document(_doc())
    assert dep.target == Target("thinggroup", "line-1") and dep.versions == {
        "com.example.App": "1.2.0"}
    req = dep.request({"com.example.App": "1.2.0", "Other": "1.0.0"}, ["Gone"])
    assert req.merge == {"com.example.App": "1.2.0", "Other": "1.0.0"}
    assert req.remove == ("Gone",) and req.failure_handling == "DO_NOTHING"
    update = req.config_updates["com.example.App"]
    assert update.merge == {"greeting": "hi"} and update.reset == ("/old",)
    assert req.run_with == {"com.example.App": {"posixUser": "app:app"}}
    assert req.system_limits == {"com.example.App": {"memory": 102400, "cpus": 0.5}}
    # The document's policies reach the deployment (components notified or not, how long).
    assert req.update_policy == UpdatePolicy("SKIP_NOTIFY_COMPONENTS", 120)
    assert req.validation_timeout_s == 30
    plain = parse_document(_doc(componentUpdatePolicy=None, configurationValidationPolicy={
        "timeoutInSeconds": 7})).request({"com.example.App": "1.2.0"}, [])
    assert plain.update_policy == UpdatePolicy("NOTIFY_COMPONENTS", 60)   # a cloud default
    assert plain.validation_timeout_s == 7


def test_the_api_spellings_are_accepted() -> None:
    doc = _doc(components={"X": {"componentVersion": "2.0.0", "configurationUpdate": {
        "merge": json.dumps({"a": 1})}}})
    doc["componentUpdatePolicy"] = {"timeoutInSeconds": 30, "action": "NOTIFY_COMPONENTS"}
    dep = parse_document(doc)
    assert dep.versions == {"X": "2.0.0"} and dep.update_timeout_s == 30
    cu = dep.components["X"].configuration_update
    assert cu is not None and cu.merge == {"a": 1}


@pytest.mark.parametrize(("changes", "where"), [
    ({"deploymentId": "a/b"}, "deploymentId"),
    ({"creationTimestamp": "yesterday"}, "creationTimestamp"),
    ({"configurationArn": "thinggroup/x"}, "configurationArn"),
    ({"failureHandlingPolicy": "RETRY"}, "failureHandlingPolicy"),
    ({"components": {"X": {"version": "latest"}}}, "components.X.version"),
    ({"components": {"X": {"version": "1.0.0", "runWith": {"windowsUser": "a"}}}},
     "components.X.runWith.windowsUser"),
    ({"components": {"X": {"version": "1.0.0", "runWith": {
        "systemResourceLimits": {"memory": 10}}}}},
     "components.X.runWith.systemResourceLimits.memory"),
    ({"componentUpdatePolicy": {"action": "NOTIFY"}}, "componentUpdatePolicy.action"),
    ({"parentTargetArn": "arn:..."}, "parentTargetArn"),
])
def test_a_bad_document_is_refused_naming_the_field(changes: dict[str, Any],
                                                    where: str) -> None:
    with pytest.raises(ValidationError) as err:
        parse_document(_doc(**changes))
    assert err.value.path == where, str(err.value)


# -- the union of targets -------------------------------------------------------------------

def test_each_target_replaces_only_its_own_roots() -> None:
    mapping = {"thinggroup/X": TargetRoots("d1", 1, "arn1", {"A": "1.0.0", "B": "1.0.0"})}
    plan = plan_roots(mapping, "thinggroup/Y", {"B": "1.0.0", "C": "1.0.0"},
                      {"A": "1.0.0", "B": "1.0.0", "Local": "3.0.0"})
    assert plan.versions == {"A": "1.0.0", "B": "1.0.0", "C": "1.0.0", "Local": "3.0.0"}
    assert plan.remove == [] and plan.owners["B"] == ["thinggroup/X", "thinggroup/Y"]
    assert plan.owners["Local"] == ["LOCAL_DEPLOYMENTS"]
    # X drops B: Y keeps it. X drops A: nobody wants it.
    mapping["thinggroup/Y"] = TargetRoots("d2", 2, "arn2", {"B": "1.0.0", "C": "1.0.0"})
    plan = plan_roots(mapping, "thinggroup/X", {}, plan.versions)
    assert plan.remove == ["A"] and "B" in plan.versions


def test_two_targets_wanting_two_versions_fail_naming_both() -> None:
    mapping = {"thinggroup/X": TargetRoots("d1", 1, "arn1", {"A": "1.0.0"})}
    with pytest.raises(VersionConflict) as err:
        plan_roots(mapping, "thinggroup/Y", {"A": "2.0.0"}, {"A": "1.0.0"})
    assert "thinggroup/X requires A 1.0.0" in str(err.value)
    assert "thinggroup/Y requires 2.0.0" in str(err.value)


# -- the rollout ----------------------------------------------------------------------------

def test_rollout_configuration_uses_iot_names_and_ranges() -> None:
    doc = {"jobExecutionsRolloutConfig": {"maximumPerMinute": 50, "exponentialRate": {
        "baseRatePerMinute": 5, "incrementFactor": 2,
        "rateIncreaseCriteria": {"numberOfNotifiedThings": 10}}},
        "abortConfig": {"criteriaList": [{"failureType": "ALL", "action": "CANCEL",
                                          "thresholdPercentage": 5,
                                          "minNumberOfExecutedThings": 100}]},
        "timeoutConfig": {"inProgressTimeoutInMinutes": 5}}
    cfg = RolloutConfig.from_json(doc)
    assert RolloutConfig.from_json(cfg.to_json()) == cfg
    assert current_rate(cfg, 0, 0) == 5 and current_rate(cfg, 10, 0) == 10
    assert current_rate(cfg, 30, 0) == 40 and current_rate(cfg, 100, 0) == 50   # the cap


@pytest.mark.parametrize(("doc", "where"), [
    ({"jobExecutionsRolloutConfig": {"maximumPerMinute": 1001}},
     "iotJobConfiguration.jobExecutionsRolloutConfig.maximumPerMinute"),
    ({"abortConfig": {"criteriaList": [{"failureType": "SOME", "thresholdPercentage": 5,
                                        "minNumberOfExecutedThings": 1}]}},
     "iotJobConfiguration.abortConfig.criteriaList[0].failureType"),
    ({"abortConfig": {"criteriaList": [{"failureType": "ALL", "thresholdPercentage": 101,
                                        "minNumberOfExecutedThings": 1}]}},
     "iotJobConfiguration.abortConfig.criteriaList[0].thresholdPercentage"),
    ({"timeoutConfig": {"inProgressTimeoutInMinutes": 10081}},
     "iotJobConfiguration.timeoutConfig.inProgressTimeoutInMinutes"),
    ({"retryConfig": {}}, "iotJobConfiguration.retryConfig"),
])
def test_rollout_values_out_of_range_are_refused(doc: dict[str, Any], where: str) -> None:
    with pytest.raises(ValidationError) as err:
        RolloutConfig.from_json(doc)
    assert err.value.path == where, str(err.value)


def test_the_rate_spaces_notifications_evenly() -> None:
    cfg = RolloutConfig(maximum_per_minute=600)
    assert next_notify_at(cfg, None, 0, 0) == float("-inf")
    assert next_notify_at(cfg, 100.0, 1, 0) == pytest.approx(100.1)
    assert next_notify_at(RolloutConfig(), 100.0, 1, 0) == float("-inf")


def test_abort_fires_at_the_threshold_after_the_minimum() -> None:
    cfg = RolloutConfig.from_json({"abortConfig": {"criteriaList": [
        {"failureType": "FAILED", "action": "CANCEL", "thresholdPercentage": 10,
         "minNumberOfExecutedThings": 20}]}})
    assert abort_reason(cfg, ["FAILED"] * 5) is None                       # not 20 yet
    assert abort_reason(cfg, ["SUCCEEDED"] * 18 + ["FAILED"]) is None
    reason = abort_reason(cfg, ["SUCCEEDED"] * 18 + ["FAILED"] * 2)
    assert reason is not None and "2 of 20" in reason
    assert abort_reason(cfg, ["SUCCEEDED"] * 18 + ["REJECTED"] * 2) is None  # not FAILED


def test_timeouts_count_from_in_progress() -> None:
    cfg = RolloutConfig(timeout_minutes=1)
    assert timed_out(cfg, {"a": 0.0, "b": 30.0}, 61.0) == ["a"]
    assert timed_out(RolloutConfig(), {"a": 0.0}, 10_000.0) == []


# -- statuses and health --------------------------------------------------------------------

def test_status_details_use_the_nucleus_words() -> None:
    stale = rejected("older", "REJECTED_STALE_DEPLOYMENT").details()
    assert stale == {"detailed-deployment-status": "REJECTED",
                     "deployment-failure-cause": "older",
                     "deployment-error-stack": ["DEPLOYMENT_REJECTED",
                                                "REJECTED_STALE_DEPLOYMENT"],
                     "deployment-error-types": ["UNKNOWN_ERROR"]}
    digest = failed("bad", "ARTIFACT_CHECKSUM_MISMATCH").details()
    assert digest["deployment-error-types"] == ["COMPONENT_RECIPE_ERROR"]
    broken = classify_local_failure("component X BROKEN (exit 1); rolled back", "ROLLBACK")
    assert broken.detailed == "FAILED_ROLLBACK_COMPLETE"
    assert "COMPONENT_BROKEN" in broken.codes
    kept = classify_local_failure("component X BROKEN (exit 1)", "DO_NOTHING")
    assert kept.detailed == "FAILED_ROLLBACK_NOT_REQUESTED"
    assert error_types(["S3_GET_OBJECT_ACCESS_DENIED", "NETWORK_ERROR"]) == [
        "PERMISSION_ERROR", "NETWORK_ERROR"]


def test_the_fleet_status_message_has_greengrass_fields_and_fits_the_broker() -> None:
    comps = [ComponentInfo(f"com.example.C{i}", "1.0.0", "BROKEN" if i == 3 else "RUNNING",
                           True, "exit 1" if i == 3 else "") for i in range(300)]
    rec = ExecutionRecord("d-1", 5, "FAILED", failed("x", "COMPONENT_BROKEN").details(),
                          configuration_arn="arn:cfg")
    kw: dict[str, Any] = {
        "thing": "dev1", "groups": ["g"], "version": "0.1.0",
        "platform": {"os": "linux", "architecture": "amd64"}, "components": comps,
        "fleet_arns": {"com.example.C0": ["arn:cfg"]}, "trigger": "THING_GROUP_DEPLOYMENT",
        "sequence": 3, "timestamp": 99, "last": ("thinggroup/g", rec)}
    msg = json.loads(health_message(max_bytes=1_000_000, **kw))
    assert {"ggcVersion", "platform", "architecture", "thing", "overallDeviceStatus",
            "sequenceNumber", "timestamp", "messageType", "trigger", "chunkInfo", "components",
            "deploymentInformation"} <= set(msg)
    assert msg["overallDeviceStatus"] == "UNHEALTHY" and msg["thingGroups"] == ["g"]
    c0 = msg["components"][0]
    assert c0 == {"componentName": "com.example.C0", "version": "1.0.0",
                  "fleetConfigArns": ["arn:cfg"], "isRoot": True, "status": "RUNNING",
                  "componentStatusDetails": {"statusCodes": [], "statusReason": ""}}
    info = msg["deploymentInformation"]
    assert info["status"] == "FAILED" and info["deploymentId"] == "d-1"
    assert info["statusDetails"]["errorStack"] == ["DEPLOYMENT_FAILURE", "COMPONENT_BROKEN"]
    small = health_message(max_bytes=8_000, **kw)
    assert len(small) <= 8_000
    assert json.loads(small)["componentsLeftOut"] > 0
