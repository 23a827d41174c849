"""Names along the data path: Redis stream ↔ NATS subject ↔ client topic.

``md:ticks`` + symbol ``AAPL`` → subject ``md.ticks.AAPL`` → topic ``ticks.AAPL``.
Tokens are sanitised so that ``.``, ``*``, ``>`` and whitespace never reach a subject.
Topic patterns follow NATS wildcards: ``*`` matches one token, ``>`` the rest.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from functools import lru_cache

STREAM_SEPARATOR = ":"
MAX_TOPIC_LENGTH = 256
MAX_TOKENS = 16

# Anything NATS gives meaning to, plus control characters and whitespace.
_UNSAFE = re.compile(r"[.*>\s\x00-\x1f\x7f]+")
_TOKEN = re.compile(r"^[A-Za-z0-9_\-:@=+/$%#!~^&|,;'\"()\[\]{}<?]+$")


class TopicError(ValueError):
    """A topic or pattern a client sent is not acceptable."""


def sanitize_token(raw: str) -> str:
    """One subject token from arbitrary text: unsafe runs become ``_``, never empty."""
    token = _UNSAFE.sub("_", raw.strip())
    return token or "_"


@lru_cache(maxsize=1024)
def channel_of(stream_key: str) -> str:
    """``md:ticks`` → ``ticks`` (everything after the first separator, sanitised)."""
    _, _, rest = stream_key.partition(STREAM_SEPARATOR)
    return sanitize_token(rest or stream_key)


@lru_cache(maxsize=65536)  # per entry, two regex passes otherwise; symbols repeat
def subject_for(prefix: str, channel: str, symbol: str | None) -> str:
    """The JetStream subject an entry is published on."""
    if symbol:
        return f"{prefix}.{channel}.{sanitize_token(symbol)}"
    return f"{prefix}.{channel}"


def topic_of(subject: str) -> str:
    """``md.ticks.AAPL`` → ``ticks.AAPL``: what clients see."""
    return subject.partition(".")[2]


def validate_pattern(pattern: object) -> str:
    """Return ``pattern`` if it is a well-formed topic pattern, else raise TopicError."""
    if not isinstance(pattern, str):
        raise TopicError("topic must be a string")
    if not pattern or len(pattern) > MAX_TOPIC_LENGTH:
        raise TopicError(f"topic must be 1..{MAX_TOPIC_LENGTH} characters")
    tokens = pattern.split(".")
    if len(tokens) > MAX_TOKENS:
        raise TopicError(f"topic has more than {MAX_TOKENS} tokens")
    for i, token in enumerate(tokens):
        if token in ("*", ">"):
            if token == ">" and i != len(tokens) - 1:
                raise TopicError("'>' may only be the last token")
            continue
        if not _TOKEN.fullmatch(token):
            raise TopicError(f"invalid token {token!r} in topic {pattern!r}")
    return pattern


@lru_cache(maxsize=65536)
def _split(value: str) -> tuple[str, ...]:
    return tuple(value.split("."))


def is_literal(pattern: str) -> bool:
    """A pattern without wildcards: it matches exactly the topic it names."""
    tokens = _split(pattern)
    return "*" not in tokens and ">" not in tokens


def matches(pattern: str, topic: str) -> bool:
    """NATS wildcard match of a (validated) pattern against a literal topic: the topic is the
    one pattern it names, so it matches when it lies within ``pattern``."""
    return pattern_within(topic, pattern)


def matcher(patterns: Iterable[str]) -> Callable[[str], re.Match[str] | None]:
    """A test of whether any of ``patterns`` matches a topic (a match object or None),
    compiled once for a scan of many topics: one regex's fullmatch per topic is several
    times faster than ``matches`` (both sides split per call) over each pattern."""
    def compiled(pattern: str) -> str:
        return r"\.".join("[^.]+" if token == "*" else ".+" if token == ">" else re.escape(token)
                          for token in _split(pattern))

    return re.compile("|".join(f"(?:{compiled(p)})" for p in patterns)).fullmatch


def covers_prefix(pattern: str, prefix: str) -> bool:
    """True when ``pattern`` can match some topic at or under ``prefix`` (``ticks.*`` covers
    ``ticks``): who must hear of a gap in a whole channel."""
    p = _split(pattern)
    for i, token in enumerate(_split(prefix)):
        if i >= len(p):
            return False
        if p[i] == ">":
            return True
        if p[i] != "*" and p[i] != token:
            return False
    return True


def pattern_within(pattern: str, grant: str) -> bool:
    """True when every topic ``pattern`` can match is also matched by ``grant``."""
    p = _split(pattern)
    g = _split(grant)
    for i, token in enumerate(g):
        if token == ">":
            return len(p) > i
        if i >= len(p):
            return False
        if p[i] == ">":
            return False
        if token != "*" and (p[i] == "*" or token != p[i]):
            return False
    return len(p) == len(g)
