"""Settings: one frozen object per service, built once from the environment.

Every variable has a safe default for local use. ``from_env`` takes the environ as a
mapping so tests pass a dict; only ``tickwire.cli`` hands it ``os.environ``.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import urlsplit

from services.subjects import validate_pattern

T = TypeVar("T")

MIN_SECRET_BYTES = 32  # HS256 keys shorter than the hash output are brute-forceable offline


class SettingsError(ValueError):
    """A variable is set to something unusable; the message names it."""


def _get(env: Mapping[str, str], name: str, default: T, parse: Callable[[str], T]) -> T:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return parse(raw.strip())
    except (ValueError, TypeError) as exc:
        raise SettingsError(f"{name}={raw!r}: {exc}") from None


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def _non_negative_float(raw: str) -> float:
    value = float(raw)
    if value < 0:
        raise ValueError("must be >= 0")
    return value


def _positive_float(raw: str) -> float:
    value = float(raw)
    if value <= 0:
        raise ValueError("must be > 0")
    return value


def _patterns(raw: str) -> tuple[str, ...]:
    return tuple(validate_pattern(p) for p in _csv(raw))


def _bool(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


def _csv(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _storage(raw: str) -> str:
    if raw not in ("file", "memory"):
        raise ValueError("must be 'file' or 'memory'")
    return raw


OTLP_PROTOCOLS = ("http/protobuf", "grpc")  # what the Python SDK's OTLP span exporters speak


def _tracing(env: Mapping[str, str]) -> str:
    """The OTLP protocol spans are exported with, or "" when tracing is off: spans are
    exported when an OTLP endpoint is configured and the SDK is not disabled. The protocol
    is the standard ``OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL`` (default http/protobuf); the
    SDK itself reads the rest of the ``OTEL_*`` variables."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return ""
    if not (env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")):
        return ""
    name = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
    if not env.get(name, "").strip():
        name = "OTEL_EXPORTER_OTLP_PROTOCOL"
    protocol = env.get(name, "").strip() or OTLP_PROTOCOLS[0]
    if protocol not in OTLP_PROTOCOLS:
        raise SettingsError(f"{name}={protocol!r}: must be one of {', '.join(OTLP_PROTOCOLS)}")
    return protocol


def _auth(raw: str) -> str:
    if raw not in ("none", "jwt"):
        raise ValueError("must be 'none' or 'jwt'")
    return raw


def _origins(raw: str) -> tuple[str, ...]:
    return tuple(normalize_origin(o) for o in _csv(raw))


def normalize_origin(origin: str) -> str:
    """``scheme://host[:port]`` lowercased, as browsers send it; anything else is refused.

    A ``*`` is refused on purpose: the list decides which sites may open a connection
    carrying their users' browsers, and "any site" defeats the check (facts.md, OWASP).
    """
    parts = urlsplit(origin.strip().rstrip("/").lower())
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query or parts.username:
        raise ValueError(f"{origin!r} is not an origin (scheme://host[:port], no path, no '*')")
    try:
        parts.port  # noqa: B018 - parsing it is the check
    except ValueError:
        raise ValueError(f"{origin!r} has a bad port") from None
    return f"{parts.scheme}://{parts.netloc}"


def _gateway_addresses(raw: str) -> tuple[str, ...]:
    """``host:port`` or ``ws(s)://host:port/path`` entries, as the dashboard's ``?gateways=`` takes them."""
    addresses = _csv(raw)
    for address in addresses:
        parts = urlsplit(address if "://" in address else f"ws://{address}")
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise ValueError(f"{address!r} is neither host:port nor a ws(s):// URL")
    return addresses


def _default_node() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True)
class BusSettings:
    """Where the backends are and how the JetStream stream is shaped (shared by all)."""

    redis_url: str = "redis://127.0.0.1:6379/0"
    nats_url: str = "nats://127.0.0.1:4222"
    stream: str = "MD"
    subject_prefix: str = "md"
    retention_seconds: float = 3600.0
    retention_messages: int = 1_000_000
    duplicate_window: float = 120.0
    storage: str = "file"
    nats_pending_bytes: int = 8 * 1024 * 1024
    tracing: str = ""  # the OTLP protocol spans are exported with, "" for none (services.telemetry)
    # Secrets stay in files the process reads; only their paths are settings.
    nats_creds_file: str = ""
    nats_nkey_file: str = ""
    nats_tls_ca: str = ""
    nats_tls_cert: str = ""
    nats_tls_key: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> BusSettings:
        d = cls()
        return cls(
            redis_url=_get(env, "REDIS_URL", d.redis_url, str),
            nats_url=_get(env, "NATS_URL", d.nats_url, str),
            stream=_get(env, "TICKWIRE_JS_STREAM", d.stream, str),
            retention_seconds=_get(env, "TICKWIRE_RETENTION_SECONDS", d.retention_seconds, _non_negative_float),
            retention_messages=_get(env, "TICKWIRE_RETENTION_MESSAGES", d.retention_messages, _positive_int),
            duplicate_window=_get(env, "TICKWIRE_DUPLICATE_WINDOW", d.duplicate_window, _non_negative_float),
            storage=_get(env, "TICKWIRE_STORAGE", d.storage, _storage),
            nats_pending_bytes=_get(env, "TICKWIRE_NATS_PENDING_BYTES", d.nats_pending_bytes, _positive_int),
            tracing=_tracing(env),
            nats_creds_file=_get(env, "TICKWIRE_NATS_CREDS_FILE", d.nats_creds_file, str),
            nats_nkey_file=_get(env, "TICKWIRE_NATS_NKEY_FILE", d.nats_nkey_file, str),
            nats_tls_ca=_get(env, "TICKWIRE_NATS_TLS_CA", d.nats_tls_ca, str),
            nats_tls_cert=_get(env, "TICKWIRE_NATS_TLS_CERT", d.nats_tls_cert, str),
            nats_tls_key=_get(env, "TICKWIRE_NATS_TLS_KEY", d.nats_tls_key, str),
        )


