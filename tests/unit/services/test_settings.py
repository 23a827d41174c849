"""Settings are built once from an environ mapping; bad values name their variable."""

from __future__ import annotations

import pytest

from services.envsettings import SettingsError
from services.settings import GatewaySettings, IngestSettings
from tickwire.settings import SimulatorSettings


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


def test_one_error_names_every_bad_variable() -> None:
    """Three bad variables, of the service and of its bus: one SettingsError lists all three."""
    with pytest.raises(SettingsError) as refused:
        GatewaySettings.from_env({"TICKWIRE_PORT": "eighty", "TICKWIRE_STORAGE": "disk", "TICKWIRE_LOG_LEVEL": "loud"})
    assert all(name in str(refused.value) for name in ("TICKWIRE_PORT", "TICKWIRE_STORAGE", "TICKWIRE_LOG_LEVEL"))


def test_flags_win_over_the_environment_and_are_checked_too() -> None:
    env = {"TICKWIRE_PORT": "9000", "TICKWIRE_HOST": "0.0.0.0", "TICKWIRE_LOG_LEVEL": "debug"}
    gw = GatewaySettings.from_env(env, port=9100)
    assert (gw.host, gw.port, gw.log_level) == ("0.0.0.0", 9100, "DEBUG")
    assert SimulatorSettings.from_env({"TICKWIRE_SIM_RATE": "5"}, rate=7.5).rate == 7.5
    with pytest.raises(SettingsError, match="TICKWIRE_SIM_SYMBOLS"):
        SimulatorSettings.from_env({}, symbols=0)


def test_nothing_is_read_from_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the mapping given counts: os.environ is the CLI's to hand in."""
    monkeypatch.setenv("TICKWIRE_PORT", "9999")
    assert GatewaySettings().port == 8080 and GatewaySettings.from_env({}).port == 8080


def test_placeholder_secrets_are_refused_outside_development() -> None:
    """The dev overlay's secret starts a development gateway and refuses a production one,
    without the value in the message."""
    placeholder = {"TICKWIRE_AUTH": "jwt", "TICKWIRE_JWT_SECRET": "dev-only-jwt-secret-change-me-0123456789abcdef"}
    assert GatewaySettings.from_env(placeholder).auth == "jwt"
    with pytest.raises(SettingsError, match="TICKWIRE_JWT_SECRET is a development placeholder") as refused:
        GatewaySettings.from_env({**placeholder, "TICKWIRE_ENV": "production"})
    assert "0123456789abcdef" not in str(refused.value)
    real = {**placeholder, "TICKWIRE_JWT_SECRET": "k" * 48, "TICKWIRE_ENV": "production"}
    assert GatewaySettings.from_env(real).environment == "production"
    with pytest.raises(SettingsError, match="TICKWIRE_ENV"):
        GatewaySettings.from_env({"TICKWIRE_ENV": "prod"})
