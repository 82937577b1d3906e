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
    """``answer`` receiving every layer ``offer`` sends as simulcast."""
    layers = offered(offer)
    if not layers:
        return answer
    ids = [(extension_id(offer, uri), uri) for uri in (RID_URI, REPAIRED_URI)]
    parts = sdp.sections(answer)
    for section in parts[1:]:
        rids = layers.get(sdp.mid(section) or "")
        if rids and sdp.receives_rtp(section):
            section += [f"a=extmap:{i} {uri}" for i, uri in ids if i is not None]
            section += [f"a=rid:{rid} recv" for rid in rids]
            section.append(f"a=simulcast:recv {';'.join(rids)}")
    return sdp.join(parts)


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
