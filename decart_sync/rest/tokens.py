"""``DecartClient(...).tokens``: short-lived client tokens, safe to hand to a browser or robot.

As the JS SDK 0.1.20's tokens client: ``POST {base}/v1/client/tokens`` with a
JSON body in the service's camelCase (``expiresIn``, ``allowedModels``,
``allowedOrigins``, ``constraints: {realtime: {maxSessionDuration}}``,
``metadata``; unset ones left out), answered by ``{apiKey, token?, expiresAt,
permissions?, constraints?}``. The token's ``api_key`` is a key like the
account's: pass it as ``api_key=`` to [`connect()`][decart_sync.connect] (with
``origin=`` when the token is origin-scoped); it never appears in a repr.
``verify`` and ``decode`` read a token's signed claims (`verify`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from ..errors import InvalidInputError, TokenCreateError
from ..models import ModelDefinition
from ..options import origin as check_origin
from .http import DEFAULT_TIMEOUT, Account, json_object
from .verify import (
    DEFAULT_AUDIENCE,
    DEFAULT_ISSUER,
    DEFAULT_JWKS_URL,
    DEFAULT_LEEWAY,
    JWKS_TIMEOUT,
    ClientTokenClaims,
    VerifiedClientToken,
    decode_client_token,
    verify_client_token,
)

MAX_EXPIRES_IN = 3600  # the JS SDK's documented range: 1-3600 s, default 60
MAX_ITEMS = 20  # allowedModels, allowedOrigins


@attrs.frozen
class ClientToken:
    """A created client token (the JS SDK's ``CreateTokenResponse``), its secrets unprinted.

    ``api_key``: the short-lived key (``ek_...``); ``token``: the same as a signed JWT,
    when the service sends one; ``expires_at``: ISO 8601 text; ``permissions``
    (``{"models": [...], "origins": [...]}``) and ``constraints``
    (``{"realtime": {"maxSessionDuration": s}}``) as the service echoes them, else None.
    """

    api_key: str = attrs.field(repr=False)
    expires_at: str
    token: str | None = attrs.field(default=None, repr=False)
    permissions: dict[str, Any] | None = None
    constraints: dict[str, Any] | None = None

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> ClientToken:
        api_key, expires_at = body.get("apiKey"), body.get("expiresAt")
        if not isinstance(api_key, str) or not api_key or not isinstance(expires_at, str):
            raise TokenCreateError(
                "could not create a client token: the service's answer lacks apiKey or expiresAt"
            )
        token = body.get("token")
        permissions, constraints = body.get("permissions"), body.get("constraints")
        return cls(
            api_key=api_key,
            expires_at=expires_at,
            token=token if isinstance(token, str) else None,
            permissions=permissions if isinstance(permissions, dict) else None,
            constraints=constraints if isinstance(constraints, dict) else None,
        )


def request_body(
    *,
    expires_in: int | None = None,
    allowed_models: Sequence[ModelDefinition | str] | None = None,
    allowed_origins: Sequence[str] | None = None,
    max_session_duration: float | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON body of ``POST /v1/client/tokens``, checked (``INVALID_INPUT``)."""
    body: dict[str, Any] = {}
    if metadata is not None:
        if not isinstance(metadata, Mapping) or not all(isinstance(k, str) for k in metadata):
            raise InvalidInputError("metadata must be a dict with string keys")
        body["metadata"] = dict(metadata)
    if expires_in is not None:
        if (
            isinstance(expires_in, bool)
            or not isinstance(expires_in, int)
            or not 1 <= expires_in <= MAX_EXPIRES_IN
        ):
            raise InvalidInputError(
                f"expires_in must be whole seconds in [1, {MAX_EXPIRES_IN}], got {expires_in!r}"
            )
        body["expiresIn"] = expires_in
    if allowed_models is not None:
        names = [m.name if isinstance(m, ModelDefinition) else m for m in _items(allowed_models)]
        if not all(isinstance(n, str) and n for n in names):
            raise InvalidInputError("allowed_models must be model names or ModelDefinitions")
        body["allowedModels"] = names
    if allowed_origins is not None:
        origins = _items(allowed_origins, "allowed_origins")
        for value in origins:
            try:
                check_origin(value, "each of allowed_origins")
            except ValueError as exc:
                raise InvalidInputError(str(getattr(exc, "message", exc))) from None
        body["allowedOrigins"] = origins
    if max_session_duration is not None:
        if (
            isinstance(max_session_duration, bool)
            or not isinstance(max_session_duration, int | float)
            or not max_session_duration > 0
        ):
            raise InvalidInputError(
                f"max_session_duration must be a positive number of seconds, "
                f"got {max_session_duration!r}"
            )
        body["constraints"] = {"realtime": {"maxSessionDuration": max_session_duration}}
    return body


def _items(values: Any, what: str = "allowed_models") -> list[Any]:
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise InvalidInputError(f"{what} must be a list, got {type(values).__name__}")
    if len(values) > MAX_ITEMS:
        raise InvalidInputError(f"{what} takes at most {MAX_ITEMS} items, got {len(values)}")
    return list(values)


class TokensClient:
    """``DecartClient(...).tokens``: one blocking call, bounded by its ``timeout``."""

    def __init__(self, account: Account) -> None:
        self._account = account

    def create(
        self,
        *,
        expires_in: int | None = None,
        allowed_models: Sequence[ModelDefinition | str] | None = None,
        allowed_origins: Sequence[str] | None = None,
        max_session_duration: float | None = None,
        metadata: Mapping[str, Any] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> ClientToken:
        """A new client token; every restriction is optional.

        ``expires_in``: seconds in [1, 3600] (the service's default: 60);
        ``allowed_models`` and ``allowed_origins`` (full origins such as
        ``"https://example.com"``, matched verbatim against the control WebSocket's
        ``Origin`` header): at most 20 each; ``max_session_duration``: seconds a
        session may last before the service ends it (``generation_ended`` reason
        ``"timeout"``); ``metadata``: your own key-value pairs.
        """
        body = request_body(
            expires_in=expires_in,
            allowed_models=allowed_models,
            allowed_origins=allowed_origins,
            max_session_duration=max_session_duration,
            metadata=metadata,
        )
        what = "create a client token"
        response = self._account.request(
            "POST",
            "/v1/client/tokens",
            error=TokenCreateError,
            what=what,
            timeout=timeout,
            json=body,
        )
        return ClientToken.from_json(json_object(response, TokenCreateError, what))

    def verify(
        self,
        token: str,
        *,
        jwks_url: str = DEFAULT_JWKS_URL,
        issuer: str = DEFAULT_ISSUER,
        audience: str = DEFAULT_AUDIENCE,
        leeway: float = DEFAULT_LEEWAY,
        timeout: float = JWKS_TIMEOUT,
    ) -> VerifiedClientToken:
        """A signed client token's claims, once its signature, expiry, issuer and
        audience check out against the platform's public JWKS (``TOKEN_VERIFY_ERROR``).

        The JWKS is the platform's, whatever this client's ``base_url``; against the
        emulator pass ``jwks_url=emu.jwks_url``.
        """
        return verify_client_token(
            token,
            jwks_url=jwks_url,
            issuer=issuer,
            audience=audience,
            leeway=leeway,
            timeout=timeout,
        )

    def decode(self, token: str) -> ClientTokenClaims:
        """A client token's claims **unchecked** (no signature, no expiry, no request)."""
        return decode_client_token(token)

    def __repr__(self) -> str:
        return f"<TokensClient {self._account.base_url}>"
