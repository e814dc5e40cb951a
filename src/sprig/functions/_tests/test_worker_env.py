"""The worker's environment and LaunchSpec: Lambda's and Greengrass's variables, the sandbox."""

from __future__ import annotations

import json
from pathlib import Path

from sprig.functions.config import LambdaConfig
from sprig.functions.runtimes import ResolvedRuntime
from sprig.functions.worker import FunctionSpec, launch_spec, worker_env
from sprig.lambda_params import ContainerMode, DeviceMount, PayloadEncoding, VolumeMount
from sprig.launcher.spec import Mount, ResourceLimits
from sprig.run_as import RunAs

ARN = "arn:aws:lambda:us-east-1:123456789012:function:fn:7"
RT = ResolvedRuntime("python3.9", ("/usr/bin/python3.11", "-u", "/opt/sprig/python/bootstrap.py"),
                     (Path("/usr"), Path("/opt/sprig/python")))


def spec(**cfg: object) -> FunctionSpec:
    return FunctionSpec(
        component_name="comp", component_version="7.0.0", function_name="fn",
        function_version="7", function_arn=ARN, runtime="python3.9", handler="app.handler",
        code_dir=Path("/code"), config=LambdaConfig(**cfg),  # type: ignore[arg-type]
        work_dir=Path("/work/comp"), exec_args=("--flag",), run_as=RunAs("u", "g"),
        core_env={"AWS_IOT_THING_NAME": "thing", "AWS_REGION": "eu-west-1", "SVCUID": "tok",
                  "AWS_LAMBDA_RUNTIME_API": "nope"},
        system_limits=ResourceLimits(memory_kb=1000))


def test_a_socket_only_runtime_gets_no_port_to_name() -> None:
    """Sprig's Python and Node.js runtimes speak only the worker's Unix socket: no
    AWS_LAMBDA_RUNTIME_API at all (as in Greengrass), not even one the function set itself."""
    env = worker_env(spec(environment={"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:1"}),
                     RT, "comp-1", "", "/run/s.sock")
    assert "AWS_LAMBDA_RUNTIME_API" not in env
    assert env["SPRIG_RUNTIME_API_SOCKET"] == "/run/s.sock"


def test_environment() -> None:
    env = worker_env(spec(environment={"A": "1", "_HANDLER": "user-cannot-override"},
                          encoding=PayloadEncoding.BINARY),
                     RT, "comp-1", "127.0.0.1:5555", "/run/s.sock")
    assert env["A"] == "1" and env["_HANDLER"] == "app.handler"        # reserved names win
    assert env["AWS_LAMBDA_RUNTIME_API"] == "127.0.0.1:5555"
    assert env["SPRIG_RUNTIME_API_SOCKET"] == "/run/s.sock"
    assert (env["AWS_LAMBDA_FUNCTION_NAME"], env["AWS_LAMBDA_FUNCTION_VERSION"],
            env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]) == ("fn", "7", "16")
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == "/aws/lambda/fn"
    assert env["AWS_LAMBDA_LOG_STREAM_NAME"].endswith("/[7]comp-1")
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert env["AWS_IOT_THING_NAME"] == "thing" and env["SVCUID"] == "tok"
    assert env["LAMBDA_TASK_ROOT"] == "/code" and env["LAMBDA_RUNTIME_DIR"] == "/opt/sprig/python"
    assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.9"
    assert env["TZ"] == ":UTC" and env["LANG"] == "en_US.UTF-8"
    assert env["PATH"].startswith("/usr/bin:")
    assert env["MY_FUNCTION_ARN"] == env["AWS_GREENGRASS_LAMBDA_ARN"] == ARN
    assert env["AWS_GREENGRASS_LAMBDA_FUNCTION_HANDLER"] == "app.handler"
    assert env["AWS_GREENGRASS_LAMBDA_RUNTIME"] == "python3.9"
    assert env["AWS_GREENGRASS_LAMBDA_CONTAINER_MODE"] == "GreengrassContainer"
    assert env["AWS_GREENGRASS_LAMBDA_ENCODING_TYPE"] == env["ENCODING_TYPE"] == "binary"
    assert env["AWS_GREENGRASS_LAMBDA_WORKER_ID"] == "comp-1"
    assert env["GGC_MAX_INTERFACE_VERSION"] == "1.5"
    assert env["ROUTER_FUNCTION_ARN"] == "arn:aws:lambda:::function:GGRouter"
    assert json.loads(env["AWS_GREENGRASS_LAMBDA_EXEC_ARGS"]) == [
        "python3.9", "-u", "/opt/sprig/python/bootstrap.py", "--handler=app.handler", "--flag"]
    assert json.loads(env["AWS_GREENGRASS_LAMBDA_CONTAINER_PARAMS"])["memorySize"] == 16384
    assert json.loads(env["AWS_GREENGRASS_LAMBDA_PARAMS"]) == {
        "EnvironmentVariables": {"A": "1", "_HANDLER": "user-cannot-override"}}
    assert json.loads(env["AWS_GREENGRASS_LAMBDA_LINUX_PROCESS_PARAMS"]) == {
        "user": "u", "group": "g"}