@dataclass(frozen=True)
class IngestSettings:
    """The Redis → JetStream bridge."""

    bus: BusSettings = field(default_factory=BusSettings)
    streams: str = "md:*"
    group: str = "tickwire"
    replica: str = field(default_factory=_default_node)
    batch: int = 500
    block_ms: int = 1000
    lease_ttl: float = 5.0
    rescan_interval: float = 2.0
    dead_letter_stream: str = "tickwire:dead"
    max_payload: int = 1024 * 1024
    metrics_port: int = 0
    metrics_host: str = "127.0.0.1"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> IngestSettings:
        d = cls(replica="")
        return cls(
            bus=BusSettings.from_env(env),
            streams=_get(env, "TICKWIRE_STREAMS", d.streams, str),
            group=_get(env, "TICKWIRE_GROUP", d.group, str),
            replica=_get(env, "TICKWIRE_REPLICA", _default_node(), str),
            batch=_get(env, "TICKWIRE_INGEST_BATCH", d.batch, _positive_int),
            block_ms=_get(env, "TICKWIRE_INGEST_BLOCK_MS", d.block_ms, _positive_int),
            lease_ttl=_get(env, "TICKWIRE_LEASE_TTL", d.lease_ttl, _non_negative_float),
            rescan_interval=_get(env, "TICKWIRE_RESCAN_INTERVAL", d.rescan_interval, _non_negative_float),
            dead_letter_stream=_get(env, "TICKWIRE_DEAD_LETTER_STREAM", d.dead_letter_stream, str),
            max_payload=_get(env, "TICKWIRE_MAX_PAYLOAD", d.max_payload, _positive_int),
            metrics_port=_get(env, "TICKWIRE_INGEST_METRICS_PORT", d.metrics_port, int),
            metrics_host=_get(env, "TICKWIRE_INGEST_METRICS_HOST", d.metrics_host, str),
        )


