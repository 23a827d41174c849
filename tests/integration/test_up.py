"""``tickwire up``: the whole stack from one command, and nothing left when it stops."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from pathlib import Path

import pytest
from tickwire_client import TickwireClient

from tests.stack import Service
from tickwire.localservers import free_port

pytestmark = pytest.mark.slow


def child_pids(parent: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(parent)], capture_output=True, text=True).stdout
    return [int(pid) for pid in out.split()]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_up_serves_simulated_ticks_and_stops_cleanly(tmp_path: Path) -> None:
    """1. `tickwire up --gateways 2` on free ports, with its own Redis and NATS;
    2. both gateways become ready; 3. a client on the second one gets simulated ticks;
    4. SIGINT: exit code 0 and every child process is gone."""
    port = free_port()
    while free_port() == port + 1:  # the second gateway takes port + 1
        port = free_port()
    args = ["up", "--port", str(port), "--gateways", "2", "--state-dir", str(tmp_path / "state")]
    supervisor = Service("up", args, {"TICKWIRE_SIM_RATE": "200"}, tmp_path / "up.log", port).start()
    second = Service("up", [], {}, tmp_path / "up.log", port + 1, supervisor.proc)
    up = supervisor.proc
    assert up is not None
    try:
        await supervisor.ready(60)
        await second.ready(30)
        async with TickwireClient([second.ws_url], ["ticks.*"]) as client:
            msgs = [await client.next(30) for _ in range(20)]
        assert all(m.topic.startswith("ticks.") for m in msgs)
        assert client.stats.node == "gw-2"
        children = child_pids(up.pid)
        assert len(children) == 6, supervisor.log()[-2000:]  # redis, nats, ingest, 2 gateways, simulator
        up.send_signal(signal.SIGINT)
        assert await asyncio.to_thread(up.wait, 40) == 0
    finally:
        supervisor.stop(signal.SIGKILL)
    assert [pid for pid in children if alive(pid)] == []
    assert "Tickwire is up" in supervisor.log()
