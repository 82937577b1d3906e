"""Access tokens in LiveKit's format: HS256 JWTs with a ``video`` grant.

The client never reads its token: it hands it back on the signal WebSocket
(``Authorization: Bearer``; older clients use ``?access_token=``), so the only
requirement is that our own server accepts what it issued. We still issue
tokens in LiveKit's shape (``iss`` = API key, ``sub`` = identity, ``video`` =
``{room, roomJoin, canPublish, canSubscribe}``) so that logs and any tool that
decodes them make sense. Signed with the standard library: no JWT dependency.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

DEFAULT_TTL = 6 * 3600.0
# Clock skew tolerated on nbf/exp, as LiveKit's server does.
LEEWAY = 10.0


class TokenError(ValueError):
    """A token that is malformed, forged, expired or grants nothing here."""


@dataclass(frozen=True)
class Grant:
    room: str
    identity: str
    name: str
    can_publish: bool
    can_subscribe: bool


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenIssuer:
    """Signs and checks tokens with one random secret (per `LiveKitRooms`)."""

    def __init__(self, api_key: str = "emulator", secret: bytes | None = None) -> None:
        self.api_key = api_key
        self._secret = secret if secret is not None else secrets.token_bytes(32)

    def issue(
        self, room: str, identity: str, *, ttl: float = DEFAULT_TTL, can_publish: bool = True
    ) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.api_key,
            "sub": identity,
            "name": identity,
            "nbf": now,
            "exp": now + int(ttl),
            "video": {
                "room": room,
                "roomJoin": True,
                "canPublish": can_publish,
                "canPublishData": can_publish,
                "canSubscribe": True,
            },
        }
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        return f"{header}.{payload}.{self._sign(header, payload)}"

    def verify(self, token: str) -> Grant:
        parts = token.split(".")
        if len(parts) != 3:
            raise TokenError("not a JWT")
        header, payload, signature = parts
        if not hmac.compare_digest(signature, self._sign(header, payload)):
            raise TokenError("invalid token signature")
        try:
            if json.loads(_unb64(header)).get("alg") != "HS256":
                raise TokenError("unsupported token algorithm")
            claims = json.loads(_unb64(payload))
        except (ValueError, AttributeError) as exc:
            raise TokenError(f"unreadable token: {exc}") from None
        if not isinstance(claims, dict):
            raise TokenError("unreadable token claims")
        now = time.time()
        if float(claims.get("exp", 0)) < now - LEEWAY:
            raise TokenError("token is expired")
        if float(claims.get("nbf", 0)) > now + LEEWAY:
            raise TokenError("token is not valid yet")
        video = claims.get("video")
        if not isinstance(video, dict) or not video.get("roomJoin") or not video.get("room"):
            raise TokenError("token grants no room to join")
        identity = claims.get("sub")
        if not isinstance(identity, str) or not identity:
            raise TokenError("token has no identity")
        return Grant(
            room=str(video["room"]),
            identity=identity,
            name=str(claims.get("name") or identity),
            can_publish=bool(video.get("canPublish", True)),
            can_subscribe=bool(video.get("canSubscribe", True)),
        )

    def _sign(self, header: str, payload: str) -> str:
        digest = hmac.new(self._secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        return _b64(digest)
