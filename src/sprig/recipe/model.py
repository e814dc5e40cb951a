"""The recipe model: what a Greengrass component recipe means, as frozen values.

A recipe is parsed once (:mod:`sprig.recipe.parse`) into these dataclasses; everything after that
(platform selection, artifact staging, variables, dependency resolution, the kernel) reads the
model, never the raw YAML. Field names follow the recipe keys (``ComponentName`` ->
``name``), and :meth:`Recipe.to_dict` writes the canonical recipe back, spelled as the Greengrass
recipe reference spells it, so a stored recipe can be parsed again unchanged.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

RECIPE_FORMAT_VERSION = "2020-01-25"


class ComponentType(enum.StrEnum):
    """``ComponentType``: what kind of component the recipe describes.

    ``aws.greengrass.plugin`` (Java code loaded into the nucleus) and ``aws.greengrass.nucleus``
    have no meaning in Sprig and are rejected by the parser.
    """

    GENERIC = "aws.greengrass.generic"
    LAMBDA = "aws.greengrass.lambda"


class DependencyType(enum.StrEnum):
    """HARD: the dependent restarts when the dependency changes state; SOFT: it does not."""

    HARD = "HARD"
    SOFT = "SOFT"


class Unarchive(enum.StrEnum):
    NONE = "NONE"
    ZIP = "ZIP"


class Permission(enum.StrEnum):
    """Who may read / execute a staged artifact file (Greengrass ``Permission.Read/Execute``)."""

    NONE = "NONE"
    OWNER = "OWNER"
    ALL = "ALL"


class StepName(enum.StrEnum):
    """Lifecycle steps, in the order Greengrass runs them (``Uninstall``: once, when a deployment
    removes the component; nucleus ``GenericExternalService.uninstall``)."""

    BOOTSTRAP = "Bootstrap"
    INSTALL = "Install"
    STARTUP = "Startup"
    RUN = "Run"
    SHUTDOWN = "Shutdown"
    RECOVER = "Recover"
    UNINSTALL = "Uninstall"


# Greengrass's default step timeouts in seconds (nucleus Lifecycle.java and the recipe
# reference); Run has none because it is the long-running process itself.
DEFAULT_TIMEOUTS_S: Mapping[StepName, float | None] = {
    StepName.BOOTSTRAP: 120.0,
    StepName.INSTALL: 120.0,
    StepName.STARTUP: 120.0,
    StepName.RUN: None,
    StepName.SHUTDOWN: 15.0,
    StepName.RECOVER: 60.0,
    StepName.UNINSTALL: 120.0,
}


class SkipIfKind(enum.StrEnum):
    ONPATH = "onpath"
    EXISTS = "exists"


@dataclass(frozen=True)
class SkipIf:
    """``Skipif``: skip the step when an executable is on PATH or a file exists."""

    kind: SkipIfKind
    target: str

    def __str__(self) -> str:
        return f"{self.kind} {self.target}"


@dataclass(frozen=True)
class Step:
    """One lifecycle step. ``timeout_s`` is None when the recipe sets none (see
    :meth:`effective_timeout_s` for the Greengrass default)."""

    script: str
    requires_privilege: bool = False
    skipif: SkipIf | None = None
    timeout_s: float | None = None
    setenv: Mapping[str, str] = field(default_factory=dict)

    def effective_timeout_s(self, name: StepName) -> float | None:
        """The timeout to enforce: the recipe's, else Greengrass's default for ``name``."""
        return self.timeout_s if self.timeout_s is not None else DEFAULT_TIMEOUTS_S[name]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"Script": self.script, "RequiresPrivilege": self.requires_privilege}
        if self.skipif is not None:
            out["Skipif"] = str(self.skipif)
        if self.timeout_s is not None:
            out["Timeout"] = self.timeout_s
        if self.setenv:
            out["Setenv"] = dict(self.setenv)
        return out


@dataclass(frozen=True)
class Lifecycle:
    """A lifecycle: environment for every step plus the steps.

    ``sections`` holds selection-keyed sub-lifecycles of the global ``Lifecycle`` (for example
    ``linux: {Run: ...}``), chosen by a manifest's ``Selections``; it is empty elsewhere.
    ``error_reset_time_s`` is the lifecycle's ``errorResetTime`` (None: the nucleus default, one
    hour): how long after an error the count toward BROKEN starts again.
    """

    setenv: Mapping[str, str] = field(default_factory=dict)
    steps: Mapping[StepName, Step] = field(default_factory=dict)
    sections: Mapping[str, Lifecycle] = field(default_factory=dict)
    error_reset_time_s: float | None = None

    @property
    def is_empty(self) -> bool:
        return (not self.setenv and not self.steps and not self.sections
                and self.error_reset_time_s is None)

    def step(self, name: StepName) -> Step | None:
        return self.steps.get(name)

    def env_for(self, name: StepName) -> dict[str, str]:
        """The lifecycle ``Setenv`` overlaid by the step's own ``Setenv`` (step wins)."""
        env = dict(self.setenv)
        step = self.steps.get(name)
        if step is not None:
            env.update(step.setenv)
        return env

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.setenv:
            out["Setenv"] = dict(self.setenv)
        for name in StepName:
            step = self.steps.get(name)
            if step is not None:
                out[str(name)] = step.to_dict()
        for key, section in self.sections.items():
            out[key] = section.to_dict()
        if self.error_reset_time_s is not None:
            out["errorResetTime"] = self.error_reset_time_s
        return out


