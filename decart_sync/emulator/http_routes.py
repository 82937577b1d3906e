"""The plain HTTP requests the emulator answers on its WebSocket port.

websockets hands every request to ``process_request`` before any upgrade (any
method, as long as the request has no body, and the clients send none);
`answer` takes these, after LiveKit's ``/rtc...`` (`livekit`):

- ``/_emulator/...`` (GET): ``drop?how=signaling|peer|both`` drops every live
  session, ``sessions`` lists them as JSON (a LiveKit session with each signal
  connection its room served: path, peer connections), ``faults?FIELD=VALUE&...`` changes
  the faults of the emulator and of its sessions following them (``reset=1``:
  from none first) and answers them and the sessions as JSON, ``ice-servers``
  announces the emulator's STUN server (``{"ice_servers": [{"urls":
  ["stun:..."]}]}``, the shape of LiveKit's JoinResponse.ice_servers) for
  preflights, which open no session, ``health`` answers ``ok``. No API key:
  it is a local test tool.
- ``POST /watch-stream/{room}`` (key in ``x-api-key``): a LiveKit viewer's
  credentials, ``{livekit_url, token, room_name, session_id}``; 401 for a bad
  key, 404 for an unknown room.

Browsers: every answer here and on LiveKit's ``/rtc...`` allows the page's
origin, as a LiveKit server does (livekit-server's ``pkg/service/server.go``:
rs/cors allowing every origin), and ``OPTIONS`` answers a CORS preflight. A
page can then fetch ``/rtc/validate`` (livekit-client reads its status to
tell a refusal from an unreachable server) and viewers' credentials.

Anything else is left to the WebSocket routes (`server`).
"""

from __future__ import annotations

import dataclasses
import http
import json
import logging
import secrets
import time
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import attrs
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from .connection import DROP_MODES
from .faults import Faults
from .session import ServedSession
from .stun import StunServer

if TYPE_CHECKING:  # needs the optional livekit-protocol package
    from .livekit import LiveKitRooms

log = logging.getLogger(__name__)

ADMIN_PREFIX = "/_emulator/"
PREFLIGHT_MAX_AGE = 86400  # as LiveKit's server
WATCH_PREFIX = "/watch-stream/"


class Served(Protocol):
    """What the routes need of the emulator's server (`server.EmulatorServer`)."""

    @property
    def sessions(self) -> list[ServedSession]: ...

    @property
    def faults(self) -> Faults: ...

    @property
    def stun(self) -> StunServer: ...

    @property
    def livekit_rooms(self) -> LiveKitRooms | None: ...

    def set_faults(self, faults: Faults) -> None: ...

    async def drop(self, how: str = "both") -> int: ...

    def key_ok(self, key: str | None) -> bool: ...


async def answer(server: Served, connection: ServerConnection, request: Request) -> Response | None:
    """The response to a plain HTTP request, or None when it is not one of these routes."""
    if request.method == "OPTIONS":
        asked = request.headers.get("Access-Control-Request-Headers", "")
        preflight = Headers([("Access-Control-Allow-Methods", "GET, POST, OPTIONS"),
                             ("Access-Control-Allow-Headers", asked or "*"),
                             ("Access-Control-Max-Age", str(PREFLIGHT_MAX_AGE)),
                             ("Content-Length", "0")])  # fmt: skip
        return Response(http.HTTPStatus.NO_CONTENT, "No Content", preflight, b"")
    parts = urlsplit(request.path)
    if parts.path.startswith(WATCH_PREFIX):
        room = unquote(parts.path[len(WATCH_PREFIX) :]).strip("/")
        return _watch(server, connection, request, room)
    if not parts.path.startswith(ADMIN_PREFIX):
        return None
    command = parts.path[len(ADMIN_PREFIX) :].strip("/")
    return await _admin(server, connection, command, parse_query(parts.query))


