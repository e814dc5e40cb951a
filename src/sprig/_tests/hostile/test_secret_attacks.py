"""Attacks on GetSecretValue (Greengrass IPC v2, ``aws.greengrass.SecretManager``) through a real
core: real components and Lambda functions (both container modes) calling the real awsiotsdk
``GreengrassCoreIPCClientV2.get_secret_value``.

Each component asks for secrets it may not have, by name and by ARN, for stages its secret does
not have, and tries to grant itself access; the test fails if any of it yields a value, or if a
value reaches an answer or a log. Greengrass's rules are cited in
``sprig/ipc/_tests/test_secret_ops.py`` (developer guide "Retrieve secret values";
aws-greengrass-secret-manager ``SecretManagerIPCAgent`` / ``SecretManager``).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

from sprig._tests.reliability.support import invoke
from sprig.lambda_import.importer import import_function
from sprig.lambda_import.params import ImportFlags
from sprig.log_ratelimit import DEFAULT_BURST
from sprig.testing import CoreProcess, write_recipe

ARN_PREFIX = "arn:aws:secretsmanager:us-east-1:123456789012:secret:"
A_NAME, A_ARN, A_VALUE = "db-password", ARN_PREFIX + "db-password-AbCdEf", "a-value-7f3c9e1d"
B_NAME, B_ARN, B_VALUE = "admin-token", ARN_PREFIX + "admin-token-XyZ123", "b-value-51d0aa42"
VALUES = (A_VALUE, B_VALUE)
SECRETS = {"secrets": {
    A_NAME: {"secretString": A_VALUE, "arn": A_ARN},
    B_NAME: {"secretString": B_VALUE, "arn": B_ARN},
}}

# Runs as a component: performs each attempt of argv[1] (JSON) with the real client, writes the
# outcomes to argv[2], exits 0 (FINISHED).
ATTEMPTS = '''
import json, sys
from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
client = GreengrassCoreIPCClientV2()
def outcome(fn, **kw):
    try:
        r = fn(**kw)
    except Exception as e:
        return {"error": type(e).__name__, "message": getattr(e, "message", None) or str(e),
                "resourceType": getattr(e, "resource_type", None)}
    if hasattr(r, "secret_value"):
        return {"value": r.secret_value.secret_string, "secretId": r.secret_id}
    return {"ok": repr(r)}
results = []
for kind, kw in json.loads(sys.argv[1]):
    if kind == "secret":
        results.append(outcome(client.get_secret_value, **kw))
    else:
        results.append(outcome(client.update_configuration, **kw))
with open(sys.argv[2], "w") as f:
    json.dump(results, f)
client.close()
'''

FUNCTION = '''
from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
client = GreengrassCoreIPCClientV2()

def handler(event, context):
    out = {}
    for key, secret_id in (("a", A_NAME), ("b_name", B_NAME), ("b_arn", B_ARN)):
        try:
            out[key] = {"value": client.get_secret_value(secret_id=secret_id)
                        .secret_value.secret_string}
        except Exception as e:
            out[key] = {"error": type(e).__name__, "message": str(e)}
    return out
'''


def a_only_policy(component: str) -> dict[str, Any]:
    return {"aws.greengrass.SecretManager": {f"{component}:secrets:1": {
        "policyDescription": "secret A only", "operations": ["aws.greengrass#GetSecretValue"],
        "resources": [A_ARN]}}}


def attacker(recipes: Path, name: str, attempts: list[Any], out: Path,
             access: dict[str, Any] | None) -> None:
    script = recipes.parent / f"{name}.py"
    script.write_text(ATTEMPTS)
    config = {"accessControl": access} if access else {}
    write_recipe(recipes, {
        "RecipeFormatVersion": "2020-01-25", "ComponentName": name, "ComponentVersion": "1.0.0",
        "ComponentConfiguration": {"DefaultConfiguration": config},
        "Manifests": [{"Lifecycle": {"Run": (
            f"exec {sys.executable} -u {script} '{json.dumps(attempts)}' {out}")}}],
    })


def refusals_logged(core: CoreProcess, component: str, asked: list[str]) -> None:
    """Each refusal has its line — until the core log's rate limit summarises a warning that
    repeats more than DEFAULT_BURST times a minute (sprig.log_ratelimit)."""
    text = core.layout.core_log.read_text(errors="replace")
    lines = [line for line in text.splitlines() if "ipc: GetSecretValue by " in line
             and " refused for secret " in line]
    limited = len(lines) >= DEFAULT_BURST
    mine = [line for line in lines if f"GetSecretValue by {component} refused" in line]
    for secret_id in asked:
        assert limited or any("WARNING" in line and f"refused for secret {secret_id}:" in line
                              for line in mine), (component, secret_id, mine)
    assert mine or limited, (component, lines)


def no_value_anywhere(core: CoreProcess, *extra: Path) -> None:
    files = [*core.layout.logs.glob("*.log*"), core.root / "core.stdout", *extra]
    for f in files:
        text = f.read_text(errors="replace")
        for value in VALUES:
            assert value not in text, f"a secret value appears in {f}"


def test_components_get_only_the_secrets_their_policy_names(
        core: CoreProcess, public_tmp: Path) -> None:
    recipes = public_tmp / "recipes"
    results = public_tmp / "results"
    results.mkdir()
    by_name_and_arn = [["secret", {"secret_id": s}] for s in (A_NAME, A_ARN, B_NAME, B_ARN)]
    attacker(recipes, "com.example.NoPolicy", by_name_and_arn,
             results / "none.json", access=None)
    grab_b = {"aws.greengrass.SecretManager": {"grab:1": {
        "operations": ["*"], "resources": ["*"]}}}
    attacker(recipes, "com.example.OnlyA", [
        *by_name_and_arn,
        ["secret", {"secret_id": A_NAME, "version_stage": "AWSPREVIOUS"}],
        ["secret", {"secret_id": A_ARN, "version_id": "00000000-0000-4000-8000-000000000000"}],
        ["secret", {"secret_id": A_ARN + "x"}],
        ["secret", {"secret_id": ARN_PREFIX + "*"}],
        ["secret", {"secret_id": "*"}],
        ["secret", {"secret_id": B_NAME, "refresh": True}],
        # Grant itself every secret, then ask again.
        ["config", {"key_path": ["accessControl"], "value_to_merge": grab_b}],
        ["config", {"key_path": [], "value_to_merge": {"accessControl": grab_b}}],
        ["secret", {"secret_id": B_NAME}],
    ], results / "only_a.json", access=a_only_policy("com.example.OnlyA"))
    # The test's interpreter lives in a private home here, so these components run as root.
    as_root = {"posixUser": "root"}
    result = core.deploy(
        recipe_dir=recipes,
        merge={"aws.greengrass.SecretManager": "2.1.8", "com.example.NoPolicy": "1.0.0",
               "com.example.OnlyA": "1.0.0"},
        configuration_update={"aws.greengrass.SecretManager": {"MERGE": SECRETS}},
        run_with={"com.example.NoPolicy": as_root, "com.example.OnlyA": as_root})
    assert result["status"] == "SUCCEEDED", result
    for name in ("com.example.NoPolicy", "com.example.OnlyA"):
        core.wait_state(name, "FINISHED", "ERRORED", "BROKEN")
        assert core.states()[name] == "FINISHED", core.log(name)[-3000:]

    none = json.loads((results / "none.json").read_text())
    assert [r.get("error") for r in none] == ["UnauthorizedError"] * 4, none
    assert A_ARN in none[0]["message"] and B_ARN in none[3]["message"], none
    refusals_logged(core, "com.example.NoPolicy", [A_NAME, A_ARN, B_NAME, B_ARN])

    got = json.loads((results / "only_a.json").read_text())
    print("OnlyA:", json.dumps(got, indent=1))
    assert got[0] == {"value": A_VALUE, "secretId": A_ARN}, got
    assert got[1] == {"value": A_VALUE, "secretId": A_ARN}, got
    assert [r.get("error") for r in got[2:4]] == ["UnauthorizedError"] * 2, got
    stage, version = got[4], got[5]
    assert stage["error"] == "ResourceNotFoundError" and stage["resourceType"] == "secret"
    assert stage["message"].startswith(
        f"Version stage AWSPREVIOUS not found for secret {A_NAME}"), stage
    assert version["error"] == "ResourceNotFoundError", version
    assert [r.get("error") for r in got[6:8]] == ["UnauthorizedError"] * 2, got
    assert got[8]["error"] == "ResourceNotFoundError", got[8]       # '*' is not a wildcard id
    assert got[9]["error"] == "UnauthorizedError", got[9]           # refresh changes nothing
    assert [r.get("error") for r in got[10:12]] == ["UnauthorizedError"] * 2, got
    assert got[12]["error"] == "UnauthorizedError", got[12]        # still only A
    assert core.call("component.details", {"name": "com.example.OnlyA"})["configuration"][
        "accessControl"] == a_only_policy("com.example.OnlyA")
    refusals_logged(core, "com.example.OnlyA", [B_NAME, B_ARN, A_ARN + "x", "*"])
    # No value of B reached OnlyA; no value at all reached NoPolicy, a log or core.stdout.
    assert B_VALUE not in (results / "only_a.json").read_text()
    no_value_anywhere(core, results / "none.json")


def test_functions_in_both_container_modes_get_their_secret_through_awsiotsdk(
        core: CoreProcess, public_tmp: Path) -> None:
    import awscrt
    import awsiot

    code = public_tmp / "code"
    code.mkdir()
    ids = f"A_NAME, B_NAME, B_ARN = {A_NAME!r}, {B_NAME!r}, {B_ARN!r}\n"
    (code / "app.py").write_text(ids + FUNCTION)
    # Bundle the SDK with the function, as a user's deployment package would.
    for module in (awsiot, awscrt):
        shutil.copytree(Path(module.__file__).parent, code / module.__name__)
    for so in Path(awscrt.__file__).parent.parent.glob("_awscrt*.so"):
        shutil.copy(so, code / so.name)
    out = public_tmp / "out"
    names = {"GreengrassContainer": "SecretFnGc", "NoContainer": "SecretFnNc"}
    for isolation, name in names.items():
        import_function(code, out, ImportFlags(
            name=name, runtime="python3.11", handler="app.handler", pinned=True,
            isolation=isolation, memory_kb="262144", timeout="20"))
    update: dict[str, Any] = {n: {"MERGE": {"accessControl": a_only_policy(n)}}
                              for n in names.values()}
    update["aws.greengrass.SecretManager"] = {"MERGE": SECRETS}
    result = core.deploy(recipe_dir=out / "recipes", artifact_dir=out / "artifacts",
                         merge={"aws.greengrass.SecretManager": "2.1.8",
                                **dict.fromkeys(names.values(), "1.0.0")},
                         configuration_update=update)
    assert result["status"] == "SUCCEEDED", result
    for isolation, name in names.items():
        answer = invoke(core, name)
        assert answer["functionError"] is None, (isolation, answer, core.log(name)[-3000:])
        got = answer["payload"]
        assert got["a"] == {"value": A_VALUE}, (isolation, got)
        for key in ("b_name", "b_arn"):
            assert got[key]["error"] == "UnauthorizedError", (isolation, got)
            assert B_VALUE not in json.dumps(got[key]), (isolation, got)
        refusals_logged(core, name, [B_NAME, B_ARN])
    no_value_anywhere(core)


def test_a_recipe_cannot_interpolate_a_secret_value(tmp_path: Path, core: CoreProcess) -> None:
    """A component that depends on the SecretManager refers to a secret's value in its own
    lifecycle (``{aws.greengrass.SecretManager:configuration:/secrets/…}``): in Greengrass that
    configuration holds no values, and in Sprig a recipe variable sees configuration as IPC
    does — the value never reaches the script, its environment or the log."""
    recipes = tmp_path / "recipes"
    write_recipe(recipes, {
        "RecipeFormatVersion": "2020-01-25", "ComponentName": "com.example.Peek",
        "ComponentVersion": "1.0.0",
        "ComponentDependencies": {"aws.greengrass.SecretManager": {
            "VersionRequirement": ">=2.0.0", "DependencyType": "HARD"}},
        "Manifests": [{"Lifecycle": {
            "Setenv": {"PEEK_ENV": f"{{aws.greengrass.SecretManager:configuration:"
                                   f"/secrets/{A_NAME}/secretString}}"},
            "Run": (f"echo GOT={{aws.greengrass.SecretManager:configuration:/secrets/{A_NAME}"
                    f"/secretString}} ENV=$PEEK_ENV")}}],
    })
    result = core.deploy(recipe_dir=recipes, merge={
        "com.example.Peek": "1.0.0", "aws.greengrass.SecretManager": "2.1.8"},
        configuration_update={"aws.greengrass.SecretManager": {"MERGE": SECRETS}})
    assert result["status"] == "SUCCEEDED", result
    core.wait_state("com.example.Peek", "FINISHED")
    log = core.log("com.example.Peek")
    assert "GOT=" in log, log[-2000:]
    no_value_anywhere(core)
