"""LiveKit's classic signaling (``/rtc``, v0): two peer connections per participant.

In order, for a client that joins, publishes its camera and watches the room's
inference server (what `connection` describes besides):

1. after ``join`` (``subscriber_primary``) we send at once an ``offer`` for
   the subscriber PC: two data channels like LiveKit's, plus the tracks the
   server-side participant published;
2. the client answers (``answer``) and trickles its candidates (target
   SUBSCRIBER);
3. to publish, after ``add_track`` it sends an ``offer`` on the publisher PC
   (we reply ``answer``) and trickles (target PUBLISHER).

A track the server side publishes later goes out in a new subscriber offer.
"""

from __future__ import annotations

import logging

from livekit.protocol import rtc as lkr
from websockets.asyncio.server import ServerConnection

from . import protos
from .connection import ClientConnection, RoomSide
from .joins import Join
from .peers import Link
from .tokens import Grant

log = logging.getLogger(__name__)


class TwoPeerConnection(ClientConnection):
    """A participant on ``/rtc``: a publisher PC (the client offers) and a subscriber
    PC (we offer)."""

    def __init__(
        self, room: RoomSide, ws: ServerConnection, grant: Grant, *, loopback: bool, join: Join
    ) -> None:
        super().__init__(room, ws, grant, loopback=loopback, join=join)
        self.publisher = self._link("publisher")
        self.subscriber = self._link("subscriber")
        self.publisher.pc.on("track", self._on_media)
        self._channels_made = False
        self._offer_id = 0
        self._renegotiate = False

    async def _joined(self) -> None:
        # We offer the subscriber PC at once (as LiveKit does), so the client's connect()
        # completes when that PC connects, before anything is published.
        self.offer_published()

    def _link_for(self, target: int) -> Link:
        return self.subscriber if target == lkr.SignalTarget.SUBSCRIBER else self.publisher

    async def _on_offer(self, offer: lkr.SessionDescription) -> None:
        log.debug("publisher offer:\n%s", offer.sdp)
        async with self.publisher.lock:
            sdp = await self.publisher.answer(offer.sdp)
        log.debug("publisher answer:\n%s", sdp)
        await self._send(lkr.SignalResponse(answer=protos.description("answer", sdp, offer.id)))

    async def _on_answer(self, answer: lkr.SessionDescription) -> None:
        async with self.subscriber.lock:
            if self.subscriber.pc.signalingState != "have-local-offer":
                log.debug("ignoring a subscriber answer with no offer out")
                return
            await self.subscriber.accept(answer.sdp)
        if self._renegotiate:
            self._renegotiate = False
            self.offer_published()

    def offer_published(self) -> None:
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
                feed = self._feed(source)
                if feed is None:
                    continue
                transceiver = link.pc.addTransceiver(feed, direction="sendonly")
                self._label(transceiver.sender, owner, info, feed)
            sdp = await link.offer()
            self._offer_id += 1
        offer = protos.description("offer", sdp, self._offer_id)
        await self._send(lkr.SignalResponse(offer=offer))
