"""Secrets kept out of logs: ``redact(url)`` for backend URLs, ``TokenLogFilter`` for bearer tokens.

``REDIS_URL`` and ``NATS_URL`` may carry credentials (``rediss://:pw@host``,
``nats://user:pw@host``, ``nats://token@host``); every log line that names a backend goes
through here. Several comma-separated NATS servers are redacted one by one.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
SECRET_PARAMS = frozenset({"password", "token", "pass", "secret"})  # redis-py reads ?password=


def _one(url: str) -> str:
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
        port = parts.port
    except ValueError:
        # Unparseable: say nothing of it beyond its scheme rather than risk a secret.
        return url.partition("://")[0] + "://" + MASK if "://" in url else MASK
    netloc = parts.netloc
    if parts.username is not None or parts.password is not None:
        # A lone userinfo part is NATS's token form (nats://token@host): a secret too.
        user = f"{parts.username}:{MASK}" if parts.password is not None else MASK
        shown = f"[{host}]" if host and ":" in host else (host or "")
        netloc = f"{user}@{shown}" + (f":{port}" if port is not None else "")
    query = urlencode([(k, MASK if k.lower() in SECRET_PARAMS else v)
                       for k, v in parse_qsl(parts.query, keep_blank_values=True)], safe="/*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact(url: str) -> str:
    return ",".join(_one(u) for u in url.split(","))


# ``?token=…`` in a request line, ``bearer.…`` / ``Bearer …`` in a subprotocol or header.
_TOKEN_IN_TEXT = re.compile(r"(token=|bearer[. ])[^&\s\"',\]]+", re.IGNORECASE)


def redact_tokens(text: str) -> str:
    return _TOKEN_IN_TEXT.sub(r"\1" + MASK, text)


class TokenLogFilter(logging.Filter):
    """Masks tokens in records of a logger we do not write, e.g. uvicorn's ``"WebSocket /ws?…" [accepted]``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_tokens(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact_tokens(a) if isinstance(a, str) else a for a in record.args)
        return True
