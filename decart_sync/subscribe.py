"""Subscribe tokens (PROTOCOL.md section 9): who may watch a session.

A token is base64 of JSON ``{"sid", "ip", "port"}``. The browser SDK writes
standard base64, the Python SDK URL-safe base64; both are read here.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import attrs

from .errors import InvalidInputError


@attrs.frozen
class SubscribeToken:
    sid: str
    ip: str
    port: int

    def encode(self) -> str:
        payload = json.dumps({"sid": self.sid, "ip": self.ip, "port": self.port})
        return base64.urlsafe_b64encode(payload.encode()).decode("ascii")


def decode_token(token: Any) -> SubscribeToken:
    if not isinstance(token, str) or not token.strip():
        raise InvalidInputError("a subscribe token must be a non-empty string")
    text = token.strip()
    padded = text + "=" * (-len(text) % 4)
    try:
        raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
        data = json.loads(raw)
    except (binascii.Error, ValueError):
        raise InvalidInputError(
            "the subscribe token is not base64 JSON; pass client.subscribe_token as given"
        ) from None
    if not isinstance(data, dict):
        raise InvalidInputError("the subscribe token does not hold a JSON object")
    sid, ip, port = data.get("sid"), data.get("ip"), data.get("port")
    if not isinstance(sid, str) or not sid or not isinstance(ip, str) or not ip:
        raise InvalidInputError("the subscribe token lacks its session id or server address")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise InvalidInputError("the subscribe token's port is not a valid port number")
    return SubscribeToken(sid, ip, port)
