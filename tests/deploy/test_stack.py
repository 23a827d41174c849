"""The compose stack, run for real in a container engine (`make deploy-test`).

Images built from a local Debian root (deploy/compose.debian.yml: no registry here), the
stack up with redis, NATS JetStream, ingest ×2, gateway ×2 behind nginx, the simulator and
an OTLP receiver standing in for Jaeger (tests/deploy/compose.test.yml). The test reaches
containers only through ports published on 127.0.0.1. The figures it measures (image sizes,
build and start times, scale and drain times) go to test-output/deploy-figures.json and into
docs/deploy.md.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import json
import os
import secrets
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.deploy.engine import Engine, NoEngine, engine
from tests.deploy.project import OVERLAYS, ROOT, kubectl, render_overlay
from tests.deploy.sse_observer import SseObserver
from tests.fault.harness import Observer, Producer, judge, settle
from tests.waiting import eventually
from tickwire.localservers import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

PROJECT = "tickwire-deploytest"
FILES = ("-f", "docker-compose.yml", "-f", "deploy/compose.debian.yml", "-f", "tests/deploy/compose.test.yml")
BACKENDS = ("redis", "nats", "jaeger", "ingest", "gateway", "nginx")
STREAMS = ("md:deploya", "md:deployb")  # two streams: each ingest replica can hold one lease
TOPICS = ("deploya.>", "deployb.>")
RATE = 200.0  # entries/s, the whole run
WS_CLIENTS, SSE_CLIENTS = 40, 10
FIGURES: dict[str, Any] = {}


def _ca_bundle() -> str | None:
    """The host's CA bundle, for pip inside the build where HTTPS is intercepted."""
    for name in ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        path = os.environ.get(name)
        if path and os.path.isfile(path):
            return path
    return None


