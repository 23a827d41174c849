"""Stream ↔ subject ↔ topic mapping, sanitising and NATS wildcard matching."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.subjects import (
    TopicError,
    channel_of,
    covers_prefix,
    matcher,
    matches,
    pattern_within,
    sanitize_token,
    subject_for,
    topic_of,
    validate_pattern,
)


def test_stream_entry_maps_to_subject_and_topic() -> None:
    subject = subject_for("md", channel_of("md:ticks"), "AAPL")
    assert subject == "md.ticks.AAPL"
    assert topic_of(subject) == "ticks.AAPL"
    assert subject_for("md", "ticks", None) == "md.ticks"


@pytest.mark.parametrize(
    ("raw", "token"),
    [("BRK.B", "BRK_B"), ("a*b", "a_b"), ("x>y", "x_y"), (" sp ace ", "sp_ace"), ("", "_"), ("a\tb\nc", "a_b_c")],
)
def test_sanitize_removes_what_nats_gives_meaning_to(raw: str, token: str) -> None:
    assert sanitize_token(raw) == token


@given(st.text(max_size=40))
def test_sanitized_token_is_always_one_safe_token(raw: str) -> None:
    token = sanitize_token(raw)
    assert token
    assert not any(c in token for c in ".*>") and not any(c.isspace() for c in token)


@pytest.mark.parametrize(
    ("pattern", "topic", "expected"),
    [
        ("ticks.AAPL", "ticks.AAPL", True),
        ("ticks.AAPL", "ticks.MSFT", False),
        ("ticks.*", "ticks.AAPL", True),
        ("ticks.*", "ticks", False),
        ("ticks.*", "ticks.A.B", False),
        ("ticks.>", "ticks.A.B", True),
        ("ticks.>", "ticks", False),
        (">", "trades.X", True),
        ("*.AAPL", "trades.AAPL", True),
    ],
)
def test_wildcards_follow_nats(pattern: str, topic: str, expected: bool) -> None:
    assert matches(pattern, topic) is expected
    assert (matcher([pattern])(topic) is not None) is expected


_TOKENS = st.sampled_from(["a", "b", "a+b", "x$y", "*", ">"])


@given(st.lists(st.lists(_TOKENS, min_size=1, max_size=4), min_size=1, max_size=3),
       st.lists(st.sampled_from(["a", "b", "a+b", "x$y", "c"]), min_size=1, max_size=5))
def test_a_compiled_matcher_agrees_with_matches_on_any_of_its_patterns(raw: list[list[str]], tokens: list[str]) -> None:
    """Regex metacharacters in tokens stay literal; ``>`` only last, as validation requires."""
    patterns = [".".join(p) for p in raw if ">" not in p[:-1]]
    topic = ".".join(tokens)
    if patterns:
        assert (matcher(patterns)(topic) is not None) is any(matches(p, topic) for p in patterns)


@pytest.mark.parametrize("bad", ["", "a..b", "ticks.>.x", "a b", "x" * 300, 7, None, "ti*cks"])
def test_invalid_patterns_are_refused(bad: object) -> None:
    with pytest.raises(TopicError):
        validate_pattern(bad)


@pytest.mark.parametrize(
    ("pattern", "grant", "within"),
    [
        ("ticks.AAPL", "ticks.*", True),
        ("ticks.*", "ticks.>", True),
        ("ticks.>", "ticks.*", False),
        (">", "ticks.>", False),
        ("ticks.*", "ticks.AAPL", False),
        ("ticks.AAPL", "ticks.AAPL", True),
    ],
)
def test_pattern_within_grant(pattern: str, grant: str, within: bool) -> None:
    assert pattern_within(pattern, grant) is within


@pytest.mark.parametrize(
    ("pattern", "prefix", "covers"),
    [
        ("ticks.*", "ticks", True),
        ("ticks.AAPL", "ticks", True),
        (">", "ticks", True),
        ("*.AAPL", "ticks", True),
        ("trades.*", "ticks", False),
        ("ticks", "ticks", True),
        ("ticks.AAPL", "ticks.MSFT", False),
    ],
)
def test_covers_prefix_finds_who_hears_of_a_channel_gap(pattern: str, prefix: str, covers: bool) -> None:
    assert covers_prefix(pattern, prefix) is covers


@pytest.mark.parametrize("topic", ["ticks.AAPL\n", "ticks\n.AAPL", "ticks.*\n", "\n"])
def test_a_newline_never_passes_as_part_of_a_token(topic: str) -> None:
    """``$`` matches before a trailing newline: the token rule must match the whole token."""
    with pytest.raises(TopicError):
        validate_pattern(topic)
