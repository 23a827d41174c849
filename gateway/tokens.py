"""JWTs that grant topics: issued by ``tickwire token`` (development), verified by the gateway.

A token's ``topics`` claim is a list of topic patterns; a subscription is allowed only
when every topic it can match is matched by one of them (``subjects.pattern_within``), so
a wildcard never reaches past its grant. ``exp`` is required: connections live long and a
token without an end would never have to be renewed.

Keys, one source per gateway (``keys_for``): an HS256 shared secret of at least 32 bytes,
a PEM public key (RS256 or ES256 by its type), or a JWKS file of RSA/EC public keys chosen
by the token's ``kid``. The accepted algorithms follow from the key, never from the token,
so ``alg: none`` and HS256-signed-with-the-public-key confusions are refused by PyJWT.
Token text never goes into an exception message or a log line: only its subject does.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from services.envsettings import SettingsError
from services.settings import MIN_SECRET_BYTES, GatewaySettings
from services.subjects import TopicError, pattern_within, validate_pattern

MAX_TOKEN_BYTES = 8192  # refused before any decoding: a token is a few hundred bytes
HS256 = "HS256"
ASYMMETRIC = {"RSA": "RS256", "EC": "ES256"}


class TokenError(ValueError):
    """A token that does not authenticate; the message is safe to show the client."""


@dataclass(frozen=True, slots=True)
class Grant:
    """What one verified token allows."""

    subject: str
    topics: tuple[str, ...]
    expires: float  # epoch seconds

    def allows(self, pattern: str) -> bool:
        return any(pattern_within(pattern, granted) for granted in self.topics)


@dataclass(frozen=True)
class Keys:
    """Verification keys: one for every token, or JWKS keys by ``kid``."""

    algorithms: tuple[str, ...]
    key: Any = None
    by_kid: Mapping[str, jwt.PyJWK] | None = None

    def for_token(self, token: str) -> tuple[Any, list[str]]:
        if self.by_kid is None:
            return self.key, list(self.algorithms)
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError:
            raise TokenError("token is malformed") from None
        if kid is None and len(self.by_kid) == 1:
            kid = next(iter(self.by_kid))
        jwk = self.by_kid.get(kid) if isinstance(kid, str) else None
        if jwk is None:
            raise TokenError("token is signed by an unknown key")
        return jwk.key, [jwk.algorithm_name]


def _public_key(path: str) -> Keys:
    try:
        key = load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        raise SettingsError(f"TICKWIRE_JWT_PUBLIC_KEY_FILE={path!r}: not a readable PEM public key ({exc})") from None
    if isinstance(key, rsa.RSAPublicKey):
        return Keys(("RS256",), key)
    if isinstance(key, ec.EllipticCurvePublicKey):
        return Keys(("ES256",), key)
    raise SettingsError(f"TICKWIRE_JWT_PUBLIC_KEY_FILE={path!r}: only RSA (RS256) and EC (ES256) keys are supported")


def _jwks(path: str) -> Keys:
    try:
        keyset = jwt.PyJWKSet.from_json(Path(path).read_text(encoding="utf-8"))
    except (OSError, jwt.PyJWTError, ValueError) as exc:
        raise SettingsError(f"TICKWIRE_JWKS_FILE={path!r}: not a readable JWKS ({exc})") from None
    by_kid: dict[str, jwt.PyJWK] = {}
    for i, jwk in enumerate(keyset.keys):
        # A symmetric key in a published key set would let anyone who can read it sign.
        algorithm = ASYMMETRIC.get(jwk.key_type or "")
        if algorithm is None or jwk.algorithm_name != algorithm:
            raise SettingsError(f"TICKWIRE_JWKS_FILE={path!r}: key {i} must be RSA (RS256) or EC P-256 (ES256)")
        by_kid[jwk.key_id or str(i)] = jwk
    if len(by_kid) > 1 and any(jwk.key_id is None for jwk in keyset.keys):
        raise SettingsError(f"TICKWIRE_JWKS_FILE={path!r}: with several keys each needs a 'kid'")
    return Keys(tuple(sorted(set(ASYMMETRIC.values()))), by_kid=by_kid)


def keys_for(settings: GatewaySettings) -> Keys:
    """The verification keys the settings name; SettingsError naming the variable if unusable."""
    if settings.jwt_public_key_file:
        return _public_key(settings.jwt_public_key_file)
    if settings.jwks_file:
        return _jwks(settings.jwks_file)
    return Keys((HS256,), settings.jwt_secret.encode())


class Verifier:
    """Checks signature, ``exp``, ``nbf``, ``aud``, ``iss`` (with leeway) and the topics claim."""

    def __init__(self, keys: Keys, audience: str = "", issuer: str = "", leeway: float = 5.0) -> None:
        self.keys = keys
        self.audience = audience or None
        self.issuer = issuer or None
        self.leeway = leeway

    @classmethod
    def from_settings(cls, settings: GatewaySettings) -> Verifier:
        return cls(keys_for(settings), settings.jwt_audience, settings.jwt_issuer, settings.jwt_leeway)

    def describe(self) -> str:
        parts = [f"jwt ({'/'.join(self.keys.algorithms)})"]
        if self.audience:
            parts.append(f"audience {self.audience!r}")
        if self.issuer:
            parts.append(f"issuer {self.issuer!r}")
        return ", ".join(parts)

    def verify(self, token: str) -> Grant:
        if len(token) > MAX_TOKEN_BYTES:
            raise TokenError("token is too large")
        key, algorithms = self.keys.for_token(token)
        required = ["exp", *(["aud"] if self.audience else []), *(["iss"] if self.issuer else [])]
        try:
            claims = jwt.decode(
                token, key, algorithms=algorithms, audience=self.audience, issuer=self.issuer,
                leeway=self.leeway, options={"require": required},
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("token has expired") from None
        except jwt.ImmatureSignatureError:
            raise TokenError("token is not valid yet") from None
        except jwt.InvalidAudienceError:
            raise TokenError("token is for another audience") from None
        except jwt.InvalidIssuerError:
            raise TokenError("token is from another issuer") from None
        except jwt.MissingRequiredClaimError as exc:
            raise TokenError(f"token lacks the {exc.claim!r} claim") from None
        except jwt.InvalidSignatureError:
            raise TokenError("token signature is invalid") from None
        except jwt.PyJWTError:
            raise TokenError("token is malformed") from None
        return Grant(_subject(claims), _topics(claims), float(claims["exp"]))


def _subject(claims: Mapping[str, Any]) -> str:
    sub = claims.get("sub", "")
    return sub[:128] if isinstance(sub, str) else ""


def _topics(claims: Mapping[str, Any]) -> tuple[str, ...]:
    topics = claims.get("topics")
    if not isinstance(topics, list):
        raise TokenError("token's 'topics' claim must be a list of topic patterns")
    try:
        return tuple(validate_pattern(t) for t in topics)
    except TopicError as exc:
        raise TokenError(f"token's 'topics' claim: {exc}") from None


def issue(secret: str, subject: str, topics: Sequence[str], ttl: float, *, audience: str = "",
          issuer: str = "", now: float | None = None) -> str:
    """An HS256 token for development (``tickwire token``); production tokens come from an IdP."""
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise SettingsError(f"TICKWIRE_JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes")
    issued = time.time() if now is None else now
    claims: dict[str, Any] = {
        "sub": subject,
        "topics": [validate_pattern(t) for t in topics],
        "iat": int(issued),
        "nbf": int(issued),
        "exp": int(issued + ttl),
    }
    if audience:
        claims["aud"] = audience
    if issuer:
        claims["iss"] = issuer
    return jwt.encode(claims, secret, algorithm=HS256)
