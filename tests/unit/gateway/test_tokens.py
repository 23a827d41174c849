"""Token issue and verification (gateway.tokens), the settings that enable auth, and redaction."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.tokens import Grant, Keys, TokenError, Verifier, issue, keys_for
from services.envsettings import SettingsError
from services.redact import TokenLogFilter, redact
from services.settings import GatewaySettings

SECRET = "s" * 40
ROOT = Path(__file__).resolve().parents[3]


def hs256(**claims: Any) -> str:
    now = int(time.time())
    # Built at collection: an hour of validity outlasts any test run.
    return jwt.encode({"sub": "alice", "topics": ["ticks.*"], "exp": now + 3600, **claims}, SECRET, algorithm="HS256")


def verifier(**kwargs: Any) -> Verifier:
    return Verifier(Keys(("HS256",), SECRET.encode()), **kwargs)


def test_a_good_token_gives_its_grant() -> None:
    grant = verifier().verify(hs256(topics=["ticks.*", "trades.AAPL"]))
    assert grant.subject == "alice" and grant.topics == ("ticks.*", "trades.AAPL")
    assert grant.allows("ticks.AAPL") and grant.allows("ticks.*") and grant.allows("trades.AAPL")
    assert not grant.allows("ticks.>") and not grant.allows(">") and not grant.allows("trades.*")


@pytest.mark.parametrize(("token", "kwargs", "why"), [
    (hs256()[:-4] + "AAAA", {}, "signature"),
    (jwt.encode({"sub": "a", "topics": [], "exp": int(time.time()) + 3600}, "t" * 40, algorithm="HS256"), {},
     "signature"),
    (hs256(exp=int(time.time()) - 30), {}, "expired"),
    (hs256(nbf=int(time.time()) + 3600), {}, "not valid yet"),
    (hs256(aud="other"), {"audience": "tickwire"}, "audience"),
    (hs256(), {"audience": "tickwire"}, "'aud'"),
    (hs256(iss="evil"), {"issuer": "idp"}, "issuer"),
    (hs256(topics="ticks.*"), {}, "topics"),
    (hs256(topics=["a.>.b"]), {}, "topics"),
    (jwt.encode({"sub": "a", "topics": []}, SECRET, algorithm="HS256"), {}, "'exp'"),
    (jwt.encode({"sub": "a", "topics": [], "exp": int(time.time()) + 3600}, None, algorithm="none"), {}, "malformed"),
    ("not.a.jwt", {}, "malformed"),
    ("x" * 9000, {}, "too large"),
], ids=["tampered", "other-key", "expired", "nbf", "audience", "aud-missing", "issuer", "topics-type",
        "topics-pattern", "no-exp", "alg-none", "garbage", "huge"])
def test_bad_tokens_are_refused_with_a_reason_that_never_holds_the_token(token: str, kwargs: Any, why: str) -> None:
    with pytest.raises(TokenError) as refused:
        verifier(**kwargs).verify(token)
    assert why in str(refused.value)
    assert token not in str(refused.value)


def test_leeway_tolerates_small_skew() -> None:
    token = hs256(exp=int(time.time()) - 2)  # built here, not at collection
    assert verifier(leeway=5).verify(token).subject == "alice"
    with pytest.raises(TokenError):
        verifier(leeway=0).verify(token)


def test_issue_round_trips_and_refuses_a_weak_secret() -> None:
    token = issue(SECRET, "bob", ["trades.>"], 60, audience="tw", issuer="dev")
    grant = verifier(audience="tw", issuer="dev").verify(token)
    assert grant == Grant("bob", ("trades.>",), grant.expires) and grant.expires - time.time() > 50
    with pytest.raises(SettingsError, match="TICKWIRE_JWT_SECRET"):
        issue("short", "bob", ["x"], 60)


def test_cli_token_issues_a_verifiable_token() -> None:
    """1. `tickwire token` with the secret in the env  2. the gateway's verifier accepts it."""
    out = subprocess.run(
        [sys.executable, "-m", "tickwire.cli", "token", "--sub", "alice", "--topics", "ticks.*,trades.AAPL",
         "--ttl", "1h", "--aud", "X", "--iss", "Y"],
        capture_output=True, text=True, check=True, cwd=ROOT, env={"TICKWIRE_JWT_SECRET": SECRET, "PATH": ""},
    )
    grant = verifier(audience="X", issuer="Y").verify(out.stdout.strip())
    assert grant.topics == ("ticks.*", "trades.AAPL") and 3500 < grant.expires - time.time() <= 3600


