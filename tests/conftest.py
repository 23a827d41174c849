"""Fixtures shared by every suite: real backends, fresh for each test."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from services.settings import BusSettings
from tests.servers import Server, nats_server, redis_server
from tests.stack import Services


@dataclass(frozen=True)
class Backend:
    """Where a test's Redis and NATS are, and (when local) their processes."""

    redis_url: str
    nats_url: str
    redis: Server | None = None
    nats: Server | None = None

    def env(self) -> dict[str, str]:
        return {"REDIS_URL": self.redis_url, "NATS_URL": self.nats_url}

    def bus(self) -> BusSettings:
        return BusSettings(redis_url=self.redis_url, nats_url=self.nats_url)


def _docker_engine() -> bool:
    if not shutil.which("docker"):
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=5).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="session")
def shared_backend_urls() -> Iterator[tuple[str, str] | None]:
    """Servers given by the environment or containers; None means start local ones per test."""
    if os.environ.get("REDIS_URL") and os.environ.get("NATS_URL"):
        yield os.environ["REDIS_URL"], os.environ["NATS_URL"]
        return
    if not _docker_engine():
        yield None
        return
    from testcontainers.nats import NatsContainer
    from testcontainers.redis import RedisContainer

    with RedisContainer("redis:7") as redis, NatsContainer("nats:2.11").with_command("-js") as nats:
        yield (f"redis://{redis.get_container_host_ip()}:{redis.get_exposed_port(6379)}", nats.nats_uri())


async def _reset_shared(redis_url: str, nats_url: str) -> None:
    import nats
    import redis.asyncio as aioredis
    from nats.js.errors import NotFoundError

    client = aioredis.from_url(redis_url)
    await client.flushdb()
    await client.aclose()
    nc = await nats.connect(nats_url)
    try:
        await nc.jetstream().delete_stream(BusSettings().stream)
    except NotFoundError:
        pass
    await nc.close()


@pytest.fixture
def local_backend(tmp_path: Path) -> Iterator[Backend]:
    """Fresh redis-server and nats-server -js processes for one test (killable)."""
    redis = redis_server(tmp_path)
    nats = nats_server(tmp_path)
    redis.start()
    nats.start()
    try:
        yield Backend(redis.url, nats.url, redis, nats)
    finally:
        nats.stop()
        redis.stop()


@pytest.fixture
def backend(request: pytest.FixtureRequest, shared_backend_urls: tuple[str, str] | None) -> Iterator[Backend]:
    """Real backends for one test: shared ones reset, or fresh local processes."""
    if shared_backend_urls is None:
        yield request.getfixturevalue("local_backend")
        return
    redis_url, nats_url = shared_backend_urls
    asyncio.run(_reset_shared(redis_url, nats_url))
    yield Backend(redis_url, nats_url)


@pytest.fixture
def services(backend: Backend, tmp_path: Path) -> Iterator[Services]:
    """Tickwire services as child processes against this test's backend; all stopped after."""
    running = Services(backend.env(), tmp_path)
    try:
        yield running
    finally:
        running.stop_all()
