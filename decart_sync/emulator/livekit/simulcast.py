"""A publisher's simulcast, accepted as a LiveKit server accepts it; the top layer goes on.

LiveKit clients publish a camera as simulcast by default: the full picture and
smaller copies (rids ``f``, ``h``, ``q``), each its own RTP stream on one
m-section. A LiveKit server accepts them all and forwards one to each
subscriber; aiortc can receive only one stream per m-section, so left alone
it answers without simulcast and the client encodes one layer, which is not
what the client would do against the service. So the answer accepts every
offered rid, the client encodes every layer, and `Layers` lets only
the best one through to aiortc (the rest are dropped on arrival, after the
transport-wide feedback has counted them: `twcc`).
"""

from __future__ import annotations

import re

from . import sdp
from .twcc import extension_id, header_extensions

RID_URI = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
REPAIRED_URI = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"
BEST_FIRST = ("f", "h", "q")  # LiveKit's names: full, half, quarter


def offered(offer: str) -> dict[str, list[str]]:
    """The rids each m-section (by mid) offers to send as simulcast."""
    return {
        key: [rid.lstrip("~") for rid in re.split("[;,]", lines[0].split()[1])]
        for key, lines in sdp.attributes(offer, "simulcast").items()
        if lines and lines[0].startswith("send ")
    }


def accept(offer: str, answer: str) -> str:
    """``answer`` receiving every layer ``offer`` sends as simulcast, and taking the rid
    header extensions on every video m-section that offers them, as LiveKit's
    publisher PC does (it registers them for video: ``pkg/rtc/config.go``). Without
    them on a bundle whose first answer had no simulcast (``/rtc/v1``: it holds only
    what the client receives), libwebrtc refuses its own next offer with a simulcast
    camera ("negotiates simulcast but does not negotiate the RID RTP header extension")."""
    layers = offered(offer)
    uris = (RID_URI, REPAIRED_URI)
    extmaps = sdp.attributes(offer, "extmap")
    parts = sdp.sections(answer)
    size = sum(map(len, parts))
    for section in parts[1:]:
        key = sdp.mid(section) or ""
        if not (section[0].startswith("m=video") and sdp.receives_rtp(section)):
            continue
        taken = {line.split()[-1] for line in section if line.startswith("a=extmap:")}
        section += [
            f"a=extmap:{line}"
            for line in extmaps.get(key, [])
            if line.split()[-1] in uris and line.split()[-1] not in taken
        ]
        rids = layers.get(key)
        if rids and sdp.direction(section) in ("recvonly", "sendrecv"):
            section += [f"a=rid:{rid} recv" for rid in rids]
            section.append(f"a=simulcast:recv {';'.join(rids)}")
    return sdp.join(parts) if sum(map(len, parts)) > size else answer


class Layers:
    """Which RTP streams of a simulcast publisher go on: the best rid seen."""

    def __init__(self, offer: str) -> None:
        self.rid_id = extension_id(offer, RID_URI)
        self._rids: dict[int, str] = {}  # ssrc -> rid, learnt from the packets that say
        self._best: str | None = None

    def keep(self, packet: bytes) -> bool:
        if self.rid_id is None or len(packet) < 12:
            return True
        ssrc = int.from_bytes(packet[8:12], "big")
        rid = self._rids.get(ssrc)
        if rid is None:
            named = header_extensions(packet).get(self.rid_id)
            if named is None:
                return True  # not simulcast (audio, or a single stream)
            rid = self._rids[ssrc] = named.decode(errors="replace")
            self._best = min(self._rids.values(), key=_rank)
        return rid == self._best


def _rank(rid: str) -> int:
    return BEST_FIRST.index(rid) if rid in BEST_FIRST else len(BEST_FIRST)