@dataclass(frozen=True)
class Artifact:
    """One artifact of a manifest. ``file_name`` is the last segment of the URI."""

    uri: str
    file_name: str
    unarchive: Unarchive = Unarchive.NONE
    read: Permission = Permission.OWNER
    execute: Permission = Permission.NONE
    digest: str | None = None
    algorithm: str = "SHA-256"

    @property
    def unarchived_name(self) -> str:
        """The directory a ZIP is unpacked into: the file name without its extension."""
        stem, dot, _ = self.file_name.rpartition(".")
        return stem if dot and stem else self.file_name

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "URI": self.uri,
            "Unarchive": str(self.unarchive),
            "Permission": {"Read": str(self.read), "Execute": str(self.execute)},
        }
        if self.digest is not None:
            out["Digest"] = self.digest
        out["Algorithm"] = self.algorithm
        return out


@dataclass(frozen=True)
class Manifest:
    """A platform-specific part of a recipe; the first one matching the device is used."""

    #: attribute -> a match expression, or a list of alternatives (any one matching)
    platform: Mapping[str, str | tuple[str, ...]] = field(default_factory=dict)
    lifecycle: Lifecycle = field(default_factory=Lifecycle)
    artifacts: tuple[Artifact, ...] = ()
    selections: tuple[str, ...] = ()
    name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.name is not None:
            out["Name"] = self.name
        out["Platform"] = {k: list(v) if isinstance(v, tuple) else v
                           for k, v in self.platform.items()}
        out["Lifecycle"] = self.lifecycle.to_dict()
        if self.selections:
            out["Selections"] = list(self.selections)
        out["Artifacts"] = [a.to_dict() for a in self.artifacts]
        return out


@dataclass(frozen=True)
class Dependency:
    """An entry of ``ComponentDependencies``; ``version_requirement`` is an npm-style range."""

    name: str
    version_requirement: str = "*"
    dependency_type: DependencyType = DependencyType.HARD

    def to_dict(self) -> dict[str, Any]:
        return {"VersionRequirement": self.version_requirement,
                "DependencyType": str(self.dependency_type)}


@dataclass(frozen=True)
class Recipe:
    """A parsed, validated component recipe."""

    name: str
    version: str
    component_type: ComponentType = ComponentType.GENERIC
    description: str | None = None
    publisher: str | None = None
    source: str | None = None
    default_configuration: Mapping[str, Any] = field(default_factory=dict)
    dependencies: Mapping[str, Dependency] = field(default_factory=dict)
    manifests: tuple[Manifest, ...] = ()
    lifecycle: Lifecycle = field(default_factory=Lifecycle)
    format_version: str = RECIPE_FORMAT_VERSION
    #: what the parser ignored (unknown keys), for the deployment's status; not part of the
    #: recipe's meaning, so neither compared nor stored
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @property
    def id(self) -> tuple[str, str]:
        return (self.name, self.version)

    def __str__(self) -> str:
        return f"{self.name} {self.version}"

    @property
    def effective_manifests(self) -> tuple[Manifest, ...]:
        """The manifests, or one empty (all-platform) manifest when the recipe has none."""
        return self.manifests or (Manifest(),)

    def to_dict(self) -> dict[str, Any]:
        """The canonical JSON-able recipe: docs spelling, every default written out."""
        out: dict[str, Any] = {
            "RecipeFormatVersion": self.format_version,
            "ComponentName": self.name,
            "ComponentVersion": self.version,
            "ComponentType": str(self.component_type),
        }
        for key, value in (("ComponentDescription", self.description),
                           ("ComponentPublisher", self.publisher),
                           ("ComponentSource", self.source)):
            if value is not None:
                out[key] = value
        out["ComponentConfiguration"] = {
            "DefaultConfiguration": _plain(self.default_configuration)}
        out["ComponentDependencies"] = {n: d.to_dict() for n, d in self.dependencies.items()}
        out["Manifests"] = [m.to_dict() for m in self.manifests]
        out["Lifecycle"] = self.lifecycle.to_dict()
        return out


def _plain(value: Any) -> Any:
    """A deep copy made of dicts and lists, so callers cannot alias the model's data."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