@dataclass
class Stack:
    engine: Engine
    http_port: int
    redis_port: int
    secret: str

    def compose(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.engine.run("docker", "compose", *FILES, *args, timeout=timeout, check=check)

    async def acompose(self, *args: str) -> float:
        """Run off the event loop (clients keep reading); the seconds it took."""
        started = time.monotonic()
        await asyncio.to_thread(self.compose, *args)
        return time.monotonic() - started

    def containers(self, service: str) -> list[str]:
        return self.compose("ps", "-q", service).stdout.split()

    @functools.cached_property
    def token(self) -> str:
        """Minted inside a gateway container, the way docs/deploy.md tells a user to."""
        minted = self.compose("exec", "-T", "gateway", "tickwire", "token", "--sub", "deploy-test",
                              "--topics", ">", "--ttl", "1h").stdout.strip()
        assert minted.count(".") == 2, f"not a JWT: {minted!r}"
        return minted

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Origin": self.origin}

    def spans(self, address: str) -> list[dict[str, Any]]:
        """What the OTLP receiver got, through its query port (``compose port jaeger 4319``)."""
        assert address.startswith("127.0.0.1:"), address
        with urllib.request.urlopen(f"http://{address}/spans", timeout=10) as resp:
            spans: list[dict[str, Any]] = json.loads(resp.read())
        return spans


def _timed(figure: str, fn: Any, *args: Any) -> Any:
    started = time.monotonic()
    result = fn(*args)
    FIGURES[figure] = round(time.monotonic() - started, 1)
    return result


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """1. A container engine of the suite's own (or skip: none can be had). 2. The base image,
    the dashboard on the host, the images. 3. `up --wait`: every service healthy. After the
    module: `down -v`, nothing of the project left, the daemon stopped."""
    suite_started = time.monotonic()
    with contextlib.ExitStack() as stack_exit:
        try:
            eng = stack_exit.enter_context(engine())
        except NoEngine as exc:
            pytest.skip(f"no container engine: {exc}")
        FIGURES["base_image_s"] = round(eng.ensure_base_image(), 1)
        if not (ROOT / "web" / "dist" / "index.html").exists():
            subprocess.run(["make", "web"], cwd=ROOT, check=True, capture_output=True, timeout=600)
        running = Stack(eng, free_port(), free_port(), secrets.token_urlsafe(48))
        eng.env.update(
            COMPOSE_PROJECT_NAME=PROJECT,
            TICKWIRE_JWT_SECRET=running.secret,
            TICKWIRE_HTTP_BIND="127.0.0.1",
            TICKWIRE_HTTP_PORT=str(running.http_port),
            TICKWIRE_REDIS_PORT=str(running.redis_port),
        )
        if (bundle := _ca_bundle()) is not None:
            eng.env["TICKWIRE_CA_BUNDLE"] = bundle
        running.compose("down", "--volumes", "--remove-orphans")  # what a killed earlier run left
        # Tickwire's image first: the NATS image takes its nats-server binary.
        _timed("build_tickwire_s", running.compose, "build", "gateway")
        _timed("build_backends_s", running.compose, "build", "redis", "nats", "nginx")
        FIGURES["image_mb"] = {
            name: round(eng.image_size(name) / 1e6)
            for name in (
                "tickwire:local", "tickwire-redis:bookworm", "tickwire-nats:bookworm", "tickwire-nginx:bookworm"
            )
        }
        FIGURES["base_image_mb"] = round(eng.image_size("tickwire-base:bookworm") / 1e6)
        try:
            # The simulator has no healthcheck (nothing to probe): started once the rest is healthy.
            _timed("time_to_healthy_s", running.compose, "up", "-d", "--no-build", "--wait", "--wait-timeout", "300",
                   *BACKENDS)
            running.compose("up", "-d", "--no-build", "simulator")
            yield running
        finally:
            logs = running.compose("logs", "--no-color", "--timestamps", check=False)
            (ROOT / "test-output").mkdir(exist_ok=True)
            (ROOT / "test-output" / "deploy-compose.log").write_text(logs.stdout + logs.stderr)
            running.compose("down", "--volumes", "--remove-orphans", "--timeout", "30", check=False)
            left = eng.docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={PROJECT}").stdout.split()
            volumes = eng.docker("volume", "ls", "-q", "--filter", f"label=com.docker.compose.project={PROJECT}")
            networks = eng.docker("network", "ls", "-q", "--filter", f"label=com.docker.compose.project={PROJECT}")
            FIGURES["left_behind"] = left + volumes.stdout.split() + networks.stdout.split()
    FIGURES["suite_s"] = round(time.monotonic() - suite_started, 1)
    out = ROOT / "test-output"
    out.mkdir(exist_ok=True)
    (out / "deploy-figures.json").write_text(json.dumps(FIGURES, indent=2) + "\n")
    assert FIGURES["left_behind"] == [], f"compose down left {FIGURES['left_behind']}"


def test_images_run_as_non_root_on_a_read_only_root(stack: Stack) -> None:
    """Every Tickwire container runs as uid 10001 with a read-only root filesystem, and
    Redis is published on 127.0.0.1 only (README's `redis-cli XADD` example works there)."""
    for service in ("ingest", "gateway", "simulator"):
        for container in stack.containers(service):
            out = stack.engine.docker(
                "inspect", "--format", "{{.Config.User}} {{.HostConfig.ReadonlyRootfs}}", container
            ).stdout.split()
            assert out == ["10001:10001", "true"], f"{service}: {out}"
    redis = stack.compose("port", "redis", "6379").stdout.strip()
    assert redis == f"127.0.0.1:{stack.redis_port}"


@pytest.mark.skipif(kubectl() is None, reason="kubectl not installed: cannot render k8s/ overlays")
def test_k8s_probes_and_commands_work_in_the_images_that_ran(stack: Stack) -> None:
    """For each overlay's ingest and gateway container: the image's entrypoint is what the
    pod relies on (no `command`), its subcommand exists in the image, and every probe's path
    and port answer 200 inside the running container of that service."""
    entrypoint = json.loads(stack.engine.docker("image", "inspect", "--format", "{{json .Config.Entrypoint}}",
                                                "tickwire:local").stdout)
    assert entrypoint == ["tickwire"]
    for overlay in OVERLAYS:
        for workload in render_overlay(overlay):
            if workload["kind"] != "Deployment" or workload["metadata"]["name"] not in ("ingest", "gateway"):
                continue
            name = workload["metadata"]["name"]
            (c,) = workload["spec"]["template"]["spec"]["containers"]
            assert "command" not in c, f"{overlay}/{name}: the image's entrypoint is bypassed"
            container = stack.containers(name)[0]
            stack.engine.docker("exec", container, "tickwire", c["args"][0], "--help")
            named = {p["name"]: p["containerPort"] for p in c["ports"]}
            for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
                get = c[kind]["httpGet"]
                url = f"http://127.0.0.1:{named.get(get['port'], get['port'])}{get['path']}"
                fetch = f"import urllib.request; urllib.request.urlopen({url!r}, timeout=5)"
                stack.engine.docker("exec", container, "python", "-c", fetch)


def _nodes(stack: Stack, service: str) -> set[str]:
    """The gateways' node names: the container hostname (its short id) and the worker."""
    return {f"{c[:12]}-1" for c in stack.containers(service)}


async def test_scale_drain_and_ingest_kill_under_load_lose_nothing(stack: Stack) -> None:
    """1. 40 WebSocket and 10 SSE clients through nginx's 127.0.0.1 port, 200 entries/s.
    2. `--scale gateway=4`: new connections reach the new gateways. 3. Back to 2: the removed
    gateways drain (SIGTERM, 1012) to the others. 4. `docker stop` one gateway: its clients
    move over; it comes back. 5. `docker kill` an ingest: the other takes its streams over.
    6. Producing stops; every client holds every entry once, in order."""
    ws_url = f"ws://127.0.0.1:{stack.http_port}/ws"
    sse_url = f"http://127.0.0.1:{stack.http_port}/sse"
    observers: list[Any] = [Observer([ws_url], TOPICS, headers=stack.headers()) for _ in range(WS_CLIENTS)]
    observers += [SseObserver(sse_url, TOPICS, stack.headers()) for _ in range(SSE_CLIENTS)]
    async with contextlib.AsyncExitStack() as clients:
        for o in observers:
            await clients.enter_async_context(o)
        await eventually(
            lambda: all((o.client.subscribed if isinstance(o, Observer) else o.subscribed).is_set() for o in observers),
            within=60, what="50 clients subscribed through nginx",
        )
        redis_url = f"redis://127.0.0.1:{stack.redis_port}/0"
        async with Producer(redis_url, streams=STREAMS, rate=RATE, symbols=5) as producer:
            await producer.reach(int(RATE * 3), within=30)

            # 2. scale up: new gateways healthy, then picked by nginx for new connections.
            before = _nodes(stack, "gateway")
            FIGURES["scale_up_2_to_4_s"] = round(
                await stack.acompose("up", "-d", "--no-build", "--no-deps", "--no-recreate", "--wait",
                                     "--scale", "gateway=4", "gateway"), 1)
            new = _nodes(stack, "gateway") - before
            assert len(new) == 2
            seen: set[str] = set()

            async def new_gateway_serves() -> bool:
                probe = Observer([ws_url], ("deploya.none",), headers=stack.headers())
                async with probe:
                    seen.add(str(probe.client.stats.node))
                return bool(seen & new)

            await eventually(new_gateway_serves, within=30, every=0.1, what="a new connection on a new gateway")
            await producer.reach(producer.total + int(RATE * 3), within=30)

            # 3. scale down: compose stops the two newest; their clients resume elsewhere.
            FIGURES["scale_down_4_to_2_s"] = round(
                await stack.acompose("up", "-d", "--no-build", "--no-deps", "--no-recreate",
                                     "--scale", "gateway=2", "gateway"), 1)
            await producer.reach(producer.total + int(RATE * 3), within=30)

            # 4. stop one gateway (SIGTERM: drain), then bring it back.
            victim = stack.containers("gateway")[0]
            started = time.monotonic()
            await asyncio.to_thread(stack.engine.docker, "stop", "--time", "25", victim)
            FIGURES["gateway_stop_drain_s"] = round(time.monotonic() - started, 1)
            await producer.reach(producer.total + int(RATE * 3), within=30)
            await stack.acompose("up", "-d", "--no-build", "--no-deps", "--no-recreate", "--wait",
                                 "--scale", "gateway=2", "gateway")

            # 5. kill one ingest (SIGKILL): its leases expire, the other replica takes over.
            killed_at = time.monotonic()
            await asyncio.to_thread(stack.engine.docker, "kill", stack.containers("ingest")[0])
            mark = producer.total
            await producer.reach(mark + int(RATE * 5), within=60)
        fault_end_us = int(time.time() * 1e6)
        await settle(producer, observers, within=120)
        FIGURES["ingest_kill_to_settled_s"] = round(time.monotonic() - killed_at, 1)
        verdict = judge("compose: scale 2→4→2, gateway stop, ingest kill", producer, observers, fault_end_us)
        reconnects = sum(o.client.stats.reconnects for o in observers if isinstance(o, Observer))
        reconnects += sum(o.client.stats.connects - 1 for o in observers if isinstance(o, SseObserver))
    FIGURES["load"] = {
        "entries": verdict.sent, "delivered": verdict.delivered, "lost": verdict.lost,
        "duplicates": verdict.duplicates, "order_violations": verdict.order_violations,
        "client_reconnects": reconnects,
    }
    assert verdict.sent >= RATE * 15
    assert verdict.ok(), f"{verdict}"
    assert reconnects > 0, "no client was ever moved: the drains did not happen"


async def test_one_trace_per_sampled_message_at_the_otlp_receiver(stack: Stack) -> None:
    """1. A client subscribes to the simulator's topics (sampled at the origin, 1 in 5).
    2. Every producer span the receiver got in that window has exactly one ingest span as its
    child and gateway spans as the ingest span's children: one trace per sampled message.
    3. Every traced message the client received is one of those traces."""
    ws_url = f"ws://127.0.0.1:{stack.http_port}/ws"
    async with Observer([ws_url], ("ticks.*", "trades.*"), headers=stack.headers()) as client:
        # A window of 5 s of the simulator's entries, from 1 s after the subscribe.
        start_ns = time.time_ns() + 1_000_000_000
        end_ns = start_ns + 5_000_000_000
        await eventually(lambda: any(m.ts * 1000 > end_ns + 1_000_000_000 for m in client.received), within=60,
                         what="the client past the window")
        traced = {m.trace.split("-")[1] for m in client.received
                  if m.trace is not None and start_ns <= m.ts * 1000 <= end_ns}
        assert traced, "no traced message in the window: is the simulator sampling?"

        address = stack.compose("port", "jaeger", "4319").stdout.strip()

        def incomplete() -> list[list[tuple[str, str, str]]]:
            """The traces in the window that lack an ingest child or a gateway grandchild."""
            spans = stack.spans(address)
            by_trace: dict[str, list[dict[str, Any]]] = {}
            for s in spans:
                by_trace.setdefault(s["trace_id"], []).append(s)
            producers.clear()
            producers.extend(
                s for s in spans if s["name"].startswith("produce ") and start_ns <= s["start_ns"] <= end_ns
            )
            wrong = []
            for producer in producers:
                trace = by_trace[producer["trace_id"]]
                ingest = [s for s in trace if s["service"] == "tickwire-ingest"]
                deliver = [s for s in trace if s["name"].startswith("deliver ")]
                if not (
                    len(ingest) == 1
                    and ingest[0]["parent_id"] == producer["span_id"]
                    and deliver
                    and all(s["parent_id"] == ingest[0]["span_id"] and s["service"] == "tickwire-gateway"
                            for s in deliver)
                ):
                    wrong.append(sorted((s["service"], s["name"], s["parent_id"]) for s in trace))
            return wrong

        producers: list[dict[str, Any]] = []
        with contextlib.suppress(TimeoutError):
            await eventually(lambda: not incomplete(), within=60, every=1.0, what="every sampled trace complete")
    wrong = incomplete()
    recent = collections.Counter(s["service"] for s in stack.spans(address) if s["start_ns"] >= start_ns)
    assert len(producers) >= 5, f"spans since the subscribe, by service: {dict(recent)}"
    assert not wrong, f"{len(wrong)} of {len(producers)} sampled traces incomplete, e.g. {wrong[:3]}"
    everything = {s["trace_id"] for s in stack.spans(address) if s["name"].startswith("produce ")}
    assert traced <= everything, "a traced message the receiver has no trace of"
    FIGURES["traces_checked"] = len(producers)
