"""One participant's signal WebSocket, on either of LiveKit's signaling paths.

The signal protocol: binary WebSocket frames, each a ``SignalRequest`` from
the client or a ``SignalResponse`` from us. On either path:

1. we send ``join`` (JoinResponse) first;
2. to publish, the client sends ``add_track`` (we reply ``track_published``
   with a new ``TR_`` sid); when its media arrives we send
   ``track_subscribed`` and an ``update`` (ParticipantUpdate) with its tracks;
3. it trickles its candidates (``trickle``, JSON ``{candidate, sdpMid,
   sdpMLineIndex}``) for the peer connection its target names;
4. meanwhile ``ping_req`` -> ``pong_resp`` (and legacy ``ping`` -> ``pong``);
   its ``leave`` ends the connection, so does our ``leave``.

The peer connections differ by path: `classic.TwoPeerConnection` (``/rtc``:
a publisher PC the client offers, a subscriber PC we offer) and
`single.OnePeerConnection` (``/rtc/v1``: one PC, the client always offers).
Either way the server side's tracks reach the client with the stream id
``"{PA_sid}|{TR_sid}"`` and the track id ``TR_sid`` in their ``a=msid``, by
which the client finds their owner.

A viewer (a token that cannot publish) gets the server side's tracks only:
its ``add_track`` is ignored, as LiveKit ignores a publish without permission.
A connection knows its room only as a `RoomSide` (what `room.Room` offers its
connections); the room calls the connection's public methods.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from aiortc import MediaStreamTrack, RTCRtpSender
from google.protobuf.message import DecodeError
from livekit.protocol import models as lkm
from livekit.protocol import rtc as lkr
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from .. import frame_timing
from . import protos
from .joins import Join
from .peers import Feed, Link, Network, parse_trickle
from .tokens import Grant

log = logging.getLogger(__name__)

# Bounds on a goodbye: our leave message, then the WebSocket closing handshake.
SEND_TIMEOUT = 0.5
WS_CLOSE_TIMEOUT = 0.5


class RoomSide(Protocol):
    """What a connection needs of its room."""

    @property
    def name(self) -> str: ...

    @property
    def network(self) -> Network | None: ...

    def info(self) -> lkm.Room: ...

    def others(self) -> list[lkm.ParticipantInfo]:
        """The participants the client sees besides itself."""
        ...

    def published(self) -> tuple[str, list[tuple[lkm.TrackInfo, MediaStreamTrack]]]:
        """The server participant's sid and its tracks."""
        ...

    def feed(self, track: MediaStreamTrack, *, viewer: bool) -> Feed | None:
        """What this connection sends of a published track; None: nothing."""
        ...

    def refused(self, connection: ClientConnection, error: str) -> None:
        """The connection was turned away for ``error`` (it closes next)."""
        ...

    def track_arrived(self, connection: ClientConnection, track: MediaStreamTrack) -> None:
        """A track the connection's participant published arrived."""
        ...

    def connection_closed(self, connection: ClientConnection) -> None:
        """The connection is closed: its PCs, its socket and its tasks are done."""
        ...


@dataclass
class Participation:
    """What one signal connection was, kept by its room for tests: who, on which
    signaling path, over how many peer connections."""

    identity: str
    viewer: bool
    path: str  # "/rtc/v1" or "/rtc"
    peer_connections: int = 0  # the server's peer connections for it
    connected: int = 0  # the most of them connected at once


