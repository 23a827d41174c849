"""Who gets in (TICKWIRE_AUTH=jwt, Origin) and what they may subscribe to, against a live gateway.

Refusals, as documented in docs/security.md: a WebSocket with no or a bad token is accepted
and closed with 1008 and the reason; a disallowed Origin gets HTTP 403 before the upgrade;
SSE answers 401 (no/bad token) or 403 (topics not granted, Origin) with a JSON error.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import websockets
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from websockets.asyncio.client import ClientConnection

from tests.integration.gateway.harness import Bus, Client, Gw, StartGateway
from tests.waiting import eventually

SECRET = "integration-secret-" + "x" * 24
CLIENT_LOGGERS = ("websockets.client", "httpx", "httpcore")
AUTH = {"auth": "jwt", "jwt_secret": SECRET, "jwt_audience": "tickwire", "jwt_issuer": "idp", "jwt_leeway": 0.0}


def token(topics: list[str], ttl: float = 60, key: Any = SECRET, algorithm: str = "HS256",
          headers: dict[str, str] | None = None, **claims: Any) -> str:
    now = time.time()
    body = {"sub": "alice", "topics": topics, "aud": "tickwire", "iss": "idp", "nbf": int(now),
            "exp": now + ttl, **claims}
    return jwt.encode(body, key, algorithm=algorithm, headers=headers)


@contextlib.asynccontextmanager
async def ws(gw: Gw, bearer: str | None = None, *, header: bool = False, origin: str | None = None,
             query: str = "") -> AsyncIterator[ClientConnection]:
    """A raw connection: the token as the browser's subprotocol, or as an Authorization header."""
    protocols = ["tickwire.v1"] + ([f"bearer.{bearer}"] if bearer and not header else [])
    headers = {"Authorization": f"Bearer {bearer}"} if bearer and header else {}
    if origin is not None:
        headers["Origin"] = origin
    async with websockets.connect(gw.ws_url + query, additional_headers=headers,
                                  subprotocols=[websockets.Subprotocol(p) for p in protocols]) as conn:
        yield conn


async def welcomed(conn: ClientConnection) -> Client:
    client = Client(conn)
    await client.expect("welcome")
    return client


def server_log(caplog: pytest.LogCaptureFixture) -> str:
    """Everything the gateway side logged (the test's own clients log their requests)."""
    return "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith(CLIENT_LOGGERS))


async def refused_1008(conn: ClientConnection) -> str:
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await conn.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008, closed.value
    return closed.value.rcvd.reason


async def test_websocket_auth_matrix(start_gateway: StartGateway, caplog: pytest.LogCaptureFixture) -> None:
    """1. auth on (HS256, audience, issuer, no leeway)  2. each bad token is accepted then closed
    1008 with a reason naming the fault  3. a good token gets in by subprotocol (tickwire.v1
    selected) and by Authorization header  4. no token text ever reaches the logs."""
    caplog.set_level(logging.DEBUG)
    gw = await start_gateway(**AUTH)
    good = token(["ticks.*"])
    cases = {
        None: "authentication required",
        good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB"): "signature",
        token(["ticks.*"], key="another-secret-" + "y" * 30): "signature",
        token(["ticks.*"], ttl=-10): "expired",
        token(["ticks.*"], nbf=int(time.time()) + 60): "not valid yet",
        token(["ticks.*"], aud="someone-else"): "audience",
        token(["ticks.*"], iss="evil"): "issuer",
        "not-a-jwt": "malformed",
        token(["x." + "é" * 120]): "topics",  # a reason quoting it would pass the 123-byte close limit
    }
    for bad, why in cases.items():
        async with ws(gw, bad) as conn:
            assert why in await refused_1008(conn), bad
        async with ws(gw, bad, header=True) as conn:
            assert why in await refused_1008(conn), bad
    async with ws(gw, good) as conn:
        assert conn.subprotocol == "tickwire.v1"
        client = await welcomed(conn)
        await client.subscribe("ticks.AAPL")
    async with ws(gw, good, header=True) as conn:
        await (await welcomed(conn)).subscribe("ticks.AAPL")
    for secret in [good, *(t for t in cases if t)]:
        assert secret not in server_log(caplog)


async def test_query_token_only_when_allowed_and_never_logged(
    start_gateway: StartGateway, caplog: pytest.LogCaptureFixture
) -> None:
    """1. ?token= on a gateway that does not allow it: 1008  2. on one that does: welcome
    3. uvicorn's "WebSocket /ws?…" log line shows the token masked."""
    caplog.set_level(logging.DEBUG)
    good = token(["ticks.*"])
    strict = await start_gateway(**AUTH)
    async with ws(strict, query=f"?token={good}") as conn:
        assert "authentication required" in await refused_1008(conn)
    lenient = await start_gateway(**AUTH, auth_query_token=True)
    async with ws(lenient, query=f"?token={good}") as conn:
        await welcomed(conn)
    async with httpx.AsyncClient(base_url=lenient.http_url, timeout=10) as http, \
            http.stream("GET", "/sse", params={"topics": "ticks.AAPL", "token": good}) as response:
        assert response.status_code == 200
    assert "token=***" in server_log(caplog)
    assert good not in server_log(caplog)


