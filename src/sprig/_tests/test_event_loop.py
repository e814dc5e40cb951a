"""The core's event loop: asyncio's own by default, uvloop when ``SPRIG_EVENT_LOOP=uvloop``
asks for it (issue 18: less CPU per invocation), refused where it is not installed; anything
else refused."""

from __future__ import annotations

import asyncio
import importlib.util

import pytest

from sprig.daemon import ENV_EVENT_LOOP, _run
from sprig.errors import SprigError


def _loop_module() -> str:
    seen: list[str] = []

    async def main() -> int:
        seen.append(type(asyncio.get_running_loop()).__module__)
        return 0

    assert _run(main()) == 0
    return seen[0]


def test_asyncio_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_EVENT_LOOP, raising=False)
    assert _loop_module().startswith("asyncio")


def test_asyncio_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_EVENT_LOOP, "asyncio")
    assert _loop_module().startswith("asyncio")


def test_uvloop_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_EVENT_LOOP, "uvloop")
    assert _loop_module().startswith("uvloop")


def test_uvloop_asked_where_it_is_missing_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "uvloop" else real(name, *a))
    monkeypatch.setenv(ENV_EVENT_LOOP, "uvloop")
    with pytest.raises(SprigError) as e:
        _loop_module()
    assert str(e.value) == ("SPRIG_EVENT_LOOP=uvloop: uvloop is not installed (pip install "
                            "'sprig[uvloop]'); allowed without it: asyncio")


def test_an_unknown_loop_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_EVENT_LOOP, "tokio")
    with pytest.raises(SprigError) as e:
        _loop_module()
    assert str(e.value) == ("SPRIG_EVENT_LOOP: unknown event loop (got 'tokio'); allowed: "
                            "asyncio or uvloop")
