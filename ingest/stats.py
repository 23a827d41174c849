"""Counters the service keeps for metrics and tests (plain ints: one event loop writes them)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class IngestStats:
    published: int = 0  # entries acknowledged by JetStream as newly stored
    jetstream_duplicates: int = 0  # re-publishes JetStream dropped by Nats-Msg-Id
    duplicates_skipped: int = 0  # re-deliveries at or below the high-water mark, not published
    dead_lettered: int = 0
    trimmed: int = 0  # entries trimmed from Redis before they were published
    gaps: int = 0  # gap notices published (one per run of trimmed entries)
    publish_retries: int = 0
    last_id: dict[str, str] = field(default_factory=dict)  # per stream, last entry handled
    lag: dict[str, int] = field(default_factory=dict)  # per held stream: entries not yet handled
