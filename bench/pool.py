"""The runner's side of the client processes: start, command by lines, read results.

Three load clients speak the same line protocol: ``node`` (bench/node/client.mjs, the npm
package ``ws``: a client that is not ours, the default for streaming runs), ``browser``
(bench/browser.py: the same adapters in a headless Chromium page) and ``python``
(bench/clients.py, websockets + orjson, which also fails over for the failover scenario).
Connections are spread over a few processes so that no one of them is the bottleneck;
each reports its own CPU so the report can flag a saturated one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import orjson

from bench.processes import ROOT
from services.envsettings import SettingsError

log = logging.getLogger("tickwire.bench")

READY_TIMEOUT = 180.0
SATURATED = 0.9  # a client process busier than this share of a core may be the bottleneck
CLIENTS = ("node", "browser", "python")
NODE_DIR = ROOT / "bench" / "node"


def ensure_node_client() -> None:
    """Install bench/node's locked ``ws`` (``npm ci``) on first use; ``make bench``/``make test`` do it first."""
    if (NODE_DIR / "node_modules" / ".package-lock.json").exists():
        return
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise SettingsError("the node load client needs node and npm on PATH (or use --client python)")
    log.info("installing the node load client (npm ci in %s)", NODE_DIR)
    subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--silent"], cwd=NODE_DIR, check=True)


def _argv(client: str) -> list[str]:
    if client == "node":
        return [shutil.which("node") or "node", str(NODE_DIR / "client.mjs")]
    return [sys.executable, "-m", "bench.browser" if client == "browser" else "bench.clients"]


class ClientProc:
    def __init__(self, config: dict[str, Any], client: str = "python") -> None:
        self.config = config
        self.client = client
        self.proc: asyncio.subprocess.Process | None = None
        self.ready: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.result: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.received = 0
        self.resumed = 0
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *_argv(self.client), cwd=ROOT, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, start_new_session=True, limit=64 * 1024 * 1024)
        self._reader = asyncio.create_task(self._read())
        await self.send(orjson.dumps(self.config).decode())

    async def send(self, line: str) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        async for raw in self.proc.stdout:
            event = orjson.loads(raw)
            kind = event.get("event")
            if kind == "ready" and not self.ready.done():
                self.ready.set_result(event)
            elif kind == "progress":
                self.received, self.resumed = event["received"], event["resumed"]
            elif kind == "result" and not self.result.done():
                self.result.set_result(event)
        for fut in (self.ready, self.result):
            if not fut.done():
                fut.set_exception(RuntimeError(f"client process exited ({self.proc.returncode})"))

    async def stop(self) -> None:
        """End the process by its PID (after ``stop`` it exits by itself)."""
        proc = self.proc
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 5)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        if self._reader is not None:
            self._reader.cancel()
            # asyncio.wait, not a suppressed await: a cancel of the caller (Ctrl-C) must go on.
            await asyncio.wait([self._reader])


class Pool:
    """``procs`` client processes sharing ``topics`` (one entry per connection) round-robin."""

    def __init__(self, kind: str, urls: Sequence[str], topics: Sequence[list[str] | None], procs: int,
                 failover: bool = False, concurrency: int = 200, client: str = "python") -> None:
        if failover and client != "python":
            raise ValueError("only the python load client fails over")
        procs = max(1, min(procs, len(topics)))
        self.topics = list(topics)
        self.clients = [
            ClientProc({"kind": kind, "urls": list(urls), "topics": self.topics[i::procs], "failover": failover,
                        "concurrency": concurrency}, client)
            for i in range(procs)
        ]

    async def __aenter__(self) -> Pool:
        for c in self.clients:
            await c.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for c in self.clients:
            if c.proc is not None and c.proc.returncode is None and not c.result.done():
                with contextlib.suppress(OSError, ConnectionError):
                    await c.send("stop")
        for c in self.clients:
            await c.stop()

    async def wait_ready(self) -> list[dict[str, Any]]:
        return list(await asyncio.wait_for(asyncio.gather(*(c.ready for c in self.clients)), READY_TIMEOUT))

    async def go(self, t0_us: int) -> None:
        for c in self.clients:
            await c.send(f"go {t0_us}")

    @property
    def received(self) -> int:
        return sum(c.received for c in self.clients)

    @property
    def resumed(self) -> int:
        return sum(c.resumed for c in self.clients)

    async def results(self) -> list[dict[str, Any]]:
        for c in self.clients:
            await c.send("stop")
        return list(await asyncio.wait_for(asyncio.gather(*(c.result for c in self.clients)), 60))


def merge_latency(results: Sequence[dict[str, Any]], bucket_us: int) -> dict[str, float | None]:
    """p50/p95/p99/max in ms from the processes' histograms (bucket upper bounds)."""
    hist: dict[int, int] = {}
    for r in results:
        for k, v in r["hist"].items():
            hist[int(k)] = hist.get(int(k), 0) + v
    total = sum(hist.values())
    out: dict[str, float | None] = {"p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}
    if not total:
        return out
    keys = sorted(hist)
    marks = {"p50_ms": 0.50, "p95_ms": 0.95, "p99_ms": 0.99}
    seen = 0
    for k in keys:
        seen += hist[k]
        for name, q in marks.items():
            if out[name] is None and seen >= q * total:
                out[name] = round((k + 1) * bucket_us / 1000, 2)
    out["max_ms"] = round((keys[-1] + 1) * bucket_us / 1000, 2)
    return out


def client_cpu(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    shares = [r["cpu_seconds"] / r["wall_seconds"] if r["wall_seconds"] else 0.0 for r in results]
    return {"cpu_seconds": round(sum(r["cpu_seconds"] for r in results), 2),
            "max_core_share": round(max(shares, default=0.0), 2),
            "saturated": any(s > SATURATED for s in shares)}
