"""Rollout configuration and policy: IoT Jobs' ``jobExecutionsRolloutConfig``, ``abortConfig``
and ``timeoutConfig``, with their names and ranges (the ``greengrassv2`` CreateDeployment
model's ``iotJobConfiguration``). Pure: the controller asks, this module decides.

* **Rate.** ``maximumPerMinute`` (1-1000) things notified per minute, evenly spaced (one every
  60/N seconds); or ``exponentialRate``: ``baseRatePerMinute`` (1-1000), multiplied by
  ``incrementFactor`` (1-5) each time ``rateIncreaseCriteria`` is met (``numberOfNotifiedThings``
  more things notified, or ``numberOfSucceededThings`` more succeeded, since the last increase),
  never above ``maximumPerMinute``. No rate: every thing at once.
* **Abort.** ``abortConfig.criteriaList[]``: ``failureType`` (FAILED, REJECTED, TIMED_OUT or
  ALL), ``action`` CANCEL, ``thresholdPercentage`` (0-100], ``minNumberOfExecutedThings`` (>= 1).
  A criterion fires once at least that many executions are finished and the failures of that
  type are at least that percentage of them; the rollout then stops notifying, and executions
  not yet started are CANCELED (IoT's "cancels queued executions").
* **Timeout.** ``timeoutConfig.inProgressTimeoutInMinutes`` (1-10080): an execution IN_PROGRESS
  for longer is TIMED_OUT (a failure for the abort criteria).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sprig.errors import ValidationError
from sprig.fleet.status import ExecutionStatus

FAILURE_TYPES = ("FAILED", "REJECTED", "TIMED_OUT", "ALL")
MAX_TIMEOUT_MINUTES = 10_080


@dataclass(frozen=True)
class ExponentialRate:
    base_per_minute: int
    increment_factor: float
    notified_things: int | None = None
    succeeded_things: int | None = None


@dataclass(frozen=True)
class AbortCriterion:
    failure_type: str
    threshold_percentage: float
    min_executed: int

    def counts(self, status: str) -> bool:
        if self.failure_type == "ALL":
            return status in ("FAILED", "REJECTED", "TIMED_OUT")
        return status == self.failure_type


@dataclass(frozen=True)
class RolloutConfig:
    maximum_per_minute: int | None = None
    exponential: ExponentialRate | None = None
    abort: tuple[AbortCriterion, ...] = ()
    timeout_minutes: float | None = None

    @property
    def rate_limited(self) -> bool:
        return self.maximum_per_minute is not None or self.exponential is not None

    def to_json(self) -> dict[str, Any]:
        """The ``iotJobConfiguration`` document."""
        out: dict[str, Any] = {}
        rollout: dict[str, Any] = {}
        if self.maximum_per_minute is not None:
            rollout["maximumPerMinute"] = self.maximum_per_minute
        if self.exponential is not None:
            e = self.exponential
            criteria: dict[str, int] = {}
            if e.notified_things is not None:
                criteria["numberOfNotifiedThings"] = e.notified_things
            if e.succeeded_things is not None:
                criteria["numberOfSucceededThings"] = e.succeeded_things
            rollout["exponentialRate"] = {"baseRatePerMinute": e.base_per_minute,
                                          "incrementFactor": e.increment_factor,
                                          "rateIncreaseCriteria": criteria}
        if rollout:
            out["jobExecutionsRolloutConfig"] = rollout
        if self.abort:
            out["abortConfig"] = {"criteriaList": [
                {"failureType": c.failure_type, "action": "CANCEL",
                 "thresholdPercentage": c.threshold_percentage,
                 "minNumberOfExecutedThings": c.min_executed} for c in self.abort]}
        if self.timeout_minutes is not None:
            out["timeoutConfig"] = {"inProgressTimeoutInMinutes": self.timeout_minutes}
        return out

    @classmethod
    def from_json(cls, doc: object, path: str = "iotJobConfiguration") -> RolloutConfig:
        if doc is None:
            return cls()
        d = _obj(doc, path, ("jobExecutionsRolloutConfig", "abortConfig", "timeoutConfig"))
        rate, exp = None, None
        if d.get("jobExecutionsRolloutConfig") is not None:
            rp = f"{path}.jobExecutionsRolloutConfig"
            r = _obj(d["jobExecutionsRolloutConfig"], rp, ("maximumPerMinute", "exponentialRate"))
            if r.get("maximumPerMinute") is not None:
                rate = _int(r["maximumPerMinute"], f"{rp}.maximumPerMinute", 1, 1000)
            if r.get("exponentialRate") is not None:
                ep = f"{rp}.exponentialRate"
                e = _obj(r["exponentialRate"], ep, ("baseRatePerMinute", "incrementFactor",
                                                    "rateIncreaseCriteria"))
                base = _int(e.get("baseRatePerMinute"), f"{ep}.baseRatePerMinute", 1, 1000)
                factor = _num(e.get("incrementFactor"), f"{ep}.incrementFactor", 1, 5)
                cp = f"{ep}.rateIncreaseCriteria"
                c = _obj(e.get("rateIncreaseCriteria"), cp,
                         ("numberOfNotifiedThings", "numberOfSucceededThings"))
                notified = c.get("numberOfNotifiedThings")
                succeeded = c.get("numberOfSucceededThings")
                if (notified is None) == (succeeded is None):
                    raise ValidationError(cp, "needs exactly one criterion", value=dict(c),
                                          allowed="numberOfNotifiedThings or "
                                          "numberOfSucceededThings (>= 1)", has_value=True)
                exp = ExponentialRate(
                    base, factor,
                    _int(notified, f"{cp}.numberOfNotifiedThings", 1, 10**9)
                    if notified is not None else None,
                    _int(succeeded, f"{cp}.numberOfSucceededThings", 1, 10**9)
                    if succeeded is not None else None)
                if rate is not None and base > rate:
                    raise ValidationError(f"{ep}.baseRatePerMinute", "is above maximumPerMinute",
                                          value=base, allowed=f"at most {rate}")
        criteria: list[AbortCriterion] = []
        if d.get("abortConfig") is not None:
            ap = f"{path}.abortConfig"
            a = _obj(d["abortConfig"], ap, ("criteriaList",))
            items = a.get("criteriaList")
            if not isinstance(items, list) or not items:
                raise ValidationError(f"{ap}.criteriaList", "must be a non-empty list",
                                      value=items, allowed="[{failureType, action, "
                                      "thresholdPercentage, minNumberOfExecutedThings}]",
                                      has_value=True)
            for i, item in enumerate(items):
                ip = f"{ap}.criteriaList[{i}]"
                c = _obj(item, ip, ("failureType", "action", "thresholdPercentage",
                                    "minNumberOfExecutedThings"))
                if c.get("failureType") not in FAILURE_TYPES:
                    raise ValidationError(f"{ip}.failureType", "unknown failure type",
                                          value=c.get("failureType"),
                                          allowed=", ".join(FAILURE_TYPES), has_value=True)
                if c.get("action", "CANCEL") != "CANCEL":
                    raise ValidationError(f"{ip}.action", "unknown action",
                                          value=c.get("action"), allowed="CANCEL")
                pct = _num(c.get("thresholdPercentage"), f"{ip}.thresholdPercentage", 0, 100)
                if pct <= 0:
                    raise ValidationError(f"{ip}.thresholdPercentage", "must be above 0",
                                          value=pct, allowed="(0, 100]")
                criteria.append(AbortCriterion(
                    str(c["failureType"]), pct,
                    _int(c.get("minNumberOfExecutedThings"),
                         f"{ip}.minNumberOfExecutedThings", 1, 10**9)))
        timeout = None
        if d.get("timeoutConfig") is not None:
            tp = f"{path}.timeoutConfig"
            t = _obj(d["timeoutConfig"], tp, ("inProgressTimeoutInMinutes",))
            timeout = _num(t.get("inProgressTimeoutInMinutes"),
                           f"{tp}.inProgressTimeoutInMinutes", 1, MAX_TIMEOUT_MINUTES)
        return cls(rate, exp, tuple(criteria), timeout)


# -- policy ----------------------------------------------------------------------------------

def current_rate(config: RolloutConfig, notified: int, succeeded: int) -> float | None:
    """Things per minute now (None: no limit)."""
    e = config.exponential
    if e is None:
        return float(config.maximum_per_minute) if config.maximum_per_minute else None
    if e.notified_things is not None:
        steps = notified // e.notified_things
    else:
        assert e.succeeded_things is not None
        steps = succeeded // e.succeeded_things
    rate = e.base_per_minute * (e.increment_factor ** min(steps, 64))
    cap = config.maximum_per_minute or 1000
    return float(min(rate, cap))


def next_notify_at(config: RolloutConfig, last_notified_at: float | None, notified: int,
                   succeeded: int) -> float:
    """When the next thing may be notified (seconds, the same clock as ``last_notified_at``);
    -inf: now."""
    rate = current_rate(config, notified, succeeded)
    if rate is None or last_notified_at is None:
        return -math.inf
    return last_notified_at + 60.0 / rate


def abort_reason(config: RolloutConfig, finished: Iterable[str]) -> str | None:
    """Why the rollout must stop, given the terminal statuses of its executions."""
    counts: dict[str, int] = {}
    for s in finished:
        counts[s] = counts.get(s, 0) + 1
    return abort_reason_counts(config, counts)


def abort_reason_counts(config: RolloutConfig, counts: Mapping[str, int]) -> str | None:
    """:func:`abort_reason` from the number of executions finished with each status."""
    executed = sum(counts.values())
    for c in config.abort:
        if executed < c.min_executed:
            continue
        failures = sum(n for s, n in counts.items() if c.counts(s))
        if failures * 100 >= c.threshold_percentage * executed and failures:
            return (f"abortConfig: {failures} of {executed} finished executions "
                    f"{'failed' if c.failure_type == 'ALL' else c.failure_type} "
                    f"({100 * failures / executed:.0f}% >= {c.threshold_percentage:g}%, at "
                    f"least {c.min_executed} executed)")
    return None


def timed_out(config: RolloutConfig, in_progress_since: Mapping[str, float],
              now: float) -> list[str]:
    """The things whose execution has been IN_PROGRESS too long (times in seconds)."""
    if config.timeout_minutes is None:
        return []
    limit = config.timeout_minutes * 60
    return sorted(t for t, since in in_progress_since.items() if now - since > limit)


def is_failure(status: str) -> bool:
    return status in (ExecutionStatus.FAILED, ExecutionStatus.REJECTED,
                      ExecutionStatus.TIMED_OUT)


# -- parsing helpers -------------------------------------------------------------------------

def _obj(value: object, path: str, keys: tuple[str, ...]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValidationError(path, "must be an object", value=value,
                              allowed="{" + ", ".join(keys) + "}", has_value=True)
    unknown = sorted(str(k) for k in value if k not in keys)
    if unknown:
        raise ValidationError(f"{path}.{unknown[0]}", "unknown key", allowed=", ".join(keys))
    return value


def _int(value: object, path: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValidationError(path, "out of range or not an integer", value=value,
                              allowed=f"an integer from {lo} to {hi}", has_value=True)
    return value


def _num(value: object, path: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise ValidationError(path, "out of range or not a number", value=value,
                              allowed=f"a number from {lo:g} to {hi:g}", has_value=True)
    return float(value)
