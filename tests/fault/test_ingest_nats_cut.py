"""Stream MD itself, read back by seq, after ingest's link to NATS was cut mid-batch (issue 14 #4).

The danger: a batch is in flight when the link drops; nats.py keeps what it had not yet
written in its pending buffer and sends it first on the next connection, while the entries
it had written before it died with the socket. If the bridge's retry then appends those,
MD holds a stream's entries out of their Redis order. The check reads MD directly, so no
gateway or client dedup can hide a reorder.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools

import nats
import pytest
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from services.envelope import ENTRY_ID, MSG_ID
from services.settings import BusSettings
from tests.conftest import Backend
from tests.fault.harness import Producer, Verdict
from tests.fault.proxy import TcpProxy
from tests.stack import Services
from tests.waiting import eventually

pytestmark = pytest.mark.slow

CUTS = 8
# A pending buffer far below a batch's bytes (500 entries of ~1 KB): nats.py then flushes
# in the middle of a batch, which is where an attempt can straddle a dropped connection.
# The default (8 MiB) has the same window for batches of bigger entries, hit less often
# (once in two runs of this test with 24 KB entries and 100 ms of latency).
PENDING_BYTES = 64 * 1024


async def read_md(nats_url: str, stream: str, prefix: str) -> dict[str, list[str]]:
    """Every entry ID in MD, per Redis stream, in stream-sequence order."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream(timeout=10)
        last = (await js.stream_info(stream)).state.last_seq
        sub = await js.pull_subscribe(f"{prefix}.>", stream=stream, config=ConsumerConfig(
            deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE))
        by_stream: dict[str, list[str]] = {}
        seq = 0
        while seq < last:
            for msg in await sub.fetch(1000, timeout=10):
                assert msg.metadata.sequence.stream > seq, "MD read back out of seq order"
                seq = msg.metadata.sequence.stream
                headers = msg.headers or {}
                if ENTRY_ID in headers:  # gap notices carry none (and none is expected here)
                    redis_stream = headers[MSG_ID].rsplit(":", 1)[0]
                    by_stream.setdefault(redis_stream, []).append(headers[ENTRY_ID])
        await sub.unsubscribe()
        return by_stream
    finally:
        await nc.close()


async def stored(nats_url: str, stream: str) -> int:
    """Messages in ``stream``; 0 until ingest created it."""
    nc = await nats.connect(nats_url)
    try:
        return (await nc.jetstream(timeout=5).stream_info(stream)).state.messages
    except NotFoundError:
        return 0
    finally:
        await nc.close()


async def test_ingest_to_nats_cut_mid_batch_keeps_md_in_order(
    backend: Backend, services: Services, record: list[Verdict]
) -> None:
    """1. ingest reaches NATS through a proxy with 20 ms of latency, nats.py's pending buffer
    64 KiB; a producer writes 2,000 entries/s of ~1 KB over two streams, so batches are
    hundreds of KB and always in flight; 2. eight times, the link is cut for 0.3 s while
    ingest publishes; 3. after the last entry is in MD, MD is read back by seq: per Redis
    stream, the entry IDs are exactly the ones Redis acknowledged, each once, in order."""
    bus = BusSettings()
    assert backend.nats is not None
    async with TcpProxy(backend.nats.port) as proxy:
        proxy.delay = 0.02
        services.ingest("ingest-a", NATS_URL=f"nats://127.0.0.1:{proxy.port}",
                        TICKWIRE_NATS_PENDING_BYTES=str(PENDING_BYTES))
        async with Producer(backend.redis_url, rate=2000, pad=800) as producer:
            await eventually(lambda: _stored_at_least(backend.nats_url, bus.stream, 1), within=30,
                             what="ingest publishing")
            for _ in range(CUTS):
                await producer.reach(producer.total + 1000)
                proxy.cut()
                await asyncio.sleep(0.3)  # the outage: reconnects are refused meanwhile
                proxy.restore()
        # What is still missing at the deadline is the verdict's to report, not this wait's.
        with contextlib.suppress(TimeoutError):
            await eventually(lambda: _stored_at_least(backend.nats_url, bus.stream, producer.total), within=90,
                             every=0.5)
    md = await read_md(backend.nats_url, bus.stream, bus.subject_prefix)
    sent = lost = duplicates = disorder = delivered = 0
    behind: list[str] = []  # to debug: entries stored after a later entry of their stream
    for redis_stream, ids in producer.sent.items():
        got = md.get(redis_stream, [])
        sent += len(ids)
        delivered += len(got)
        duplicates += len(got) - len(set(got))
        lost += len(set(ids) - set(got))
        position = {entry_id: i for i, entry_id in enumerate(ids)}
        order = [position[i] for i in got]
        disorder += sum(1 for a, b in itertools.pairwise(order) if b <= a)
        late = [ids[p] for p, top in zip(order, itertools.accumulate(order, max), strict=True) if p < top]
        if late:
            behind.append(f"{redis_stream}: {len(late)} entries stored after later ones, from {late[0]}")
    retries = services.started[0].log().count("jetstream: publish failing")
    verdict = Verdict(f"ingest↔NATS cut 0.3 s ×{CUTS} mid-batch, 20 ms latency", sent, delivered, lost,
                      duplicates, disorder, None, clients=0,
                      note=f"MD read back by seq, {PENDING_BYTES // 1024} KiB nats.py buffer", missing=behind)
    record.append(verdict)
    assert retries >= 1, "no cut hit a batch in flight"
    assert verdict.ok(), verdict


async def _stored_at_least(nats_url: str, stream: str, count: int) -> bool:
    return await stored(nats_url, stream) >= count
