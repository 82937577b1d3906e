"""Subscribe tokens (docs/protocol.md, "Viewers and subscribe tokens"): who may watch.

On plain WebRTC a token is base64 of JSON ``{"sid", "ip", "port"}``; in
LiveKit mode it is base64url of ``{"room_name"}``, and the viewer fetches the
room's credentials with `watch_credentials()`. The browser SDK writes
standard base64, the Python SDK URL-safe base64; both are read here.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any
from urllib.parse import quote, urlsplit

import attrs
import requests

from ..errors import InvalidAPIKeyError, InvalidInputError, WebSocketError


@attrs.frozen
class SubscribeToken:
    sid: str
    ip: str
    port: int

    def encode(self) -> str:
        payload = json.dumps({"sid": self.sid, "ip": self.ip, "port": self.port})
        return base64.urlsafe_b64encode(payload.encode()).decode("ascii")


@attrs.frozen
class RoomToken:
    """A LiveKit-mode token: the room to watch."""

    room_name: str


def decode_token(token: Any) -> SubscribeToken | RoomToken:
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
    if "room_name" in data:
        if not isinstance(data["room_name"], str) or not data["room_name"]:
            raise InvalidInputError("the subscribe token's room_name is not a room name")
        return RoomToken(data["room_name"])
    sid, ip, port = data.get("sid"), data.get("ip"), data.get("port")
    if not isinstance(sid, str) or not sid or not isinstance(ip, str) or not ip:
        raise InvalidInputError("the subscribe token lacks its session id or server address")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise InvalidInputError("the subscribe token's port is not a valid port number")
    return SubscribeToken(sid, ip, port)


def watch_credentials(base: str, room: str, key: str, timeout: float) -> dict[str, Any]:
    """``POST {base}/watch-stream/{room}``: a viewer's LiveKit URL and token (blocking)."""
    parts = urlsplit(base)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    url = f"{parts._replace(scheme=scheme).geturl()}/watch-stream/{quote(room)}"
    try:
        response = requests.post(url, headers={"x-api-key": key}, timeout=timeout)
    except requests.RequestException as exc:
        raise WebSocketError(
            f"could not ask {url} for the room's credentials: {type(exc).__name__}"
        ) from None
    if response.status_code in (401, 403):
        raise InvalidAPIKeyError(f"the service refused the API key for watching room {room!r}")
    if not response.ok:
        raise WebSocketError(
            f"{url} answered {response.status_code}: {response.text[:200]}",
            permanent=response.status_code == 404,  # no such room: asking again cannot help
        )
    try:
        data = response.json()
        valid = all(isinstance(data.get(f), str) for f in ("livekit_url", "token", "room_name"))
    except (ValueError, AttributeError):
        valid = False
    if not valid:
        raise WebSocketError(f"{url} did not answer with a LiveKit URL, token and room name")
    return dict(data)
