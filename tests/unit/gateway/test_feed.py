"""The feed's reading of a JetStream delivery's reply subject, against nats.py's own parser;
its waiters for a seq not reached yet."""

from __future__ import annotations

import asyncio

import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from gateway.feed import Feed, stream_seq
from gateway.hub import Hub
from gateway.telemetry import Telemetry
from services.settings import GatewaySettings

REPLIES = [
    "$JS.ACK.MD.cons.1.12345.67.1764433200123456789.0",  # v1: 9 tokens
    "$JS.ACK.hub.ACCHASH.MD.cons.1.12345.67.1764433200123456789.0",  # v2 without the random token
    "$JS.ACK.hub.ACCHASH.MD.cons.3.12345.67.1764433200123456789.4.Xk2",  # v2: 12 tokens
]


@pytest.mark.parametrize("reply", REPLIES)
def test_stream_seq_agrees_with_nats_metadata(reply: str) -> None:
    assert stream_seq(reply) == Msg(None, subject="md.t", reply=reply).metadata.sequence.stream == 12345  # type: ignore[arg-type]


async def test_a_waiter_that_timed_out_is_not_kept() -> None:
    """Waiting for a seq the replica has not reached: a waiter that gives up leaves the feed
    at once (it kept every timed-out future until the head passed its seq); one still waiting
    is woken when the head gets there."""
    feed = Feed(NATS(), GatewaySettings.from_env({}), Hub(), Telemetry("gw-test", None))
    patient = asyncio.create_task(feed.wait_head(5))
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await feed.wait_head(10**6)
    assert [seq for seq, _, _ in feed._waiters] == [5]
    feed.head = 5
    feed._wake_waiters()
    await patient
    assert feed._waiters == []
