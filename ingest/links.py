"""Reachability of Redis and NATS as ingest sees it: one log line per change, never per retry.

Every retry loop reports to the same ``Link``, so an outage of one backend reads as two lines
("redis: unavailable (…), retrying" and "redis: back") however many workers retry meanwhile.
``/readyz`` reads the same state.
"""

from __future__ import annotations

import enum
import logging

log = logging.getLogger(__name__)


class LinkState(enum.Enum):
    CONNECTING = "connecting"
    UP = "up"
    DOWN = "down"


class Link:
    """One backend's state, logged on transitions only."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.state = LinkState.CONNECTING

    @property
    def up(self) -> bool:
        return self.state is LinkState.UP

    def reached(self) -> None:
        if self.state is LinkState.DOWN:
            log.info("%s: back", self.name)
        elif self.state is LinkState.CONNECTING:
            log.info("%s: connected", self.name)
        self.state = LinkState.UP

    def failed(self, exc: BaseException) -> None:
        if self.state is not LinkState.DOWN:
            log.warning("%s: unavailable (%s: %s), retrying", self.name, type(exc).__name__, exc)
        self.state = LinkState.DOWN
