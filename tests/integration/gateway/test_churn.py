"""One hostile client churning subscriptions against 10,000 live topics must not stall the
gateway's event loop: its lag stays < 50 ms p99 (issue 14's liveness bar)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import time
from collections import Counter

import httpx
import pytest
import websockets

from gateway.tokens import issue
from tests.integration.gateway.harness import Bus
from tests.stack import Services
from tests.waiting import eventually

SUBJECTS = 10_000
LITERALS = 128  # per frame: the default TICKWIRE_MAX_SUBSCRIPTIONS, all within a ticks.* grant
CHURN_SECONDS = 15.0
FRAMES_PER_SECOND = 40  # under the default limit of 50
# The churn's turns, in a cycle: 128 literals subscribed and unsubscribed; ticks.* resumed
# from the last head it was told (a scan of the hub's cache, a resume from the ring) and
# unsubscribed; ticks.* without since (a snapshot of all 10,000 subjects) and unsubscribed;
# the same snapshot under 127 live literals (the most subscriptions a connection may hold
# beside it: each of the 10,000 subjects is tested against them).
TURNS = ("literal", "resume", "snapshot", "snapshot under literals")
BACKGROUND_PER_SECOND = 200  # live messages on random subjects meanwhile, so their cache entries are rebuilt
LAG_BAR = 0.05
SECRET = "churn-secret-" + "x" * 32
LAG_BUCKET = re.compile(r'^tickwire_event_loop_lag_seconds_bucket\{le="([^"]+)"\} (\S+)$', re.MULTILINE)


def _lag_buckets(metrics: str) -> dict[float, float]:
    """The loop-lag histogram's cumulative counts by upper bound."""
    return {float(le): float(count) for le, count in LAG_BUCKET.findall(metrics)}


