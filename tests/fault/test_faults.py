"""Fault suite: real processes killed, paused, cut off and restarted under a steady load.

Every scenario checks, with the client's own dedup by seq, that each entry Redis
acknowledged reached every client exactly once and in per-stream order (design §7).
The table of all scenarios is printed at the end of the run (tests/fault/conftest.py).
"""

from __future__ import annotations

import asyncio
import signal

import pytest
import redis.asyncio as aioredis
import websockets

from services.hops import now_us
from tests.conftest import Backend
from tests.fault.harness import Observer, Producer, Verdict, judge, observing, settle
from tests.fault.proxy import TcpProxy
from tests.stack import Services
from tests.waiting import eventually

pytestmark = pytest.mark.slow

FAST_LEASE = {"TICKWIRE_LEASE_TTL": "1.5", "TICKWIRE_RESCAN_INTERVAL": "0.5"}


@pytest.fixture
def backend(local_backend: Backend) -> Backend:
    """Fault tests kill and restart the servers, so they are always local processes."""
    return local_backend


async def gateways(services: Services, count: int, **env: str) -> list:  # type: ignore[type-arg]
    started = [services.gateway(f"gw-{i + 1}", **env) for i in range(count)]
    await asyncio.gather(*(g.ready() for g in started))
    return started


def check(verdict: Verdict, record: list[Verdict]) -> None:
    record.append(verdict)
    assert verdict.ok(), verdict


async def test_ingest_killed_mid_burst_second_replica_takes_over(
    backend: Backend, services: Services, record: list[Verdict]
) -> None:
    """1. two ingest replicas share two streams; 2. kill -9 one mid-burst;
    3. the other takes its stream over from the pending list; 4. nothing lost or doubled."""
    a, b = services.ingest("ingest-a", **FAST_LEASE), services.ingest("ingest-b", **FAST_LEASE)
    (gw,) = await gateways(services, 1)
    async with Observer([gw.ws_url]) as client, Producer(backend.redis_url) as producer:
        await producer.reach(1500)
        a.kill()
        fault_end = now_us()
        await producer.reach(producer.total + 1500)
        await producer.stop()
        await settle(producer, [client])
    assert b.alive
    check(judge("ingest killed -9, other replica takes over", producer, [client], fault_end), record)


async def test_ingest_killed_alone_then_restarted(backend: Backend, services: Services, record: list[Verdict]) -> None:
    """1. one ingest; 2. kill -9 mid-burst; 3. producers go on for 2 s; 4. restart it:
    it re-reads its pending entries first and catches up; nothing lost or doubled."""
    services.ingest("ingest-a", **FAST_LEASE)
    (gw,) = await gateways(services, 1)
    async with Observer([gw.ws_url]) as client, Producer(backend.redis_url) as producer:
        await producer.reach(1000)
        services.started[0].kill()
        await producer.reach(producer.total + 800)
        services.ingest("ingest-a", **FAST_LEASE)
        fault_end = now_us()
        await producer.reach(producer.total + 800)
        await producer.stop()
        await settle(producer, [client])
    check(judge("ingest killed -9 alone, restarted", producer, [client], fault_end), record)


async def test_gateway_killed_with_200_clients(backend: Backend, services: Services, record: list[Verdict]) -> None:
    """1. two gateways, 200 clients spread over them, each knowing both URLs; 2. kill -9
    one gateway mid-burst; 3. its clients resume on the other from their last seq."""
    services.ingest()
    gw1, gw2 = await gateways(services, 2)
    observers = [
        Observer([gw1.ws_url, gw2.ws_url] if i % 2 else [gw2.ws_url, gw1.ws_url], ["fa.*"]) for i in range(200)
    ]
    async with observing(observers), Producer(backend.redis_url, streams=("md:fa",), rate=200) as producer:
        await producer.reach(producer.total + 400)
        gw1.kill()
        fault_end = now_us()
        await producer.reach(producer.total + 600)
        await producer.stop()
        await settle(producer, observers)
    moved = sum(1 for o in observers if o.client.stats.reconnects)
    assert moved >= 90, f"only {moved} clients reconnected"
    check(judge("gateway killed -9 with clients attached", producer, observers, fault_end), record)


