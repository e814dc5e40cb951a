"""What a deployment tells running components before it changes them, and waits to hear back.

Two Greengrass conversations, over IPC, between the deployment and components that subscribed:

* **Component updates** (``SubscribeToComponentUpdates`` / ``DeferComponentUpdate``): with a
  deployment's ``componentUpdatePolicy.action`` ``NOTIFY_COMPONENTS``, every subscriber gets a
  ``preUpdateEvent`` before anything changes and may answer with a deferral
  (``recheckAfterMs``). The deployment waits until every subscriber answered or the policy's
  ``timeoutInSeconds`` passed; if someone deferred, it waits the longest deferral and asks again;
  else it goes ahead. Afterwards every subscriber gets a ``postUpdateEvent``. As the nucleus
  (``UpdateSystemPolicyService``, ``LifecycleIPCEventStreamAgent``): all subscribers are asked,
  not only the components the deployment changes; an answer for another deployment is ignored;
  a deferral after the wait ended is a ServiceError. Local deployments skip it unless asked
  (the nucleus always skips it for local ones: ``SKIP_NOTIFY_COMPONENTS``).
* **Configuration validation** (``SubscribeToValidateConfigurationUpdates`` /
  ``SendConfigurationValidityReport``): a running component whose configuration a deployment
  changes, without changing its version, is sent the proposed configuration and must answer
  ``ACCEPTED`` or ``REJECTED`` within ``configurationValidationPolicy.timeoutInSeconds``
  (default 20 s for a local deployment, as the nucleus). A rejection, or no answer, fails the
  deployment before anything changed (``COMPONENT_CONFIGURATION_NOT_VALID``). Unlike the nucleus,
  which also waits on components that never subscribed (and so times out whenever a subscriber
  and a non-subscriber both change), only subscribers are waited for.

The hub is pure asyncio: the IPC server registers callbacks and delivers answers, the
deployment service asks. Callbacks are called on the event loop's thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from sprig.ipc.core import InvalidArgumentsError, ServiceError

log = logging.getLogger("sprig.deployment")

NOTIFY_COMPONENTS: Final = "NOTIFY_COMPONENTS"
SKIP_NOTIFY_COMPONENTS: Final = "SKIP_NOTIFY_COMPONENTS"
UPDATE_ACTIONS: Final = (NOTIFY_COMPONENTS, SKIP_NOTIFY_COMPONENTS)
#: ``componentUpdatePolicy.timeoutInSeconds`` when a document does not say (the nucleus's
#: ``ComponentUpdatePolicy.DEFAULT_TIMEOUT``).
DEFAULT_UPDATE_TIMEOUT_S: Final = 60
#: ``configurationValidationPolicy.timeoutInSeconds`` of a local deployment (the nucleus's
#: ``DynamicComponentConfigurationValidator.DEFAULT_TIMEOUT_SECOND``).
DEFAULT_VALIDATION_TIMEOUT_S: Final = 20
ACCEPTED: Final = "ACCEPTED"
REJECTED: Final = "REJECTED"

Emit = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Deferral:
    deployment_id: str
    recheck_after_ms: int
    message: str


@dataclass(frozen=True)
class ValidityReport:
    deployment_id: str
    status: str
    message: str


class ComponentNotices:
    def __init__(self) -> None:
        self._update_subscribers: dict[str, list[Emit]] = {}
        self._validation_subscribers: dict[str, list[Emit]] = {}
        self._deferrals: dict[tuple[str, str], asyncio.Future[Deferral]] = {}
        self._reports: dict[tuple[str, str], asyncio.Future[ValidityReport]] = {}

    # -- the IPC side (errors in Greengrass's shapes and words, as the nucleus answers) -------
    def subscribe_updates(self, component: str, emit: Emit) -> Callable[[], None]:
        return _subscribe(self._update_subscribers, component, emit)

    def subscribe_validation(self, component: str, emit: Emit) -> Callable[[], None]:
        return _subscribe(self._validation_subscribers, component, emit)

    def defer(self, component: str, deferral: Deferral) -> None:
        if component not in self._update_subscribers:
            raise InvalidArgumentsError("Component is not subscribed to component update events")
        future = self._deferrals.pop((component, deferral.deployment_id), None)
        if future is None:
            raise ServiceError("Time limit to respond to PreComponentUpdateEvent exceeded")
        if not future.done():
            future.set_result(deferral)

    def report_validity(self, component: str, report: ValidityReport) -> None:
        future = self._reports.pop((component, report.deployment_id), None)
        if future is None:
            raise InvalidArgumentsError("Validation request either timed out or was never made")
        if not future.done():
            future.set_result(report)

    # -- the deployment side --------------------------------------------------------------
    async def wait_until_safe(self, deployment_id: str, timeout_s: float) -> None:
        """Ask every update subscriber; wait for their answers (at most ``timeout_s`` a round),
        then the longest deferral, and ask again, until nobody defers."""
        while True:
            futures = self._ask_updates(deployment_id)
            if not futures:
                return
            done, _ = await asyncio.wait(futures.values(), timeout=timeout_s)
            for key in futures:
                self._deferrals.pop(key, None)
            longest = 0
            for key, future in futures.items():
                if future in done:
                    deferral = future.result()
                    if deferral.recheck_after_ms > longest:
                        longest = deferral.recheck_after_ms
                        log.info("deployment %s: %s deferred the update by %d ms (%s)",
                                 deployment_id, key[0], deferral.recheck_after_ms,
                                 deferral.message or "no message")
                else:
                    future.cancel()
                    log.info("deployment %s: %s did not answer the update notice within %g s",
                             deployment_id, key[0], timeout_s)
            if longest <= 0:
                return
            await asyncio.sleep(longest / 1000)   # then ask again (the nucleus's recheck)

    def updated(self, deployment_id: str) -> None:
        """Tell every update subscriber that the deployment is over (``postUpdateEvent``)."""
        event = {"postUpdateEvent": {"deploymentId": deployment_id}}
        for component, emits in list(self._update_subscribers.items()):
            for emit in list(emits):
                _send(emit, event, component)

    async def validate(self, deployment_id: str, proposals: Mapping[str, Mapping[str, Any]],
                       timeout_s: float) -> str | None:
        """Ask each subscriber among ``proposals`` (component → its proposed configuration)
        whether it accepts it. None when all accept; else why the deployment must fail."""
        futures: dict[str, asyncio.Future[ValidityReport]] = {}
        loop = asyncio.get_running_loop()
        for component, configuration in proposals.items():
            emits = self._validation_subscribers.get(component)
            if not emits:
                continue
            future: asyncio.Future[ValidityReport] = loop.create_future()
            self._reports[(component, deployment_id)] = future
            futures[component] = future
            event = {"validateConfigurationUpdateEvent": {
                "deploymentId": deployment_id, "configuration": dict(configuration)}}
            for emit in list(emits):
                _send(emit, event, component)
        if not futures:
            return None
        try:
            done, _ = await asyncio.wait(futures.values(), timeout=timeout_s)
        finally:
            for component in futures:
                self._reports.pop((component, deployment_id), None)
        silent = sorted(c for c, f in futures.items() if f not in done)
        for component in silent:
            futures[component].cancel()
        rejected = [(c, f.result().message) for c, f in sorted(futures.items())
                    if f in done and f.result().status == REJECTED]
        if rejected:
            return ("components reported that their to-be-deployed configuration is invalid "
                    "(COMPONENT_CONFIGURATION_NOT_VALID): " + "; ".join(
                        f"{c}: {m or 'no message'}" for c, m in rejected))
        if silent:
            return (f"no configuration validity report from {', '.join(silent)} within "
                    f"{timeout_s:g} s (configurationValidationPolicy.timeoutInSeconds; "
                    "COMPONENT_CONFIGURATION_NOT_VALID)")
        return None

    def _ask_updates(self, deployment_id: str) -> dict[tuple[str, str], asyncio.Future[Deferral]]:
        loop = asyncio.get_running_loop()
        futures: dict[tuple[str, str], asyncio.Future[Deferral]] = {}
        event = {"preUpdateEvent": {"deploymentId": deployment_id, "isGgcRestarting": False}}
        for component, emits in list(self._update_subscribers.items()):
            key = (component, deployment_id)
            future: asyncio.Future[Deferral] = loop.create_future()
            # Registered before the event goes out: a quick answer must find it.
            self._deferrals[key] = future
            if any(_send(emit, event, component) for emit in list(emits)):
                futures[key] = future
            else:
                self._deferrals.pop(key, None)
        return futures


def validation_proposals(current: Mapping[str, tuple[str, Mapping[str, Any]]],
                         target: Mapping[str, tuple[str, Mapping[str, Any]]]
                         ) -> dict[str, Mapping[str, Any]]:
    """The components a deployment asks to validate: running now, same version in the target,
    a different configuration (name → (version, effective configuration) on both sides). A
    component whose version changes is not asked: the running version may not understand the
    new keys, and it restarts anyway (the nucleus's rule)."""
    out: dict[str, Mapping[str, Any]] = {}
    for name, (version, configuration) in target.items():
        now = current.get(name)
        if now is not None and now[0] == version and now[1] != configuration:
            out[name] = configuration
    return out


def _subscribe(table: dict[str, list[Emit]], component: str, emit: Emit) -> Callable[[], None]:
    table.setdefault(component, []).append(emit)

    def unsubscribe() -> None:
        emits = table.get(component)
        if emits is not None and emit in emits:
            emits.remove(emit)
            if not emits:
                del table[component]

    return unsubscribe


def _send(emit: Emit, event: dict[str, Any], component: str) -> bool:
    try:
        emit(event)
    except Exception:  # a closed stream must not stop the deployment
        log.warning("could not send a deployment notice to %s", component, exc_info=True)
        return False
    return True
