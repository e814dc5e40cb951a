"""The deployment's side of component notices: the policies in a deployment document, which
components are asked to validate, and the waiting rules (no IPC: callbacks stand in for the
subscribed components; the IPC round trip is in ``ipc/_tests/test_update_ops.py``)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sprig.deployment.request import DeploymentRequest, UpdatePolicy
from sprig.errors import ValidationError
from sprig.ipc.core import InvalidArgumentsError
from sprig.ipc.notices import (
    ComponentNotices,
    Deferral,
    ValidityReport,
    validation_proposals,
)


def test_policies_round_trip_and_default_to_greengrass_local_values() -> None:
    plain = DeploymentRequest.from_document({"merge": {"a": "1.0.0"}})
    assert plain.update_policy == UpdatePolicy("SKIP_NOTIFY_COMPONENTS", 60)
    assert plain.validation_timeout_s == 20
    assert "componentUpdatePolicy" not in plain.to_document()
    doc = {"merge": {"a": "1.0.0"},
           "componentUpdatePolicy": {"action": "NOTIFY_COMPONENTS", "timeoutInSeconds": 5},
           "configurationValidationPolicy": {"timeout": 7}}
    req = DeploymentRequest.from_document(doc)
    assert req.update_policy == UpdatePolicy("NOTIFY_COMPONENTS", 5)
    assert req.validation_timeout_s == 7
    assert DeploymentRequest.from_document(req.to_document()) == req


@pytest.mark.parametrize(("policy", "field", "words"), [
    ({"componentUpdatePolicy": {"action": "NOTIFY"}}, "componentUpdatePolicy.action",
     "NOTIFY_COMPONENTS, SKIP_NOTIFY_COMPONENTS"),
    ({"componentUpdatePolicy": {"timeoutInSeconds": -1}},
     "componentUpdatePolicy.timeoutInSeconds", "0 to"),
    ({"componentUpdatePolicy": {"timeoutInSecond": 5}},
     "componentUpdatePolicy.timeoutInSecond", "timeoutInSeconds"),
    ({"componentUpdatePolicy": "NOTIFY_COMPONENTS"}, "componentUpdatePolicy", "action"),
    ({"configurationValidationPolicy": {"timeout": 1.5}},
     "configurationValidationPolicy.timeout", "0 to"),
    ({"configurationValidationPolicy": {"timeout": 1, "timeoutInSeconds": 2}},
     "configurationValidationPolicy.timeout", "not both"),
])
def test_bad_policies_are_refused_by_name(policy: dict[str, Any], field: str,
                                          words: str) -> None:
    with pytest.raises(ValidationError) as e:
        DeploymentRequest.from_document({"merge": {"a": "1.0.0"}, **policy})
    assert field in str(e.value) and words in str(e.value)


def test_only_running_components_keeping_their_version_validate() -> None:
    current = {"same": ("1.0.0", {"x": 1}), "bumped": ("1.0.0", {"x": 1}),
               "untouched": ("1.0.0", {"x": 1})}
    target = {"same": ("1.0.0", {"x": 2}), "bumped": ("2.0.0", {"x": 2}),
              "untouched": ("1.0.0", {"x": 1}), "new": ("1.0.0", {"x": 2})}
    assert validation_proposals(current, target) == {"same": {"x": 2}}


async def test_the_longest_deferral_wins_and_everyone_is_asked_again() -> None:
    notices = ComponentNotices()
    asked: list[tuple[str, str]] = []
    answers = {"a": [300, 0], "b": [100, 0]}

    def answering(name: str) -> Any:
        def emit(event: dict[str, Any]) -> None:
            if "preUpdateEvent" in event:
                dep = event["preUpdateEvent"]["deploymentId"]
                asked.append((name, dep))
                wait = answers[name].pop(0)
                asyncio.get_running_loop().call_soon(
                    notices.defer, name, Deferral(dep, wait, f"{name} busy"))
        return emit

    notices.subscribe_updates("a", answering("a"))
    notices.subscribe_updates("b", answering("b"))
    loop = asyncio.get_running_loop()
    began = loop.time()
    await asyncio.wait_for(notices.wait_until_safe("d", 5), 5)
    assert sorted(asked) == [("a", "d"), ("a", "d"), ("b", "d"), ("b", "d")]
    assert loop.time() - began >= 0.3


async def test_no_subscriber_means_no_wait_and_an_unsubscribed_component_cannot_defer() -> None:
    notices = ComponentNotices()
    await asyncio.wait_for(notices.wait_until_safe("d", 3600), 1)
    assert await notices.validate("d", {"x": {"k": 1}}, 3600) is None
    with pytest.raises(InvalidArgumentsError, match="not subscribed"):
        notices.defer("x", Deferral("d", 0, ""))
    unsubscribe = notices.subscribe_updates("x", lambda event: None)
    unsubscribe()
    with pytest.raises(InvalidArgumentsError, match="not subscribed"):
        notices.defer("x", Deferral("d", 0, ""))


async def test_a_broken_stream_does_not_hold_a_deployment() -> None:
    notices = ComponentNotices()

    def closed(event: dict[str, Any]) -> None:
        raise ConnectionResetError("stream closed")

    notices.subscribe_updates("gone", closed)
    notices.subscribe_validation("gone", closed)
    await asyncio.wait_for(notices.wait_until_safe("d", 3600), 1)
    reason = await asyncio.wait_for(notices.validate("d", {"gone": {}}, 0.2), 2)
    assert reason is not None and "gone" in reason   # asked, never answered: the nucleus fails
    with pytest.raises(InvalidArgumentsError, match="timed out or was never made"):
        notices.report_validity("gone", ValidityReport("d", "ACCEPTED", ""))
