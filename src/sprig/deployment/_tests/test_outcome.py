"""A finished deployment's stable codes (``statusDetails``): pure, no core."""

from __future__ import annotations

from sprig.deployment.outcome import (
    DetailedStatus,
    ErrorCode,
    ErrorType,
    StatusDetails,
    failed,
    refused,
    succeeded,
)
from sprig.disk import DiskFull
from sprig.errors import SprigError, ValidationError


def test_success_has_no_error() -> None:
    assert succeeded().to_json() == {
        "detailed-deployment-status": "SUCCESSFUL", "deployment-failure-cause": "",
        "deployment-error-stack": [], "deployment-error-types": []}


def test_a_broken_user_component_rolled_back() -> None:
    details = failed("component com.example.A BROKEN (exit 1)", ["com.example.A"],
                     rollback=True)
    assert details.detailed_status is DetailedStatus.FAILED_ROLLBACK_COMPLETE
    assert details.error_stack == (ErrorCode.DEPLOYMENT_FAILURE,
                                   ErrorCode.COMPONENT_UPDATE_ERROR, ErrorCode.COMPONENT_BROKEN)
    assert details.error_types == (ErrorType.USER_COMPONENT_ERROR,)
    assert details.failure_cause.startswith("component com.example.A BROKEN")


def test_do_nothing_and_an_aws_component() -> None:
    details = failed("x", ["aws.greengrass.Cli", "com.example.B"], rollback=False)
    assert details.detailed_status is DetailedStatus.FAILED_ROLLBACK_NOT_REQUESTED
    assert details.error_types == (ErrorType.AWS_COMPONENT_ERROR, ErrorType.USER_COMPONENT_ERROR)


def test_a_timeout_names_no_component_type() -> None:
    details = failed("timed out", [], rollback=True)
    assert details.error_stack == (ErrorCode.DEPLOYMENT_FAILURE,
                                   ErrorCode.COMPONENT_UPDATE_ERROR)
    assert details.error_types == ()


def test_a_failed_rollback() -> None:
    assert failed("x", ["a"], rollback=True, rollback_failed=True).detailed_status \
        is DetailedStatus.FAILED_UNABLE_TO_ROLLBACK


def test_refusals_change_nothing_and_say_why() -> None:
    config = refused(ValidationError("configurationUpdate.com.example.A", "bad merge"))
    assert config.detailed_status is DetailedStatus.FAILED_NO_STATE_CHANGE
    assert config.error_stack == (ErrorCode.DEPLOYMENT_FAILURE,
                                  ErrorCode.COMPONENT_CONFIGURATION_NOT_VALID)
    assert config.failure_cause.startswith("rejected: configurationUpdate.com.example.A")
    assert refused(ValidationError("runWith/systemLimits.a", "not part")).error_stack[-1] \
        is ErrorCode.RUN_WITH_CONFIG_NOT_VALID
    assert refused(ValidationError("remove.a", "component is not deployed")).error_stack[-1] \
        is ErrorCode.NO_AVAILABLE_COMPONENT_VERSION
    disk = refused(DiskFull("/var/lib/sprig", "no space"))
    assert disk.error_stack[-1] is ErrorCode.DISK_SPACE_CRITICAL
    assert disk.error_types == (ErrorType.DEVICE_ERROR,)
    assert refused(SprigError("?")).error_stack[-1] is ErrorCode.DEPLOYMENT_DOCUMENT_NOT_VALID


def test_json_round_trip_and_unknown_codes_are_dropped() -> None:
    details = failed("x", ["a"], rollback=True)
    assert StatusDetails.from_json(details.to_json()) == details
    doc = {**details.to_json(), "deployment-error-stack": ["DEPLOYMENT_FAILURE", "NEWER_CODE"]}
    assert StatusDetails.from_json(doc).error_stack == (ErrorCode.DEPLOYMENT_FAILURE,)


def test_every_code_has_a_type() -> None:
    from sprig.deployment.outcome import ERROR_TYPES
    assert set(ERROR_TYPES) == set(ErrorCode)


def test_a_component_refusing_its_configuration_changes_nothing() -> None:
    from sprig.deployment.outcome import configuration_refused

    details = configuration_refused("com.example.A refused the configuration: bad")
    assert details.detailed_status is DetailedStatus.FAILED_NO_STATE_CHANGE
    assert details.error_stack[-1] is ErrorCode.COMPONENT_CONFIGURATION_NOT_VALID
