"""Recipes Greengrass accepts, written in the shapes users copy: the developer guide's
HelloWorld, the GDK template, the nucleus's own integration-test recipes. Deployed unchanged
from a ``--recipe-dir`` and an ``--artifact-dir``, on a real core."""
# ruff: noqa: E501  (the recipes below are quoted as their sources print them)

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from sprig.cli.client import ApiError
from sprig.testing import CoreProcess

# The developer guide's first component ("Create your first component"), as printed: no
# Artifacts section, the script sits in <artifact-dir>/com.example.HelloWorld/1.0.0/.
HELLO_WORLD = """\
---
RecipeFormatVersion: '2020-01-25'
ComponentName: com.example.HelloWorld
ComponentVersion: '1.0.0'
ComponentDescription: My first AWS IoT Greengrass component.
ComponentPublisher: Amazon
ComponentConfiguration:
  DefaultConfiguration:
    Message: world
Manifests:
  - Platform:
      os: linux
    Lifecycle:
      Run: |
        python3 -u {artifacts:path}/hello_world.py "{configuration:/Message}"
"""
HELLO_WORLD_PY = """\
import sys

message = "Hello, %s!" % sys.argv[1]

# Print the message to stdout, which Greengrass saves in a log file.
print(message)
"""

# The GDK CLI's Python template (gdk component init -t HelloWorld -l python): os: all, a ZIP
# artifact, a dependency range on the nucleus; plus a manifest key a newer format added.
GDK_TEMPLATE = """\
---
RecipeFormatVersion: "2020-01-25"
ComponentName: "com.example.PythonHelloWorld"
ComponentVersion: "1.0.0"
ComponentDescription: "This is simple Hello World component written in Python."
ComponentPublisher: "Sprig tests"
ComponentConfiguration:
  DefaultConfiguration:
    Message: "World"
ComponentDependencies:
  aws.greengrass.Nucleus:
    VersionRequirement: ">=2.5.0 <3.0.0"
    DependencyType: SOFT
Manifests:
  - Platform:
      os: all
      architecture: all
    Parameters:
      cpuCores: 1
    Artifacts:
      - URI: "s3://BUCKET_NAME/COMPONENT_NAME/COMPONENT_VERSION/com.example.PythonHelloWorld.zip"
        Unarchive: ZIP
    Lifecycle:
      Run: "python3 -u {artifacts:decompressedPath}/com.example.PythonHelloWorld/main.py {configuration:/Message}"
"""
MAIN_PY = """\
import sys

print(f"Hello {sys.argv[1]} from the GDK template")
"""

# A plugin recipe beside them (Sprig cannot load Java plugins): must not matter while unused.
PLUGIN = """\
RecipeFormatVersion: '2020-01-25'
ComponentName: aws.greengrass.SomePlugin
ComponentVersion: '1.0.0'
ComponentType: aws.greengrass.plugin
Manifests:
  - Platform: {os: all}
    Artifacts: [{URI: "s3://bucket/plugin.jar"}]
"""

# The nucleus's UninstallTestComponent-1.0.0.yaml (deployment integration tests), its "os: all"
# manifest writing where the test can see it.
UNINSTALL = """\
---
RecipeFormatVersion: '2020-01-25'
ComponentName: UninstallTestComponent
ComponentVersion: '1.0.0'
ComponentDescription: Component with basic uninstall script
ComponentPublisher: Amazon
Manifests:
  - Platform:
      os: windows
    Lifecycle:
      Run: powershell -command "echo 'Component running'"
      Uninstall: |-
        powershell -command "& { echo 'Uninstall script executing'; echo 'Component uninstalled successfully' }"
  - Platform:
      os: all
    Lifecycle:
      Run: echo "Component running"; exec sleep 600
      Uninstall: |-
        echo "Uninstall script executing"
        echo "uninstalled from {work:path}" > SHARED/uninstalled
        echo "Component uninstalled successfully"
"""


def _folders(base: Path) -> tuple[Path, Path]:
    recipes, artifacts = base / "recipes", base / "artifacts"
    recipes.mkdir()
    hello = artifacts / "com.example.HelloWorld" / "1.0.0"
    hello.mkdir(parents=True)
    (hello / "hello_world.py").write_text(HELLO_WORLD_PY)
    gdk = artifacts / "com.example.PythonHelloWorld" / "1.0.0"
    gdk.mkdir(parents=True)
    with zipfile.ZipFile(gdk / "com.example.PythonHelloWorld.zip", "w") as z:
        z.writestr("main.py", MAIN_PY)
    (recipes / "hello.yaml").write_text(HELLO_WORLD)
    (recipes / "gdk.yaml").write_text(GDK_TEMPLATE)
    (recipes / "plugin.yaml").write_text(PLUGIN)
    return recipes, artifacts


