"""Settings: one frozen object per service, built once from the environment.

Every variable has a safe default for local use. ``from_env`` takes the environ as a
mapping so tests pass a dict; only ``tickwire.cli`` hands it ``os.environ``. Every field
names its variable (``env_var``); how a bad configuration is reported, once and naming each
bad variable, is services.envsettings.
"""

from __future__ import annotations

import logging
import os
import re
import socket
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    model_validator,
)

from services.envsettings import Csv, Settings, SettingsError, each, env_var
from services.subjects import validate_pattern

MIN_SECRET_BYTES = 32  # HS256 keys shorter than the hash output are brute-forceable offline
OTLP_PROTOCOLS = ("http/protobuf", "grpc")  # what the Python SDK's OTLP span exporters speak
# Values shipped in examples and the dev overlay: fine on a laptop, a hole anywhere else.
_PLACEHOLDER_SECRET = re.compile(r"change.?me|dev.?only|example|placeholder", re.IGNORECASE)


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


def _gateway_address(address: str) -> str:
    """``host:port`` or ``ws(s)://host:port/path``, as the dashboard's ``?gateways=`` takes them."""
    parts = urlsplit(address if "://" in address else f"ws://{address}")
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ValueError(f"{address!r} is neither host:port nor a ws(s):// URL")
    return address


def _log_level(raw: object) -> object:
    if isinstance(raw, str) and raw.upper() in logging.getLevelNamesMapping():
        return raw.upper()
    raise ValueError(f"must be one of {', '.join(sorted(logging.getLevelNamesMapping()))}")


Origins = Annotated[Csv, AfterValidator(each(normalize_origin))]
Patterns = Annotated[Csv, AfterValidator(each(validate_pattern))]
GatewayAddresses = Annotated[Csv, AfterValidator(each(_gateway_address))]
LogLevel = Annotated[str, BeforeValidator(_log_level)]


def tracing_protocol(env: Mapping[str, str]) -> str:
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


def _default_node() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def traced(env: Mapping[str, str], problems: list[str]) -> dict[str, Any]:
    """``tracing``: the OTLP protocol from the standard variables (a bad one is a problem)."""
    try:
        return {"tracing": tracing_protocol(env)}
    except SettingsError as exc:
        problems.append(str(exc))
        return {}


class BusSettings(Settings):
    """Where the backends are and how the JetStream stream is shaped (shared by all)."""

    redis_url: str = env_var("REDIS_URL", "redis://127.0.0.1:6379/0")
    nats_url: str = env_var("NATS_URL", "nats://127.0.0.1:4222")
    stream: str = env_var("TICKWIRE_JS_STREAM", "MD")
    subject_prefix: str = "md"
    retention_seconds: NonNegativeFloat = env_var("TICKWIRE_RETENTION_SECONDS", 3600.0)
    retention_messages: PositiveInt = env_var("TICKWIRE_RETENTION_MESSAGES", 1_000_000)
    duplicate_window: NonNegativeFloat = env_var("TICKWIRE_DUPLICATE_WINDOW", 120.0)
    storage: Literal["file", "memory"] = env_var("TICKWIRE_STORAGE", "file")
    # Copies of the stream a JetStream cluster keeps (1 on one server, 3 in the k8s prod
    # overlay's 3-node cluster: losing the node that holds it must not stop the data path).
    stream_replicas: PositiveInt = env_var("TICKWIRE_STREAM_REPLICAS", 1)
    nats_pending_bytes: PositiveInt = env_var("TICKWIRE_NATS_PENDING_BYTES", 8 * 1024 * 1024)
    tracing: str = ""  # the OTLP protocol spans are exported with, "" for none (services.telemetry)
    # Secrets stay in files the process reads; only their paths are settings.
    nats_creds_file: str = env_var("TICKWIRE_NATS_CREDS_FILE", "")
    nats_nkey_file: str = env_var("TICKWIRE_NATS_NKEY_FILE", "")
    nats_tls_ca: str = env_var("TICKWIRE_NATS_TLS_CA", "")
    nats_tls_cert: str = env_var("TICKWIRE_NATS_TLS_CERT", "")
    nats_tls_key: str = env_var("TICKWIRE_NATS_TLS_KEY", "")

    @classmethod
    def _derived(cls, env: Mapping[str, str], problems: list[str]) -> dict[str, Any]:
        return traced(env, problems)


class ProcessSettings(Settings):
    """What every process has, a service's or a tool's: its log level."""

    log_level: LogLevel = env_var("TICKWIRE_LOG_LEVEL", "INFO")


class _ServiceSettings(ProcessSettings):
    """What every service has: its bus, and its log level."""

    bus: BusSettings = Field(default_factory=BusSettings)

    @classmethod
    def _derived(cls, env: Mapping[str, str], problems: list[str]) -> dict[str, Any]:
        # The bus reads the same flat variables; its problems join this service's.
        bus = BusSettings._read(env, problems)
        return {"bus": bus} if bus is not None else {}


