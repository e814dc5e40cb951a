"""Configuration as a way to privilege, attacked for real (issue 11, holes 1, 3 and 5).

1. A Lambda function rewrites its own sandbox over IPC (a volume of a root-only file with
   ``addGroupOwner``, ``containerMode: NoContainer``, its environment), then crashes so that the
   next worker would be started from the rewritten configuration.
2. A component running as ``sprig_user`` rewrites the value its ``RequiresPrivilege`` Install
   interpolates, and a deployment puts shell code in that value.
3. A function reads the secret values of ``aws.greengrass.SecretManager`` and another
   function's environment variables through GetConfiguration and GetComponentDetails.

Each test fails if the attack works.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from sprig._tests.reliability.support import function_component, invoke
from sprig.testing import CoreProcess, write_recipe

SYSTEM_PYTHON = "/usr/bin/python3"     # what sprig_user can run (the test's venv may be private)


def bundle_sdk(directory: Path) -> None:
    """Copy awsiotsdk (and awscrt) into ``directory``, as a deployment package would."""
    import awscrt
    import awsiot

    directory.mkdir(parents=True, exist_ok=True)
    for module in (awsiot, awscrt):
        shutil.copytree(Path(str(module.__file__)).parent, directory / module.__name__)
    for so in Path(str(awscrt.__file__)).parent.parent.glob("_awscrt*.so"):
        shutil.copy(so, directory / so.name)


def sdk_function(out: Path, name: str, code: str, **flags: Any) -> None:
    """A function whose code bundles awsiotsdk, imported like ``sprig lambda import``."""
    bundle_sdk(out.parent / f"code-{name}-1.0.0")
    function_component(out, name, code, pinned=True, memory_kb="262144", timeout="30", **flags)


# -- 1. a function rewriting its own sandbox ---------------------------------------------------

REWRITER = '''
import os
from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2

def _try(update):
    try:
        update()
        return "ALLOWED"
    except Exception as e:
        return "%s: %s" % (type(e).__name__, getattr(e, "message", None) or e)

def handler(event, context):
    if event["action"] == "volume":
        client = GreengrassCoreIPCClientV2()
        volume = {"0": {"sourcePath": event["file"], "destinationPath": "/stolen",
                        "permission": "rw", "addGroupOwner": True}}
        return {
            "/containerParams": _try(lambda: client.update_configuration(
                key_path=["containerParams"], value_to_merge={"volumes": volume})),
            "/": _try(lambda: client.update_configuration(
                key_path=[], value_to_merge={"containerParams": {"volumes": volume}})),
        }
    if event["action"] == "unsandbox":
        client = GreengrassCoreIPCClientV2()
        return {
            "/containerMode": _try(lambda: client.update_configuration(
                key_path=[], value_to_merge={"containerMode": "NoContainer"})),
            "/lambdaExecutionParameters": _try(lambda: client.update_configuration(
                key_path=["lambdaExecutionParameters", "EnvironmentVariables"],
                value_to_merge={"INJECTED": "yes"})),
            "own key": _try(lambda: client.update_configuration(
                key_path=[], value_to_merge={"note": "my own key"})),
        }
    if event["action"] == "crash":
        os._exit(3)
    found = {"pidns": os.readlink("/proc/self/ns/pid"), "uid": os.getuid(),
             "stolen": os.path.exists("/stolen"), "env": os.environ.get("INJECTED")}
    for path in (event["file"], "/stolen"):
        try:
            with open(path) as f:
                found["read " + path] = f.read()
        except OSError as e:
            found["read " + path] = "refused: " + type(e).__name__
    return found
'''


def test_a_function_cannot_rewrite_its_sandbox_for_its_next_worker(
        core: CoreProcess, public_tmp: Path) -> None:
    secret = public_tmp / "root-only.txt"
    secret.write_text("TOP SECRET\n")
    secret.chmod(0o600)
    before = secret.stat()
    assert (before.st_uid, before.st_gid) == (0, 0), "the test runs as root"
    out = public_tmp / "out"
    sdk_function(out, "Rewriter", REWRITER)
    result = core.deploy(recipe_dir=out / "recipes", artifact_dir=out / "artifacts",
                         merge={"Rewriter": "1.0.0"})
    assert result["status"] == "SUCCEEDED", result
    host_pidns = os.readlink("/proc/self/ns/pid")

    # Each attack, then a crash: the next worker is started from the configuration as it is.
    for attack, refused_keys in (("volume", ["/containerParams"]),
                                 ("unsandbox", ["/containerMode",
                                                "/lambdaExecutionParameters"])):
        answer = invoke(core, "Rewriter", {"action": attack, "file": str(secret)})
        assert answer["functionError"] is None, answer
        refused = answer["payload"]
        print(f"the function's {attack} updates:", json.dumps(refused, indent=1))
        for key, outcome in refused.items():
            if key == "own key":
                assert outcome == "ALLOWED", "its own keys stay writable"
                continue
            assert outcome.startswith("UnauthorizedError"), refused
            assert any(f"{k} of Rewriter cannot be changed" in outcome for k in refused_keys)
            assert "only a deployment can change it" in outcome
        crash = invoke(core, "Rewriter", {"action": "crash"})
        assert crash["functionError"] == "Unhandled", crash
        core.wait_state("Rewriter", "RUNNING")
        probe = invoke(core, "Rewriter", {"action": "probe", "file": str(secret)})
        assert probe["functionError"] is None, probe
        found = probe["payload"]
        print("the next worker:", found)
        assert found["pidns"] != host_pidns, "its own PID namespace"
        assert found["uid"] != 0
        assert found["stolen"] is False and found["env"] is None
        assert all(v.startswith("refused") for k, v in found.items() if k.startswith("read"))
        after = secret.stat()
        assert (after.st_uid, after.st_gid, after.st_mode) == (
            before.st_uid, before.st_gid, before.st_mode)

    configuration = core.call("component.details", {"name": "Rewriter"})["configuration"]
    assert configuration["containerMode"] == "GreengrassContainer"
    assert configuration["containerParams"]["volumes"] == {}
    assert configuration["lambdaExecutionParameters"] == {"EnvironmentVariables": {}}
    assert configuration["note"] == "my own key"
    core_log = core.layout.core_log.read_text()
    warnings = [line for line in core_log.splitlines()
                if "[WARNING]" in line and "Rewriter: UpdateConfiguration refused" in line]
    assert len(warnings) == 4, warnings
    assert "/containerParams of Rewriter" in warnings[0]
    assert "Traceback" not in core_log


# -- 2. a component and the value its privileged Install interpolates ---------------------------

CLIENT = '''
from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
client = GreengrassCoreIPCClientV2()
for path, value in ((["x"], "x; id > PWNED #"), ([], {"x": "$(id > PWNED)"})):
    try:
        client.update_configuration(key_path=path, value_to_merge=value)
        print("UPDATE ALLOWED", path, flush=True)
    except Exception as e:
        print("update refused:", type(e).__name__, getattr(e, "message", None) or e,
              flush=True)
'''

INSTALL = ("printf 'uid=%s\\n' \"$(id -u)\"; "
           "printf 'unquoted[%s]\\n' {configuration:/x}; "
           "printf 'double[%s]\\n' \"{configuration:/x}\"; "
           "printf 'single[%s]\\n' '{configuration:/x}'; "
           "printf 'nested[%s]\\n' \"$(printf '%s' '{configuration:/x}')\"")


def test_a_privileged_step_gets_its_configuration_value_as_a_literal_string(
        core: CoreProcess, public_tmp: Path) -> None:
    sdk = public_tmp / "sdk"
    bundle_sdk(sdk)
    pwned = public_tmp / "pwned"
    (sdk / "client.py").write_text(CLIENT.replace("PWNED", str(pwned)))
    recipes = public_tmp / "recipes"
    name = "com.example.Escalate"
    write_recipe(recipes, {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": name,
        "ComponentVersion": "1.0.0",
        "ComponentConfiguration": {"DefaultConfiguration": {"x": "hello"}},
        "Manifests": [{"Platform": {"os": "linux"}, "Lifecycle": {
            "Setenv": {"PYTHONPATH": str(sdk)},
            "Install": {"RequiresPrivilege": True, "Script": INSTALL},
            "Run": f"exec {SYSTEM_PYTHON} -u {sdk / 'client.py'}",
        }}],
    })
    result = core.deploy(recipe_dir=recipes, merge={name: "1.0.0"})
    assert result["status"] == "SUCCEEDED", result
    core.wait_state(name, "FINISHED")
    log = core.log(name)
    assert "uid=0" in log, "the Install step is privileged"
    assert "UPDATE ALLOWED" not in log
    assert log.count("update refused: UnauthorizedError") == 2, log
    assert "/x of com.example.Escalate cannot be changed over IPC" in log
    assert "RequiresPrivilege Install step of com.example.Escalate" in log
    assert core.call("component.details", {"name": name})["configuration"] == {"x": "hello"}
    core_log = core.layout.core_log.read_text()
    assert f"{name}: UpdateConfiguration refused" in core_log

    hostile = [f"x; id > {pwned} #", f"$(id > {pwned})", f"`id > {pwned}`",
               f"'; id > {pwned}; echo '", f'"; id > {pwned}; echo "']
    for value in hostile:
        result = core.deploy(configuration_update={name: {"MERGE": {"x": value}}})
        assert result["status"] == "SUCCEEDED", result
        core.wait_state(name, "FINISHED")
        log = core.log(name)
        for context in ("unquoted", "double", "single", "nested"):
            assert f"{context}[{value}]" in log, (context, value, log[-2000:])
        assert not pwned.exists(), f"root ran the value {value!r}"


# -- 3. reading secrets and another function's environment -------------------------------------

READER = '''
import json
from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2

def handler(event, context):
    client = GreengrassCoreIPCClientV2()
    answers = {}
    for name, path in (("aws.greengrass.SecretManager", []),
                       ("aws.greengrass.SecretManager", ["secrets", "db", "secretString"]),
                       ("Holder", []),
                       ("Holder", ["lambdaExecutionParameters", "EnvironmentVariables"])):
        value = client.get_configuration(component_name=name, key_path=path).value
        answers["get %s %s" % (name, "/".join(path))] = value
    for name in ("aws.greengrass.SecretManager", "Holder"):
        details = client.get_component_details(component_name=name).component_details
        answers["details " + name] = details.configuration
    return answers
'''


def test_configuration_reads_reveal_no_secret_and_no_other_function_s_environment(
        core: CoreProcess, public_tmp: Path) -> None:
    secret, password = "s3cret-string-value", "env-password-value"
    out = public_tmp / "out"
    sdk_function(out, "Reader", READER)
    function_component(out, "Holder", "def handler(event, context):\n    return {}\n",
                       pinned=True, env=(f"DB_PASSWORD={password}",))
    cli_policy = {"aws.greengrass.Cli": {"Reader:cli:1": {
        "policyDescription": "details of everything",
        "operations": ["aws.greengrass#GetComponentDetails"], "resources": ["*"]}}}
    result = core.deploy(
        recipe_dir=out / "recipes", artifact_dir=out / "artifacts",
        merge={"Reader": "1.0.0", "Holder": "1.0.0", "aws.greengrass.SecretManager": "2.1.8"},
        configuration_update={
            "Reader": {"MERGE": {"accessControl": cli_policy}},
            "aws.greengrass.SecretManager": {"MERGE": {"secrets": {"db": {
                "secretString": secret,
                "arn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf"}}}}})
    assert result["status"] == "SUCCEEDED", result
    answer = invoke(core, "Reader")
    assert answer["functionError"] is None, answer
    text = json.dumps(answer["payload"])
    print("what the reader saw:", text)
    assert secret not in text and password not in text
    got = answer["payload"]
    assert got["get aws.greengrass.SecretManager secrets/db/secretString"] == {
        "secretString": "** redacted **"}
    assert got["get Holder lambdaExecutionParameters/EnvironmentVariables"] == {
        "DB_PASSWORD": "** redacted **"}
    assert got["details Holder"]["lambdaExecutionParameters"]["EnvironmentVariables"] == {
        "DB_PASSWORD": "** redacted **"}
    assert got["details Holder"]["timeoutInSeconds"] == 3, "the rest is readable"