class ClientConnection:
    """A participant of the room over one signal WebSocket (see the module doc): the
    client, or a subscribe-only viewer (``viewer``: its token cannot publish). What
    both paths share; a subclass makes the peer connections and negotiates them."""

    def __init__(
        self, room: RoomSide, ws: ServerConnection, grant: Grant, *, loopback: bool, join: Join
    ) -> None:
        self.room = room
        self.ws = ws
        self.join = join
        self.viewer = not grant.can_publish
        self.info = protos.participant(
            protos.new_sid("PA_"), grant.identity, name=grant.name, can_publish=grant.can_publish
        )
        self.record = Participation(grant.identity, self.viewer, join.path)
        self._loopback = loopback
        self._links: list[Link] = []
        self._announced: dict[str, lkm.TrackInfo] = {}  # cid -> info, until its media arrives
        self._attached: set[str] = set()  # server track sids this connection sends
        self._feeds: list[Feed] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing: asyncio.Future[None] | None = None
        self.left_cleanly = False  # the client said ``leave``

    @property
    def identity(self) -> str:
        return self.info.identity

    @property
    def live_peers(self) -> int:
        return sum(link.pc.connectionState != "closed" for link in self._links)

    @property
    def connected_peers(self) -> int:
        return sum(link.pc.connectionState == "connected" for link in self._links)

    @property
    def live_tasks(self) -> int:
        return sum(not task.done() for task in self._tasks)

    # -- what a path defines --------------------------------------------------

    async def _joined(self) -> None:
        """Right after ``join``: what the path does first."""

    async def _on_offer(self, offer: lkr.SessionDescription) -> None:
        raise NotImplementedError

    async def _on_answer(self, answer: lkr.SessionDescription) -> None:
        raise NotImplementedError

    def _link_for(self, target: int) -> Link:
        """The peer connection a trickle's ``target`` names."""
        raise NotImplementedError

    def offer_published(self) -> None:
        """Bring the server side's tracks published since to the client, in the background."""
        raise NotImplementedError

    # -- lifecycle ------------------------------------------------------------

    async def serve(self) -> None:
        """Join, then read requests until the client leaves or the socket closes."""
        try:
            info, others = self.room.info(), self.room.others()
            await self._send(protos.join(info, self.info, others, single=self.join.single))
            if await self._step("join", self._join_requests()):
                async for message in self.ws:
                    if isinstance(message, str):
                        continue  # the JSON flavour of the protocol is not served
                    try:
                        request = lkr.SignalRequest.FromString(message)
                    except DecodeError as exc:
                        log.debug("ignoring an undecodable signal request: %s", exc)
                        continue
                    if not await self._step(request.WhichOneof("message"), self._dispatch(request)):
                        break
        except ConnectionClosed:
            pass
        finally:
            await self.close()

    async def _join_requests(self) -> bool:
        """What the join request asked for besides joining (v1), as LiveKit's server
        takes it (pkg/service/roommanager.go: its add_track requests, then its offer)."""
        for request in self.join.add_tracks:
            await self._on_add_track(request)
        await self._joined()
        return True

    async def _step(self, kind: str | None, handling: Coroutine[Any, Any, bool]) -> bool:
        """Handle one request; False ends the connection (a leave, or a refusal)."""
        try:
            return await handling
        except ConnectionClosed:
            raise
        except Exception as exc:  # e.g. an offer aiortc cannot take (VP9 only)
            error = f"{kind}: {exc}"
            log.warning("room %s: refusing the client: %s", self.room.name, error)
            self.room.refused(self, error)
            await self.close(lkm.DisconnectReason.STATE_MISMATCH)
            return False

    async def close(self, leave_reason: int | None = None, *, abort: bool = False) -> None:
        """Idempotent and bounded: say ``leave`` (if a reason), close the PCs and the socket.

        ``abort`` drops the socket without a closing handshake (a lost connection).
        """
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._close(leave_reason, abort))
        await asyncio.shield(self._closing)

    async def _close(self, leave_reason: int | None, abort: bool) -> None:
        if leave_reason is not None and not abort:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._send(protos.leave(leave_reason)), SEND_TIMEOUT)
        current = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if abort:
            self.ws.transport.abort()
        else:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), WS_CLOSE_TIMEOUT)
        await self.close_peers()
        for feed in self._feeds:  # a sender that never started did not stop its track
            feed.stop()
        self.room.connection_closed(self)

    async def close_peers(self) -> None:
        """Close the peer connections, leaving the signal WebSocket open (lost media)."""
        await asyncio.gather(*(link.close() for link in self._links))

    def announce(self, participant: lkm.ParticipantInfo) -> None:
        """Tell the client about a participant (a ParticipantUpdate), in the background."""
        self._spawn(self._send(protos.update(participant)))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        if self._closing is not None:
            coro.close()
            return
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_log_failure)

    async def _send(self, response: lkr.SignalResponse) -> None:
        await self.ws.send(response.SerializeToString())

    # -- peer connections and what they send ------------------------------------

    def _link(self, target: str) -> Link:
        """A new peer connection (``target``: "publisher" or "subscriber", LiveKit's names)."""
        network = self.room.network
        link = Link(target, loopback=self._loopback, shaper=network and network(target))
        link.pc.on("connectionstatechange", self._count_connected)
        self._links.append(link)
        self.record.peer_connections += 1
        return link

    def _count_connected(self) -> None:
        self.record.connected = max(self.record.connected, self.connected_peers)

    def _feed(self, source: MediaStreamTrack) -> Feed | None:
        """This connection's own feed of a published track (stopped when it closes)."""
        feed = self.room.feed(source, viewer=self.viewer)
        if feed is not None:
            self._feeds.append(feed)
        return feed

    def _label(self, sender: RTCRtpSender, owner: str, info: lkm.TrackInfo, feed: Feed) -> None:
        """Name a sender of a published track as LiveKit does (a=msid: its owner and sid)."""
        # No public setters: aiortc writes these two into the a=msid line.
        sender._stream_id = f"{owner}|{info.sid}"
        sender._track_id = info.sid
        if info.packet_trailer_features:
            frame_timing.stamp_output(sender, lambda: feed.last_stamp)
        self._attached.add(info.sid)

    # -- requests -------------------------------------------------------------

    async def _dispatch(self, request: lkr.SignalRequest) -> bool:
        """Handle one request; False ends the connection."""
        kind = request.WhichOneof("message")
        if kind == "offer":
            await self._on_offer(request.offer)
        elif kind == "answer":
            await self._on_answer(request.answer)
        elif kind == "trickle":
            await self._on_trickle(request.trickle)
        elif kind == "add_track":
            await self._on_add_track(request.add_track)
        elif kind == "ping_req":
            pong = lkr.Pong(
                last_ping_timestamp=request.ping_req.timestamp, timestamp=protos.now_ms()
            )
            await self._send(lkr.SignalResponse(pong_resp=pong))
        elif kind == "ping":
            await self._send(lkr.SignalResponse(pong=protos.now_ms()))
        elif kind == "mute":
            for info in self.info.tracks:
                if info.sid == request.mute.sid:
                    info.muted = request.mute.muted
        elif kind == "leave":
            self.left_cleanly = True
            return False
        else:  # subscription, track_setting, sync_state, update_metadata, ...: nothing to do
            log.debug("ignoring signal request %s", kind)
        return True

    async def _on_trickle(self, trickle: lkr.TrickleRequest) -> None:
        try:
            candidate = parse_trickle(trickle.candidateInit)
        except ValueError as exc:
            log.debug("ignoring a trickled candidate: %s", exc)
            return
        if candidate is None and not trickle.final:
            return  # an empty candidate that does not claim to end gathering
        await self._link_for(trickle.target).add_candidate(candidate)

    async def _on_add_track(self, request: lkr.AddTrackRequest) -> None:
        if self.viewer:
            log.info("room %s: ignoring a publish by viewer %s", self.room.name, self.identity)
            return
        kind = "audio" if request.type == lkm.TrackType.AUDIO else "video"
        info = protos.track(
            protos.new_sid("TR_"),
            kind,
            name=request.name,
            width=request.width,
            height=request.height,
        )
        info.mime_type = ""  # known once negotiated; the client knows its own codec
        info.source = request.source
        info.muted = request.muted
        info.simulcast = len(request.layers) > 1
        info.layers.extend(request.layers)
        self._announced[request.cid] = info
        response = lkr.TrackPublishedResponse(cid=request.cid, track=info)
        await self._send(lkr.SignalResponse(track_published=response))

    # -- media ----------------------------------------------------------------

    def _on_media(self, track: MediaStreamTrack) -> None:
        """A track of the client arrived (aiortc's "track" event on the PC it publishes on)."""
        log.debug("client %s track arrived", track.kind)
        cid = next(
            (
                c
                for c, i in self._announced.items()
                if (i.type == lkm.TrackType.AUDIO) == (track.kind == "audio")
            ),
            None,
        )
        if cid is not None:
            info = self._announced.pop(cid)
            self.info.tracks.append(info)
            subscribed = lkr.SignalResponse(
                track_subscribed=lkr.TrackSubscribed(track_sid=info.sid)
            )
            self._spawn(self._send(subscribed))
            self._spawn(self._send(protos.update(self.info)))
        self.room.track_arrived(self, track)


def _log_failure(task: asyncio.Task[None]) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None and not isinstance(exc, ConnectionClosed):
        log.warning("livekit signal task failed: %r", exc)