async def _admin(
    server: Served, connection: ServerConnection, command: str, query: dict[str, str]
) -> Response:
    """``GET /_emulator/{command}?...``"""
    if command == "drop":
        how = query.get("how", "both")
        if how not in DROP_MODES:
            return connection.respond(
                http.HTTPStatus.BAD_REQUEST, f"how must be one of {', '.join(DROP_MODES)}\n"
            )
        count = await server.drop(how)
        return connection.respond(http.HTTPStatus.OK, f"dropped {count} session(s) ({how})\n")
    if command == "sessions":
        body = json.dumps([_describe(s) for s in server.sessions], indent=2) + "\n"
        return _json_response(body)
    if command == "faults":
        reset = query.pop("reset", "") not in ("", "0")
        try:
            faults = Faults.parse(
                [f"{k}={v}" for k, v in query.items()], None if reset else server.faults
            )
        except ValueError as exc:
            return connection.respond(http.HTTPStatus.BAD_REQUEST, f"{exc}\n")
        server.set_faults(faults)
        report = {
            "faults": attrs.asdict(faults),
            "sessions": [_describe(s) for s in server.sessions],
        }
        return _json_response(json.dumps(report, indent=2) + "\n")
    if command == "ice-servers":  # as LiveKit's IceServer list; for preflights
        body = json.dumps({"ice_servers": [{"urls": [server.stun.url]}]}) + "\n"
        return _json_response(body)
    if command == "health":
        return connection.respond(http.HTTPStatus.OK, "ok\n")
    return connection.respond(http.HTTPStatus.NOT_FOUND, f"no admin command {command!r}\n")


def _watch(server: Served, connection: ServerConnection, request: Request, name: str) -> Response:
    """``POST /watch-stream/{room}``: a subscribe-only token for a session's room."""
    if request.method != "POST":
        return connection.respond(http.HTTPStatus.METHOD_NOT_ALLOWED, "use POST\n")
    if not server.key_ok(request.headers.get("x-api-key")):
        log.info("refusing a viewer: invalid API key")
        return connection.respond(http.HTTPStatus.UNAUTHORIZED, "Invalid API key\n")
    host, port = connection.local_address[:2]
    url = f"ws://{f'[{host}]' if ':' in host else host}:{port}"
    status, body = viewer_credentials(server, name, url)
    if isinstance(body, str):
        return connection.respond(status, f"{body}\n")
    return _json_response(json.dumps(body) + "\n")


def viewer_credentials(server: Served, name: str, url: str) -> tuple[int, dict[str, str] | str]:
    """A viewer's credentials for room ``name`` (200 and the body), else a status and why;
    ``url`` is the LiveKit URL to hand out. Also served on the REST port (`.rest`): the JS
    SDK asks its ``baseUrl`` for them."""
    rooms = server.livekit_rooms
    room = rooms.room(name) if rooms is not None else None
    if rooms is None or room is None:
        return http.HTTPStatus.NOT_FOUND, f"no room {name!r}"
    owner = next((s for s in server.sessions if s.room is room), None)
    body = {
        "livekit_url": url,
        "token": rooms.token(room.name, f"viewer-{secrets.token_hex(4)}", can_publish=False),
        "room_name": room.name,
    }
    if owner is not None:
        body["session_id"] = owner.session_id
    log.info("viewer credentials issued for room %s", room.name)
    return http.HTTPStatus.OK, body


def for_browsers(request: Request, response: Response) -> Response:
    """``response`` readable by the page that asked (its ``Origin``), as LiveKit allows."""
    origin = request.headers.get("Origin")
    if origin:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"
    return response


def parse_query(text: str) -> dict[str, str]:
    # Last value wins; blank values are kept (an empty api_key is still "given").
    return {k: v[-1] for k, v in parse_qs(text, keep_blank_values=True).items()}


def _describe(session: ServedSession) -> dict[str, Any]:
    room = session.room
    return {
        "session_id": session.session_id,
        "model": session.model.name,
        "prompt": session.prompt,
        "image": session.image is not None,
        "frames_in": session.frames_in,
        "frames_out": session.frames_out,
        "subscribers": len(session.subscribers),
        "age_s": round(time.monotonic() - session.started, 3),
        # Each LiveKit signal connection its room served: the path and its peer connections.
        "livekit": [dataclasses.asdict(p) for p in room.participations] if room is not None else [],
    }


def _json_response(body: str) -> Response:
    headers = Headers(
        [("Content-Type", "application/json"), ("Content-Length", str(len(body.encode())))]
    )
    return Response(http.HTTPStatus.OK, "OK", headers, body.encode())
