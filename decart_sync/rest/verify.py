"""Client tokens read and checked: ``tokens.decode`` (no check) and ``tokens.verify``.

A client token's ``token`` is a JWT signed with Ed25519 (``alg: EdDSA``) by the
platform. As decart 0.2.4 does:

- `decode_client_token` reads the claims and checks nothing (no
  signature, no expiry): for display, never for a decision;
- `verify_client_token` checks the signature with the key the token's
  ``kid`` names in the platform's public JWKS, then ``exp`` (with ``leeway``
  seconds of tolerance), ``iss`` and ``aud``. The only request is for the JWKS
  (``https://platform.decart.ai/api/auth/jwks``, not the API host), fetched
  once per URL and kept for an hour, fetched again once for an unknown ``kid``;
  a token is never sent anywhere, and revocation is not asked about.

The claims come back under decart 0.2.4's names (`ClientTokenClaims`).
The emulator signs its tokens the same way and serves its JWKS at
``{emu.rest_url}/api/auth/jwks``.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
from datetime import datetime, timezone
from typing import Any

import attrs
import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..errors import TokenDecodeError, TokenVerifyError

PLATFORM_URL = "https://platform.decart.ai"
DEFAULT_JWKS_URL = f"{PLATFORM_URL}/api/auth/jwks"
DEFAULT_ISSUER = PLATFORM_URL
DEFAULT_AUDIENCE = PLATFORM_URL
DEFAULT_LEEWAY = 30.0
JWKS_TIMEOUT = 10.0
JWKS_LIFESPAN = 3600.0
REQUIRED = ("exp", "sub", "iss", "aud")


@attrs.frozen
class ClientTokenClaims:
    """A client token's claims, under the names decart 0.2.4 gives them.

    From `decode_client_token` they are unverified. ``user_id`` is ``sub``;
    ``api_key_id`` the parent key's id (else ``jti``); ``service_tier`` 0 (free)
    to 3 (priority), None when unset; ``allowed_models`` / ``allowed_origins``
    None when unrestricted; ``expires_at`` a UTC datetime; ``claims`` the raw payload.
    """

    user_id: str
    expires_at: datetime
    claims: dict[str, Any] = attrs.field(repr=False)
    organization_id: str | None = None
    api_key_id: str | None = None
    api_key_name: str | None = None
    service_tier: int | None = None
    allowed_models: list[str] | None = None
    allowed_origins: list[str] | None = None
    constraints: dict[str, Any] | None = None
    realtime_concurrent_session_limit: int | None = None
    zero_data_retention: bool = False
    attribution: dict[str, str] | None = None

    @property
    def pool(self) -> str:
        """``"free"`` for service tier 0, else ``"paid"`` (no tier included)."""
        return "free" if self.service_tier == 0 else "paid"


@attrs.frozen
class VerifiedClientToken(ClientTokenClaims):
    """Claims whose signature, expiry, issuer and audience were checked."""


def decode_client_token(token: str) -> ClientTokenClaims:
    """The claims of a client token, **unverified** (``TOKEN_DECODE_ERROR`` if malformed)."""
    try:
        _header, payload = _parts(token)
        return _claims(payload, ClientTokenClaims)
    except ValueError as exc:
        raise TokenDecodeError(f"not a valid client token: {exc}") from None


def verify_client_token(
    token: str,
    *,
    jwks_url: str = DEFAULT_JWKS_URL,
    issuer: str = DEFAULT_ISSUER,
    audience: str = DEFAULT_AUDIENCE,
    leeway: float = DEFAULT_LEEWAY,
    timeout: float = JWKS_TIMEOUT,
) -> VerifiedClientToken:
    """The claims of a client token whose signature and claims check out.

    ``TOKEN_VERIFY_ERROR`` says what failed: a malformed or tampered token, an
    unknown signing key, expiry (past ``exp`` + ``leeway`` s), the issuer, the
    audience, or a JWKS that could not be fetched within ``timeout`` seconds.
    """
    try:
        header, payload = _parts(token)
        if header.get("alg") != "EdDSA":
            raise ValueError(f"the algorithm is {header.get('alg')!r}, not EdDSA")
        key = _JWKS.key(jwks_url, header.get("kid"), timeout)
        if not signature_ok(key, token):
            raise ValueError("the signature does not match")
        _check_claims(payload, issuer, audience, leeway)
        return _claims(payload, VerifiedClientToken)
    except ValueError as exc:
        raise TokenVerifyError(f"client token verification failed: {exc}") from None


def signature_ok(key: Ed25519PublicKey, token: str) -> bool:
    """Whether the JWS's signature is ``key``'s over its first two parts."""
    signed, _, signature = token.rpartition(".")
    try:
        key.verify(b64url(signature), signed.encode("ascii"))
    except (InvalidSignature, ValueError):
        return False
    return True


def keys_of(jwks: Any) -> dict[str | None, Ed25519PublicKey]:
    """The Ed25519 signing keys of a JWKS document, by ``kid``."""
    found = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(found, list):
        raise ValueError("the JWKS has no keys list")
    keys: dict[str | None, Ed25519PublicKey] = {}
    for jwk in found:
        if not isinstance(jwk, dict) or jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
            continue
        if jwk.get("use", "sig") != "sig" or not isinstance(jwk.get("x"), str):
            continue
        try:
            keys[jwk.get("kid")] = Ed25519PublicKey.from_public_bytes(b64url(jwk["x"]))
        except ValueError:
            continue
    return keys


def _parts(token: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    if not isinstance(token, str) or token.count(".") != 2:
        raise ValueError("a JWT is three base64url parts joined by dots")
    head, body, signature = token.split(".")
    header, payload = _json_part(head, "header"), _json_part(body, "payload")
    b64url(signature)  # well-formed, even where it is not checked
    return header, payload


def _json_part(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(b64url(text))
    except (ValueError, UnicodeDecodeError):
        raise ValueError(f"the {what} is not base64url JSON") from None
    if not isinstance(value, dict):
        raise ValueError(f"the {what} is not a JSON object")
    return value


def b64url(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("a part is not base64url") from None


def _check_claims(payload: dict[str, Any], issuer: str, audience: str, leeway: float) -> None:
    missing = [name for name in REQUIRED if name not in payload]
    if missing:
        raise ValueError(f"the token lacks the claims {', '.join(missing)}")
    now = time.time()
    exp = _number(payload["exp"], "exp")
    if now > exp + leeway:
        raise ValueError(f"the token expired at {_utc(exp).isoformat()}")
    if "nbf" in payload and now < _number(payload["nbf"], "nbf") - leeway:
        raise ValueError("the token is not valid yet (nbf)")
    if "iat" in payload and now < _number(payload["iat"], "iat") - leeway:
        raise ValueError("the token was issued in the future (iat)")
    if payload["iss"] != issuer:
        raise ValueError(f"the issuer is {payload['iss']!r}, not {issuer!r}")
    aud = payload["aud"]
    if not (aud == audience or (isinstance(aud, list) and audience in aud)):
        raise ValueError(f"the audience is {aud!r}, not {audience!r}")


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"the {name} claim is not a number")
    return float(value)


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


def service_tier(payload: dict[str, Any]) -> int | None:
    """0-3 from an integer or digit text; else none, but the old ``priority: true`` is 3."""
    raw = payload.get("service_tier")
    tier: int | None = None
    if isinstance(raw, int) and not isinstance(raw, bool):
        tier = raw
    elif isinstance(raw, str) and raw.strip().lstrip("-").isdigit():
        tier = int(raw)
    if tier not in (0, 1, 2, 3):
        tier = None
    if tier is None and payload.get("priority"):
        tier = 3
    return tier


def _claims(payload: dict[str, Any], cls: type[ClientTokenClaims]) -> Any:
    sub = payload.get("sub")
    if not isinstance(sub, str):
        raise ValueError("the sub claim (the user) is missing or not text")
    exp = payload.get("exp")
    expires_at = _utc(_number(exp, "exp")) if exp is not None else None
    if expires_at is None:
        raise ValueError("the exp claim is missing")
    return cls(
        user_id=sub,
        expires_at=expires_at,
        claims=payload,
        organization_id=_typed(payload, "organizationId", str),
        api_key_id=_typed(payload, "parent_api_key_id", str) or _typed(payload, "jti", str),
        api_key_name=_typed(payload, "api_key_name", str),
        service_tier=service_tier(payload),
        allowed_models=_strings(payload, "models"),
        allowed_origins=_strings(payload, "origins"),
        constraints=_typed(payload, "constraints", dict),
        realtime_concurrent_session_limit=_typed(payload, "realtimeConcurrentSessionLimit", int),
        zero_data_retention=bool(payload.get("zeroDataRetention")),
        attribution=_typed(payload, "attribution", dict),
    )


def _typed(payload: dict[str, Any], name: str, kind: type) -> Any:
    value = payload.get(name)
    if value is None:
        return None
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise ValueError(f"the {name} claim is not {kind.__name__}")
    return value


def _strings(payload: dict[str, Any], name: str) -> list[str] | None:
    value = _typed(payload, name, list)
    if value is not None and not all(isinstance(v, str) for v in value):
        raise ValueError(f"the {name} claim is not a list of text")
    return value


class _KeySets:
    """Public keys by JWKS URL and ``kid``, fetched once an hour (process-wide)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sets: dict[str, tuple[float, dict[str | None, Ed25519PublicKey]]] = {}

    def key(self, url: str, kid: Any, timeout: float) -> Ed25519PublicKey:
        with self._lock:
            fetched, keys = self._sets.get(url, (0.0, {}))
        fresh = time.monotonic() - fetched < JWKS_LIFESPAN
        if not fresh or kid not in keys:
            keys = self._fetch(url, timeout)
            with self._lock:
                self._sets[url] = (time.monotonic(), keys)
        if kid not in keys:
            raise ValueError(f"no signing key {kid!r} in the JWKS at {url}")
        return keys[kid]

    def forget(self) -> None:
        with self._lock:
            self._sets.clear()

    @staticmethod
    def _fetch(url: str, timeout: float) -> dict[str | None, Ed25519PublicKey]:
        try:
            response = requests.get(url, timeout=min(timeout, JWKS_TIMEOUT))
            response.raise_for_status()
            body = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise ValueError(f"could not fetch the JWKS at {url} ({type(exc).__name__})") from None
        try:
            return keys_of(body)
        except ValueError as exc:
            raise ValueError(f"{exc} at {url}") from None


_JWKS = _KeySets()
