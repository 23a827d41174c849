"""The feed's reading of a JetStream delivery's reply subject, against nats.py's own parser."""

from __future__ import annotations

import pytest
from nats.aio.msg import Msg

from gateway.feed import stream_seq

REPLIES = [
    "$JS.ACK.MD.cons.1.12345.67.1764433200123456789.0",  # v1: 9 tokens
    "$JS.ACK.hub.ACCHASH.MD.cons.1.12345.67.1764433200123456789.0",  # v2 without the random token
    "$JS.ACK.hub.ACCHASH.MD.cons.3.12345.67.1764433200123456789.4.Xk2",  # v2: 12 tokens
]


@pytest.mark.parametrize("reply", REPLIES)
def test_stream_seq_agrees_with_nats_metadata(reply: str) -> None:
    assert stream_seq(reply) == Msg(None, subject="md.t", reply=reply).metadata.sequence.stream == 12345  # type: ignore[arg-type]
