"""SubscribeToComponentUpdates / DeferComponentUpdate and SubscribeToValidateConfigurationUpdates /
SendConfigurationValidityReport with the real awsiotsdk client, against the deployments' side
(:class:`sprig.ipc.notices.ComponentNotices`) driven directly."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sprig.ipc._tests.conftest import DictCore, IpcError
from sprig.ipc.server import IpcServer


async def _error(driver: Any, cmd: str, **kw: Any) -> IpcError:
    with pytest.raises(IpcError) as e:
        await driver(cmd, **kw)
    return e.value


async def test_a_component_defers_an_update_then_lets_it_go(server: IpcServer, core: DictCore,
                                                             drivers: Any) -> None:
    core.add("com.busy", "tok-busy")
    core.add("com.other", "tok-other")
    busy = await drivers(server.socket_path, "tok-busy")
    other = await drivers(server.socket_path, "tok-other")
    sub = await busy("subscribe_updates")

    # Not subscribed: refused with the nucleus's words.
    e = await _error(other, "defer", deploymentId="d-1", recheckAfterMs=100)
    assert e.kind == "InvalidArgumentsError" and "not subscribed" in e.message
    # Nothing waits yet.
    e = await _error(busy, "defer", deploymentId="d-1", recheckAfterMs=100)
    assert e.kind == "ServiceError" and "Time limit" in e.message

    waiting = asyncio.create_task(core.notices.wait_until_safe("d-1", 10))
    assert await busy.events(sub, 1) == [{"pre": "d-1", "isGgcRestarting": False}]
    # An answer for another deployment does not count, a bad recheck is refused by name.
    e = await _error(busy, "defer", deploymentId="d-0", recheckAfterMs=100)
    assert e.kind == "ServiceError"
    e = await _error(busy, "defer", deploymentId="d-1", recheckAfterMs=-5)
    assert e.kind == "InvalidArgumentsError" and "recheckAfterMs" in e.message
    await busy("defer", deploymentId="d-1", message="mid-batch", recheckAfterMs=200)
    # Asked again after the deferral; this time it lets the update go.
    events = await busy.events(sub, 2)
    assert events[1] == {"pre": "d-1", "isGgcRestarting": False}
    assert not waiting.done()
    await busy("defer", deploymentId="d-1", recheckAfterMs=0)
    await asyncio.wait_for(waiting, 10)

    core.notices.updated("d-1")
    assert (await busy.events(sub, 3))[2] == {"post": "d-1"}


async def test_a_silent_subscriber_holds_an_update_only_until_the_timeout(
        server: IpcServer, core: DictCore, drivers: Any) -> None:
    core.add("com.silent", "tok-silent")
    silent = await drivers(server.socket_path, "tok-silent")
    sub = await silent("subscribe_updates")
    waiting = asyncio.create_task(core.notices.wait_until_safe("d-2", 0.5))
    assert await silent.events(sub, 1) == [{"pre": "d-2", "isGgcRestarting": False}]
    await asyncio.wait_for(waiting, 10)
    # Its answer now comes too late.
    e = await _error(silent, "defer", deploymentId="d-2", recheckAfterMs=1000)
    assert e.kind == "ServiceError"
    # A closed subscription is no longer asked: nothing to wait for.
    await silent("close_sub", sub=sub)
    await asyncio.wait_for(core.notices.wait_until_safe("d-3", 30), 5)


async def test_a_component_validates_its_proposed_configuration(
        server: IpcServer, core: DictCore, drivers: Any) -> None:
    core.add("com.strict", "tok-strict")
    strict = await drivers(server.socket_path, "tok-strict")
    sub = await strict("subscribe_validation")

    asked = asyncio.create_task(core.notices.validate(
        "d-4", {"com.strict": {"port": 70000}, "com.unsubscribed": {"x": 1}}, 10))
    assert await strict.events(sub, 1) == [{"validate": "d-4",
                                            "configuration": {"port": 70000}}]
    e = await _error(strict, "report_validity", status="MAYBE", deploymentId="d-4")
    assert e.kind == "InvalidArgumentsError" and "ACCEPTED or REJECTED" in e.message
    await strict("report_validity", status="REJECTED", deploymentId="d-4",
                 message="port must be below 65536")
    reason = await asyncio.wait_for(asked, 10)
    assert reason is not None and "com.strict: port must be below 65536" in reason
    assert "COMPONENT_CONFIGURATION_NOT_VALID" in reason

    asked = asyncio.create_task(core.notices.validate("d-5", {"com.strict": {"port": 80}}, 10))
    await strict.events(sub, 2)
    await strict("report_validity", status="ACCEPTED", deploymentId="d-5")
    assert await asyncio.wait_for(asked, 10) is None

    # No answer within the timeout fails too, and a late report is refused.
    reason = await core.notices.validate("d-6", {"com.strict": {"port": 81}}, 0.3)
    assert reason is not None and "no configuration validity report from com.strict" in reason
    e = await _error(strict, "report_validity", status="ACCEPTED", deploymentId="d-6")
    assert e.kind == "InvalidArgumentsError" and "timed out or was never made" in e.message
