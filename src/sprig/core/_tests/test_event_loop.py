"""The core runs on uvloop (issue 18: less CPU per invocation), and on asyncio's own loop when
``SPRIG_EVENT_LOOP=asyncio`` says so."""

from __future__ import annotations

import asyncio

import pytest

from sprig.core.daemon import ENV_EVENT_LOOP, _run


def _loop_module() -> str:
    seen: list[str] = []

    async def main() -> int:
        seen.append(type(asyncio.get_running_loop()).__module__)
        return 0

    assert _run(main()) == 0
    return seen[0]


def test_uvloop_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_EVENT_LOOP, raising=False)
    assert _loop_module().startswith("uvloop")


def test_asyncio_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_EVENT_LOOP, "asyncio")
    assert _loop_module().startswith("asyncio")
