"""One system under test as a stack of child processes on free ports.

``tickwire``: redis + nats (JetStream) + ingest + gateway(s); ``tickwire-w2`` the same with
the gateway's ``--workers 2`` (two pre-forked processes on one port). ``fastapi`` and ``socketio``:
redis + the baseline app. ``natsws``: redis + nats (JetStream + WebSocket listener) + ingest,
whose JetStream subjects are core subjects too, so NATS WebSocket clients get every entry
exactly as Tickwire's gateway does, from the same bridge.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench import processes
from bench.processes import Child
from tickwire.localservers import free_port, wait_for_port

SYSTEMS = ("tickwire", "tickwire-w2", "natsws", "fastapi", "socketio")
WORKERS = {"tickwire": 1, "tickwire-w2": 2}


@dataclass
class Stack:
    system: str
    log_dir: Path
    servers: list[Child] = field(default_factory=list)
    ws_urls: list[str] = field(default_factory=list)
    frontends: list[Child] = field(default_factory=list)  # the processes clients connect to
    redis_url: str = ""
    nats_url: str = ""

    @property
    def protocol(self) -> str:
        """What its clients speak: every Tickwire variant speaks protocol v1."""
        return "tickwire" if self.system in WORKERS else self.system

    def cpu(self) -> dict[str, float]:
        return {c.name: c.cpu() for c in self.servers}

    def stop(self) -> None:
        # Reverse start order: what clients talk to first, the backends last.
        for child in reversed(self.servers):
            child.stop()


def _ready(url: str, child: Child, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.alive:
            raise RuntimeError(f"{child.name} exited:\n{child.log_path.read_text(errors='replace')[-2000:]}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{child.name} not ready at {url}")


def start(system: str, log_dir: Path, *, gateways: int = 1, ingest: int = 1, frontend: bool = True,
          env: dict[str, str] | None = None) -> Stack:
    """Start ``system``; the caller stops it (``Stack.stop``) in a ``finally``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    stack = Stack(system, log_dir)
    extra = dict(env or {})
    try:
        redis = processes.redis(log_dir)
        stack.servers.append(redis.start().wait_port())
        stack.redis_url = f"redis://127.0.0.1:{redis.port}/0"
        if system in WORKERS or system == "natsws":
            ws_port = free_port() if system == "natsws" else None
            nats = processes.nats(log_dir, websocket_port=ws_port)
            stack.servers.append(nats.start().wait_port())
            stack.nats_url = f"nats://127.0.0.1:{nats.port}"
            base = {"REDIS_URL": stack.redis_url, "NATS_URL": stack.nats_url, "TICKWIRE_LOG_LEVEL": "WARNING",
                    # Nothing from an earlier lifetime to replay in the bench; keep startup short.
                    "TICKWIRE_REPLAY_BUFFER": "1000", **extra}
            for i in range(ingest):
                name = f"ingest-{i + 1}"
                stack.servers.append(
                    processes.tickwire(name, ["ingest"], log_dir, {**base, "TICKWIRE_REPLICA": name}).start())
            if system == "natsws":
                assert ws_port is not None
                wait_for_port(ws_port)
                stack.ws_urls.append(f"ws://127.0.0.1:{ws_port}")
                stack.frontends.append(nats)
            elif frontend:
                workers = WORKERS[system]
                for i in range(gateways):
                    port = free_port()
                    gw = processes.tickwire(f"gateway-{i + 1}",
                                            ["gateway", "--port", str(port), "--workers", str(workers)], log_dir,
                                            {**base, "TICKWIRE_NODE": f"gw-{i + 1}"}, port, tree=workers > 1)
                    stack.servers.append(gw.start())
                    stack.frontends.append(gw)
                    stack.ws_urls.append(f"ws://127.0.0.1:{port}/ws")
                for gw in stack.frontends:
                    _ready(f"http://127.0.0.1:{gw.port}/readyz", gw)
        else:
            port = free_port()
            module = f"bench.baselines.{system}_app"
            app = processes.python_module(system, module, [stack.redis_url, str(port)], log_dir, port)
            stack.servers.append(app.start().wait_port())
            stack.frontends.append(app)
            stack.ws_urls.append(f"ws://127.0.0.1:{port}/ws" if system == "fastapi" else f"ws://127.0.0.1:{port}")
    except BaseException:
        stack.stop()
        raise
    return stack


async def warm_up(stack: Stack, stream: str = "md:ticks", within: float = 30.0) -> None:
    """Create ``stream`` and, where ingest bridges it, wait until JetStream holds an entry.

    Ingest finds new streams by a periodic SCAN (TICKWIRE_RESCAN_INTERVAL, 2 s): without this
    the first seconds of a run would measure discovery, not delivery. The warm-up entry's
    ``ts`` is before the run's start, so clients never count it.
    """
    import redis.asyncio as aioredis
    from nats.aio.client import Client as NATS

    r = aioredis.from_url(stack.redis_url)
    try:
        await r.xadd(stream, {"symbol": "WARMUP", "data": b"{}", "ts": str(time.time_ns() // 1000)})
    finally:
        await r.aclose()
    if not stack.nats_url or not any(c.name.startswith("ingest") for c in stack.servers):
        return
    nc = NATS()
    await nc.connect(stack.nats_url)
    try:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            try:
                if (await nc.jetstream().stream_info("MD")).state.messages > 0:
                    return
            except Exception:  # MD not created yet: ingest is still starting
                pass
            await asyncio.sleep(0.05)
        raise TimeoutError("ingest did not bridge the warm-up entry")
    finally:
        await nc.close()
