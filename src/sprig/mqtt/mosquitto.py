"""Run a local Mosquitto broker: for the tests, the benchmarks and the README's demo.

Sprig itself never needs a broker (the bridge is optional); this module starts the Debian
``mosquitto`` binary on a loopback port with a generated config, and knows when it is ready by
reading its log (the ``running`` line comes after the listeners are open), so callers never
sleep-and-hope.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from sprig.errors import SprigError


class MosquittoError(SprigError):
    """The broker could not be started (the message includes its log)."""


@dataclass(frozen=True)
class BrokerTls:
    """A TLS listener: the CA that signed client certificates, the server's cert and key."""

    ca: Path
    cert: Path
    key: Path
    require_certificate: bool = True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Mosquitto:
    """``async with Mosquitto(workdir) as broker:`` → a broker on ``127.0.0.1:broker.port``."""

    def __init__(self, workdir: Path, *, port: int | None = None,
                 tls: BrokerTls | None = None, binary: str = "mosquitto",
                 extra_config: tuple[str, ...] = ()) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.tls = tls
        self.extra_config = extra_config
        self.binary = shutil.which(binary) or binary
        self.log: list[str] = []
        self._proc: asyncio.subprocess.Process | None = None
        self._drain: asyncio.Task[None] | None = None

    @property
    def config_file(self) -> Path:
        return self.workdir / "mosquitto.conf"

    def _config(self) -> str:
        lines = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            "persistence false",
            "log_dest stderr",          # unbuffered: we read the "running" line
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "user root",
            "max_queued_messages 100000",
        ]
        if self.tls is not None:
            lines += [
                f"cafile {self.tls.ca}",
                f"certfile {self.tls.cert}",
                f"keyfile {self.tls.key}",
                f"require_certificate {'true' if self.tls.require_certificate else 'false'}",
                "tls_version tlsv1.2",
            ]
        lines += self.extra_config
        return "\n".join(lines) + "\n"

    async def start(self, timeout: float = 10.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(self._config())
        self.log = []
        ready = asyncio.Event()
        self._proc = await asyncio.create_subprocess_exec(
            self.binary, "-c", str(self.config_file), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        self._drain = asyncio.get_running_loop().create_task(self._read(self._proc, ready))
        waiter = asyncio.get_running_loop().create_task(ready.wait())
        try:
            await asyncio.wait({waiter, self._drain}, timeout=timeout,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if not ready.is_set():
            await self.stop()
            raise MosquittoError("mosquitto did not start:\n" + "\n".join(self.log[-20:]))

    async def _read(self, proc: asyncio.subprocess.Process, ready: asyncio.Event) -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip()
            self.log.append(line)
            del self.log[:-500]
            if " running" in line:
                ready.set()

    async def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if self._drain is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._drain
            self._drain = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def __aenter__(self) -> Mosquitto:
        await self.start()
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()
