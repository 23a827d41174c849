"""Connections to the backends as async context managers, and the JetStream stream ensured.

NATS is set to reconnect forever (nats.py gives up after 60 attempts by default) with a
bounded pending buffer: while disconnected, publishes queue up to ``nats_pending_bytes``
and past it raise ``OutboundBufferLimitError``, which the caller treats as "retry later".

Credentials: user/password or token in the URL, a ``.creds`` file (JWT + nkey seed) or an
nkey seed file; TLS by a ``tls://`` URL and/or a CA (plus a client certificate for mutual
TLS). Redis takes all of it in its URL (``rediss://:password@host/0?ssl_ca_certs=…``).
URLs are logged only through ``services.redact``.
"""

from __future__ import annotations

import logging
import re
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig, StreamInfo
from nats.js.errors import NotFoundError

from services.redact import redact
from services.settings import BusSettings

log = logging.getLogger(__name__)

# What str.isspace() is true for among ASCII bytes (nats.py drops a header name with any).
_SPACE_IN_NAME = re.compile(rb"[\t\n\v\f\r \x1c-\x1f]")


class Client(NATS):
    """nats.py's client with its header parser's per-character scan done by one regex.

    nats.py checks each header name for whitespace with a generator over its characters:
    with the five headers ingest puts on every message that was ~5 % of the gateway's CPU
    at 20,000 messages/s. Same result for every input (tests/unit/services/test_fuzz.py)."""

    @staticmethod
    def _parse_header_lines(raw: bytes) -> dict[str, str]:
        out: dict[str, str] = {}
        for line in raw.split(b"\r\n"):
            name, sep, value = line.partition(b":")
            if not sep:
                continue
            name = name.strip()
            if not name.isascii() or _SPACE_IN_NAME.search(name):
                continue
            out[name.decode("ascii")] = value.strip().decode("utf-8", "replace")
        return out


@asynccontextmanager
async def open_redis(url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(url, decode_responses=False, health_check_interval=10)
    try:
        yield client
    finally:
        await client.aclose()


def nats_tls(bus: BusSettings) -> ssl.SSLContext | None:
    """A TLS context when a CA or client certificate is configured (``tls://`` alone uses the system CAs)."""
    if not (bus.nats_tls_ca or bus.nats_tls_cert):
        return None
    context = ssl.create_default_context(cafile=bus.nats_tls_ca or None)
    if bus.nats_tls_cert:
        context.load_cert_chain(bus.nats_tls_cert, bus.nats_tls_key or None)
    return context


@asynccontextmanager
async def open_nats(bus: BusSettings, name: str) -> AsyncIterator[NATS]:
    """A NATS connection that reconnects forever and logs each state change once."""

    # While NATS is away nats.py reports an error on every reconnect attempt (twice a
    # second): log the first after each state change, not a line per retry.
    quiet = False

    async def disconnected() -> None:
        log.warning("nats: disconnected")

    async def reconnected() -> None:
        nonlocal quiet
        quiet = False
        log.info("nats: reconnected to %s", redact(nc.connected_url.geturl()) if nc.connected_url else "?")

    async def error(exc: Exception) -> None:
        nonlocal quiet
        if not quiet:
            log.warning("nats: %s (further errors are quiet until reconnected)", exc or type(exc).__name__)
            quiet = True

    async def closed() -> None:
        log.info("nats: closed")

    nc = Client()
    await nc.connect(
        # A comma list names several servers of a cluster; the client also learns the others
        # from the first it reaches, but it must reach one.
        [url.strip() for url in bus.nats_url.split(",") if url.strip()],
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,  # type: ignore[arg-type]  # annotated int, used as seconds: a float works
        connect_timeout=2,
        allow_reconnect=True,
        pending_size=bus.nats_pending_bytes,
        disconnected_cb=disconnected,
        reconnected_cb=reconnected,
        error_cb=error,
        closed_cb=closed,
        tls=nats_tls(bus),
        # A credentials file (JWT + nkey seed) or an nkey seed file: paths, never contents.
        user_credentials=bus.nats_creds_file or None,
        nkeys_seed=None if bus.nats_creds_file else bus.nats_nkey_file or None,
    )
    try:
        yield nc
    finally:
        if not nc.is_closed:
            await nc.drain()


def stream_config(bus: BusSettings) -> StreamConfig:
    return StreamConfig(
        name=bus.stream,
        subjects=[f"{bus.subject_prefix}.>"],
        retention=RetentionPolicy.LIMITS,
        discard=DiscardPolicy.OLD,
        max_age=bus.retention_seconds or None,
        max_msgs=bus.retention_messages,
        duplicate_window=bus.duplicate_window,
        storage=StorageType.FILE if bus.storage == "file" else StorageType.MEMORY,
        num_replicas=bus.stream_replicas,
        allow_direct=True,
    )


async def ensure_stream(js: JetStreamContext, bus: BusSettings) -> StreamInfo:
    """Create stream MD, or update it to the configured limits; return its info."""
    config = stream_config(bus)
    try:
        await js.stream_info(bus.stream)
    except NotFoundError:
        info = await js.add_stream(config)
        log.info("jetstream: created stream %s", bus.stream)
        return info
    return await js.update_stream(config)


def epoch_of(info: StreamInfo) -> str:
    """Names a stream's lifetime: its creation time, which changes when it is recreated."""
    created = info.created
    return format(int(created.timestamp() * 1_000_000), "x") if created else "0"