async def test_gateway_paused_then_resumed(backend: Backend, services: Services, record: list[Verdict]) -> None:
    """1. a gateway with a client; 2. SIGSTOP it for 10 s during a burst; 3. SIGCONT;
    4. the client receives every entry (the feed catches up from JetStream)."""
    services.ingest()
    (gw,) = await gateways(services, 1)
    async with Observer([gw.ws_url]) as client, Producer(backend.redis_url) as producer:
        await producer.reach(600)
        gw.send(signal.SIGSTOP)
        await asyncio.sleep(10)  # the fault's duration, not a synchronisation
        gw.send(signal.SIGCONT)
        fault_end = now_us()
        await producer.reach(producer.total + 600)
        await producer.stop()
        await settle(producer, [client])
    check(judge("gateway SIGSTOP 10 s, SIGCONT", producer, [client], fault_end), record)


async def test_slow_client_does_not_hurt_healthy_ones(
    backend: Backend, services: Services, record: list[Verdict]
) -> None:
    """1. a gateway with 1 MiB outboxes; 2. one client subscribed to a heavy stream (2 KB
    entries) stops reading, 50 healthy ones follow a light stream; 3. the stalled one is cut
    as a slow consumer; 4. the healthy ones get everything and their p99 stays low."""
    services.ingest()
    (gw,) = await gateways(services, 1, TICKWIRE_OUTBOX_BYTES=str(1 << 20))
    async with websockets.connect(gw.ws_url, max_size=None, max_queue=1) as stalled:
        await stalled.send('{"type":"subscribe","topics":["fb.*"]}')
        stalled.transport.pause_reading()  # stop reading: the kernel buffers fill, then the outbox
        healthy = [Observer([gw.ws_url], ["fa.*"]) for _ in range(50)]
        async with observing(healthy):
            async with (
                Producer(backend.redis_url, streams=("md:fa",), rate=200) as producer,
                Producer(backend.redis_url, streams=("md:fb",), rate=500, pad=2000),
            ):
                await eventually(lambda: "slow consumer" in gw.log(), within=40, what="the stalled client cut")
                await producer.reach(producer.total + 400)
            await settle(producer, healthy)
    # Entries produced before ingest found the new stream waited for that: measure from when
    # the first entry reached every client.
    settled = max(o.received[0].received_us for o in healthy)
    latencies = sorted((m.received_us - m.ts) / 1000 for o in healthy for m in o.received if m.ts > settled)
    p99 = latencies[int(len(latencies) * 0.99)]
    # A gateway that waited on the stalled socket would hold every healthy client for seconds,
    # until the cut; the bound sits far above that of a noisy shared CI machine (~100-300 ms
    # here, 50 clients decoding in this one test process) and far below such a stall.
    assert p99 < 1000, f"healthy clients' p99 rose to {p99:.0f} ms"
    verdict = judge("client never reads beside 50 healthy", producer, healthy, None, note=f"healthy p99 {p99:.0f} ms")
    check(verdict, record)


async def test_client_away_longer_than_retention(backend: Backend, services: Services, record: list[Verdict]) -> None:
    """1. JetStream and the gateway keep only 300 messages; 2. a client (through a proxy) is cut off while
    1,500 entries pass; 3. back, it resumes with its old since: `recovered:false` and a fresh
    snapshot, never a silent gap; 4. everything after its return arrives."""
    limits = {"TICKWIRE_RETENTION_MESSAGES": "300"}
    services.ingest(**limits)
    # The gateways' replay ring is retention too: keep it as short as JetStream's.
    (gw,) = await gateways(services, 1, TICKWIRE_REPLAY_BUFFER="300", **limits)
    assert gw.port is not None
    async with (
        TcpProxy(gw.port) as proxy,
        Observer([f"ws://127.0.0.1:{proxy.port}/ws"], ["fa.*"]) as client,
        Producer(backend.redis_url, streams=("md:fa",)) as producer,
    ):
        await producer.reach(200)
        await settle(producer, [client], within=10)
        proxy.cut()  # away: the connection drops and reconnects are refused
        await producer.reach(producer.total + 1500)
        client.client.subscribed.clear()
        proxy.restore()
        await asyncio.wait_for(client.client.subscribed.wait(), 20)
        back, mark = now_us(), producer.total
        await producer.reach(mark + 400)
        await producer.stop()
        await settle(producer, [client], mark)
    # At least once: with a 300-message retention a busy machine can also leave the gateway's own
    # consumer that far behind in the burst; the feed then restarts its clients (1012), and that
    # resume is flagged recovered:false too (a CI run saw 2). A silent hole is what must never be.
    assert client.client.stats.resets >= 1, "the resume must be flagged recovered:false"
    after = set(producer.sent["md:fa"][mark:])
    got = {m.id for m in client.received}
    verdict = Verdict(
        "client away longer than retention",
        len(after),
        len(after & got),
        len(after - got),
        0,
        0,
        client.first_after(back),
        note="recovered:false + snapshot, then every entry",
    )
    check(verdict, record)


