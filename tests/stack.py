"""Tickwire's own services as real child processes, for integration and fault tests.

Every process is a ``tickwire.processes.Process`` started with ``python -m tickwire.cli``,
waited on by an observable signal (a port that answers, ``/readyz`` turning 200) and
stopped by PID.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.waiting import eventually
from tickwire.localservers import free_port
from tickwire.processes import Process

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Service(Process):
    """One ``tickwire <command>`` child process: ``Service(name, args, env, log_path, port)``,
    ``args`` the subcommand's and ``env`` what it adds to this process's environment."""

    def __post_init__(self) -> None:
        self.argv = [sys.executable, "-m", "tickwire.cli", *self.argv]
        self.env = {**os.environ, **(self.env or {}), "PYTHONUNBUFFERED": "1"}
        self.cwd = ROOT

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    async def ready(self, within: float = 20.0) -> None:
        """Until ``/readyz`` answers 200 (gateways); fails at once if the process exits."""
        async with httpx.AsyncClient() as http:

            async def answered() -> bool:
                if not self.alive:
                    code = self.proc.returncode if self.proc else None
                    raise RuntimeError(f"{self.name} exited ({code}):\n{self.log()[-3000:]}")
                try:
                    return (await http.get(f"{self.url}/readyz", timeout=1)).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(answered, within, every=0.05, what=f"{self.name} ready")


class Services:
    """Starts services against one backend and stops every one of them at the end."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.started: list[Service] = []

    def _service(self, name: str, args: list[str], port: int | None, extra: dict[str, str]) -> Service:
        service = Service(name, args, {**self.env, **extra}, self.log_dir / f"{name}.log", port)
        self.started.append(service)
        return service.start()

    def ingest(self, replica: str = "ingest-1", **extra: str) -> Service:
        return self._service(replica, ["ingest"], None, {"TICKWIRE_REPLICA": replica, **extra})

    def gateway(self, node: str = "gw-1", port: int | None = None, **extra: str) -> Service:
        port = port or free_port()
        return self._service(node, ["gateway", "--port", str(port)], port, {"TICKWIRE_NODE": node, **extra})

    def stop_all(self) -> None:
        for service in reversed(self.started):
            service.stop(timeout=10)