@dataclass(frozen=True)
class GatewaySettings:
    """One gateway replica."""

    bus: BusSettings = field(default_factory=BusSettings)
    host: str = "127.0.0.1"
    port: int = 8080
    node: str = field(default_factory=_default_node)
    heartbeat: float = 15.0
    replay_buffer: int = 200_000
    max_connections: int = 10_000
    max_subscriptions: int = 128
    max_frame_bytes: int = 64 * 1024
    outbox_bytes: int = 4 * 1024 * 1024
    outbox_messages: int = 20_000
    batch_max: int = 256
    web_dir: str = ""
    allowed_origins: tuple[str, ...] = ()
    dashboard_gateways: tuple[str, ...] = ()
    drain_grace: float = 2.0
    drain_window: float = 5.0
    max_frames_per_second: float = 50.0
    conflate: tuple[str, ...] = ()
    auth: str = "none"
    auth_query_token: bool = False
    jwt_secret: str = field(default="", repr=False)
    jwt_public_key_file: str = ""
    jwks_file: str = ""
    jwt_audience: str = ""
    jwt_issuer: str = ""
    jwt_leeway: float = 5.0
    # Not read from the environment: `--workers` sets it for its workers (gateway.workers).
    metrics_dir: str = ""

    def __post_init__(self) -> None:
        # Here rather than in from_env so that settings built in code are held to it too.
        if self.auth not in ("none", "jwt"):
            raise SettingsError(f"TICKWIRE_AUTH={self.auth!r}: must be 'none' or 'jwt'")
        if self.auth != "jwt":
            return
        sources = [name for name, value in (("TICKWIRE_JWT_SECRET", self.jwt_secret),
                                             ("TICKWIRE_JWT_PUBLIC_KEY_FILE", self.jwt_public_key_file),
                                             ("TICKWIRE_JWKS_FILE", self.jwks_file)) if value]
        if len(sources) != 1:
            raise SettingsError("TICKWIRE_AUTH=jwt needs exactly one of TICKWIRE_JWT_SECRET, "
                                "TICKWIRE_JWT_PUBLIC_KEY_FILE, TICKWIRE_JWKS_FILE "
                                f"(set: {', '.join(sources) or 'none'})")
        if self.jwt_secret and len(self.jwt_secret.encode()) < MIN_SECRET_BYTES:
            # The value itself is never part of the message.
            raise SettingsError(f"TICKWIRE_JWT_SECRET is too weak: it must be at least {MIN_SECRET_BYTES} bytes "
                                "(e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(48))')")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> GatewaySettings:
        d = cls(node="")
        return cls(
            bus=BusSettings.from_env(env),
            host=_get(env, "TICKWIRE_HOST", d.host, str),
            port=_get(env, "TICKWIRE_PORT", d.port, int),
            node=_get(env, "TICKWIRE_NODE", _default_node(), str),
            heartbeat=_get(env, "TICKWIRE_HEARTBEAT", d.heartbeat, _non_negative_float),
            replay_buffer=_get(env, "TICKWIRE_REPLAY_BUFFER", d.replay_buffer, _positive_int),
            max_connections=_get(env, "TICKWIRE_MAX_CONNECTIONS", d.max_connections, _positive_int),
            max_subscriptions=_get(env, "TICKWIRE_MAX_SUBSCRIPTIONS", d.max_subscriptions, _positive_int),
            max_frame_bytes=_get(env, "TICKWIRE_MAX_FRAME_BYTES", d.max_frame_bytes, _positive_int),
            outbox_bytes=_get(env, "TICKWIRE_OUTBOX_BYTES", d.outbox_bytes, _positive_int),
            outbox_messages=_get(env, "TICKWIRE_OUTBOX_MESSAGES", d.outbox_messages, _positive_int),
            batch_max=_get(env, "TICKWIRE_BATCH_MAX", d.batch_max, _positive_int),
            web_dir=_get(env, "TICKWIRE_WEB_DIR", d.web_dir, str),
            allowed_origins=_get(env, "TICKWIRE_ALLOWED_ORIGINS", d.allowed_origins, _origins),
            dashboard_gateways=_get(env, "TICKWIRE_DASHBOARD_GATEWAYS", d.dashboard_gateways, _gateway_addresses),
            drain_grace=_get(env, "TICKWIRE_DRAIN_GRACE", d.drain_grace, _non_negative_float),
            drain_window=_get(env, "TICKWIRE_DRAIN_WINDOW", d.drain_window, _non_negative_float),
            max_frames_per_second=_get(env, "TICKWIRE_MAX_FRAMES_PER_SECOND", d.max_frames_per_second,
                                       _positive_float),
            conflate=_get(env, "TICKWIRE_CONFLATE", d.conflate, _patterns),
            auth=_get(env, "TICKWIRE_AUTH", d.auth, _auth),
            auth_query_token=_get(env, "TICKWIRE_AUTH_QUERY_TOKEN", d.auth_query_token, _bool),
            jwt_secret=env.get("TICKWIRE_JWT_SECRET", "").strip(),  # not via _get: its errors echo the value
            jwt_public_key_file=_get(env, "TICKWIRE_JWT_PUBLIC_KEY_FILE", d.jwt_public_key_file, str),
            jwks_file=_get(env, "TICKWIRE_JWKS_FILE", d.jwks_file, str),
            jwt_audience=_get(env, "TICKWIRE_JWT_AUDIENCE", d.jwt_audience, str),
            jwt_issuer=_get(env, "TICKWIRE_JWT_ISSUER", d.jwt_issuer, str),
            jwt_leeway=_get(env, "TICKWIRE_JWT_LEEWAY", d.jwt_leeway, _non_negative_float),
        )


@dataclass(frozen=True)
class SimulatorSettings:
    """The market simulator (a producer)."""

    redis_url: str = "redis://127.0.0.1:6379/0"
    symbols: int = 50
    rate: float = 500.0
    maxlen: int = 100_000
    trade_ratio: float = 0.2
    seed: int | None = None
    tracing: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SimulatorSettings:
        d = cls()
        return cls(
            redis_url=_get(env, "REDIS_URL", d.redis_url, str),
            symbols=_get(env, "TICKWIRE_SIM_SYMBOLS", d.symbols, _positive_int),
            rate=_get(env, "TICKWIRE_SIM_RATE", d.rate, _non_negative_float),
            maxlen=_get(env, "TICKWIRE_SIM_MAXLEN", d.maxlen, _positive_int),
            trade_ratio=_get(env, "TICKWIRE_SIM_TRADE_RATIO", d.trade_ratio, _non_negative_float),
            seed=_get(env, "TICKWIRE_SIM_SEED", d.seed, int),
            tracing=_tracing(env),
        )