async def test_poison_entries_mid_burst(backend: Backend, services: Services, record: list[Verdict]) -> None:
    """1. a burst; 2. in its middle a 2 MB entry and one whose data is broken JSON;
    3. both land in the dead-letter stream with a reason; 4. every other entry arrives."""
    services.ingest()
    (gw,) = await gateways(services, 1)
    async with (
        Observer([gw.ws_url]) as client,
        Producer(backend.redis_url) as producer,
        aioredis.from_url(backend.redis_url) as redis,
    ):
        await producer.reach(800)
        await redis.xadd("md:fa", {"symbol": "S0", "data": "x" * 2_000_000})
        await redis.xadd("md:fb", {"symbol": "S1", "data": '{"broken": '})
        fault_end = now_us()
        await producer.reach(producer.total + 800)
        await producer.stop()
        await settle(producer, [client])
        dead = await redis.xrange("tickwire:dead")
    reasons = sorted(fields[b"reason"].decode() for _, fields in dead)
    assert len(dead) == 2, reasons
    check(
        judge("poison entries (2 MB, broken JSON) mid-burst", producer, [client], fault_end, note="both dead-lettered"),
        record,
    )


async def test_gateway_to_nats_link_cut(backend: Backend, services: Services, record: list[Verdict]) -> None:
    """1. the gateway reaches NATS through a proxy; 2. the link is cut for 10 s during a
    burst; 3. restored: the gateway reconnects, its feed resumes, the client gets all."""
    assert backend.nats is not None
    services.ingest()
    async with TcpProxy(backend.nats.port) as proxy:
        (gw,) = await gateways(services, 1, NATS_URL=f"nats://127.0.0.1:{proxy.port}")
        async with Observer([gw.ws_url]) as client, Producer(backend.redis_url) as producer:
            await producer.reach(600)
            proxy.cut()
            await asyncio.sleep(10)  # the fault's duration
            proxy.restore()
            fault_end = now_us()
            await producer.reach(producer.total + 600)
            await producer.stop()
            await settle(producer, [client])
    check(judge("gateway↔NATS link cut 10 s", producer, [client], fault_end), record)


async def test_nats_killed_and_restarted(backend: Backend, services: Services, record: list[Verdict]) -> None:
    """1. steady load; 2. kill -9 nats-server; 3. 3 s later start it again on the same port
    and data; 4. ingest re-publishes what was not acked, the gateway's feed resumes."""
    assert backend.nats is not None
    services.ingest()
    (gw,) = await gateways(services, 1)
    async with Observer([gw.ws_url]) as client, Producer(backend.redis_url) as producer:
        await producer.reach(800)
        backend.nats.kill()
        await asyncio.sleep(3)  # the outage
        backend.nats.start()
        fault_end = now_us()
        await producer.reach(producer.total + 800)
        await producer.stop()
        await settle(producer, [client])
    check(judge("NATS killed -9 and restarted", producer, [client], fault_end), record)


async def test_redis_restarted_while_producers_retry(
    backend: Backend, services: Services, record: list[Verdict]
) -> None:
    """1. steady load; 2. kill -9 redis-server (AOF everysec); 3. start it again 2 s later;
    4. entries Redis acknowledged before the kill and after the restart all arrive."""
    assert backend.redis is not None
    services.ingest()
    (gw,) = await gateways(services, 1)
    async with Observer([gw.ws_url]) as client, Producer(backend.redis_url) as producer:
        await producer.reach(800)
        # Stop, not kill: a kill loses up to a second of AOF, which would be Redis losing
        # acknowledged writes by its own documented trade-off, not Tickwire.
        backend.redis.stop()
        await asyncio.sleep(2)  # the outage
        backend.redis.start()
        fault_end = now_us()
        await producer.reach(producer.total + 800)
        await producer.stop()
        await settle(producer, [client])
    check(
        judge(
            "Redis restarted while producers retry",
            producer,
            [client],
            fault_end,
            note=f"{producer.retries} producer retries",
        ),
        record,
    )


