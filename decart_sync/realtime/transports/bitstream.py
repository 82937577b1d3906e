"""What the first packet of a video frame tells a receiver, read from VP8 and H.264 payloads.

`transports.recovery` needs two facts it can prove before it lets a frame
reach the decoder after a loss: that a packet begins a frame (and whether
that frame is a keyframe, which needs no other), and where the frame stands
in the sender's count of frames, so that a frame which follows the last one
decoded can be told from one whose reference was lost:

- VP8 (RFC 7741): the payload descriptor's S bit with partition 0 begins a
  frame; its picture id counts frames (libwebrtc and aiortc send one).
- H.264 (RFC 6184, ITU-T H.264 7.3): a frame begins with its parameter sets
  or with a slice whose ``first_mb_in_slice`` is 0; a keyframe with its
  sequence parameter set (libwebrtc and x264 send one with every IDR picture).
  ``frame_num`` counts reference pictures: a picture following a reference
  picture has the next number, one following a non-reference picture the
  same. Reading it needs the SPS's ``log2_max_frame_num``, so `H264Reader`
  keeps the parameter sets it has seen.

Pure functions of the bytes; nothing here knows of aiortc.
"""

from __future__ import annotations

from typing import NamedTuple


class Start(NamedTuple):
    """A packet that begins a frame."""

    key: bool  # the frame decodes without any other
    number: int | None = None  # the frame's number in the sender's count (None: not known)
    modulus: int = 0  # where that count wraps
    reference: bool = True  # later frames may refer to this one

    def next_count(self) -> int | None:
        """The count the frame after this one carries, if nothing between was lost."""
        if self.number is None:
            return None
        return (self.number + 1) % self.modulus if self.reference else self.number


def follows(before: Start, after: Start) -> bool:
    """``after`` refers to no frame sent since ``before`` that could be missing."""
    expected = before.next_count()
    return expected is not None and after.modulus == before.modulus and after.number == expected


def vp8_start(payload: bytes) -> Start | None:
    """RFC 7741 4.2: the descriptor (S bit, partition index, picture id), then the P bit of
    the VP8 payload header."""
    try:
        first, offset = payload[0], 1
        if not first & 0x10 or first & 0x07:
            return None
        number, modulus = None, 0
        if first & 0x80:  # extensions: picture id (7 or 15 bits), TL0PICIDX, TID/KEYIDX
            extensions, offset = payload[1], 2
            if extensions & 0x80:
                if payload[offset] & 0x80:
                    number, modulus = (payload[offset] & 0x7F) << 8 | payload[offset + 1], 1 << 15
                    offset += 2
                else:
                    number, modulus = payload[offset], 1 << 7
                    offset += 1
            offset += bool(extensions & 0x40) + bool(extensions & 0x30)
        return Start(key=not payload[offset] & 0x01, number=number, modulus=modulus)
    except IndexError:
        return None


SLICE, IDR, SEI, SPS, PPS, AUD = 1, 5, 6, 7, 8, 9
STAP_A, FU_A = 24, 28
# High profiles carry chroma format and bit depths (and maybe scaling lists) before
# log2_max_frame_num in their SPS (H.264 7.3.2.1.1).
HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}


class _Bits:
    """An RBSP read bit by bit (emulation prevention bytes removed); IndexError at the end."""

    def __init__(self, data: bytes) -> None:
        self.data = data.replace(b"\x00\x00\x03", b"\x00\x00")
        self.at = 0

    def bit(self) -> int:
        value = self.data[self.at >> 3] >> (7 - (self.at & 7)) & 1
        self.at += 1
        return value

    def bits(self, count: int) -> int:
        value = 0
        for _ in range(count):
            value = value << 1 | self.bit()
        return value

    def ue(self) -> int:
        zeros = 0
        while not self.bit():
            zeros += 1
            if zeros > 31:
                raise IndexError("not an Exp-Golomb code")
        return (1 << zeros) - 1 + self.bits(zeros)

    def se(self) -> int:
        value = self.ue()
        return (value + 1) // 2 if value & 1 else -(value // 2)


