"""Topic patterns as the gateway reads them: NATS wildcards, ``*`` one token, ``>`` the rest.

The client needs the rule to know which of its subscriptions a message advances, so it can
resume each one from its own position. It keeps its own copy of the rule because the
package installs without the server's.
"""

from __future__ import annotations


def matches(pattern: str, topic: str) -> bool:
    """True when ``topic`` (literal) is one the subscription ``pattern`` receives."""
    wanted, got = pattern.split("."), topic.split(".")
    if wanted[-1] == ">":
        head = wanted[:-1]
        return len(got) > len(head) and all(w in ("*", g) for w, g in zip(head, got, strict=False))
    return len(wanted) == len(got) and all(w in ("*", g) for w, g in zip(wanted, got, strict=True))