async def test_topics_outside_the_grant_are_refused_not_filtered(start_gateway: StartGateway, bus: Bus) -> None:
    """1. token grants ticks.AAPL and trades.*  2. subscribe to granted, wider and other topics
    3. one forbidden error names exactly the wildcard escalations and the other topic; the
    granted ones are subscribed  4. only granted subjects are ever delivered."""
    gw = await start_gateway(**AUTH)
    async with ws(gw, token(["ticks.AAPL", "trades.*"])) as conn:
        client = await welcomed(conn)
        await client.send(type="subscribe", topics=["ticks.AAPL", "ticks.*", ">", "ticks.>", "trades.MSFT", "news.X"])
        error = await client.expect("error")
        assert error["code"] == "forbidden" and error["topics"] == ["ticks.*", ">", "ticks.>", "news.X"], error
        assert (await client.expect("subscribed"))["topics"] == ["ticks.AAPL", "trades.MSFT"]
        await client.send(type="subscribe", topics=[">"])
        assert (await client.expect("error"))["topics"] == [">"]
        await bus.publish("md.ticks.MSFT")
        await bus.publish("md.news.X")
        granted = await bus.publish("md.ticks.AAPL")
        assert (await client.expect("msg"))["seq"] == granted


async def test_fresh_token_keeps_the_connection_and_its_grant_replaces_the_old(
    start_gateway: StartGateway, bus: Bus
) -> None:
    """1. a token valid for 2 s granting ticks.* and trades.*  2. before it runs out, an auth
    frame with a 30 s token granting ticks.* only  3. trades.* is dropped with a forbidden error
    4. past the first token's exp the connection still answers and receives ticks, not trades."""
    gw = await start_gateway(**AUTH)
    first = token(["ticks.*", "trades.*"], ttl=2)
    first_exp = jwt.decode(first, options={"verify_signature": False})["exp"]
    async with ws(gw, first) as conn:
        client = await welcomed(conn)
        await client.subscribe("ticks.*", "trades.*")
        await client.send(type="auth", token=token(["ticks.*"], ttl=30))
        dropped = await client.expect("error")
        assert dropped["code"] == "forbidden" and dropped["topics"] == ["trades.*"], dropped
        await client.send(type="auth", token=token(["ticks.*"], ttl=30, sub="mallory"))
        assert "same subject" in (await client.expect("error"))["message"]
        await eventually(lambda: time.time() > first_exp + 1, within=10, what="the first token's exp passed")
        await bus.publish("md.trades.X")
        seq = await bus.publish("md.ticks.X")
        assert (await client.expect("msg"))["seq"] == seq
        await client.send(type="ping", id="alive")
        assert (await client.expect("pong"))["id"] == "alive"


async def test_connection_whose_token_runs_out_is_closed_1008(start_gateway: StartGateway) -> None:
    """1. a token valid for 1 s  2. no fresh token  3. closed 1008 "token expired"; a bad
    fresh token before that only gets an unauthorized error."""
    gw = await start_gateway(**AUTH)
    async with ws(gw, token(["ticks.*"], ttl=1)) as conn:
        client = await welcomed(conn)
        await client.send(type="auth", token=token(["ticks.*"], key="wrong-" + "z" * 40))
        assert (await client.expect("error"))["code"] == "unauthorized"
        assert "token expired" in await refused_1008(conn)


