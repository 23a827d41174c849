"""Stream MD on a real 3-node JetStream cluster (TICKWIRE_STREAM_REPLICAS=3), as in the k8s
prod overlay: three local nats-server processes routed to each other on free ports."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest

from services.hops import now_us
from services.settings import BusSettings
from tests.conftest import Backend
from tests.fault.harness import Observer, Producer, Verdict, judge, observing, settle
from tests.servers import Server
from tests.stack import Services
from tests.waiting import eventually
from tickwire.localservers import free_port, nats_server_binary

pytestmark = pytest.mark.slow

NODES = 3
FAST_LEASE = {"TICKWIRE_LEASE_TTL": "2"}


@dataclass
class Cluster:
    servers: list[Server]

    @property
    def url(self) -> str:
        return ",".join(s.url for s in self.servers)

    def by_name(self, name: str) -> Server:
        return next(s for s in self.servers if s.name == name)

    async def placement(self) -> tuple[str, list[str]]:
        """Stream MD's leader and its current replicas, asked of any live node."""
        nc = await nats.connect([s.url for s in self.servers if s.proc is not None], connect_timeout=2,
                                max_reconnect_attempts=1)
        try:
            info = await nc.jetstream(timeout=5).stream_info(BusSettings().stream)
        finally:
            await nc.close()
        assert info.cluster is not None and info.cluster.leader
        return info.cluster.leader, [r.name for r in info.cluster.replicas or [] if r.current]


def cluster_of_three(workdir: Path) -> Cluster:
    client_ports = [free_port() for _ in range(NODES)]
    route_ports = [free_port() for _ in range(NODES)]
    routes = ",".join(f"nats://127.0.0.1:{p}" for p in route_ports)
    servers = []
    for i in range(NODES):
        data = workdir / f"n{i}"
        data.mkdir()
        argv = [
            nats_server_binary(), "-js", "-a", "127.0.0.1", "-p", str(client_ports[i]), "-sd", str(data),
            "--server_name", f"n{i}", "--cluster_name", "tickwire",
            "--cluster", f"nats://127.0.0.1:{route_ports[i]}", "--routes", routes,
        ]
        servers.append(Server(f"n{i}", argv, client_ports[i], data, "nats"))
    return Cluster(servers)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    running = cluster_of_three(tmp_path)
    try:
        for server in running.servers:
            server.start()
        yield running
    finally:
        for server in running.servers:
            server.kill(signal.SIGTERM)


@pytest.fixture
def backend(local_backend: Backend, cluster: Cluster) -> Backend:
    """The local Redis, and the cluster in place of the single NATS server."""
    assert local_backend.nats is not None
    local_backend.nats.stop()
    return Backend(local_backend.redis_url, cluster.url, local_backend.redis)


async def test_stream_leader_then_a_follower_killed_under_load(
    backend: Backend, services: Services, cluster: Cluster, record: list[Verdict]
) -> None:
    """1. Two ingest replicas and two gateways on the 3-node cluster; stream MD made with 3
    replicas. 2. Under 200 entries/s to 20 clients, kill -9 the stream's leader: another node
    leads. 3. Kill -9 a follower too: one node left, no quorum, the data path waits.
    4. Restart both: quorum back, everything produced meanwhile arrives; 0 lost, 0 duplicates,
    and clients saw at most reconnects (no reset, no gap)."""
    env = {"TICKWIRE_STREAM_REPLICAS": str(NODES), **FAST_LEASE}
    services.ingest("ingest-a", **env)
    services.ingest("ingest-b", **env)
    gateways = [services.gateway(f"gw-{i}", **env) for i in (1, 2)]
    for gateway in gateways:
        await gateway.ready(within=60)
    placed: list[tuple[str, list[str]]] = []

    async def on_every_node() -> bool:
        placed.append(await cluster.placement())
        return len(placed[-1][1]) == NODES - 1

    # The followers catch up right after the stream is made: wait for both to be current.
    await eventually(on_every_node, within=30, every=0.5, what=f"stream MD current on {NODES} nodes")
    leader = placed[-1][0]
    urls = [g.ws_url for g in gateways]
    observers = [Observer(urls if i % 2 else urls[::-1], ["fa.*", "fb.*"]) for i in range(20)]
    async with observing(observers), Producer(backend.redis_url, rate=200) as producer:
        await producer.reach(600)

        first = cluster.by_name(leader)
        first.kill()

        async def new_leader() -> bool:
            try:
                placed.append(await cluster.placement())
            except Exception:  # mid-election any call may fail (timeouts, no leader yet): ask again
                return False
            return placed[-1][0] != leader

        await eventually(new_leader, within=30, every=0.5, what="a new stream leader")
        await producer.reach(producer.total + 600, within=30)

        second_leader = placed[-1][0]
        follower = next(s for s in cluster.servers if s.proc is not None and s.name != second_leader)
        follower.kill()
        await producer.reach(producer.total + 400, within=30)  # Redis takes them; NATS has no quorum

        first.start()
        follower.start()
        fault_end = now_us()
        await producer.reach(producer.total + 600, within=60)
        await producer.stop()
        await settle(producer, observers, within=120)
    resets = sum(o.client.stats.resets for o in observers)
    gaps = sum(len(o.client.stats.gaps) for o in observers)
    verdict = judge("NATS 3-node: stream leader, then a follower killed -9", producer, observers, fault_end,
                    note=f"R{NODES}")
    record.append(verdict)
    assert verdict.ok(), verdict
    assert resets == 0 and gaps == 0, f"clients were told more than a reconnect: {resets} resets, {gaps} gaps"
