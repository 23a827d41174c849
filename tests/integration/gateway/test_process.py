"""The gateway as its own process (``tickwire gateway``): serves, and exits cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import websockets

from tests.conftest import Backend
from tickwire.localservers import free_port


async def _wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    async with httpx.AsyncClient() as http, asyncio.timeout(20):
        while True:
            assert proc.poll() is None, "gateway exited before becoming ready"
            try:
                if (await http.get(url)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)


@dataclass
class Process:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path


@pytest.fixture
def gateway_process(backend: Backend, tmp_path: Path) -> Iterator[Process]:
    """`python -m tickwire.cli gateway --port P` against the test's NATS; killed if left running."""
    port = free_port()
    env = {**os.environ, **backend.env(), "TICKWIRE_NODE": "gw-proc"}
    log_path = tmp_path / "gateway.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tickwire.cli", "gateway", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).parents[2],
        )
    try:
        yield Process(proc, port, log_path)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_sigterm_closes_clients_1012_and_exits_0(gateway_process: Process) -> None:
    """1. start `python -m tickwire.cli gateway --port P`  2. /readyz turns 200
    3. a client connects and subscribes  4. SIGTERM  5. the client sees 1012, the process exits 0."""
    proc, port = gateway_process.proc, gateway_process.port
    await _wait_ready(f"http://127.0.0.1:{port}/readyz", proc)
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as ws:
        welcome = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert welcome["node"] == "gw-proc"
        await ws.send(json.dumps({"type": "subscribe", "topics": ["ticks.>"]}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "subscribed"
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(ws.recv(), 10)
            raise AssertionError("expected the connection to close")
        except websockets.ConnectionClosed as closed:
            assert closed.rcvd is not None and closed.rcvd.code == 1012
    assert await asyncio.to_thread(proc.wait, 20) == 0
    assert "Traceback" not in gateway_process.log.read_text()
