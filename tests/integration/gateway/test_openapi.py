"""Schemathesis against the gateway's HTTP API: no generated request gets a 5xx.

The gateway publishes no schema (``openapi_url=None``: nothing to tell a scanner), so the
test takes it from the app itself, adds ``/sse`` (kept out of the schema as a streaming
route), and fuzzes a live replica. Auth is on with a token that grants nothing, so every
``/sse`` request is answered at once (400 bad input, 403 not granted) instead of streaming.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import jwt
import schemathesis
from hypothesis import HealthCheck, given, settings

from gateway.app import create_app
from services.settings import GatewaySettings
from tests.integration.gateway.harness import StartGateway

SECRET = "openapi-secret-" + "o" * 32
EXAMPLES = 60

SSE_OPERATION: dict[str, Any] = {
    "get": {
        "parameters": [
            {"name": "topics", "in": "query", "schema": {"type": "string"}},
            {"name": "since", "in": "query", "schema": {"anyOf": [{"type": "integer"}, {"type": "string"}]}},
            {"name": "epoch", "in": "query", "schema": {"type": "string"}},
            {"name": "Last-Event-ID", "in": "header", "schema": {"type": "string"}},
        ],
        "responses": {"200": {"description": "event stream"}},
    }
}


def _schema() -> Any:
    raw = create_app(GatewaySettings()).openapi()
    raw["paths"]["/sse"] = SSE_OPERATION
    return schemathesis.openapi.from_dict(raw)


def _fuzz(base_url: str, headers: dict[str, str]) -> list[str]:
    """Every operation, EXAMPLES generated requests each; the 5xx answers found."""
    failures: list[str] = []
    for result in _schema().get_all_operations():
        operation = result.ok()

        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            response = case.call(base_url=base_url, headers=headers, timeout=10)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} {case.query} → {response.status_code}")

        check()
    return failures


async def test_no_generated_request_gets_a_5xx(start_gateway: StartGateway) -> None:
    """1. a live gateway with auth on  2. schemathesis generates requests for every operation
    (health, readiness, status, latency, metrics, dashboard, /sse)  3. none is answered 5xx."""
    gw = await start_gateway(auth="jwt", jwt_secret=SECRET)
    nothing = jwt.encode({"sub": "fuzz", "topics": [], "exp": time.time() + 600}, SECRET, algorithm="HS256")
    failures = await asyncio.to_thread(_fuzz, gw.http_url, {"Authorization": f"Bearer {nothing}"})
    assert failures == []
