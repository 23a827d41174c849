"""``tickwire up``: the whole stack on one machine, each service its own child process.

Starts redis-server and nats-server (JetStream) in a local state folder unless
``REDIS_URL``/``NATS_URL`` are given, then ingest, the gateway replicas and the
simulator. A child that dies is reported and restarted with backoff, as a pod would be.
Ctrl-C (or SIGTERM) stops everything in reverse order, gateways first, and leaves no
process behind.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any, TypeVar

from services.backoff import Backoff
from services.lifecycle import stop_on_signals
from services.redact import redact
from tickwire.localservers import free_port, nats_argv, port_in_use, redis_argv
from tickwire.processes import Process
from tickwire.settings import UpSettings

log = logging.getLogger("tickwire.up")
T = TypeVar("T")

STOP_TIMEOUT = 15.0
WEB_DIST = Path(__file__).resolve().parent.parent / "web" / "dist"


def sibling_env(ports: list[int], env: Mapping[str, str]) -> dict[str, str]:
    """What lets the dashboard of one local replica fail over to the others directly: the
    list of all of them for the page (``/api/dashboard``), and each one's allowance of the
    others' pages (an explicit origin list replaces the same-origin default, so the page's
    own origin is in it too). Settings the environment already gives are left alone."""
    if len(ports) < 2:
        return {}
    pages = [f"http://{host}:{port}" for port in ports for host in ("127.0.0.1", "localhost")]
    siblings = {
        "TICKWIRE_DASHBOARD_GATEWAYS": ",".join(f"127.0.0.1:{port}" for port in ports),
        "TICKWIRE_ALLOWED_ORIGINS": ",".join(pages),
    }
    return {name: value for name, value in siblings.items() if name not in env}


class Supervisor:
    """Runs the stack of ``settings`` until stopped; ``environ`` is the environment every
    child starts from (the CLI's copy, never changed), with each child's own settings on top."""

    def __init__(self, settings: UpSettings, environ: Mapping[str, str]) -> None:
        self.settings = settings
        self.environ = environ
        self.state = Path(settings.state_dir).resolve()
        self.redis_url = settings.redis_url  # a local server's once started, when none is given
        self.nats_url = settings.nats_url
        self.children: list[Process] = []
        self.stop = asyncio.Event()

    def _child(self, name: str, argv: list[str], env: dict[str, str], port: int | None = None,
               quiet: bool = False) -> Process:
        # Servers log to a file in the state folder, services to the terminal.
        return Process(name, argv, env, self.state / f"{name}.log", port, quiet=quiet)

    def _tickwire(self, name: str, *args: str, port: int | None = None, **extra: str) -> Process:
        env = {**self.environ, "REDIS_URL": self.redis_url, "NATS_URL": self.nats_url, **extra}
        return self._child(name, [sys.executable, "-m", "tickwire.cli", *args], env, port)

    def _backends(self) -> list[Process]:
        """Local redis/nats children for whichever URL the settings do not give."""
        servers = []
        if not self.redis_url:
            server, port = self._server("redis-server", "redis", redis_argv)
            servers.append(server)
            self.redis_url = f"redis://127.0.0.1:{port}/0"
        if not self.nats_url:
            server, port = self._server("nats-server", "nats", nats_argv)
            servers.append(server)
            self.nats_url = f"nats://127.0.0.1:{port}"
        return servers

    def _server(self, name: str, folder: str, argv: Callable[[int, Path], list[str]]) -> tuple[Process, int]:
        """A local server on a free port, its data in its own folder of the state."""
        port = free_port()
        data = self.state / folder
        data.mkdir(parents=True, exist_ok=True)
        return self._child(name, argv(port, data), dict(self.environ), port, True), port

    def _services(self) -> list[Process]:
        web_dir = self.settings.web_dir or str(WEB_DIST)
        children = [self._tickwire("ingest", "ingest")]
        first = self.settings.first_port
        ports = [first + i for i in range(self.settings.gateways)]
        siblings = sibling_env(ports, self.environ)
        for i, port in enumerate(ports):
            children.append(
                self._tickwire(
                    f"gateway-{i + 1}", "gateway", "--port", str(port), port=port, TICKWIRE_NODE=f"gw-{i + 1}",
                    TICKWIRE_WEB_DIR=web_dir, **siblings,
                )
            )
        if self.settings.simulator:
            children.append(self._tickwire("simulator", "simulate"))
        return children

    async def run(self) -> int:
        first = self.settings.first_port
        busy = [p for p in range(first, first + self.settings.gateways) if port_in_use(p)]
        if busy:
            log.error("port(s) %s already in use: stop what listens there or pass --port", busy)
            return 1
        self.state.mkdir(parents=True, exist_ok=True)
        with stop_on_signals(self.stop):
            try:
                servers = self._backends()
                for child in servers:
                    await self._start(child)
                    await self._await_port(child)
                for child in self._services():
                    await self._start(child)
                self._announce()
                await self._watch()
            finally:
                await self._stop_all()
        return 0

    async def _start(self, child: Process) -> None:
        child.start()
        if child not in self.children:
            self.children.append(child)
        log.info("started %s (pid %s)", child.name, child.pid)

    async def _await_port(self, child: Process) -> None:
        try:
            await asyncio.to_thread(child.wait_port, 15)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\nsee {self.state}") from None

    def _announce(self) -> None:
        gateways = [c for c in self.children if c.name.startswith("gateway")]
        lines = [f"  dashboard  http://127.0.0.1:{gateways[0].port}/" if gateways else ""]
        lines += [f"  {c.name:<10} ws://127.0.0.1:{c.port}/ws" for c in gateways]
        lines += [
            f"  redis      {redact(self.redis_url)}",
            f"  nats       {redact(self.nats_url)}",
            f"  state      {self.state}",
            "  Ctrl-C stops everything.",
        ]
        log.info("Tickwire is up:\n%s", "\n".join(line for line in lines if line))

    async def _watch(self) -> None:
        """Until stop: each child watched by its own task, all owned here."""
        async with asyncio.TaskGroup() as group:
            for child in self.children:
                group.create_task(self._keep(child), name=f"keep {child.name}")

    async def _keep(self, child: Process) -> None:
        """Until stop: report the child whenever it exits and restart it with backoff."""
        backoff = Backoff(first=1.0, cap=10.0)  # never reset: a child that keeps dying waits longer
        restarts = 0
        while (code := await self._unless_stopped(child.exited())) is not None:
            restarts += 1
            delay = backoff.delay()
            log.error("%s exited with code %s; restarting in %.1fs (restart %d)", child.name, code, delay, restarts)
            if await self._unless_stopped(asyncio.sleep(delay, result=True)) is None:
                return
            await self._start(child)

    async def _unless_stopped(self, work: Coroutine[Any, Any, T]) -> T | None:
        """``work``'s result, or None as soon as stop is set; neither waiter outlives the call."""
        task = asyncio.ensure_future(work)
        stopped = asyncio.ensure_future(self.stop.wait())
        try:
            await asyncio.wait((task, stopped), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in (task, stopped):
                waiter.cancel()
            await asyncio.gather(task, stopped, return_exceptions=True)
        return task.result() if not task.cancelled() else None

    async def _stop_all(self) -> None:
        # Reverse start order: simulator and gateways first, the backends last.
        for child in reversed(self.children):
            await asyncio.to_thread(child.stop, signal.SIGTERM, STOP_TIMEOUT)
        log.info("stopped; pids %s are gone", [c.pid for c in self.children if c.proc])