def _metric(metrics: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", metrics, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def _publish_every_subject(bus: Bus) -> None:
    for start in range(0, SUBJECTS, 1000):
        await asyncio.gather(*(bus.js.publish(f"md.ticks.S{i}", b"{}") for i in range(start, start + 1000)))


async def _background(bus: Bus, rng: random.Random) -> None:
    while True:
        await bus.js.publish(f"md.ticks.S{rng.randrange(SUBJECTS)}", b'{"live":true}')
        await asyncio.sleep(1 / BACKGROUND_PER_SECOND)  # pacing the rate, not waiting for anything


async def _churn(url: str, token: str, rng: random.Random, counts: Counter[str], errors: list[object]) -> None:
    """The TURNS in a cycle at 40 frames/s; read everything the gateway sends (a client that
    stops reading is cut, gateway.writer)."""
    headers = {"Authorization": f"Bearer {token}"}
    async with websockets.connect(url, additional_headers=headers, max_size=None, max_queue=None) as ws:

        async def drain() -> None:
            while True:
                # Counted, not parsed: the snapshots are ~1,000,000 messages, and this process
                # shares the machine's cores with the gateway whose loop is measured.
                raw = await ws.recv(decode=False)
                messages = raw.count(b'"type":"msg"')
                if messages:
                    counts["msg"] += messages
                    continue
                frame = json.loads(raw)
                counts[frame["type"]] += 1
                if frame["type"] == "subscribed":
                    counts["head"] = frame["seq"]
                if frame["type"] == "error":
                    errors.append(frame)

        reading = asyncio.create_task(drain())
        try:
            deadline = time.monotonic() + CHURN_SECONDS
            while time.monotonic() < deadline:
                turn = TURNS[counts["turns"] % len(TURNS)]
                counts["turns"] += 1
                literals = [f"ticks.S{i}" for i in rng.sample(range(SUBJECTS), LITERALS)]
                if turn == "literal":
                    pairs = [{"topics": literals}]
                elif turn == "resume":
                    pairs = [{"topics": ["ticks.*"], "since": counts["head"]}]
                elif turn == "snapshot":
                    pairs = [{"topics": ["ticks.*"]}]
                else:  # the literals' pair around the snapshot's
                    pairs = [{"topics": literals[1:]}, {"topics": ["ticks.*"]}]
                sent = [{"type": "subscribe", **pair} for pair in pairs]
                sent += [{"type": "unsubscribe", "topics": pair["topics"]} for pair in reversed(pairs)]
                for frame in sent:
                    await ws.send(json.dumps(frame))
                counts["pairs"] += len(pairs)
                counts[f"{turn} turns"] += 1
                await asyncio.sleep(len(sent) / FRAMES_PER_SECOND)  # the frame rate limit, not a wait for anything
            # Every subscribe answered, and every snapshot read, before the window closes.
            await eventually(lambda: counts["unsubscribed"] >= counts["pairs"], within=20, what="every reply")
        finally:
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reading


@pytest.mark.slow
async def test_subscription_churn_against_10k_live_topics_keeps_loop_lag_under_50ms_p99(
    services: Services, bus: Bus
) -> None:
    """1. a gateway process with auth on; 10,000 subjects get a message each, so all 10,000
    topics are live in its hub's cache
    2. one client granted ticks.* churns for 15 s at 40 frames/s, in turns: subscribe 128
    literals (each with its snapshot) and unsubscribe them; ticks.* with ``since`` (a scan of
    the hub's cache, a resume from the ring); ticks.* without (a snapshot of all 10,000
    subjects); the same snapshot under 127 live literals; each unsubscribed again; 200 live
    messages/s flow meanwhile
    3. over the churn, the gateway's own loop-lag histogram (from /metrics) has at least 99%
    of its samples at or below 50 ms, the client was never refused or closed, and every
    snapshot came whole.

    A ticks.* snapshot of 10,000 subjects once took one synchronous step: 9 ms on a quiet
    2-core machine, 10-73 ms on a loaded one, and 0.4-0.7 s under 127 live literals, each
    subject tested against every live pattern in turn (docs/security.md)."""
    gateway = services.gateway(TICKWIRE_AUTH="jwt", TICKWIRE_JWT_SECRET=SECRET)
    await gateway.ready()
    rng = random.Random(20261130)
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as http:
        await _publish_every_subject(bus)

        async def all_cached() -> bool:
            return _metric((await http.get("/metrics")).text, "tickwire_gateway_hub_cached_topics") >= SUBJECTS

        await eventually(all_cached, within=20, every=0.1, what="all 10,000 topics in the hub's cache")
        before = _lag_buckets((await http.get("/metrics")).text)
        background = asyncio.create_task(_background(bus, rng))
        counts: Counter[str] = Counter()
        errors: list[object] = []
        try:
            await _churn(gateway.ws_url, issue(SECRET, "churner", ["ticks.*"], 600), rng, counts, errors)
        finally:
            background.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await background
        after = _lag_buckets((await http.get("/metrics")).text)
    window = {le: after[le] - before.get(le, 0.0) for le in after}
    samples = window[float("inf")]
    within_bar = window[LAG_BAR]
    p99 = min(le for le, count in window.items() if count >= 0.99 * samples)
    print(f"\n{dict(counts)} in {CHURN_SECONDS:.0f} s; loop lag over the churn: {samples:.0f} samples, "  # noqa: T201
          f"{samples - within_bar:.0f} above 50 ms, p99 <= {p99 * 1000:.0f} ms (bucket bound); "
          f"buckets {window}")
    assert not errors, errors[:3]
    assert counts["subscribed"] == counts["pairs"] >= CHURN_SECONDS * FRAMES_PER_SECOND / 2 * 0.8
    assert all(counts[f"{turn} turns"] >= counts["turns"] // len(TURNS) for turn in TURNS)
    # Each literal's snapshot is its subject's latest; each ticks.* snapshot every subject's
    # (under the literals, those they cover come from their own snapshots).
    snapshots = counts["snapshot turns"] + counts["snapshot under literals turns"]
    assert counts["msg"] >= counts["literal turns"] * LITERALS + snapshots * SUBJECTS
    assert samples >= CHURN_SECONDS / 0.05 * 0.8  # the sampler ran throughout
    assert within_bar >= 0.99 * samples, f"loop lag p99 above 50 ms: {window}"
