"""OpenTelemetry by the standard variables only: the protocol from
``OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL``, the service named by ``OTEL_SERVICE_NAME`` or
``OTEL_RESOURCE_ATTRIBUTES`` before our default."""

from __future__ import annotations

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

from services.envsettings import SettingsError
from services.settings import BusSettings
from services.telemetry import GATEWAY, exporter, resource

ENDPOINT = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}


@pytest.mark.parametrize(("env", "protocol"), [
    ({}, ""),  # no endpoint: tracing off
    (ENDPOINT, "http/protobuf"),  # the specification's default
    ({**ENDPOINT, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "grpc"),
    ({**ENDPOINT, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"},
     "http/protobuf"),  # the signal-specific variable wins
    ({**ENDPOINT, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_SDK_DISABLED": "true"}, ""),
])
def test_protocol_is_read_from_the_standard_variables(env: dict[str, str], protocol: str) -> None:
    assert BusSettings.from_env(env).tracing == protocol


def test_an_unsupported_protocol_fails_naming_the_variable() -> None:
    with pytest.raises(SettingsError, match="OTEL_EXPORTER_OTLP_PROTOCOL='http/json'"):
        BusSettings.from_env({**ENDPOINT, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"})


def test_each_protocol_gets_its_exporter() -> None:
    grpc, http = exporter("grpc"), exporter("http/protobuf")
    try:
        assert isinstance(grpc, GrpcExporter) and isinstance(http, HttpExporter)
    finally:
        grpc.shutdown()
        http.shutdown()


def test_service_name_is_ours_only_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """1. Nothing set: our name. 2. service.name in OTEL_RESOURCE_ATTRIBUTES wins, and the
    other attributes are kept. 3. OTEL_SERVICE_NAME wins over both."""
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    assert resource(GATEWAY).attributes["service.name"] == GATEWAY
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=edge,deployment.environment=test")
    attributes = resource(GATEWAY).attributes
    assert (attributes["service.name"], attributes["deployment.environment"]) == ("edge", "test")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "edge-gateway")
    attributes = resource(GATEWAY).attributes
    assert (attributes["service.name"], attributes["deployment.environment"]) == ("edge-gateway", "test")
