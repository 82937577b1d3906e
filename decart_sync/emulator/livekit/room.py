"""A room: the client, the server side that publishes to it, and its viewers.

The server side is one participant (``inference-server-...`` by default, the
prefix Decart's clients look for) whose tracks are aiortc tracks given to
`Room.publish()`; it has no connection of its own. The client is whoever
joins with a token that may publish; a second such join (a client's full
reconnect) replaces the first connection, which gets a ``leave``.

A viewer joins with a token that cannot publish (``/watch-stream``'s): it gets
the server side's tracks, each through its own copy made by ``publish``'s
``fork`` (stopped when the viewer goes), and nothing else. Still a test double,
not an SFU: the client's camera is never forwarded to anyone, participants see
only the server side (no updates about each other), a viewer replaces only a
viewer of the same identity.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from typing import Any

from aiortc import MediaStreamTrack
from livekit.protocol import models as lkm
from websockets.asyncio.server import ServerConnection

from . import protos
from .classic import TwoPeerConnection
from .connection import ClientConnection, Participation
from .joins import Join
from .peers import Feed, Network
from .single import OnePeerConnection
from .tokens import Grant

log = logging.getLogger(__name__)

SERVER_IDENTITY_PREFIX = "inference-server-"
ClientTrackHandler = Callable[[MediaStreamTrack], Any]
Fork = Callable[[MediaStreamTrack], MediaStreamTrack]


class Room:
    """One LiveKit room; create it with `LiveKitRooms.create_room()`, on the loop.

    It is each of its connections' `RoomSide` (``info`` to
    ``connection_closed``).

    ``on_client_track(track)`` runs for every track the client publishes (again
    after a rejoin), on the loop; `client_track()` waits for one instead.
    ``joined`` is set while a client is in the room, ``left`` once it went
    (cleared again by a rejoin). ``error`` says why we last refused the client
    (e.g. a publisher offer with no codec aiortc can receive: VP9), else None.
    ``participations`` records every signal connection it served (the client's
    and viewers'): the path each took and its peer connections.
    """

    def __init__(
        self,
        name: str,
        *,
        loopback: bool,
        on_client_track: ClientTrackHandler | None = None,
        on_closed: Callable[[Room], None] = lambda room: None,
        network: Network | None = None,
    ) -> None:
        self.name = name
        self.sid = protos.new_sid("RM_")
        self.on_client_track = on_client_track
        self.joined = asyncio.Event()
        self.left = asyncio.Event()
        self.client: ClientConnection | None = None
        self.viewers: dict[str, ClientConnection] = {}  # by identity
        self.error: str | None = None
        self.participations: list[Participation] = []
        self.network = network  # the Shaper (netem) of each peer connection, by its target
        self._loopback = loopback
        self._on_closed = on_closed
        self._created_ms = protos.now_ms()
        self._server: lkm.ParticipantInfo | None = None
        self._published: list[tuple[lkm.TrackInfo, MediaStreamTrack]] = []
        self._fork: Fork | None = None
        self._client_tracks: dict[str, MediaStreamTrack] = {}
        self._tracks_changed = asyncio.Event()
        self._connections: set[ClientConnection] = set()  # the client's, closing ones included
        self._closed = False

    # -- the server side ------------------------------------------------------

    def publish(
        self,
        video: MediaStreamTrack,
        audio: MediaStreamTrack | None = None,
        identity: str | None = None,
        *,
        fork: Fork | None = None,
        frame_timing: bool = False,
    ) -> str:
        """Join the server-side participant with these tracks; returns its identity.

        Best before the client joins (its first offer then carries them); later
        works too (a ParticipantUpdate and a renegotiation of the subscriber PC).
        ``fork(track)`` makes a viewer's own copy of a published track (e.g. a
        ``MediaRelay`` subscription); without it viewers get no media.
        ``frame_timing``: the video carries each frame's stamp in a packet trailer
        (`frame_timing`), announced in its track info.
        """
        if self._server is not None:
            raise RuntimeError(f"room {self.name!r} already has a server participant")
        identity = identity or f"{SERVER_IDENTITY_PREFIX}{secrets.token_hex(4)}"
        self._server = protos.participant(protos.new_sid("PA_"), identity)
        for track in (video, audio):
            if track is None:
                continue
            info = protos.track(protos.new_sid("TR_"), track.kind)
            if frame_timing and track.kind == "video":
                info.packet_trailer_features.append(lkm.PacketTrailerFeature.PTF_USER_TIMESTAMP)
            self._server.tracks.append(info)
            self._published.append((info, track))
        self._fork = fork
        for connection in self._participants():
            connection.announce(self._server)
            connection.offer_published()
        return identity

    def info(self) -> lkm.Room:
        return protos.room(
            self.sid,
            self.name,
            created_ms=self._created_ms,
            participants=len(self._participants()) + (self._server is not None),
            publishers=1 if self._published else 0,
        )

    def others(self) -> list[lkm.ParticipantInfo]:
        """What the client sees besides itself."""
        return [self._server] if self._server is not None else []

    def published(self) -> tuple[str, list[tuple[lkm.TrackInfo, MediaStreamTrack]]]:
        """The server participant's sid and its tracks."""
        return (self._server.sid if self._server else "", list(self._published))

    def feed(self, track: MediaStreamTrack, *, viewer: bool) -> Feed | None:
        """What one connection sends of a published track."""
        if not viewer:
            return Feed(track)
        if self._fork is None:
            log.warning("room %s: a viewer joined, but no fork was published", self.name)
            return None
        return Feed(self._fork(track), owns=True)

    def _participants(self) -> list[ClientConnection]:
        return [*([self.client] if self.client else []), *self.viewers.values()]

    # -- the client -----------------------------------------------------------

    async def client_track(self, kind: str = "video") -> MediaStreamTrack:
        """The client's live track of this kind, waiting for one if needed."""
        while True:
            track = self._client_tracks.get(kind)
            if track is not None and track.readyState == "live":
                return track
            if self._closed:
                raise RuntimeError(f"room {self.name!r} is closed")
            self._tracks_changed.clear()
            await self._tracks_changed.wait()

    async def serve_client(self, ws: ServerConnection, grant: Grant, join: Join) -> None:
        """Serve one signal connection on the path ``join`` names, until it closes."""
        if self._closed:
            return
        kind = OnePeerConnection if join.single else TwoPeerConnection
        connection = kind(self, ws, grant, loopback=self._loopback, join=join)
        self._connections.add(connection)
        self.participations.append(connection.record)
        if connection.viewer:
            previous = self.viewers.get(grant.identity)
            self.viewers[grant.identity] = connection
            if previous is not None:
                await previous.close(lkm.DisconnectReason.DUPLICATE_IDENTITY)
            log.info("room %s: viewer %s joined", self.name, grant.identity)
            await connection.serve()
            return
        previous, self.client = self.client, connection
        if previous is not None:
            await previous.close(lkm.DisconnectReason.DUPLICATE_IDENTITY)
        self.left.clear()
        self.joined.set()
        log.info("room %s: %s joined", self.name, grant.identity)
        await connection.serve()

    def refused(self, connection: ClientConnection, error: str) -> None:
        self.error = error

    def track_arrived(self, connection: ClientConnection, track: MediaStreamTrack) -> None:
        if connection is not self.client:
            return
        self._client_tracks[track.kind] = track
        self._tracks_changed.set()
        if self.on_client_track is not None:
            try:
                self.on_client_track(track)
            except Exception:
                log.exception("room %s: on_client_track failed", self.name)

    def connection_closed(self, connection: ClientConnection) -> None:
        self._connections.discard(connection)
        if connection.viewer and self.viewers.get(connection.identity) is connection:
            del self.viewers[connection.identity]
            log.info("room %s: viewer %s went", self.name, connection.identity)
        if connection is not self.client:
            return
        self.client = None
        self._client_tracks.clear()
        self._tracks_changed.set()
        self.joined.clear()
        self.left.set()
        how = "left" if connection.left_cleanly else "was disconnected"
        log.info("room %s: %s %s", self.name, connection.identity, how)

    # -- lifecycle ------------------------------------------------------------

    def resources(self) -> dict[str, int]:
        """What the room still holds: connections (the client's, viewers'), open peers,
        running tasks."""
        return {
            "connections": len(self._connections),
            "peers": sum(c.live_peers for c in self._connections),
            "tasks": sum(c.live_tasks for c in self._connections),
        }

    async def drop(self, *, signal: bool = True) -> None:
        """Lose the client's media abruptly (no ``leave``): for reconnect tests.

        Its peer connections close; with ``signal`` its WebSocket is aborted too.
        The client then rejoins on its own (LiveKit's full reconnect).
        """
        client = self.client
        if client is None:
            return
        if signal:
            await client.close(abort=True)
        else:
            await client.close_peers()

    async def close(self) -> None:
        """Idempotent and bounded: the client gets a ``leave`` and is disconnected."""
        if not self._closed:
            self._closed = True
            self._on_closed(self)
        self._tracks_changed.set()
        await asyncio.gather(
            *(c.close(lkm.DisconnectReason.ROOM_DELETED) for c in list(self._connections))
        )
