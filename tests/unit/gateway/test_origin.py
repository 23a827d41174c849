"""The Origin rule (gateway.origin): a listed origin, or by default the request's own host and port."""

from __future__ import annotations

import pytest

from gateway.origin import OriginGuard, same_origin


@pytest.mark.parametrize(("origin", "host", "allowed"), [
    ("http://127.0.0.1:8080", "127.0.0.1:8080", True),
    ("http://LOCALHOST:8080", "localhost:8080", True),
    ("https://app.example", "app.example", True),
    ("https://app.example", "app.example:443", True),
    ("http://app.example", "app.example:80", True),
    ("http://[::1]:8080", "[::1]:8080", True),
    ("http://127.0.0.1:8081", "127.0.0.1:8080", False),
    ("http://localhost:8080", "127.0.0.1:8080", False),
    ("https://app.example", "app.example:80", False),
    ("https://evil.example", "app.example", False),
    ("https://app.example.evil.example", "app.example", False),
    ("null", "app.example", False),
    ("file://", "app.example", False),
    ("http://app.example", None, False),
    ("http://app.example:notaport", "app.example", False),
])
def test_same_origin_compares_host_and_port(origin: str, host: str | None, allowed: bool) -> None:
    assert same_origin(origin, host) is allowed


def test_a_list_replaces_the_same_origin_default() -> None:
    async def app(scope: object, receive: object, send: object) -> None:
        raise AssertionError("not reached")

    guard = OriginGuard(app, ("https://app.example",))  # type: ignore[arg-type]
    assert guard.allows("https://APP.example/", "gw.internal:8080")
    assert not guard.allows("http://gw.internal:8080", "gw.internal:8080")
    assert guard.allows("https://app.example", "rebound.example:8080")


@pytest.mark.parametrize(("origin", "host", "allowed"), [
    ("http://127.0.0.1:8080", "127.0.0.1:8080", True),
    ("http://127.1.2.3:8080", "127.1.2.3:8080", True),
    ("http://localhost:8080", "localhost:8080", True),
    ("http://[::1]:8080", "[::1]:8080", True),
    ("http://rebound.example:8080", "rebound.example:8080", False),  # DNS rebinding
    ("http://gw.internal:8080", "gw.internal:8080", False),
    ("http://10.0.0.5:8080", "10.0.0.5:8080", False),
    ("http://localhost.rebound.example:8080", "localhost.rebound.example:8080", False),
])
def test_by_default_same_origin_counts_only_on_loopback(origin: str, host: str, allowed: bool) -> None:
    async def app(scope: object, receive: object, send: object) -> None:
        raise AssertionError("not reached")

    assert OriginGuard(app, ()).allows(origin, host) is allowed  # type: ignore[arg-type]
