"""Pure logic: what the emulator's REST API keeps (files with TTLs, client tokens and what
they allow), on a clock the test moves."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from helpers import Clock

from decart_sync.emulator.accounts import (
    MAX_FILE_BYTES,
    FileStore,
    StoreError,
    TokenStore,
    is_token_key,
)
from decart_sync.rest import verify

NOW = 1_800_000_000.0  # the fake clock's start: a plausible wall time, for tokens' dates


def test_files_live_until_their_ttl_or_delete() -> None:
    clock = Clock(NOW)
    files = FileStore(clock)
    short = files.add(b"png", "a.png", "image/png", "60")
    default = files.add(b"png", None, "image/png", None)
    forever = files.add(b"png", None, "image/png", "persistent")
    described = short.describe()
    assert described["created_at"] == "2027-01-15T08:00:00Z"
    assert described["expires_at"] == "2027-01-15T08:01:00Z"
    assert forever.describe()["expires_at"] is None
    assert files.base64_of(short.id) == "cG5n"
    clock.now += 60
    assert files.get(short.id) is None and files.base64_of(short.id) is None
    clock.now += 24 * 3600
    assert files.get(default.id) is None and files.get(forever.id) is not None
    assert files.delete(forever.id) and not files.delete(forever.id) and len(files) == 0


@pytest.mark.parametrize("ttl", ["59", str(720 * 3600 + 1), "soon", "1.5"])
def test_a_bad_ttl_is_refused(ttl: str) -> None:
    with pytest.raises(StoreError) as info:
        FileStore().add(b"x", None, "image/png", ttl)
    assert info.value.status == 422


def test_files_are_bounded() -> None:
    with pytest.raises(StoreError) as info:
        FileStore().add(b"x" * (MAX_FILE_BYTES + 1), None, "image/png", None)
    assert info.value.status == 413
    with pytest.raises(StoreError):
        FileStore().add(b"", None, "image/png", None)


def test_a_token_allows_its_models_and_origins_until_it_expires() -> None:
    clock = Clock(NOW)
    tokens = TokenStore(clock)
    token = tokens.create(
        {
            "expiresIn": 120,
            "allowedModels": ["m"],
            "allowedOrigins": ["https://a.example"],
            "constraints": {"realtime": {"maxSessionDuration": 30}},
        }
    )
    key = token.api_key
    assert is_token_key(key) and not is_token_key("sk-account")
    assert token.describe() == {
        "apiKey": key,
        "token": token.token,
        "expiresAt": "2027-01-15T08:02:00Z",
        "permissions": {"models": ["m"], "origins": ["https://a.example"]},
        "constraints": {"realtime": {"maxSessionDuration": 30}},
    }
    assert key not in repr(token) and str(token.token) not in repr(token)
    # The signed twin: the store's key signed it, it says what the token allows, it is a key.
    twin = str(token.token)
    [public] = verify.keys_of(tokens.signer.jwks()).values()
    assert verify.signature_ok(public, twin)
    claims = verify.decode_client_token(twin)
    assert (claims.allowed_models, claims.allowed_origins) == (["m"], ["https://a.example"])
    assert claims.expires_at.timestamp() == token.expires
    assert claims.constraints == {"realtime": {"maxSessionDuration": 30}}
    assert is_token_key(twin) and tokens.key_refusal(twin) is None
    assert "Model n is not allowed" in str(tokens.session_refusal(twin, "n", "https://a.example"))
    assert tokens.key_refusal(key) is None
    assert tokens.session_refusal(key, "m", "https://a.example") is None
    assert "Model n is not allowed" in str(tokens.session_refusal(key, "n", "https://a.example"))
    assert "Origin (none)" in str(tokens.session_refusal(key, "m", None))
    # Verbatim: a trailing slash is another origin.
    assert tokens.session_refusal(key, "m", "https://a.example/") is not None
    assert tokens.session_refusal("sk-account", "n", None) is None  # not a token's business
    clock.now += 120
    assert "expired" in str(tokens.key_refusal(key))
    assert tokens.key_refusal("ek_unknown") == "Invalid API key"


def test_an_unrestricted_token_and_the_defaults() -> None:
    tokens = TokenStore(Clock(NOW))
    token = tokens.create({})
    assert token.expires - tokens.now() == 60  # the service's default
    assert set(token.describe()) == {"apiKey", "token", "expiresAt"}
    assert tokens.session_refusal(token.api_key, "any", "https://x.example") is None


def test_the_signed_form_is_a_verifiable_jwt_that_opens_the_same_doors() -> None:
    clock = Clock(NOW)
    tokens = TokenStore(clock)
    token = tokens.create({"expiresIn": 120, "allowedModels": ["m"]})
    signed = token.token
    head, body, signature = signed.split(".")
    header, claims = json.loads(_unb64(head)), json.loads(_unb64(body))
    [jwk] = tokens.signer.jwks()["keys"]
    assert header == {"alg": "EdDSA", "typ": "JWT", "kid": jwk["kid"]}
    assert claims["exp"] == 1_800_000_120 and claims["models"] == ["m"]
    assert claims["iss"] == claims["aud"] == "https://platform.decart.ai" and claims["sub"]
    public = Ed25519PublicKey.from_public_bytes(_unb64(jwk["x"]))
    public.verify(_unb64(signature), f"{head}.{body}".encode())  # raises if forged
    with pytest.raises(InvalidSignature):
        public.verify(_unb64(signature), f"{head}.{body}x".encode())
    # Either form is the same token: its models, its expiry.
    assert is_token_key(signed) and tokens.get(signed) is token
    assert tokens.key_refusal(signed) is None
    assert "Model n is not allowed" in str(tokens.session_refusal(signed, "n", None))
    assert not is_token_key("eyJ-not-a-jwt") and tokens.key_refusal(signed + "x") is not None
    clock.now += 120
    assert "expired" in str(tokens.key_refusal(signed))


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"expiresIn": 0},
        {"expiresIn": 3601},
        {"expiresIn": True},
        {"allowedModels": "m"},
        {"allowedOrigins": [1]},
        {"allowedModels": ["m"] * 21},
        {"constraints": {"realtime": {"maxSessionDuration": -1}}},
        {"metadata": "x"},
    ],
)
def test_a_malformed_token_request_is_refused(body: object) -> None:
    with pytest.raises(StoreError) as info:
        TokenStore().create(body)
    assert info.value.status == 422
