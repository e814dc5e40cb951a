"""Turn a recipe document (already loaded from YAML/JSON) into a validated :class:`Recipe`.

Validation is complete and up front: a deployment refuses a bad recipe before anything changes,
with an error naming the file, the field path (``Manifests[0].Artifacts[1].Unarchive``), the value
and what is allowed. Keys are matched case-insensitively, as Greengrass does. Unknown keys are
ignored, as the nucleus ignores them (``Manifests[].Parameters``, keys of newer recipe formats),
but each becomes a warning in :attr:`Recipe.warnings` (with "did you mean" for a near miss), which
the deployment shows in its status and the core log.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
from collections.abc import Mapping
from typing import Any

from sprig.errors import ValidationError
from sprig.recipe import _fields as f
from sprig.recipe._digest import normalize_algorithm
from sprig.recipe._semver import is_strict_version, is_valid_range
from sprig.recipe.model import (
    RECIPE_FORMAT_VERSION,
    Artifact,
    ComponentType,
    Dependency,
    DependencyType,
    Lifecycle,
    Manifest,
    Permission,
    Recipe,
    SkipIf,
    SkipIfKind,
    Step,
    StepName,
    Unarchive,
)

TOP_KEYS = ("RecipeFormatVersion", "ComponentName", "ComponentVersion", "ComponentType",
            "ComponentDescription", "ComponentPublisher", "ComponentSource",
            "ComponentConfiguration", "ComponentDependencies", "Manifests", "Lifecycle")
MANIFEST_KEYS = ("Name", "Platform", "Lifecycle", "Selections", "Artifacts")
ARTIFACT_KEYS = ("URI", "Unarchive", "Permission", "Digest", "Algorithm")
STEP_KEYS = ("Script", "RequiresPrivilege", "Skipif", "Timeout", "Setenv")
ERROR_RESET_TIME = "errorResetTime"
LIFECYCLE_KEYS = ("Setenv", *(str(s) for s in StepName), ERROR_RESET_TIME)
_LIFECYCLE_LOWER = {k.lower() for k in LIFECYCLE_KEYS}

# Names become directory names and variable prefixes ({name:artifacts:path}), so no '/', ':',
# whitespace or braces.
NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
NAME_ALLOWED = "1-128 letters, digits, '.', '_' or '-', not starting with '.' or '-'"

UNSUPPORTED_TYPES = {
    "aws.greengrass.plugin": "plugin components are Java code loaded into the Greengrass "
                             "nucleus; Sprig cannot run them",
    "aws.greengrass.nucleus": "Sprig is itself the core; a nucleus component has no meaning here",
}


def parse_recipe(data: Mapping[str, Any], source: str) -> Recipe:
    """Validate a recipe document and build the model.

    Raises:
        ValidationError: naming ``source``, the field path, the value and what is allowed.
    """
    warnings: list[str] = []
    try:
        recipe = _recipe(data, warnings)
    except ValidationError as exc:
        raise exc.with_source(source) from None
    if not warnings:
        return recipe
    return dataclasses.replace(recipe, warnings=tuple(f"{source}: {w}" for w in warnings))


def component_name(value: Any, path: str) -> str:
    name = f.string(value, path, allowed=NAME_ALLOWED)
    if not NAME_RE.fullmatch(name):
        raise ValidationError(path, "is not a valid component name", value=name,
                              allowed=NAME_ALLOWED)
    return name


def _recipe(data: Any, w: list[str]) -> Recipe:
    top = f.Obj(data, "", TOP_KEYS, warnings=w)
    fmt = top.require("RecipeFormatVersion")
    if isinstance(fmt, datetime.date):  # YAML reads an unquoted 2020-01-25 as a date
        fmt = fmt.isoformat()
    if fmt != RECIPE_FORMAT_VERSION:
        raise ValidationError("RecipeFormatVersion", "is not a supported recipe format", value=fmt,
                              allowed=RECIPE_FORMAT_VERSION, has_value=True)
    name = component_name(top.require("ComponentName"), "ComponentName")
    version = f.string(top.require("ComponentVersion"), "ComponentVersion",
                       allowed="a semantic version such as 1.0.0")
    if not is_strict_version(version):
        raise ValidationError("ComponentVersion", "is not a strict semantic version",
                              value=version, allowed="MAJOR.MINOR.PATCH[-prerelease][+build], "
                              "such as 1.0.0")
    manifests = _manifests(top.get("Manifests"), top.at("Manifests"), w)
    selections = {"all"} | {s for m in manifests for s in m.selections}
    return Recipe(
        name=name,
        version=version,
        component_type=_component_type(top.get("ComponentType"), top.at("ComponentType")),
        description=f.optional_string(top.get("ComponentDescription"),
                                      top.at("ComponentDescription")),
        publisher=f.optional_string(top.get("ComponentPublisher"), top.at("ComponentPublisher")),
        source=f.optional_string(top.get("ComponentSource"), top.at("ComponentSource")),
        default_configuration=_configuration(top.get("ComponentConfiguration"),
                                             top.at("ComponentConfiguration"), w),
        dependencies=_dependencies(name, top.get("ComponentDependencies"),
                                   top.at("ComponentDependencies"), w),
        manifests=manifests,
        lifecycle=_lifecycle(top.get("Lifecycle"), top.at("Lifecycle"), selections, w),
    )


def _component_type(value: Any, path: str) -> ComponentType:
    if value is None:
        return ComponentType.GENERIC
    allowed = " | ".join(str(t) for t in ComponentType)
    text = f.string(value, path, allowed=allowed)
    if text.lower() in UNSUPPORTED_TYPES:
        raise ValidationError(path, f"is not supported: {UNSUPPORTED_TYPES[text.lower()]}",
                              value=text, allowed=allowed)
    return f.choice(text, path, ComponentType)


def _configuration(value: Any, path: str, w: list[str]) -> dict[str, Any]:
    if value is None:
        return {}
    conf = f.Obj(value, path, ("DefaultConfiguration",), warnings=w)
    default = conf.get("DefaultConfiguration")
    if default is None:
        return {}
    at = conf.at("DefaultConfiguration")
    if not isinstance(default, Mapping):
        raise f.wrong_type(at, default, "an object")
    result: dict[str, Any] = f.json_value(default, at)
    return result


def _dependencies(owner: str, value: Any, path: str, w: list[str]) -> dict[str, Dependency]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise f.wrong_type(path, value, "an object of component name -> requirement")
    out: dict[str, Dependency] = {}
    for key, item in value.items():
        at = f.join(path, str(key))
        name = component_name(key, at)
        if name == owner:
            raise ValidationError(at, "a component cannot depend on itself", value=name,
                                  allowed="another component's name")
        dep = f.Obj(item, at, ("VersionRequirement", "DependencyType"), warnings=w)
        requirement = "*"
        if dep.get("VersionRequirement") is not None:
            allowed = "an npm-style version range such as >=1.0.0 <2.0.0, ^1.2.0 or 1.0.0"
            requirement = f.string(dep.get("VersionRequirement"), dep.at("VersionRequirement"),
                                   allowed=allowed)
            if not is_valid_range(requirement):
                raise ValidationError(dep.at("VersionRequirement"), "is not a valid version range",
                                      value=requirement, allowed=allowed)
        kind = DependencyType.HARD
        if dep.get("DependencyType") is not None:
            kind = f.choice(dep.get("DependencyType"), dep.at("DependencyType"), DependencyType)
        out[name] = Dependency(name, requirement, kind)
    return out


def _manifests(value: Any, path: str, w: list[str]) -> tuple[Manifest, ...]:
    if value is None:
        return ()
    if not isinstance(value, list | tuple):
        raise f.wrong_type(path, value, "a list of manifests")
    return tuple(_manifest(item, f.index(path, i), w) for i, item in enumerate(value))


def _manifest(value: Any, path: str, w: list[str]) -> Manifest:
    m = f.Obj(value, path, MANIFEST_KEYS, warnings=w)
    name = f.optional_string(m.get("Name"), m.at("Name"))
    artifacts_path = m.at("Artifacts")
    raw_artifacts = m.get("Artifacts")
    if raw_artifacts is None:
        raw_artifacts = []
    if not isinstance(raw_artifacts, list | tuple):
        raise f.wrong_type(artifacts_path, raw_artifacts, "a list of artifacts")
    artifacts: list[Artifact] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(raw_artifacts):
        at = f.index(artifacts_path, i)
        artifact = _artifact(item, at, w)
        if artifact.file_name in seen:
            raise ValidationError(
                at, f"has the same file name as {f.index(artifacts_path, seen[artifact.file_name])}"
                " (both would be staged to one file)", value=artifact.uri,
                allowed="URIs whose last segments differ")
        seen[artifact.file_name] = i
        artifacts.append(artifact)
    return Manifest(
        platform=_platform(m.get("Platform"), m.at("Platform")),
        lifecycle=_lifecycle(m.get("Lifecycle"), m.at("Lifecycle"), set(), w),
        artifacts=tuple(artifacts),
        selections=f.string_list(m.get("Selections"), m.at("Selections")),
        name=name,
    )


PLATFORM_ALLOWED = "a string (an exact value, *, // or /regex/) or a list of them"


def _platform(value: Any, path: str) -> dict[str, str | tuple[str, ...]]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise f.wrong_type(path, value, "an object such as {os: linux, architecture: amd64}")
    out: dict[str, str | tuple[str, ...]] = {}
    for key, item in value.items():
        at = f.join(path, str(key))
        if not isinstance(key, str) or not key:
            raise ValidationError(at, "keys must be non-empty strings", value=key,
                                  allowed="a platform attribute name", has_value=True)
        if isinstance(item, list | tuple):       # alternatives (PlatformHelper)
            if not item:
                raise ValidationError(at, "an empty list matches nothing", value=item,
                                      allowed=PLATFORM_ALLOWED, has_value=True)
            out[key] = tuple(_platform_value(v, f.index(at, i)) for i, v in enumerate(item))
        else:
            out[key] = _platform_value(item, at)
    return out


def _platform_value(item: Any, at: str) -> str:
    text = f.string(item, at, allowed=PLATFORM_ALLOWED)
    if len(text) >= 2 and text.startswith("/") and text.endswith("/"):
        try:
            re.compile(text[1:-1])
        except re.error as exc:
            raise ValidationError(at, f"is not a valid regular expression ({exc})",
                                  value=text, allowed=PLATFORM_ALLOWED) from None
    elif text != "*" and not text[:1].isalnum():
        raise ValidationError(at, "exact values must start with a letter or a number",
                              value=text, allowed=PLATFORM_ALLOWED)
    return text


def _artifact(value: Any, path: str, w: list[str]) -> Artifact:
    a = f.Obj(value, path, ARTIFACT_KEYS, warnings=w)
    uri = f.string(a.require("URI"), a.at("URI"), allowed="an s3:// or greengrass: URI")
    file_name = artifact_file_name(uri, a.at("URI"))
    unarchive = Unarchive.NONE
    if a.get("Unarchive") is not None:
        unarchive = f.choice(a.get("Unarchive"), a.at("Unarchive"), Unarchive)
    read, execute = Permission.OWNER, Permission.NONE
    if a.get("Permission") is not None:
        p = f.Obj(a.get("Permission"), a.at("Permission"), ("Read", "Execute"), warnings=w)
        if p.get("Read") is not None:
            read = f.choice(p.get("Read"), p.at("Read"), Permission)
        if p.get("Execute") is not None:
            execute = f.choice(p.get("Execute"), p.at("Execute"), Permission)
    algorithm = "SHA-256"
    if a.get("Algorithm") is not None:
        allowed = "SHA-256 | SHA-384 | SHA-512"
        text = f.string(a.get("Algorithm"), a.at("Algorithm"), allowed=allowed)
        normalized = normalize_algorithm(text)
        if normalized is None:
            raise ValidationError(a.at("Algorithm"), "is not a supported digest algorithm",
                                  value=text, allowed=allowed)
        algorithm = normalized
    digest = None
    if a.get("Digest") is not None:
        allowed = f"the {algorithm} digest of the file, base64 (as Greengrass writes it) or hex"
        # Its format is checked when the artifact is staged: published recipes elide digests
        # ("…") and must still parse.
        digest = f.string(a.get("Digest"), a.at("Digest"), allowed=allowed)
    return Artifact(uri=uri, file_name=file_name, unarchive=unarchive, read=read,
                    execute=execute, digest=digest, algorithm=algorithm)


URI_ALLOWED = "s3://bucket/key or greengrass:<file name>, ending in a file name"


def artifact_file_name(uri: str, path: str) -> str:
    """The staged file name of ``uri``: its last path segment."""
    scheme, sep, rest = uri.partition(":")
    if not sep or scheme.lower() not in ("s3", "greengrass"):
        raise ValidationError(path, "has an unsupported scheme", value=uri, allowed=URI_ALLOWED)
    bad_s3 = not rest.startswith("//") or "/" not in rest[2:] or rest[2:].startswith("/")
    if scheme.lower() == "s3" and bad_s3:
        raise ValidationError(path, "is not an S3 URI with a bucket and a key", value=uri,
                              allowed=URI_ALLOWED)
    name = rest.rsplit("/", 1)[-1]
    if name in ("", ".", "..") or "\0" in name:
        raise ValidationError(path, "does not end in a file name", value=uri, allowed=URI_ALLOWED)
    return name


def _lifecycle(value: Any, path: str, sections: set[str], w: list[str]) -> Lifecycle:
    """A lifecycle; at the top level, ``sections`` are the selection keys it may contain."""
    if value is None:
        return Lifecycle()
    known = list(LIFECYCLE_KEYS)
    lc = f.Obj(value, path, known, extra=sorted(sections), warnings=w)
    steps: dict[StepName, Step] = {}
    for name in StepName:
        raw = lc.get(str(name))
        if raw is not None:
            steps[name] = _step(raw, lc.at(str(name)), w)
    subs: dict[str, Lifecycle] = {}
    for key in sorted(sections):
        if key.lower() not in _LIFECYCLE_LOWER and lc.get(key) is not None:
            sub = _lifecycle(lc.get(key), lc.at(key), set(), w)
            _check_run_startup({**steps, **sub.steps}, lc.at(key))
            subs[key] = sub
    _check_run_startup(steps, path)
    reset = None
    if lc.get(ERROR_RESET_TIME) is not None:
        # The nucleus reads it as whole seconds (Lifecycle.getErrorResetTime, Coerce.toInt).
        reset = f.positive_number(lc.get(ERROR_RESET_TIME), lc.at(ERROR_RESET_TIME))
    return Lifecycle(setenv=f.setenv(lc.get("Setenv"), lc.at("Setenv")), steps=steps,
                     sections=subs, error_reset_time_s=reset)


def _check_run_startup(steps: Mapping[StepName, Step], path: str) -> None:
    if StepName.RUN in steps and StepName.STARTUP in steps:
        raise ValidationError(path, "has both Run and Startup", value="Run, Startup",
                              allowed="only one of Run (a foreground process) or Startup "
                              "(starts a background process)")


def _step(value: Any, path: str, w: list[str]) -> Step:
    allowed = "a script or a step object {Script, RequiresPrivilege, Skipif, Timeout, Setenv}"
    if isinstance(value, str):
        return Step(script=f.string(value, path, allowed=allowed))
    if not isinstance(value, Mapping):
        raise f.wrong_type(path, value, allowed)
    s = f.Obj(value, path, STEP_KEYS, warnings=w)
    script = f.string(s.require("Script"), s.at("Script"), allowed="a shell script")
    privileged = False
    if s.get("RequiresPrivilege") is not None:
        privileged = f.boolean(s.get("RequiresPrivilege"), s.at("RequiresPrivilege"))
    timeout = None
    if s.get("Timeout") is not None:
        timeout = f.positive_number(s.get("Timeout"), s.at("Timeout"))
    skipif = None
    if s.get("Skipif") is not None:
        skipif = _skipif(s.get("Skipif"), s.at("Skipif"))
    return Step(script=script, requires_privilege=privileged, skipif=skipif, timeout_s=timeout,
                setenv=f.setenv(s.get("Setenv"), s.at("Setenv")))


SKIPIF_ALLOWED = "'onpath <executable>' or 'exists <file>'"


def _skipif(value: Any, path: str) -> SkipIf:
    text = f.string(value, path, allowed=SKIPIF_ALLOWED)
    parts = text.strip().split(None, 1)
    if len(parts) != 2:
        raise ValidationError(path, "is not a valid condition", value=text,
                              allowed=SKIPIF_ALLOWED)
    kind = next((k for k in SkipIfKind if str(k) == parts[0].lower()), None)
    if kind is None:
        raise ValidationError(path, "has an unknown condition", value=text,
                              allowed=SKIPIF_ALLOWED)
    return SkipIf(kind, parts[1].strip())