async def test_gateway_drained_during_a_burst(backend: Backend, services: Services, record: list[Verdict]) -> None:
    """1. two gateways, 50 clients on gw-1 that know both; 2. SIGTERM gw-1 mid-burst;
    3. it drains (readyz 503, grace, 1012 spread over the window) and exits 0;
    4. the clients resume on gw-2 from their last seq: nothing lost or doubled."""
    services.ingest()
    drain = {"TICKWIRE_DRAIN_GRACE": "0.5", "TICKWIRE_DRAIN_WINDOW": "2"}
    gw1, gw2 = await gateways(services, 2, **drain)
    observers = [Observer([gw1.ws_url, gw2.ws_url]) for _ in range(50)]
    async with observing(observers):
        async with Producer(backend.redis_url) as producer:
            await producer.reach(producer.total + 800)
            gw1.send(signal.SIGTERM)
            fault_end = now_us()
            await producer.reach(producer.total + 1600)
        await settle(producer, observers)
    assert gw1.stop() == 0
    assert all(o.client.stats.node == "gw-2" for o in observers)
    assert all(1012 in o.client.stats.close_codes for o in observers)
    check(judge("gateway drained (SIGTERM) mid-burst", producer, observers, fault_end), record)


async def test_ingest_paused_beyond_the_duplicate_window(
    backend: Backend, services: Services, record: list[Verdict]
) -> None:
    """1. JetStream's duplicate window is 2 s; two ingest replicas; 2. SIGSTOP one for 5 s:
    the other takes its stream over; 3. SIGCONT: the paused one finds its lease gone and
    publishes nothing again (high-water mark and lease fencing), so nothing is doubled."""
    window = {"TICKWIRE_DUPLICATE_WINDOW": "2", "TICKWIRE_LEASE_TTL": "1", "TICKWIRE_RESCAN_INTERVAL": "0.5"}
    a, b = services.ingest("ingest-a", **window), services.ingest("ingest-b", **window)
    (gw,) = await gateways(services, 1)
    async with Observer([gw.ws_url]) as client:
        async with Producer(backend.redis_url) as producer:
            await producer.reach(1000)
            a.send(signal.SIGSTOP)
            await asyncio.sleep(5)  # the pause, longer than the duplicate window
            a.send(signal.SIGCONT)
            fault_end = now_us()
            await producer.reach(producer.total + 1000)
        await settle(producer, [client])
    assert a.alive and b.alive
    check(judge("ingest SIGSTOP 5 s > duplicate window 2 s", producer, [client], fault_end), record)


async def test_xack_refused_beyond_the_duplicate_window_then_ingest_killed(
    backend: Backend, services: Services, record: list[Verdict]
) -> None:
    """1. duplicate window 2 s; ingest logs into Redis as a user that may do everything;
    2. mid-burst XACK is taken from that user (ACL): batches are published and acknowledged,
    never XACKed, and stay pending; 3. after 3 s (past the window) ingest is killed -9, XACK
    given back, ingest restarted: the pending batches are read again and every one is
    skipped by the high-water mark, raised before the XACK, so nothing is published twice."""
    async with aioredis.from_url(backend.redis_url) as admin:
        await admin.execute_command("ACL", "SETUSER", "ingest", "on", ">ingest-pw", "~*", "&*", "+@all")
        user = {"REDIS_URL": backend.redis_url.replace("redis://", "redis://ingest:ingest-pw@"),
                "TICKWIRE_DUPLICATE_WINDOW": "2", **FAST_LEASE}
        ingest = services.ingest("ingest-a", **user)
        (gw,) = await gateways(services, 1, TICKWIRE_DUPLICATE_WINDOW="2")
        async with Observer([gw.ws_url]) as client, Producer(backend.redis_url) as producer:
            await producer.reach(800)
            await admin.execute_command("ACL", "SETUSER", "ingest", "-xack")
            # Inside the mark-and-XACK script Redis words the refusal "can't run this command".
            await eventually(lambda: "can't run this command" in ingest.log(), within=10, what="XACK refused")
            await asyncio.sleep(3)  # the fault, longer than the duplicate window
            ingest.kill()
            await admin.execute_command("ACL", "SETUSER", "ingest", "+xack")
            services.ingest("ingest-a", **user)
            fault_end = now_us()
            await producer.reach(producer.total + 800)
            await producer.stop()
            await settle(producer, [client])
    check(judge("XACK refused 3 s > duplicate window 2 s, ingest killed -9, restarted", producer, [client],
                fault_end), record)