def test_developer_guide_and_gdk_recipes_deploy_unchanged(core: CoreProcess,
                                                          public_tmp: Path) -> None:
    """Greengrass: ``os: all`` / ``architecture: all`` are wildcards (component-common
    ``PlatformHelper.testField``); greengrass-cli makes the whole ``<artifactDir>/<name>/
    <version>/`` folder the ``{artifacts:path}`` (the HelloWorld recipe declares no artifact);
    unknown keys such as ``Manifests[].Parameters`` are ignored (``RecipeLoader`` disables
    ``FAIL_ON_UNKNOWN_PROPERTIES``); a dependency on ``aws.greengrass.Nucleus`` resolves against
    the running nucleus; the nucleus reads only the recipes a deployment needs, so a plugin
    recipe in the same folder does not matter until it is deployed."""
    recipes, artifacts = _folders(public_tmp)
    result = core.deploy(recipe_dir=recipes, artifact_dir=artifacts, merge={
        "com.example.HelloWorld": "1.0.0", "com.example.PythonHelloWorld": "1.0.0"})
    assert result["status"] == "SUCCEEDED", result
    # Ignored, but never silently: in the deployment's status and in the core's log.
    (warning,) = result["warnings"]
    assert "Manifests[0].Parameters: unknown key ignored" in warning and "gdk.yaml" in warning
    status = core.call("deployment.status", {"deploymentId": result["deploymentId"]})
    assert status["warnings"] == [warning]
    assert "Manifests[0].Parameters: unknown key ignored" in core.log("sprig")
    assert "Hello, world!" in core.log("com.example.HelloWorld")
    assert "Hello World from the GDK template" in core.log("com.example.PythonHelloWorld")
    comps = {c["name"]: c for c in core.call("component.list")}
    assert comps["aws.greengrass.Nucleus"]["state"] == "FINISHED"
    assert comps["aws.greengrass.Nucleus"]["version"].startswith("2.")
    # The plugin itself is refused, with the reason, when a deployment does use it.
    with pytest.raises(ApiError) as refused:
        core.deploy(recipe_dir=recipes, artifact_dir=artifacts,
                    merge={"aws.greengrass.SomePlugin": "1.0.0"})
    assert "plugin.yaml" in str(refused.value) and "plugin components" in str(refused.value)
    # A nucleus range the running nucleus does not satisfy fails as Greengrass's would.
    (recipes / "old.yaml").write_text(GDK_TEMPLATE.replace('"1.0.0"', '"2.0.0"').replace(
        ">=2.5.0 <3.0.0", "<2.1.0"))
    with pytest.raises(ApiError, match=r"aws\.greengrass\.Nucleus.*no version satisfies"):
        core.deploy(recipe_dir=recipes, artifact_dir=artifacts,
                    merge={"com.example.PythonHelloWorld": "2.0.0"})


def test_uninstall_runs_when_a_deployment_removes_the_component(core: CoreProcess,
                                                                public_tmp: Path,
                                                                shared: Path) -> None:
    """The nucleus runs ``Uninstall`` once when a deployment removes a component
    (``DeploymentConfigMerger.removeObsoleteServices`` → ``requestUninstall`` →
    ``GenericExternalService.uninstall``), after it stopped; not on a restart."""
    recipes = public_tmp / "recipes"
    recipes.mkdir()
    (recipes / "uninstall.yaml").write_text(UNINSTALL.replace("SHARED", str(shared)))
    assert core.deploy(recipe_dir=recipes, merge={"UninstallTestComponent": "1.0.0"})[
        "status"] == "SUCCEEDED"
    core.call("component.restart", {"names": ["UninstallTestComponent"]})
    core.wait_state("UninstallTestComponent", "RUNNING")
    assert not (shared / "uninstalled").exists()
    assert core.deploy(remove=["UninstallTestComponent"])["status"] == "SUCCEEDED"
    work = core.layout.work_dir("UninstallTestComponent")
    assert (shared / "uninstalled").read_text() == f"uninstalled from {work}\n"
    log = core.log("UninstallTestComponent")
    assert "Uninstall script executing" in log and "Component uninstalled successfully" in log
    assert "UninstallTestComponent" not in core.states()


def test_cli_deploys_the_developer_guide_folders(core: CoreProcess, public_tmp: Path) -> None:
    """``sprig deployment create`` as the developer guide runs ``greengrass-cli deployment
    create --recipeDir … --artifactDir … --merge …``: one line, the warnings on stderr."""
    recipes, artifacts = _folders(public_tmp)
    done = subprocess.run(
        [sys.executable, "-m", "sprig", "deployment", "create", "--root", str(core.root),
         "--recipe-dir", str(recipes), "--artifact-dir", str(artifacts),
         "--merge", "com.example.PythonHelloWorld=1.0.0", "--wait"],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Deployment ") and done.stdout.strip().endswith("SUCCEEDED")
    assert "WARNING: " in done.stderr and "Parameters" in done.stderr
    assert "Traceback" not in done.stderr
