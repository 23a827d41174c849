"""The Python SDK installs on its own into an empty venv and receives from a real gateway."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from tests.conftest import Backend
from tests.stack import ROOT, Services

pytestmark = pytest.mark.slow

# Runs inside the SDK's venv: subscribe, say so, then print the first message as JSON.
PROGRAM = """
import asyncio, json, sys
from tickwire_client import TickwireClient

async def main() -> None:
    async with TickwireClient([sys.argv[1]], ["ticks.AAPL"]) as client:
        await asyncio.wait_for(client.subscribed.wait(), 30)
        print("subscribed", flush=True)
        msg = await client.next(30)
        print(json.dumps({"topic": msg.topic, "id": msg.id, "data": msg.data}), flush=True)

asyncio.run(main())
"""


@pytest.fixture(scope="module")
def sdk_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty venv with only ./clients/python installed into it (pip resolves its deps)."""
    home = tmp_path_factory.mktemp("sdk")
    # A copy: setuptools builds in the source folder, and the work tree stays untouched.
    source = shutil.copytree(
        ROOT / "clients" / "python", home / "src", ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    )
    venv = home / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", str(source)], check=True, timeout=240
    )
    return python


def installed(python: Path) -> set[str]:
    listing = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=json"], check=True, capture_output=True, text=True
    )
    return {p["name"].lower() for p in json.loads(listing.stdout)}


def test_the_sdk_pulls_in_websockets_only(sdk_python: Path) -> None:
    """None of the server's stack (FastAPI, OpenTelemetry, nats, redis) comes with it."""
    # pip and setuptools are what `python -m venv` puts in an empty venv.
    assert installed(sdk_python) - {"pip", "setuptools"} == {"tickwire-client", "websockets"}


async def test_the_installed_sdk_receives_a_message(sdk_python: Path, backend: Backend, services: Services) -> None:
    """1. ingest and a gateway; 2. a program in the SDK's venv subscribes to ticks.AAPL;
    3. once it is subscribed, XADD one entry; 4. it prints that entry's topic, id and data."""
    services.ingest()
    gateway = services.gateway()
    await gateway.ready()
    program = await asyncio.create_subprocess_exec(
        str(sdk_python), "-c", PROGRAM, gateway.ws_url, stdout=asyncio.subprocess.PIPE
    )
    assert program.stdout is not None
    try:
        async with asyncio.timeout(60):
            assert await program.stdout.readline() == b"subscribed\n"
            async with aioredis.from_url(backend.redis_url) as redis:
                entry_id = (await redis.xadd("md:ticks", {"symbol": "AAPL", "data": '{"bid":189.5}'})).decode()
            received = json.loads(await program.stdout.readline())
            assert await program.wait() == 0
    finally:
        if program.returncode is None:
            program.kill()
            await program.wait()
    assert received == {"topic": "ticks.AAPL", "id": entry_id, "data": {"bid": 189.5}}