async def test_origin_is_checked_before_the_upgrade(start_gateway: StartGateway) -> None:
    """1. default (no list): the gateway's own origin passes, another site gets HTTP 403
    2. with a list: only listed origins pass, even the gateway's own is refused
    3. no Origin (not a browser): allowed when auth is off; with auth on only with a token."""
    open_gw = await start_gateway()
    own = f"http://127.0.0.1:{open_gw.port}"
    async with ws(open_gw, origin=own) as conn:
        await welcomed(conn)
    for evil in ("https://evil.example", f"http://127.0.0.1:{open_gw.port + 1}", "null", f"http://localhost:{open_gw.port}"):
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with ws(open_gw, origin=evil):
                pass
        assert refused.value.response.status_code == 403, evil
    async with ws(open_gw) as conn:
        await welcomed(conn)

    listed = await start_gateway(allowed_origins=("https://app.example",), **AUTH)
    good = token(["ticks.*"])
    async with ws(listed, good, origin="https://app.example") as conn:
        await welcomed(conn)
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with ws(listed, good, origin=f"http://127.0.0.1:{listed.port}"):
            pass
    assert refused.value.response.status_code == 403
    async with ws(listed) as conn:
        assert "authentication required" in await refused_1008(conn)
    async with ws(listed, good, header=True) as conn:
        await welcomed(conn)
    async with httpx.AsyncClient(base_url=listed.http_url, timeout=10) as http:
        cors = await http.get("/api/status", headers={"Origin": "https://app.example"})
        assert cors.headers.get("access-control-allow-origin") == "https://app.example"
        assert "access-control-allow-credentials" not in cors.headers
        other = await http.get("/api/status", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def hmac_signed_with(key: bytes) -> str:
    """An HS256 token keyed with ``key``, built by hand: PyJWT itself refuses PEM keys for HMAC."""
    def part(obj: dict[str, Any]) -> bytes:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=")

    claims = {"sub": "alice", "topics": [">"], "aud": "tickwire", "iss": "idp", "exp": int(time.time()) + 60}
    signing_input = part({"alg": "HS256", "typ": "JWT"}) + b"." + part(claims)
    signature = base64.urlsafe_b64encode(hmac.new(key, signing_input, hashlib.sha256).digest()).rstrip(b"=")
    return (signing_input + b"." + signature).decode()


def _pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


async def test_rs256_public_key_file_and_es256_jwks_file(start_gateway: StartGateway, tmp_path: Path) -> None:
    """1. a gateway verifying RS256 with a PEM file; one verifying ES256 with a JWKS file
    2. tokens signed by the matching private keys get in; one signed by another key does not."""
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (tmp_path / "rsa.pem").write_bytes(_pem(rsa_key))
    ec_key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec_key.public_key()))
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [{**jwk, "kid": "k1", "alg": "ES256"}]}))
    common = {"auth": "jwt", "jwt_audience": "tickwire", "jwt_issuer": "idp"}
    by_pem = await start_gateway(**common, jwt_public_key_file=str(tmp_path / "rsa.pem"))
    by_jwks = await start_gateway(**common, jwks_file=str(tmp_path / "jwks.json"))

    async with ws(by_pem, token(["ticks.*"], key=rsa_key, algorithm="RS256")) as conn:
        await (await welcomed(conn)).subscribe("ticks.A")
    async with ws(by_jwks, token(["ticks.*"], key=ec_key, algorithm="ES256", headers={"kid": "k1"})) as conn:
        await (await welcomed(conn)).subscribe("ticks.A")
    stranger = ec.generate_private_key(ec.SECP256R1())
    async with ws(by_jwks, token(["ticks.*"], key=stranger, algorithm="ES256", headers={"kid": "k1"})) as conn:
        assert "signature" in await refused_1008(conn)
    async with ws(by_pem, hmac_signed_with(_pem(rsa_key))) as conn:
        await refused_1008(conn)  # HS256 keyed with the public key: the algorithm confusion attack


async def test_sse_with_and_without_token(start_gateway: StartGateway, bus: Bus) -> None:
    """1. no token: 401 with a JSON error and WWW-Authenticate  2. a bad token: 401
    3. topics beyond the grant: 403 naming them  4. a foreign Origin: 403
    5. a good token: the stream, with only granted messages."""
    gw = await start_gateway(**AUTH)
    good = token(["ticks.AAPL"])
    async with httpx.AsyncClient(base_url=gw.http_url, timeout=10) as http:
        missing = await http.get("/sse", params={"topics": "ticks.AAPL"})
        assert missing.status_code == 401 and missing.json()["code"] == "unauthorized"
        assert missing.headers["www-authenticate"].startswith("Bearer")
        bad = await http.get("/sse", params={"topics": "ticks.AAPL"}, headers={"Authorization": "Bearer x.y.z"})
        assert bad.status_code == 401
        auth = {"Authorization": f"Bearer {good}"}
        wide = await http.get("/sse", params={"topics": "ticks.AAPL,ticks.*"}, headers=auth)
        assert wide.status_code == 403 and wide.json()["topics"] == ["ticks.*"], wide.text
        foreign = await http.get("/sse", params={"topics": "ticks.AAPL"}, headers={**auth, "Origin": "https://evil.example"})
        assert foreign.status_code == 403
        async with http.stream("GET", "/sse", params={"topics": "ticks.AAPL"}, headers=auth) as response:
            assert response.status_code == 200
            lines = response.aiter_lines()
            seq = await bus.publish("md.ticks.AAPL")

            async def saw_seq() -> bool:
                return f'"seq":{seq}' in await anext(lines)

            await eventually(saw_seq, within=10, what="the granted message on the stream")


async def test_auth_off_says_so_and_refuses_auth_frames(start_gateway: StartGateway,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    """1. a gateway with default settings logs that auth is off  2. an auth frame gets bad_request."""
    caplog.set_level(logging.INFO)
    gw = await start_gateway()
    assert "auth is OFF" in caplog.text
    async with ws(gw) as conn:
        client = await welcomed(conn)
        await client.send(type="auth", token="anything")
        assert (await client.expect("error"))["code"] == "bad_request"
