"""The LiveKit server test double: rooms, tokens, and the ``/rtc`` routes.

What the ``livekit`` client (1.2.x, Rust core) asks of a server URL
``ws://host:port``, and what we answer:

- ``GET /rtc/v1?join_request=..`` (WebSocket; single-PC signaling): 404, so
  the client falls back to the classic path; ``/rtc/v1/validate`` 404 too;
- ``GET /rtc?sdk=..&protocol=..&auto_subscribe=..`` (WebSocket), with the
  token in ``Authorization: Bearer`` (or ``?access_token=``): the two-PC
  signaling of `connection`; a bad token is refused with 401, an unknown
  room with 404, before the upgrade; ``&reconnect=1`` (a resume) gets a
  ``leave`` asking for a full reconnect, since aiortc cannot ICE-restart;
- ``GET /rtc/validate``: what the client fetches after a refused upgrade, to
  explain it: 200 ``success``, or the same 401/404 with a message.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import logging
from collections.abc import Mapping
from urllib.parse import parse_qs, urlsplit

from livekit.protocol import models as lkm
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from . import protos
from .peers import Network
from .room import ClientTrackHandler, Room
from .tokens import Grant, TokenError, TokenIssuer

log = logging.getLogger(__name__)

RTC_PATH = "/rtc"
CLOSE_TIMEOUT = 2.0


class LiveKitRooms:
    """Test double of a LiveKit server for this service: rooms of a client, the
    server side and viewers.

    Lives on the emulator's loop and is served by its WebSocket server on the
    same port (`process_request()` for HTTP, `handle()` for ``/rtc``).
    ``loopback``: our candidates are 127.0.0.1 only (the emulator's default).
    """

    def __init__(self, *, loopback: bool = True, api_key: str = "emulator") -> None:
        self.loopback = loopback
        self.tokens = TokenIssuer(api_key)
        self._rooms: dict[str, Room] = {}
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def rooms(self) -> list[Room]:
        return list(self._rooms.values())

    def room(self, name: str) -> Room | None:
        return self._rooms.get(name)

    def create_room(
        self,
        name: str | None = None,
        *,
        on_client_track: ClientTrackHandler | None = None,
        network: Network | None = None,
    ) -> Room:
        """A new empty room (on the loop); ``name`` defaults to a random one.
        ``network(target)``: a `Shaper` for each peer connection."""
        name = name or protos.new_sid("room-")
        if name in self._rooms:
            raise ValueError(f"room {name!r} exists")
        room = Room(
            name,
            loopback=self.loopback,
            on_client_track=on_client_track,
            on_closed=self._forget,
            network=network,
        )
        self._rooms[name] = room
        return room

    def token(self, room: str, identity: str = "client", *, can_publish: bool = True) -> str:
        """A join token for ``identity`` in ``room`` (HS256 JWT, LiveKit's claims);
        ``can_publish=False`` makes it a viewer's (see `Room`)."""
        return self.tokens.issue(room, identity, can_publish=can_publish)

    # -- routes ---------------------------------------------------------------

    async def process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        """Answer the HTTP side of ``/rtc...``; None lets the request go on (not ours, or
        an accepted ``/rtc`` upgrade)."""
        parts = urlsplit(request.path)
        path = parts.path.rstrip("/")
        if path != RTC_PATH and not path.startswith(RTC_PATH + "/"):
            return None
        if path not in (RTC_PATH, RTC_PATH + "/validate"):
            return connection.respond(http.HTTPStatus.NOT_FOUND, "404 page not found\n")
        status, message = self._admit(request.headers, _query(parts.query))
        if path == RTC_PATH:
            return None if status is http.HTTPStatus.OK else connection.respond(status, message)
        return connection.respond(status, message)

    async def handle(self, ws: ServerConnection, path: str, query: Mapping[str, str]) -> None:
        """The ``/rtc`` signal WebSocket (``path`` and ``query`` as the server parsed them)."""
        headers = ws.request.headers if ws.request else Headers()
        grant = self._grant(headers, query)
        room = self._rooms.get(grant.room) if grant else None
        if grant is None or room is None:  # raced with a room's close since the upgrade
            await _goodbye(ws, protos.leave(lkm.DisconnectReason.JOIN_FAILURE))
            return
        if query.get("reconnect") in ("1", "true"):
            # A resume: the client would ICE-restart PCs we cannot restart. Ask for a rejoin.
            leave = protos.leave(lkm.DisconnectReason.STATE_MISMATCH, reconnect=True)
            await _goodbye(ws, leave)
            return
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            await room.serve_client(ws, grant)
        finally:
            if task is not None:
                self._handlers.discard(task)

    async def close(self) -> None:
        """Bounded and idempotent: every room, connection, peer and task."""
        rooms, self._rooms = list(self._rooms.values()), {}
        closing = asyncio.gather(*(room.close() for room in rooms))
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(closing, CLOSE_TIMEOUT)

    # -- helpers --------------------------------------------------------------

    def _forget(self, room: Room) -> None:
        if self._rooms.get(room.name) is room:
            del self._rooms[room.name]

    def _grant(self, headers: Headers, query: Mapping[str, str]) -> Grant | None:
        try:
            return self.tokens.verify(_token(headers, query))
        except TokenError:
            return None

    def _admit(self, headers: Headers, query: Mapping[str, str]) -> tuple[http.HTTPStatus, str]:
        try:
            grant = self.tokens.verify(_token(headers, query))
        except TokenError as exc:
            return http.HTTPStatus.UNAUTHORIZED, f"{exc}\n"
        if grant.room not in self._rooms:
            return http.HTTPStatus.NOT_FOUND, "requested room does not exist\n"
        return http.HTTPStatus.OK, "success\n"


def _token(headers: Headers, query: Mapping[str, str]) -> str:
    auth = headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[len("bearer ") :].strip()
    token = query.get("access_token", "")
    if not token:
        raise TokenError("no access token")
    return token


def _query(text: str) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(text, keep_blank_values=True).items()}


async def _goodbye(ws: ServerConnection, message: object) -> None:
    with contextlib.suppress(Exception):
        await ws.send(message.SerializeToString())  # type: ignore[attr-defined]
        await asyncio.wait_for(ws.close(), CLOSE_TIMEOUT)
