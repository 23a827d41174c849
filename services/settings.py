"""Settings: one frozen object per service, built once from the environment.

Every variable has a safe default for local use. ``from_env`` takes the environ as a
mapping so tests pass a dict; only ``tickwire.cli`` hands it ``os.environ``. The classes
are pydantic-settings models whose every field names its variable (``env_var``); a bad
configuration fails with one ``SettingsError`` that names each bad variable and says what
is wrong with it, and never echoes a secret's value.
"""

from __future__ import annotations

import logging
import os
import re
import socket
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    JsonValue,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, EnvSettingsSource, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from services.subjects import validate_pattern

MIN_SECRET_BYTES = 32  # HS256 keys shorter than the hash output are brute-forceable offline
OTLP_PROTOCOLS = ("http/protobuf", "grpc")  # what the Python SDK's OTLP span exporters speak
# Values shipped in examples and the dev overlay: fine on a laptop, a hole anywhere else.
_PLACEHOLDER_SECRET = re.compile(r"change.?me|dev.?only|example|placeholder", re.IGNORECASE)


class SettingsError(ValueError):
    """A variable is set to something unusable; the message names it (each of them)."""


def env_var(name: str, default: Any = None, *, secret: bool = False, **constraints: Any) -> Any:
    """A field read from the variable ``name``; a ``secret`` is never shown (repr, errors)."""
    extra: dict[str, JsonValue] | None = {"secret": True} if secret else None
    if "default_factory" not in constraints:
        constraints["default"] = default
    return Field(validation_alias=name, repr=not secret, json_schema_extra=extra, **constraints)


def _csv(raw: object) -> object:
    if isinstance(raw, str):
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    return raw


def _each(check: Callable[[str], str]) -> Callable[[tuple[str, ...]], tuple[str, ...]]:
    def validate(values: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(check(v) for v in values)

    return validate


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


# A comma list in the environment, a tuple in code: NoDecode keeps pydantic-settings from
# reading the variable as JSON.
Csv = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_csv)]
Origins = Annotated[Csv, AfterValidator(_each(normalize_origin))]
Patterns = Annotated[Csv, AfterValidator(_each(validate_pattern))]
GatewayAddresses = Annotated[Csv, AfterValidator(_each(_gateway_address))]
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


class _Environ(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping instead of ``os.environ``;
    blank values count as unset, as an empty ``VAR=`` in a compose file means."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = {k: v.strip() for k, v in environ.items() if v.strip()}
        super().__init__(settings_cls, case_sensitive=True)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return self._environ


def _problems(model: type[BaseSettings], exc: ValidationError) -> list[str]:
    """One line per bad value, named by its variable; a secret's value is left out."""
    lines = []
    for error in exc.errors(include_url=False):
        cause = error.get("ctx", {}).get("error")
        message = str(cause) if isinstance(cause, Exception) else error["msg"]
        if not error["loc"]:  # a rule across several variables: the message names them
            lines.append(message)
            continue
        key = str(error["loc"][0])
        info: FieldInfo | None = model.model_fields.get(key)
        name = key
        if info is None:
            info = next((f for f in model.model_fields.values() if f.validation_alias == key), None)
        elif isinstance(info.validation_alias, str):
            name = info.validation_alias
        secret = info is not None and isinstance(info.json_schema_extra, dict) and info.json_schema_extra.get("secret")
        lines.append(f"{name}: {message}" if secret else f"{name}={error['input']!r}: {message}")
    return lines


class Settings(BaseSettings):
    """Frozen, built from arguments only: ``from_env`` is how the environment gets in."""

    model_config = SettingsConfigDict(
        frozen=True, case_sensitive=True, extra="ignore", validate_by_name=True, validate_by_alias=True
    )

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise SettingsError("\n  ".join(_problems(type(self), exc))) from None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Never os.environ, a .env file or a secrets folder behind the caller's back.
        return (init_settings,)

    @classmethod
    def from_env(cls, env: Mapping[str, str], **given: Any) -> Self:
        """From the environment; ``given`` values (the CLI's flags) win over it. Every bad
        variable is named in the one SettingsError raised."""
        problems: list[str] = []
        settings = cls._read(env, problems, **given)
        if problems:
            raise SettingsError("\n  ".join(problems))
        assert settings is not None
        return settings

    @classmethod
    def _derived(cls, env: Mapping[str, str], problems: list[str]) -> dict[str, Any]:
        """Values that are not one variable each (a nested model, a standard OTel rule)."""
        return {}

    @classmethod
    def _read(cls, env: Mapping[str, str], problems: list[str], **given: Any) -> Self | None:
        """The settings from ``env``, ``given`` values taking precedence; None with
        ``problems`` added if bad."""
        values = {**_Environ(cls, env)(), **cls._derived(env, problems)}
        for name in given:
            values.pop(str(cls.model_fields[name].validation_alias), None)
        try:
            return cls(**values, **given)
        except SettingsError as exc:
            problems.append(str(exc))
            return None


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
    # upgrade's included), connections per address whose head is incomplete, and open
    # connections per address (0: no cap; behind a proxy every client has its address).
    handshake_timeout: PositiveFloat = env_var("TICKWIRE_HANDSHAKE_TIMEOUT", 10.0)
    max_handshakes_per_ip: PositiveInt = env_var("TICKWIRE_MAX_HANDSHAKES_PER_IP", 1024)
    max_connections_per_ip: NonNegativeInt = env_var("TICKWIRE_MAX_CONNECTIONS_PER_IP", 0)
    max_subscriptions: PositiveInt = env_var("TICKWIRE_MAX_SUBSCRIPTIONS", 128)
    max_frame_bytes: PositiveInt = env_var("TICKWIRE_MAX_FRAME_BYTES", 64 * 1024)
    outbox_bytes: PositiveInt = env_var("TICKWIRE_OUTBOX_BYTES", 4 * 1024 * 1024)
    outbox_messages: PositiveInt = env_var("TICKWIRE_OUTBOX_MESSAGES", 20_000)
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
