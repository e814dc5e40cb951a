"""Every fleet topic, in one place (the shapes of their messages: ``docs/fleet.md``).

Under the configured prefix ``P`` (``fleet.topicPrefix``, default ``sprig``), for a thing ``T``
and a deployment target ``K`` (``thinggroup/<group>`` or ``thing/<thing>``, the nucleus's group
keys)::

    P/things/T/presence                     retained  device: ONLINE; its last will: OFFLINE
    P/things/T/greengrassv2/health/json     retained  device: the Fleet Status message
    P/things/T/jobs/K/notify                retained  controller: the execution (deployment)
    P/things/T/jobs/K/update                retained  device: the execution's status
    P/targets/K/deployment                  retained  controller: K's deployment and rollout
    P/targets/K/lease                       retained  controller: who runs K's rollout now

Every message is retained, so the broker holds the fleet's whole state: a device that comes
back reads its executions, a controller that comes back reads the rollout and every result.
One retained message per (thing, target) keeps the broker's memory bounded by the fleet's size.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sprig.errors import ValidationError
from sprig.fleet_settings import NAME_ALLOWED, NAME_RE

THING_GROUP = "thinggroup"
THING = "thing"
KINDS = (THING_GROUP, THING)
#: The nucleus's key for local deployments in ``GroupToRootComponents``.
LOCAL_DEPLOYMENTS = "LOCAL_DEPLOYMENTS"

_ARN_TARGET = re.compile(r"arn:[^:]+:greengrass:[^:]*:[^:]*:configuration:"
                         r"(thinggroup|thing)/([a-zA-Z0-9:_-]{1,128}?)(?::(\d+))?")


@dataclass(frozen=True, order=True)
class Target:
    """A deployment target: a thing group or one thing."""

    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}"

    @classmethod
    def parse(cls, text: object, path: str = "target") -> Target:
        """``thinggroup/NAME`` or ``thing/NAME``."""
        allowed = f"thinggroup/<group> or thing/<thing>, names of {NAME_ALLOWED}"
        if not isinstance(text, str) or "/" not in text:
            raise ValidationError(path, "is not a deployment target", value=text,
                                  allowed=allowed, has_value=True)
        kind, _, name = text.partition("/")
        if kind not in KINDS or not NAME_RE.fullmatch(name):
            raise ValidationError(path, "is not a deployment target", value=text,
                                  allowed=allowed)
        return cls(kind, name)

    def configuration_arn(self, region: str, revision: int) -> str:
        """Greengrass's ``configurationArn`` of this target's revision ``revision``."""
        return f"arn:aws:greengrass:{region}:000000000000:configuration:{self}:{revision}"

    def target_arn(self, region: str) -> str:
        return f"arn:aws:iot:{region}:000000000000:{self}"


def target_of_configuration_arn(arn: object, path: str = "configurationArn") -> Target:
    """The target in ``arn:aws:greengrass:<region>:<account>:configuration:<kind>/<name>:<rev>``
    (how the nucleus learns a deployment's group)."""
    m = _ARN_TARGET.fullmatch(arn) if isinstance(arn, str) else None
    if m is None:
        raise ValidationError(path, "is not a Greengrass configuration ARN", value=arn,
                              allowed="arn:aws:greengrass:<region>:<account>:configuration:"
                              "thinggroup/<group>:<revision> (or thing/<thing>)",
                              has_value=True)
    return Target(m.group(1), m.group(2))


@dataclass(frozen=True)
class FleetTopics:
    prefix: str

    def presence(self, thing: str) -> str:
        return f"{self.prefix}/things/{thing}/presence"

    def health(self, thing: str) -> str:
        return f"{self.prefix}/things/{thing}/greengrassv2/health/json"

    def notify(self, thing: str, target: Target) -> str:
        return f"{self.prefix}/things/{thing}/jobs/{target}/notify"

    def update(self, thing: str, target: Target) -> str:
        return f"{self.prefix}/things/{thing}/jobs/{target}/update"

    def deployment(self, target: Target) -> str:
        return f"{self.prefix}/targets/{target}/deployment"

    def lease(self, target: Target) -> str:
        return f"{self.prefix}/targets/{target}/lease"

    # -- filters ---------------------------------------------------------------------------

    def notify_filter(self, thing: str) -> str:
        """A device's subscription: every execution sent to it, whatever the target."""
        return f"{self.prefix}/things/{thing}/jobs/+/+/notify"

    def all_presence(self) -> str:
        return f"{self.prefix}/things/+/presence"

    def all_health(self) -> str:
        return f"{self.prefix}/things/+/greengrassv2/health/json"

    def all_jobs(self, target: Target | None = None) -> str:
        """Every execution and status message (of one target, or of all)."""
        if target is None:
            return f"{self.prefix}/things/+/jobs/#"
        return f"{self.prefix}/things/+/jobs/{target}/+"

    def all_deployments(self) -> str:
        return f"{self.prefix}/targets/+/+/deployment"

    # -- parsing ---------------------------------------------------------------------------

    def parse_job_topic(self, topic: str) -> tuple[str, Target, str] | None:
        """(thing, target, "notify"|"update") of a jobs topic, or None."""
        head = f"{self.prefix}/things/"
        if not topic.startswith(head):
            return None
        parts = topic[len(head):].split("/")
        if len(parts) != 5 or parts[1] != "jobs" or parts[2] not in KINDS \
                or parts[4] not in ("notify", "update"):
            return None
        if not NAME_RE.fullmatch(parts[0]) or not NAME_RE.fullmatch(parts[3]):
            return None
        return parts[0], Target(parts[2], parts[3]), parts[4]

    def thing_of(self, topic: str, suffix: str) -> str | None:
        """The thing of ``P/things/<thing>/<suffix>``, or None."""
        head = f"{self.prefix}/things/"
        tail = f"/{suffix}"
        if not topic.startswith(head) or not topic.endswith(tail):
            return None
        thing = topic[len(head):-len(tail)]
        return thing if NAME_RE.fullmatch(thing) else None

    def target_of_deployment_topic(self, topic: str) -> Target | None:
        head = f"{self.prefix}/targets/"
        if not topic.startswith(head) or not topic.endswith("/deployment"):
            return None
        try:
            return Target.parse(topic[len(head):-len("/deployment")])
        except ValidationError:
            return None
