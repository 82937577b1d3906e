"""LiveKit's single-peer-connection signaling (``/rtc/v1``): one PC carries both ways.

What a LiveKit server does on this path (livekit-server's
``pkg/rtc/transportmanager.go`` and ``participant.go`` with
``UseSinglePeerConnection``; ``pkg/rtc/transport.go``,
``sendUnmatchedMediaRequirement``), and the clients with it (livekit-client's
``RTCEngine.ts``, mode ``publisher-only``; the Rust core's
``rtc_engine/rtc_session.rs``, ``single_pc_mode``):

1. ``join`` has ``subscriber_primary`` false: the one PC is the publisher PC,
   and the client always offers on it; we only answer;
2. the client's first offer usually comes inside the join request
   (``publisher_offer``; we answer it right after ``join``), else right after
   it. It holds ``recvonly`` m-sections for what it will receive (three audio
   and three video at first) besides its data channels;
3. we send the server side's tracks on those: each free ``recvonly``
   m-section of the track's kind becomes ``sendonly`` in our answer, named by
   its ``a=msid`` and in the answer's ``mid_to_track_id`` (the Rust core
   resolves a received track's sid by its mid);
4. when they run short (or a track is published later), a
   ``media_sections_requirement`` asks for more: the client adds that many
   ``recvonly`` m-sections and offers again;
5. to publish, the client adds ``sendonly`` m-sections and offers again; its
   candidates all trickle to this PC (target PUBLISHER); an ``answer`` from
   the client has nothing to answer and is ignored, as the clients never
   send one here.
"""

from __future__ import annotations

import logging
from collections import Counter

from aiortc import RTCPeerConnection, RTCRtpTransceiver
from livekit.protocol import models as lkm
from livekit.protocol import rtc as lkr
from websockets.asyncio.server import ServerConnection

from . import protos, sdp, twcc
from .connection import ClientConnection, RoomSide
from .joins import Join
from .peers import Link
from .tokens import Grant

log = logging.getLogger(__name__)


class OnePeerConnection(ClientConnection):
    """A participant on ``/rtc/v1``: one peer connection; the client offers on it, we
    answer and send the server side's tracks on the m-sections it offered to receive."""

    def __init__(
        self, room: RoomSide, ws: ServerConnection, grant: Grant, *, loopback: bool, join: Join
    ) -> None:
        super().__init__(room, ws, grant, loopback=loopback, join=join)
        self.peer = self._link("publisher")
        self.peer.pc.on("track", self._on_media)
        self._receiving: set[str] = set()  # mids the client's last offer receives on
        self._mids: dict[str, str] = {}  # mid -> the server track sid it carries
        self._asked: Counter[str] = Counter()  # m-sections asked for, still missing

    async def _joined(self) -> None:
        if self.join.publisher_offer is not None:
            await self._on_offer(self.join.publisher_offer)

    def _link_for(self, target: int) -> Link:
        return self.peer

    async def _on_offer(self, offer: lkr.SessionDescription) -> None:
        log.debug("offer:\n%s", offer.sdp)
        async with self.peer.lock:
            answer_sdp = await self.peer.answer(offer.sdp, attach=self._attach)
        if self.viewer:  # it only receives: its estimate never moves (twcc, receive-only)
            answer_sdp = twcc.with_start_bitrate(answer_sdp)
        log.debug("answer:\n%s", answer_sdp)
        answer = protos.description("answer", answer_sdp, offer.id)
        answer.mid_to_track_id.update(self._mids)
        await self._send(lkr.SignalResponse(answer=answer))
        await self._ask_for_sections()

    async def _on_answer(self, answer: lkr.SessionDescription) -> None:
        log.debug("ignoring an answer: on /rtc/v1 only the client offers")

    def offer_published(self) -> None:
        """Ask the client to offer again (with more m-sections if needed): our answer
        then carries what was published since."""
        self._spawn(self._ask_for_sections(force=True))

    def _attach(self, pc: RTCPeerConnection, offer_sdp: str) -> None:
        """Put every published track not sent yet on a free m-section of its kind."""
        self._receiving = {m for m, d in sdp.directions(offer_sdp).items() if d == "recvonly"}
        free = self._free(pc)
        owner, published = self.room.published()
        for info, source in published:
            if info.sid in self._attached:
                continue
            transceiver = next((t for t in free if t.kind == _kind(info)), None)
            if transceiver is None or transceiver.mid is None:
                continue  # asked for in _ask_for_sections
            feed = self._feed(source)
            if feed is None:
                continue
            free.remove(transceiver)
            transceiver.direction = "sendonly"
            transceiver.sender.replaceTrack(feed)
            self._label(transceiver.sender, owner, info, feed)
            self._mids[transceiver.mid] = info.sid

    def _free(self, pc: RTCPeerConnection) -> list[RTCRtpTransceiver]:
        """The transceivers of m-sections the client receives on that carry nothing yet."""
        return [
            t for t in pc.getTransceivers() if t.mid in self._receiving and t.sender.track is None
        ]

    async def _ask_for_sections(self, *, force: bool = False) -> None:
        """``media_sections_requirement`` for what the free m-sections cannot carry."""
        needed: Counter[str] = Counter(
            _kind(info) for info, _ in self.room.published()[1] if info.sid not in self._attached
        )
        needed.subtract(Counter(t.kind for t in self._free(self.peer.pc)))
        needed = +needed  # the kinds still short
        more = needed - self._asked
        self._asked = needed
        if not (force or more):
            return
        requirement = lkr.MediaSectionsRequirement(
            num_audios=more["audio"], num_videos=more["video"]
        )
        await self._send(lkr.SignalResponse(media_sections_requirement=requirement))


def _kind(info: lkm.TrackInfo) -> str:
    return "audio" if info.type == lkm.TrackType.AUDIO else "video"