def test_launch_spec_container() -> None:
    ls = launch_spec(spec(memory_kb=32768, mount_ro_sysfs=True,
                          volumes=(VolumeMount("/data", "/in", True, True),),
                          devices=(DeviceMount("/dev/ttyS0"),)),
                     RT, "comp-1", "127.0.0.1:1", "/run/x/s.sock", "ab12")
    assert ls.argv == (*RT.argv, "--flag") and ls.cwd == Path("/work/comp")
    assert ls.container_mode is ContainerMode.GREENGRASS_CONTAINER
    assert ls.limits == ResourceLimits(memory_kb=32768) and ls.run_as == RunAs("u", "g")
    assert ls.read_only_paths == (Path("/code"), Path("/usr"), Path("/opt/sprig/python"),
                                  Path("/run/x"))
    assert ls.writable_paths == (Path("/work/comp"),)
    assert ls.volumes == (Mount(Path("/data"), Path("/in"), True, True),)
    assert ls.devices == (Mount(Path("/dev/ttyS0"), Path("/dev/ttyS0")),)
    assert ls.mount_ro_sysfs and ls.cgroup_name == "comp-1-ab12"


def test_launch_spec_with_ephemeral_storage() -> None:
    """``containerParams.ephemeralStorageSize``: the work directory is not bound from the disk
    but a private tmpfs of that size (and so is /tmp): the function cannot fill the disk."""
    ls = launch_spec(spec(ephemeral_storage_kb=2048), RT, "comp-1", "127.0.0.1:1")
    assert ls.ephemeral_storage_kb == 2048
    assert ls.ephemeral_paths == (Path("/work/comp"),) and ls.writable_paths == ()
    assert ls.cwd == Path("/work/comp")
    off = launch_spec(spec(container_mode=ContainerMode.NO_CONTAINER, ephemeral_storage_kb=2048),
                      RT, "comp-2", "127.0.0.1:1")
    assert off.ephemeral_storage_kb is None and off.ephemeral_paths == ()


def test_launch_spec_no_container_uses_system_limits() -> None:
    ls = launch_spec(spec(container_mode=ContainerMode.NO_CONTAINER,
                          volumes=(VolumeMount("/a", "/b"),)), RT, "comp-2", "127.0.0.1:1")
    assert ls.container_mode is ContainerMode.NO_CONTAINER
    assert ls.limits == ResourceLimits(memory_kb=1000)
    assert ls.read_only_paths == () and ls.volumes == () and not ls.mount_ro_sysfs


def test_search_paths_add_up_and_are_mounted(tmp_path: Path) -> None:
    shims = tmp_path / "shims"
    shims.mkdir()
    s = spec(environment={"PYTHONPATH": "/code/lib"})
    s = FunctionSpec(**{**s.__dict__, "core_env": {"PYTHONPATH": str(shims)}})
    env = worker_env(s, RT, "comp-1", "127.0.0.1:1")
    assert env["PYTHONPATH"] == f"/code/lib:{shims}"
    ls = launch_spec(s, RT, "comp-1", "127.0.0.1:1")
    assert shims in ls.read_only_paths and Path("/code/lib") not in ls.read_only_paths
