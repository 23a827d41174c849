"""The client SDK's copy of the wildcard rule agrees with the gateway's."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from tickwire_client.topics import matches as client_matches

from services.subjects import matches as gateway_matches

TOKENS = st.sampled_from(["ticks", "trades", "AAPL", "MSFT", "x"])
TOPICS = st.lists(TOKENS, min_size=1, max_size=4).map(".".join)
PATTERN_TOKENS = st.sampled_from(["ticks", "trades", "AAPL", "MSFT", "x", "*"])


@st.composite
def patterns(draw: st.DrawFn) -> str:
    tokens = draw(st.lists(PATTERN_TOKENS, min_size=1, max_size=4))
    if draw(st.booleans()):
        tokens[-1] = ">"
    return ".".join(tokens)


@given(patterns(), TOPICS)
def test_client_and_gateway_match_the_same_topics(pattern: str, topic: str) -> None:
    """For any well-formed pattern and literal topic, both sides decide alike."""
    assert client_matches(pattern, topic) == gateway_matches(pattern, topic)


def test_examples() -> None:
    assert client_matches("ticks.*", "ticks.AAPL")
    assert not client_matches("ticks.*", "ticks.AAPL.x")
    assert client_matches("ticks.>", "ticks.AAPL.x")
    assert not client_matches("ticks.>", "ticks")
    assert client_matches(">", "ticks")
