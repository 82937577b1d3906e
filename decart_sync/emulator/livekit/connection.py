"""One participant's signal WebSocket and its two peer connections.

The signal protocol is LiveKit's classic (v0, two-PC) one: binary WebSocket
frames, each a ``SignalRequest`` from the client or a ``SignalResponse`` from
us. In order, for a client that joins, publishes its camera and watches the
room's inference server:

1. we send ``join`` (JoinResponse, ``subscriber_primary``) and at once an
   ``offer`` for the subscriber PC: two data channels like LiveKit's, plus the
   tracks the server-side participant published, each with the stream id
   ``"{PA_sid}|{TR_sid}"`` by which the client finds its owner;
2. the client answers (``answer``) and trickles its candidates (``trickle``,
   JSON ``{candidate, sdpMid, sdpMLineIndex}``, target SUBSCRIBER);
3. to publish, it sends ``add_track`` (we reply ``track_published`` with a new
   ``TR_`` sid), then ``offer`` on the publisher PC (we reply ``answer``) and
   trickles (target PUBLISHER); when its media arrives we send
   ``track_subscribed`` and a ``update`` (ParticipantUpdate) with its tracks;
4. meanwhile ``ping_req`` -> ``pong_resp`` (and legacy ``ping`` -> ``pong``);
   its ``leave`` ends the connection, so does our ``leave``.

A viewer (a token that cannot publish) follows 1, 2 and 4 only: its
``add_track`` is ignored, as LiveKit ignores a publish without permission.

A connection knows its room only as a `RoomSide` (what `room.Room`
offers its connections); the room calls the connection's public methods.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any, Protocol

from aiortc import MediaStreamTrack
from google.protobuf.message import DecodeError
from livekit.protocol import models as lkm
from livekit.protocol import rtc as lkr
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from .. import frame_timing
from . import protos
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
        """The server participant's sid and its tracks, for the subscriber PC."""
        ...

    def feed(self, track: MediaStreamTrack, *, viewer: bool) -> Feed | None:
        """What this connection's subscriber PC sends of a published track; None: nothing."""
        ...

    def refused(self, connection: ClientConnection, error: str) -> None:
        """The connection was turned away for ``error`` (it closes next)."""
        ...

    def track_arrived(self, connection: ClientConnection, track: MediaStreamTrack) -> None:
        """A track the connection's participant published arrived on the publisher PC."""
        ...

    def connection_closed(self, connection: ClientConnection) -> None:
        """The connection is closed: its PCs, its socket and its tasks are done."""
        ...


