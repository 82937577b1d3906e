"""The emulator's acceptance of a publisher's simulcast (emulator/livekit/simulcast.py),
pure logic; tests/e2e/test_livekit.py drives it with a real LiveKit client."""

from __future__ import annotations

import struct

from decart_sync.emulator.livekit import simulcast

RID = simulcast.RID_URI

OFFER = "\r\n".join(
    [
        "v=0",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111",
        "a=mid:0",
        "m=video 9 UDP/TLS/RTP/SAVPF 96",
        "a=mid:1",
        f"a=extmap:10 {RID}",
        f"a=extmap:11 {simulcast.REPAIRED_URI}",
        "a=rid:f send",
        "a=rid:h send",
        "a=rid:q send",
        "a=simulcast:send f;h;q",
    ]
)
ANSWER = "\r\n".join(
    [
        "v=0",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111",
        "a=mid:0",
        "m=video 9 UDP/TLS/RTP/SAVPF 96",
        "a=mid:1",
    ]
)


def packet(ssrc: int, rid: str | None) -> bytes:
    if rid is None:
        return struct.pack("!BBHLL", 0x80, 96, 1, 0, ssrc) + b"payload"
    element = bytes([10 << 4 | len(rid) - 1]) + rid.encode()
    element += bytes(-len(element) % 4)
    header = struct.pack("!BBHLL", 0x90, 96, 1, 0, ssrc)
    return header + struct.pack("!HH", 0xBEDE, len(element) // 4) + element + b"payload"


def test_the_answer_receives_every_offered_layer() -> None:
    audio, video = simulcast.accept(OFFER, ANSWER).split("m=")[1:]
    assert "rid" not in audio and "simulcast" not in audio
    for line in ("a=rid:f recv", "a=rid:h recv", "a=rid:q recv", "a=simulcast:recv f;h;q"):
        assert line in video.splitlines()
    assert f"a=extmap:10 {RID}" in video and "a=extmap:11 " in video
    assert simulcast.accept(ANSWER, ANSWER) == ANSWER  # nothing offered: unchanged


def test_video_sections_take_the_rid_extensions_without_simulcast() -> None:
    # /rtc/v1: the first offer holds only what the client receives; unless the bundle
    # takes the rid extensions then, libwebrtc cannot offer a simulcast camera later.
    offer = "\r\n".join(
        [
            "v=0",
            "m=audio 9 UDP/TLS/RTP/SAVPF 111",
            "a=mid:0",
            f"a=extmap:10 {RID}",
            "a=recvonly",
            "m=video 9 UDP/TLS/RTP/SAVPF 96",
            "a=mid:1",
            f"a=extmap:10 {RID}",
            f"a=extmap:11 {simulcast.REPAIRED_URI}",
            "a=recvonly",
        ]
    )
    answer = ANSWER.replace("a=mid:1", "a=mid:1\r\na=sendonly")
    audio, video = simulcast.accept(offer, answer).split("m=")[1:]
    assert "extmap" not in audio
    assert f"a=extmap:10 {RID}" in video and f"a=extmap:11 {simulcast.REPAIRED_URI}" in video
    assert "rid:" not in video and "simulcast" not in video


def test_only_the_best_layer_seen_goes_on() -> None:
    layers = simulcast.Layers(OFFER)
    assert layers.keep(packet(1, "q"))  # the only one so far
    assert layers.keep(packet(2, "f"))  # better: from now on the only one
    assert not layers.keep(packet(1, "q")) and not layers.keep(packet(1, None))
    assert not layers.keep(packet(3, "h"))
    assert layers.keep(packet(2, None))  # its ssrc is known: rid no longer needed
    assert layers.keep(packet(9, None))  # a stream that names no rid (audio) goes on
