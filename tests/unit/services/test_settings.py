"""Settings are built once from an environ mapping; bad values name their variable."""

from __future__ import annotations

import pytest

from services.settings import GatewaySettings, IngestSettings, SettingsError, SimulatorSettings


def test_defaults_are_safe_for_local_use() -> None:
    gw = GatewaySettings.from_env({})
    assert gw.host == "127.0.0.1" and gw.port == 8080 and gw.bus.stream == "MD"
    assert IngestSettings.from_env({}).streams == "md:*"


def test_environment_overrides() -> None:
    gw = GatewaySettings.from_env(
        {"NATS_URL": "nats://n:1", "TICKWIRE_PORT": "9000", "TICKWIRE_ALLOWED_ORIGINS": "http://a, http://b"}
    )
    assert gw.bus.nats_url == "nats://n:1" and gw.port == 9000
    assert gw.allowed_origins == ("http://a", "http://b")
    gateways = GatewaySettings.from_env({"TICKWIRE_DASHBOARD_GATEWAYS": "127.0.0.1:8080, wss://gw.example/ws"})
    assert gateways.dashboard_gateways == ("127.0.0.1:8080", "wss://gw.example/ws")
    assert SimulatorSettings.from_env({"TICKWIRE_SIM_RATE": "250"}).rate == 250.0


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"TICKWIRE_PORT": "eighty"}, "TICKWIRE_PORT"),
        ({"TICKWIRE_MAX_CONNECTIONS": "0"}, "TICKWIRE_MAX_CONNECTIONS"),
        ({"TICKWIRE_STORAGE": "disk"}, "TICKWIRE_STORAGE"),
        ({"TICKWIRE_HEARTBEAT": "-1"}, "TICKWIRE_HEARTBEAT"),
        ({"TICKWIRE_DASHBOARD_GATEWAYS": "http://a:1"}, "TICKWIRE_DASHBOARD_GATEWAYS"),
    ],
)
def test_bad_values_fail_with_the_variable_name(env: dict[str, str], name: str) -> None:
    with pytest.raises(SettingsError, match=name):
        GatewaySettings.from_env(env)
