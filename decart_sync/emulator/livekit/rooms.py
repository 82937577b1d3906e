"""The LiveKit server test double: rooms, tokens, and the ``/rtc`` routes.

What LiveKit clients ask of a server URL ``ws://host:port``, and what we
answer, as livekit-server does (``pkg/service/rtcservice.go``):

- ``GET /rtc/v1?join_request=..`` (WebSocket): single-peer-connection
  signaling (`single`); the join request (`joins`) in the URL, the token in
  ``Authorization: Bearer`` (the Rust core) or ``?access_token=``
  (livekit-client). Both clients try it first and fall back to ``/rtc`` on a
  404 only, which is what we answer with ``single_pc=False`` (a server
  before v1);
- ``GET /rtc?sdk=..&protocol=..&auto_subscribe=..`` (WebSocket): the classic
  two-peer-connection signaling (`classic`);
- ``GET /rtc/validate``, ``/rtc/v1/validate``: what the clients fetch after a
  refused upgrade, to explain it: 200 ``success``, else the refusal.

Refusals come before the upgrade and in the server's order: 401 for a bad
token, 400 for a malformed join request, 404 for an unknown room; a request
that is no WebSocket upgrade gets 404. A resume (``reconnect``) gets a
``leave`` asking for a full reconnect, since aiortc cannot ICE-restart. Every
plain HTTP answer carries LiveKit's CORS headers and preflights are answered
(`cors`), so a web page can connect.
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

from . import cors, joins, protos
from .joins import JoinRequestError
from .peers import Network
from .room import ClientTrackHandler, Room
from .tokens import Grant, TokenError, TokenIssuer

log = logging.getLogger(__name__)

RTC_PATH = joins.V0_PATH
VALIDATE = "/validate"
CLOSE_TIMEOUT = 2.0


class LiveKitRooms:
    """Test double of a LiveKit server for this service: rooms of a client, the
    server side and viewers.

    Lives on the emulator's loop and is served by its WebSocket server on the
    same port (`process_request()` for HTTP, `handle()` for the signal WebSockets).
    ``loopback``: our candidates are 127.0.0.1 only (the emulator's default).
    ``single_pc``: serve ``/rtc/v1`` (one peer connection, what clients try
    first) besides ``/rtc``; False answers it 404, as a server before v1 did, and
    clients fall back to ``/rtc`` (two peer connections).
    """

    def __init__(
        self, *, loopback: bool = True, api_key: str = "emulator", single_pc: bool = True
    ) -> None:
        self.loopback = loopback
        self.single_pc = single_pc
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

    @property
    def paths(self) -> tuple[str, ...]:
        """The signaling paths served."""
        return joins.PATHS if self.single_pc else (joins.V0_PATH,)

    def serves(self, path: str) -> bool:
        """Whether a WebSocket to ``path`` is one of ours (`handle()`)."""
        return path.rstrip("/") in self.paths

    async def process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        """Answer the HTTP side of ``/rtc...``; None lets the request go on (not ours, or
        an accepted signal upgrade)."""
        parts = urlsplit(request.path)
        path = parts.path.rstrip("/")
        if path != RTC_PATH and not path.startswith(RTC_PATH + "/"):
            return None
        if cors.is_preflight(request):
            return cors.preflight(request)
        response = self._answer(connection, request, path, _query(parts.query))
        return None if response is None else cors.allow(request, response)

    def _answer(
        self, connection: ServerConnection, request: Request, path: str, query: dict[str, str]
    ) -> Response | None:
        signal = path.removesuffix(VALIDATE)
        if signal not in self.paths:
            return connection.respond(http.HTTPStatus.NOT_FOUND, "404 page not found\n")
        validate = signal != path
        if not validate and not _is_upgrade(request.headers):
            return connection.respond(http.HTTPStatus.NOT_FOUND, "")  # as LiveKit: no body
        status, message = self._admit(request.headers, signal, query)
        if status is http.HTTPStatus.OK:
            return connection.respond(status, message) if validate else None
        return connection.respond(status, message)

    async def handle(self, ws: ServerConnection, path: str, query: Mapping[str, str]) -> None:
        """A signal WebSocket (``path`` and ``query`` as the server parsed them)."""
        headers = ws.request.headers if ws.request else Headers()
        grant = self._grant(headers, query)
        room = self._rooms.get(grant.room) if grant else None
        try:
            join = joins.parse(path.rstrip("/"), query)
        except JoinRequestError:
            join = None  # refused before the upgrade; only a race gets here
        if grant is None or room is None or join is None:  # e.g. a room closed since
            await _goodbye(ws, protos.leave(lkm.DisconnectReason.JOIN_FAILURE))
            return
        if join.reconnect:
            # A resume: the client would ICE-restart PCs we cannot restart. Ask for a rejoin.
            leave = protos.leave(lkm.DisconnectReason.STATE_MISMATCH, reconnect=True)
            await _goodbye(ws, leave)
            return
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            await room.serve_client(ws, grant, join)
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

    def _admit(
        self, headers: Headers, path: str, query: Mapping[str, str]
    ) -> tuple[http.HTTPStatus, str]:
        """The status and text of livekit-server's validation (``validateInternal``)."""
        try:
            grant = self.tokens.verify(_token(headers, query))
        except TokenError as exc:
            return http.HTTPStatus.UNAUTHORIZED, str(exc)
        try:
            joins.parse(path, query)
        except JoinRequestError as exc:
            return http.HTTPStatus.BAD_REQUEST, str(exc)
        if grant.room not in self._rooms:
            return http.HTTPStatus.NOT_FOUND, "requested room does not exist"
        return http.HTTPStatus.OK, "success"


def _token(headers: Headers, query: Mapping[str, str]) -> str:
    auth = headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[len("bearer ") :].strip()
    token = query.get("access_token", "")
    if not token:
        raise TokenError("no access token")
    return token


def _is_upgrade(headers: Headers) -> bool:
    """A WebSocket upgrade request, as gorilla/websocket's IsWebSocketUpgrade tells."""
    connection = [t.strip().lower() for t in headers.get("Connection", "").split(",")]
    return "upgrade" in connection and headers.get("Upgrade", "").lower() == "websocket"


def _query(text: str) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(text, keep_blank_values=True).items()}


async def _goodbye(ws: ServerConnection, message: object) -> None:
    with contextlib.suppress(Exception):
        await ws.send(message.SerializeToString())  # type: ignore[attr-defined]
        await asyncio.wait_for(ws.close(), CLOSE_TIMEOUT)
