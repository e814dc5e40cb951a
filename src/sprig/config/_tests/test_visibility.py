"""What a reader may see of a component's configuration."""

from __future__ import annotations

import json
from typing import Any

from sprig.config.visibility import REDACTED, readable_configuration, redact_secrets

LAMBDA = "aws.greengrass.lambda"
SECRETS: dict[str, Any] = {
    "secrets": {"db": {"secretString": "hunter2", "arn": "arn:aws:secretsmanager:x"},
                "blob": {"secretBinary": "c2VjcmV0"}},
    "cloudSecrets": [{"arn": "arn:aws:secretsmanager:x", "secretString": "in a list"}],
}
FUNCTION: dict[str, Any] = {
    "timeoutInSeconds": 3,
    "lambdaExecutionParameters": {"EnvironmentVariables": {"DB_PASSWORD": "s3cret", "N": 1}},
}


def test_secret_values_are_hidden_from_every_reader_the_secret_manager_included() -> None:
    for reader in ("com.example.App", "aws.greengrass.SecretManager"):
        seen = readable_configuration(reader, "aws.greengrass.SecretManager", "generic", SECRETS)
        text = json.dumps(seen)
        assert "hunter2" not in text and "c2VjcmV0" not in text and "in a list" not in text
        assert seen["secrets"]["db"] == {"secretString": REDACTED,
                                         "arn": "arn:aws:secretsmanager:x"}
    assert SECRETS["secrets"]["db"]["secretString"] == "hunter2", "the input is not changed"


def test_a_lambda_component_s_environment_is_its_own() -> None:
    other = readable_configuration("com.example.App", "Fn", LAMBDA, FUNCTION)
    assert other == {"timeoutInSeconds": 3, "lambdaExecutionParameters": {
        "EnvironmentVariables": {"DB_PASSWORD": REDACTED, "N": REDACTED}}}
    assert readable_configuration("Fn", "Fn", LAMBDA, FUNCTION) == FUNCTION
    # A generic component's keys of that name are not environment variables.
    assert readable_configuration("com.example.App", "Gen", "aws.greengrass.generic",
                                  FUNCTION) == FUNCTION
    odd = {"lambdaExecutionParameters": {"EnvironmentVariables": "not a map"}}
    assert readable_configuration("x", "Fn", LAMBDA, odd) == {
        "lambdaExecutionParameters": {"EnvironmentVariables": REDACTED}}
    assert readable_configuration("x", "Fn", LAMBDA, {"lambdaExecutionParameters": 1}) == {
        "lambdaExecutionParameters": 1}


def test_the_answer_is_a_copy() -> None:
    seen = readable_configuration("Fn", "Fn", LAMBDA, FUNCTION)
    seen["lambdaExecutionParameters"]["EnvironmentVariables"]["N"] = 2
    assert FUNCTION["lambdaExecutionParameters"]["EnvironmentVariables"]["N"] == 1


def test_redact_secrets_for_output() -> None:
    assert redact_secrets([{"secretString": "x", "keep": {"secretBinary": "y"}}, 3]) == [
        {"secretString": REDACTED, "keep": {"secretBinary": REDACTED}}, 3]