def test_settings_refuse_a_weak_secret_naming_the_variable_not_the_value() -> None:
    with pytest.raises(SettingsError) as refused:
        GatewaySettings.from_env({"TICKWIRE_AUTH": "jwt", "TICKWIRE_JWT_SECRET": "hunter2-hunter2"})
    assert "TICKWIRE_JWT_SECRET" in str(refused.value) and "hunter2" not in str(refused.value)
    with pytest.raises(SettingsError, match="exactly one"):
        GatewaySettings.from_env({"TICKWIRE_AUTH": "jwt"})
    with pytest.raises(SettingsError, match="TICKWIRE_AUTH"):
        GatewaySettings.from_env({"TICKWIRE_AUTH": "basic"})
    assert "hunter2" not in repr(GatewaySettings(jwt_secret="hunter2" * 5))
    assert GatewaySettings.from_env({}).auth == "none"


def test_allowed_origins_are_normalised_and_wildcards_refused() -> None:
    settings = GatewaySettings.from_env({"TICKWIRE_ALLOWED_ORIGINS": "https://App.example.com/, http://x:8080"})
    assert settings.allowed_origins == ("https://app.example.com", "http://x:8080")
    for bad in ("*", "https://a.example.com/path", "example.com", "ftp://x"):
        with pytest.raises(SettingsError, match="TICKWIRE_ALLOWED_ORIGINS"):
            GatewaySettings.from_env({"TICKWIRE_ALLOWED_ORIGINS": bad})


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_public_key_and_jwks_files_select_their_algorithm(tmp_path: Path) -> None:
    """RS256 from a PEM, ES256 from a JWKS by kid; an HS256 token forged with the public key is refused."""
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path / "rsa.pem"
    pem.write_bytes(_pem(rsa_key))
    by_pem = Verifier.from_settings(GatewaySettings(auth="jwt", jwt_public_key_file=str(pem)))
    claims = {"sub": "a", "topics": ["x"], "exp": int(time.time()) + 60}
    assert by_pem.verify(jwt.encode(claims, rsa_key, algorithm="RS256")).subject == "a"
    with pytest.raises(TokenError):  # algorithm confusion: HMAC keyed with the public key
        by_pem.verify(jwt.encode(claims, "k" * 40, algorithm="HS256"))

    ec_key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec_key.public_key()))
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**jwk, "kid": "k1", "alg": "ES256"}]}))
    by_jwks = Verifier.from_settings(GatewaySettings(auth="jwt", jwks_file=str(jwks)))
    assert by_jwks.verify(jwt.encode(claims, ec_key, algorithm="ES256", headers={"kid": "k1"})).subject == "a"
    with pytest.raises(TokenError, match="unknown key"):
        by_jwks.verify(jwt.encode(claims, ec_key, algorithm="ES256", headers={"kid": "k2"}))

    jwks.write_text(json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "s"}]}))
    with pytest.raises(SettingsError, match="TICKWIRE_JWKS_FILE"):
        keys_for(GatewaySettings(auth="jwt", jwks_file=str(jwks)))
    with pytest.raises(SettingsError, match="TICKWIRE_JWT_PUBLIC_KEY_FILE"):
        keys_for(GatewaySettings(auth="jwt", jwt_public_key_file=str(tmp_path / "missing.pem")))


@pytest.mark.parametrize(("url", "shown"), [
    ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    ("rediss://:s3cret@redis:6380/0", "rediss://:***@redis:6380/0"),
    ("redis://default:s3cret@h/0?password=s3cret&ssl_ca_certs=/ca.pem", "redis://default:***@h/0?password=***&ssl_ca_certs=/ca.pem"),
    ("nats://u:s3cret@a:4222,tls://u:s3cret@[::1]:4222", "nats://u:***@a:4222,tls://u:***@[::1]:4222"),
    ("nats://s3cret@h:4222", "nats://***@h:4222"),
    ("nats://u:s3cret@h:notaport", "nats://***"),
])
def test_redact_hides_passwords_and_tokens(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_token_log_filter_masks_query_and_subprotocol_tokens() -> None:
    record = logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1, '%s - "WebSocket %s" [accepted]',
                               ("1.2.3.4:5", "/ws?token=eyJ.abc.def&x=1"), None)
    assert TokenLogFilter().filter(record)
    assert "eyJ" not in record.getMessage() and "token=***&x=1" in record.getMessage()
