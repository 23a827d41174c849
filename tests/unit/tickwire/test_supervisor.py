"""`tickwire up --gateways N`: what each replica is told about its siblings."""

from __future__ import annotations

from services.settings import GatewaySettings
from tickwire.supervisor import sibling_env


def test_replicas_list_each_other_for_the_dashboard_and_allow_each_others_pages() -> None:
    """1. two replicas on 8080 and 8081; 2. both get the same gateway list and an origin list
    naming both pages (127.0.0.1 and localhost); 3. the gateway settings accept both."""
    env = sibling_env([8080, 8081], {})
    settings = GatewaySettings.from_env(env)
    assert settings.dashboard_gateways == ("127.0.0.1:8080", "127.0.0.1:8081")
    assert set(settings.allowed_origins) == {
        "http://127.0.0.1:8080", "http://localhost:8080", "http://127.0.0.1:8081", "http://localhost:8081",
    }


def test_one_replica_or_given_settings_change_nothing() -> None:
    assert sibling_env([8080], {}) == {}
    given = {"TICKWIRE_ALLOWED_ORIGINS": "https://desk.example"}
    assert sibling_env([8080, 8081], given) == {"TICKWIRE_DASHBOARD_GATEWAYS": "127.0.0.1:8080,127.0.0.1:8081"}