async def test_redis_away_beyond_the_duplicate_window_after_a_publish_ack(
    backend: Backend, services: Services, record: list[Verdict]
) -> None:
    """1. duplicate window 2 s; ingest reaches Redis and NATS through proxies; 2. mid-burst the
    NATS link stalls with a batch's acks outstanding, the Redis link is cut, the NATS link
    flows again: the batch is acknowledged and cannot be marked nor XACKed; 3. Redis stays
    away 4 s (past the window), then is back: ingest re-reads the batch as pending and skips
    it, because the replica remembers what it published; nothing is published twice."""
    assert backend.redis is not None and backend.nats is not None
    async with TcpProxy(backend.redis.port) as to_redis, TcpProxy(backend.nats.port) as to_nats:
        services.ingest("ingest-a", REDIS_URL=f"redis://127.0.0.1:{to_redis.port}",
                        NATS_URL=f"nats://127.0.0.1:{to_nats.port}", TICKWIRE_DUPLICATE_WINDOW="2",
                        TICKWIRE_LEASE_TTL="10")
        (gw,) = await gateways(services, 1, TICKWIRE_DUPLICATE_WINDOW="2")
        async with Observer([gw.ws_url]) as client, Producer(backend.redis_url) as producer:
            await producer.reach(800)
            to_nats.stall()
            await asyncio.sleep(0.5)  # a batch goes out and waits for its acks
            to_redis.cut()
            to_nats.restore()
            await asyncio.sleep(4)  # the outage, longer than the duplicate window
            to_redis.restore()
            fault_end = now_us()
            await producer.reach(producer.total + 800)
            await producer.stop()
            await settle(producer, [client])
    check(judge("Redis away 4 s > duplicate window 2 s after a publish ack", producer, [client], fault_end),
          record)


async def test_gateway_cut_from_nats_longer_than_retention(
    backend: Backend, services: Services, record: list[Verdict]
) -> None:
    """1. JetStream keeps only 300 messages; the gateway reaches NATS through a proxy; a
    client on it; 2. the link is cut while 1,500 entries pass (most leave the stream before
    the gateway sees them); 3. restored: the gateway closes its client 1012 before anything
    past the hole, the client resumes and gets `recovered:false` and a snapshot, never a
    silent gap; 4. every entry after the gateway is back arrives."""
    assert backend.nats is not None
    limits = {"TICKWIRE_RETENTION_MESSAGES": "300"}
    services.ingest(**limits)
    async with TcpProxy(backend.nats.port) as proxy:
        (gw,) = await gateways(services, 1, NATS_URL=f"nats://127.0.0.1:{proxy.port}",
                               TICKWIRE_REPLAY_BUFFER="300", **limits)
        async with (
            Observer([gw.ws_url], ["fa.*"]) as client,
            Producer(backend.redis_url, streams=("md:fa",)) as producer,
        ):
            await producer.reach(200)
            await settle(producer, [client], within=10)
            proxy.cut()
            await producer.reach(producer.total + 1500)
            client.client.subscribed.clear()
            proxy.restore()
            await asyncio.wait_for(client.client.subscribed.wait(), 30)
            back, mark = now_us(), producer.total
            await producer.reach(mark + 400)
            await producer.stop()
            await settle(producer, [client], mark)
    # At least once: the gateway's consumer can fall behind the 300-message retention again in the
    # catch-up burst on a busy machine; every such restart is flagged (1012 + recovered:false).
    assert client.client.stats.resets >= 1, "the resume must be flagged recovered:false"
    assert 1012 in client.client.stats.close_codes
    after = set(producer.sent["md:fa"][mark:])
    got = {m.id for m in client.received}
    verdict = Verdict("gateway↔NATS cut longer than retention", len(after), len(after & got), len(after - got),
                      0, 0, client.first_after(back), note="1012, recovered:false + snapshot, then every entry")
    check(verdict, record)