class ClientConnection:
    """A participant of the room over one signal WebSocket (see the module doc):
    the client, or a subscribe-only viewer (``viewer``: its token cannot publish)."""

    def __init__(
        self, room: RoomSide, ws: ServerConnection, grant: Grant, *, loopback: bool
    ) -> None:
        self.room = room
        self.ws = ws
        self.viewer = not grant.can_publish
        self.info = protos.participant(
            protos.new_sid("PA_"), grant.identity, name=grant.name, can_publish=grant.can_publish
        )
        network = room.network
        self.publisher = Link(
            "publisher", loopback=loopback, shaper=network and network("publisher")
        )
        self.subscriber = Link(
            "subscriber", loopback=loopback, shaper=network and network("subscriber")
        )
        self.publisher.pc.on("track", self._on_media)
        self._announced: dict[str, lkm.TrackInfo] = {}  # cid -> info, until its media arrives
        self._attached: set[str] = set()  # server track sids on the subscriber PC
        self._feeds: list[Feed] = []
        self._channels_made = False
        self._offer_id = 0
        self._renegotiate = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing: asyncio.Future[None] | None = None
        self.left_cleanly = False  # the client said ``leave``

    @property
    def identity(self) -> str:
        return self.info.identity

    @property
    def live_peers(self) -> int:
        return sum(
            link.pc.connectionState != "closed" for link in (self.publisher, self.subscriber)
        )

    @property
    def live_tasks(self) -> int:
        return sum(not task.done() for task in self._tasks)

    # -- lifecycle ------------------------------------------------------------

    async def serve(self) -> None:
        """Join, then read requests until the client leaves or the socket closes."""
        try:
            await self._send(protos.join(self.room.info(), self.info, self.room.others()))
            self.negotiate_subscriber()
            async for message in self.ws:
                if isinstance(message, str):
                    continue  # the JSON flavour of the protocol is not served
                try:
                    request = lkr.SignalRequest.FromString(message)
                except DecodeError as exc:
                    log.debug("ignoring an undecodable signal request: %s", exc)
                    continue
                try:
                    if not await self._dispatch(request):
                        break
                except Exception as exc:  # e.g. an offer aiortc cannot take (VP9 only)
                    error = f"{request.WhichOneof('message')}: {exc}"
                    log.warning("room %s: refusing the client: %s", self.room.name, error)
                    self.room.refused(self, error)
                    await self.close(lkm.DisconnectReason.STATE_MISMATCH)
                    return
        except ConnectionClosed:
            pass
        finally:
            await self.close()

    async def close(self, leave_reason: int | None = None, *, abort: bool = False) -> None:
        """Idempotent and bounded: say ``leave`` (if a reason), close both PCs and the socket.

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
        await asyncio.gather(self.publisher.close(), self.subscriber.close())
        for feed in self._feeds:  # a sender that never started did not stop its track
            feed.stop()
        self.room.connection_closed(self)

    async def close_peers(self) -> None:
        """Close both peer connections, leaving the signal WebSocket open (lost media)."""
        await asyncio.gather(self.publisher.close(), self.subscriber.close())

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

    # -- requests -------------------------------------------------------------

    async def _dispatch(self, request: lkr.SignalRequest) -> bool:
        """Handle one request; False ends the connection."""
        kind = request.WhichOneof("message")
        if kind == "offer":
            await self._on_publisher_offer(request.offer)
        elif kind == "answer":
            await self._on_subscriber_answer(request.answer)
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

    async def _on_publisher_offer(self, offer: lkr.SessionDescription) -> None:
        log.debug("publisher offer:\n%s", offer.sdp)
        async with self.publisher.lock:
            sdp = await self.publisher.answer(offer.sdp)
        log.debug("publisher answer:\n%s", sdp)
        await self._send(lkr.SignalResponse(answer=protos.description("answer", sdp, offer.id)))

    async def _on_subscriber_answer(self, answer: lkr.SessionDescription) -> None:
        async with self.subscriber.lock:
            if self.subscriber.pc.signalingState != "have-local-offer":
                log.debug("ignoring a subscriber answer with no offer out")
                return
            await self.subscriber.accept(answer.sdp)
        if self._renegotiate:
            self._renegotiate = False
            self.negotiate_subscriber()

    async def _on_trickle(self, trickle: lkr.TrickleRequest) -> None:
        try:
            candidate = parse_trickle(trickle.candidateInit)
        except ValueError as exc:
            log.debug("ignoring a trickled candidate: %s", exc)
            return
        if candidate is None and not trickle.final:
            return  # an empty candidate that does not claim to end gathering
        subscriber = trickle.target == lkr.SignalTarget.SUBSCRIBER
        await (self.subscriber if subscriber else self.publisher).add_candidate(candidate)

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
        """A track of the client arrived on the publisher PC (aiortc's "track" event)."""
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

    def negotiate_subscriber(self) -> None:
        """(Re)offer the subscriber PC with every track the server side published."""
        self._spawn(self._offer_subscriber())

    async def _offer_subscriber(self) -> None:
        link = self.subscriber
        async with link.lock:
            if link.closed:
                return
            if link.pc.signalingState != "stable":
                self._renegotiate = True  # offer again once the answer is in
                return
            if not self._channels_made:  # LiveKit's own: something to negotiate, always
                link.pc.createDataChannel("_reliable", ordered=True)
                link.pc.createDataChannel("_lossy", ordered=False, maxRetransmits=0)
                self._channels_made = True
            owner, published = self.room.published()
            for info, source in published:
                if info.sid in self._attached:
                    continue
                feed = self.room.feed(source, viewer=self.viewer)
                if feed is None:
                    continue
                self._feeds.append(feed)
                transceiver = link.pc.addTransceiver(feed, direction="sendonly")
                if info.packet_trailer_features:
                    frame_timing.stamp_output(transceiver.sender, lambda f=feed: f.last_stamp)
                # The a=msid stream id names the owner and the track (no public setter).
                transceiver.sender._stream_id = f"{owner}|{info.sid}"
                self._attached.add(info.sid)
            sdp = await link.offer()
            self._offer_id += 1
        offer = protos.description("offer", sdp, self._offer_id)
        await self._send(lkr.SignalResponse(offer=offer))


def _log_failure(task: asyncio.Task[None]) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None and not isinstance(exc, ConnectionClosed):
        log.warning("livekit signal task failed: %r", exc)