class H264Reader:
    """One H.264 stream's parameter sets, learnt from its packets (`learn`), and what a
    packet that begins a frame says of it (`start`)."""

    def __init__(self) -> None:
        self._sps: dict[int, tuple[int, bool]] = {}  # id: (log2_max_frame_num, colour planes)
        self._pps: dict[int, int] = {}  # id: its SPS's id

    def learn(self, payload: bytes) -> None:
        """Keep the parameter sets this packet carries (single or aggregated)."""
        for unit in _units(payload):
            kind = unit[0] & 0x1F
            try:
                if kind == SPS:
                    self._read_sps(unit[1:])
                elif kind == PPS:
                    bits = _Bits(unit[1:40])
                    pps_id = bits.ue()
                    self._pps[pps_id] = bits.ue()
            except IndexError:
                continue  # a unit cut short: nothing learnt from it

    def _read_sps(self, body: bytes) -> int:
        """Keep an SPS; returns its log2_max_frame_num."""
        bits = _Bits(body[:64])
        profile = bits.bits(8)
        bits.bits(16)  # constraint flags, level
        sps_id = bits.ue()
        planes = False
        if profile in HIGH_PROFILES:
            chroma = bits.ue()
            if chroma == 3:
                planes = bool(bits.bit())
            bits.ue()  # bit depths
            bits.ue()
            bits.bit()  # qpprime_y_zero_transform_bypass
            if bits.bit():  # seq_scaling_matrix_present: skip the lists
                for index in range(8 if chroma != 3 else 12):
                    if bits.bit():
                        _skip_scaling_list(bits, 16 if index < 6 else 64)
        log2_max_frame_num = bits.ue() + 4
        self._sps[sps_id] = (log2_max_frame_num, planes)
        return log2_max_frame_num

    def start(self, payload: bytes) -> Start | None:
        """The frame this packet begins, or None when it does not provably begin one: a
        frame's later packet, a slice after the first, parameter sets or SEI that may
        follow others. An access unit delimiter always begins a frame."""
        units = _units(payload, whole=False)
        delimited = False
        while units and units[0][0] & 0x1F == AUD:
            units, delimited = units[1:], True
        kind = units[0][0] & 0x1F if units else None
        if kind == SPS:  # a keyframe: its IDR picture's frame_num is 0
            try:
                log2_max_frame_num = self._read_sps(units[0][1:])
            except IndexError:
                return Start(key=True)
            return Start(key=True, number=0, modulus=1 << log2_max_frame_num)
        if kind == SLICE:
            return self._slice_start(units[0])
        # An IDR slice follows its parameter sets, when the sender sent them; the others
        # may follow other units of the frame.
        return Start(key=False) if delimited else None

    def _slice_start(self, unit: bytes) -> Start | None:
        try:
            bits = _Bits(unit[1:24])
            if bits.ue() != 0:
                return None  # first_mb_in_slice: not the frame's first slice
            bits.ue()  # slice_type
            sps = self._sps.get(self._pps.get(bits.ue(), -1))
            if sps is None:
                return Start(key=False)  # a start whose number cannot be read
            log2_max_frame_num, planes = sps
            if planes:
                bits.bits(2)  # colour_plane_id
            number = bits.bits(log2_max_frame_num)
        except IndexError:
            return None
        reference = bool(unit[0] & 0x60)  # nal_ref_idc
        return Start(key=False, number=number, modulus=1 << log2_max_frame_num, reference=reference)


def _units(payload: bytes, whole: bool = True) -> list[bytes]:
    """The NAL units a packet carries: one, those of a STAP-A, or a FU-A's first part
    rebuilt as the start of its unit (``whole=False``; with ``whole`` only complete units)."""
    if not payload:
        return []
    kind = payload[0] & 0x1F
    if 1 <= kind <= 23:
        return [payload]
    if kind == STAP_A:
        units, at = [], 1
        while at + 2 <= len(payload):
            size = payload[at] << 8 | payload[at + 1]
            if size == 0 or at + 2 + size > len(payload):
                break
            units.append(payload[at + 2 : at + 2 + size])
            at += 2 + size
        return units
    if kind == FU_A and not whole and len(payload) > 2 and payload[1] & 0x80:
        return [bytes([payload[0] & 0xE0 | payload[1] & 0x1F]) + payload[2:]]
    return []


def _skip_scaling_list(bits: _Bits, size: int) -> None:
    last = following = 8
    for _ in range(size):
        if following:
            following = (last + bits.se() + 256) % 256
        last = following or last