class IngestSettings(_ServiceSettings):
    """The Redis → JetStream bridge."""

    streams: str = env_var("TICKWIRE_STREAMS", "md:*")
    group: str = env_var("TICKWIRE_GROUP", "tickwire")
    replica: str = env_var("TICKWIRE_REPLICA", default_factory=_default_node)
    batch: PositiveInt = env_var("TICKWIRE_INGEST_BATCH", 500)
    block_ms: PositiveInt = env_var("TICKWIRE_INGEST_BLOCK_MS", 1000)
    lease_ttl: NonNegativeFloat = env_var("TICKWIRE_LEASE_TTL", 5.0)
    rescan_interval: NonNegativeFloat = env_var("TICKWIRE_RESCAN_INTERVAL", 2.0)
    dead_letter_stream: str = env_var("TICKWIRE_DEAD_LETTER_STREAM", "tickwire:dead")
    max_payload: PositiveInt = env_var("TICKWIRE_MAX_PAYLOAD", 1024 * 1024)
    metrics_port: int = env_var("TICKWIRE_INGEST_METRICS_PORT", 0)
    metrics_host: str = env_var("TICKWIRE_INGEST_METRICS_HOST", "127.0.0.1")


class GatewaySettings(_ServiceSettings):
    """One gateway replica."""

    environment: Literal["development", "production"] = env_var("TICKWIRE_ENV", "development")
    host: str = env_var("TICKWIRE_HOST", "127.0.0.1")
    port: int = env_var("TICKWIRE_PORT", 8080)
    node: str = env_var("TICKWIRE_NODE", default_factory=_default_node)
    heartbeat: NonNegativeFloat = env_var("TICKWIRE_HEARTBEAT", 15.0)
    replay_buffer: PositiveInt = env_var("TICKWIRE_REPLAY_BUFFER", 200_000)
    max_connections: PositiveInt = env_var("TICKWIRE_MAX_CONNECTIONS", 10_000)
    # Below HTTP (gateway.admission): seconds to send a whole request head (the WebSocket
    # upgrade's included), connections per address (IPv6: per /64) whose head is incomplete,
    # open connections per address (0: no cap; behind a proxy every client has its
    # address), and connections whose head is incomplete over all addresses (past it the
    # oldest is closed).
    handshake_timeout: PositiveFloat = env_var("TICKWIRE_HANDSHAKE_TIMEOUT", 10.0)
    max_handshakes_per_ip: PositiveInt = env_var("TICKWIRE_MAX_HANDSHAKES_PER_IP", 1024)
    max_connections_per_ip: NonNegativeInt = env_var("TICKWIRE_MAX_CONNECTIONS_PER_IP", 0)
    max_handshakes: PositiveInt = env_var("TICKWIRE_MAX_HANDSHAKES", 4096)
    max_subscriptions: PositiveInt = env_var("TICKWIRE_MAX_SUBSCRIPTIONS", 128)
    max_frame_bytes: PositiveInt = env_var("TICKWIRE_MAX_FRAME_BYTES", 64 * 1024)
    outbox_bytes: PositiveInt = env_var("TICKWIRE_OUTBOX_BYTES", 4 * 1024 * 1024)
    outbox_messages: PositiveInt = env_var("TICKWIRE_OUTBOX_MESSAGES", 20_000)
    # Seconds a connection's socket may take nothing (its client not reading) before 4008,
    # however far below the outbox's bound a low message rate keeps it.
    stall_timeout: PositiveFloat = env_var("TICKWIRE_STALL_TIMEOUT", 5.0)
    batch_max: PositiveInt = env_var("TICKWIRE_BATCH_MAX", 256)
    web_dir: str = env_var("TICKWIRE_WEB_DIR", "")
    allowed_origins: Origins = env_var("TICKWIRE_ALLOWED_ORIGINS", ())
    dashboard_gateways: GatewayAddresses = env_var("TICKWIRE_DASHBOARD_GATEWAYS", ())
    drain_grace: NonNegativeFloat = env_var("TICKWIRE_DRAIN_GRACE", 2.0)
    drain_window: NonNegativeFloat = env_var("TICKWIRE_DRAIN_WINDOW", 5.0)
    max_frames_per_second: PositiveFloat = env_var("TICKWIRE_MAX_FRAMES_PER_SECOND", 50.0)
    conflate: Patterns = env_var("TICKWIRE_CONFLATE", ())
    auth: Literal["none", "jwt"] = env_var("TICKWIRE_AUTH", "none")
    auth_query_token: bool = env_var("TICKWIRE_AUTH_QUERY_TOKEN", False)
    jwt_secret: str = env_var("TICKWIRE_JWT_SECRET", "", secret=True)
    jwt_public_key_file: str = env_var("TICKWIRE_JWT_PUBLIC_KEY_FILE", "")
    jwks_file: str = env_var("TICKWIRE_JWKS_FILE", "")
    jwt_audience: str = env_var("TICKWIRE_JWT_AUDIENCE", "")
    jwt_issuer: str = env_var("TICKWIRE_JWT_ISSUER", "")
    jwt_leeway: NonNegativeFloat = env_var("TICKWIRE_JWT_LEEWAY", 5.0)
    # Not read from the environment: `--workers` sets it for its workers (gateway.workers).
    metrics_dir: str = ""

    @model_validator(mode="after")
    def _keys(self) -> Self:
        # A validator rather than a check in from_env, so settings built in code are held to it too.
        if self.jwt_secret and self.environment != "development" and _PLACEHOLDER_SECRET.search(self.jwt_secret):
            raise SettingsError(
                f"TICKWIRE_JWT_SECRET is a development placeholder, refused with TICKWIRE_ENV={self.environment}: "
                "generate one (python3 -c 'import secrets; print(secrets.token_urlsafe(48))')"
            )
        if self.auth != "jwt":
            return self
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
        return self
