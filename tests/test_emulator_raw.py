"""The emulator driven by a raw client: websocket-client signaling plus a bare aiortc peer.

Nothing of the decart_sync client is used here, so these tests pin the
emulator's side of the protocol on their own; the transforms are checked bit
for bit against an independent, exact (Fraction) statement of the spec.
"""

from __future__ import annotations

import asyncio
import base64
import fractions
import io
import json
import math
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import av
import numpy as np
import pytest
import websocket
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, VideoStreamTrack
from av import AudioFrame, VideoFrame

from decart_sync._portal import Portal
from decart_sync.emulator import Emulator, Faults, transforms
from decart_sync.emulator.cli import main as emulator_main
from decart_sync.emulator.images import ImageError, decode_image
from decart_sync.emulator.media import LevelMeter
from decart_sync.models import ModelDefinition

pytestmark = pytest.mark.timeout(60)

SMALL = ModelDefinition("raw-small", fps=25, width=320, height=192)
KEY = "raw-key"
TOLERANCE = 12.0  # mean absolute error through VP8, on smooth content


# -- fixtures and helpers -----------------------------------------------------


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(models={SMALL.name: SMALL}) as emulator:
        yield emulator


def gradient(width: int = SMALL.width, height: int = SMALL.height) -> np.ndarray:
    ys, xs = np.mgrid[0:height, 0:width]
    r = 40 + xs * 170 // width
    g = 40 + ys * 170 // height
    b = 200 - (xs + ys) * 150 // (width + height)
    return np.stack([r, g, b], axis=-1).astype(np.uint8)


def png_base64(rgb: np.ndarray) -> str:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="image2pipe") as container:
        stream = container.add_stream("png")
        stream.width, stream.height, stream.pix_fmt = rgb.shape[1], rgb.shape[0], "rgb24"
        for packet in stream.encode(VideoFrame.from_ndarray(rgb, format="rgb24")):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def mean_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


class Signaling:
    """The client's WebSocket, driven from the test thread."""

    def __init__(self, url: str) -> None:
        self.ws = websocket.create_connection(url, timeout=10, suppress_origin=True)
        self.seen: list[dict[str, Any]] = []

    def send(self, message: dict[str, Any] | str) -> None:
        self.ws.send(message if isinstance(message, str) else json.dumps(message))

    def recv(self, timeout: float = 10.0) -> dict[str, Any]:
        self.ws.settimeout(timeout)
        message = json.loads(self.ws.recv())
        self.seen.append(message)
        return message

    def expect(self, kind: str, timeout: float = 10.0) -> dict[str, Any]:
        """The next message of type ``kind``, skipping others (they stay in ``seen``)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {kind!r} within {timeout} s; saw {self.kinds()}")
            message = self.recv(remaining)
            if message.get("type") == kind:
                return message

    def expect_closed(self, timeout: float = 10.0) -> None:
        """Reads until the server closes the socket (a close frame or a dead connection)."""
        self.ws.settimeout(timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                opcode, _ = self.ws.recv_data(control_frame=True)
            except (websocket.WebSocketConnectionClosedException, ConnectionError, OSError):
                return
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return
        raise AssertionError("the server did not close the socket")

    def kinds(self) -> list[str]:
        return [str(m.get("type")) for m in self.seen]

    def close(self) -> None:
        self.ws.close(timeout=1)
        self.ws.shutdown()  # close() skips the socket when the server already closed


def stream_url(emu: Emulator, key: str | None = KEY, model: str = SMALL.name) -> str:
    query = f"model={model}&user_agent=raw-test"
    if key is not None:
        query += f"&api_key={key}"
    return f"{emu.url}/v1/stream?{query}"


@pytest.fixture
def signaling(emu: Emulator) -> Iterator[Callable[..., Signaling]]:
    opened: list[Signaling] = []

    def _open(url: str | None = None) -> Signaling:
        channel = Signaling(url or stream_url(emu))
        opened.append(channel)
        return channel

    yield _open
    for channel in opened:
        channel.close()


class PatternTrack(VideoStreamTrack):
    """A camera that shows one fixed picture at 30 fps."""

    def __init__(self, rgb: np.ndarray) -> None:
        super().__init__()
        self._rgb = rgb

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = VideoFrame.from_ndarray(self._rgb, format="rgb24")
        frame.pts, frame.time_base = pts, time_base
        return frame


class ToneTrack(AudioStreamTrack):
    """A microphone: a 440 Hz tone at ``amplitude`` (0: silence), stereo s16.

    Pacing, timestamps and rate (20 ms frames) come from aiortc's silent track.
    """

    def __init__(self) -> None:
        super().__init__()
        self.amplitude = 0.0

    async def recv(self) -> AudioFrame:
        silence = await super().recv()
        assert isinstance(silence, AudioFrame) and silence.pts is not None
        rate = silence.sample_rate
        t = (silence.pts + np.arange(silence.samples)) / rate
        mono = (self.amplitude * 32767 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
        tone = AudioFrame.from_ndarray(np.repeat(mono, 2).reshape(1, -1), "s16", "stereo")
        tone.sample_rate, tone.pts, tone.time_base = rate, silence.pts, silence.time_base
        return tone


class RawPeer:
    """A bare aiortc peer on its own loop thread; received frames land in a queue.

    ``send``: a picture to send as a camera (sendrecv video), or None (recvonly
    video). ``audio``: "recv" (a viewer) or "tone" (the avatar's microphone).
    """

    def __init__(self, send: np.ndarray | None, *, audio: str | None = None) -> None:
        self.portal = Portal("raw-test-peer").start()
        self.frames: queue.Queue[np.ndarray] = queue.Queue()
        self.states: queue.Queue[str] = queue.Queue()
        self.audio_frames = 0
        self.tone = ToneTrack() if audio == "tone" else None
        self._tasks: set[asyncio.Task[None]] = set()
        self.pc: RTCPeerConnection = self.portal.call(self._create(send, audio), 10)

    async def _create(self, send: np.ndarray | None, audio: str | None) -> RTCPeerConnection:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        if send is not None:
            pc.addTransceiver(PatternTrack(send), direction="sendrecv")
        else:
            pc.addTransceiver("video", direction="recvonly")
        if self.tone is not None:
            pc.addTransceiver(self.tone, direction="sendrecv")
        elif audio == "recv":
            pc.addTransceiver("audio", direction="recvonly")
        pc.on("track", self._on_track)
        pc.on("connectionstatechange", lambda: self.states.put(pc.connectionState))
        return pc

    def _on_track(self, track: MediaStreamTrack) -> None:
        task = asyncio.ensure_future(self._collect(track))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _collect(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                if isinstance(frame, VideoFrame):
                    self.frames.put(frame.to_ndarray(format="rgb24"))
                else:
                    self.audio_frames += 1
        except MediaStreamError:
            pass

    def offer(self) -> str:
        async def make() -> str:
            await self.pc.setLocalDescription(await self.pc.createOffer())
            return self.pc.localDescription.sdp

        return self.portal.call(make(), 10)

    def accept(self, answer: str) -> None:
        description = RTCSessionDescription(sdp=answer, type="answer")
        self.portal.call(self.pc.setRemoteDescription(description), 10)

    def wait_state(self, wanted: set[str], timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            state = self.states.get(timeout=max(0.01, deadline - time.monotonic()))
            if state in wanted:
                return state

    def wait_frame(self, predicate: Callable[[np.ndarray], bool], timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        last: np.ndarray | None = None
        while time.monotonic() < deadline:
            try:
                last = self.frames.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if predicate(last):
                return
        described = "none" if last is None else f"mean {last.reshape(-1, 3).mean(0).round(1)}"
        raise AssertionError(f"no matching frame within {timeout} s (last: {described})")

    def close(self) -> None:
        if self.portal.running:
            self.portal.call(self.pc.close(), 5)
            self.portal.stop()


@pytest.fixture
def peers() -> Iterator[Callable[..., RawPeer]]:
    made: list[RawPeer] = []

    def _make(send: np.ndarray | None, **options: Any) -> RawPeer:
        peer = RawPeer(send, **options)
        made.append(peer)
        return peer

    yield _make
    for peer in made:
        peer.close()


def split_candidates(sdp: str) -> tuple[str, list[dict[str, Any]]]:
    """The SDP without its candidates, and those candidates as browser-style payloads."""
    kept, candidates, mid, index = [], [], None, -1
    for line in sdp.split("\r\n"):
        if line.startswith("m="):
            index += 1
        elif line.startswith("a=mid:"):
            mid = line[len("a=mid:") :]
        if line.startswith("a=candidate:"):
            candidates.append({"candidate": line[2:], "sdpMLineIndex": index, "sdpMid": mid})
        elif line != "a=end-of-candidates":
            kept.append(line)
    return "\r\n".join(kept), candidates


# -- transforms: exact arithmetic -----------------------------------------------


def _round_half_up(value: fractions.Fraction) -> int:
    return math.floor(value + fractions.Fraction(1, 2))


def _exact(weights: tuple[str, str, str], pixel: np.ndarray) -> int:
    terms = (fractions.Fraction(w) * int(c) for w, c in zip(weights, pixel, strict=True))
    total = sum(terms, fractions.Fraction(0))
    return min(255, _round_half_up(total))


RANDOM = np.random.default_rng(7).integers(0, 256, (9, 11, 3), dtype=np.uint8)


def test_passthrough_and_invert() -> None:
    assert np.array_equal(transforms.apply(RANDOM, None, None), RANDOM)
    assert np.array_equal(transforms.apply(RANDOM, "please INVERT it", None), 255 - RANDOM)


def test_grayscale_is_rounded_bt601_luma() -> None:
    out = transforms.apply(RANDOM, "Greyscale", None)
    assert out.dtype == np.uint8 and out.shape == RANDOM.shape
    for pixel, got in zip(RANDOM.reshape(-1, 3), out.reshape(-1, 3), strict=True):
        y = _exact(("0.299", "0.587", "0.114"), pixel)
        assert got.tolist() == [y, y, y]
    assert np.array_equal(transforms.apply(RANDOM, "grayscale", None), out)
    white = np.full((1, 1, 3), 255, np.uint8)
    assert transforms.apply(white, "grayscale", None).tolist() == [[[255, 255, 255]]]


def test_sepia_matrix_is_rounded_and_clipped() -> None:
    rows = (
        ("0.393", "0.769", "0.189"),
        ("0.349", "0.686", "0.168"),
        ("0.272", "0.534", "0.131"),
    )
    out = transforms.apply(RANDOM, "a Sepia photo", None)
    for pixel, got in zip(RANDOM.reshape(-1, 3), out.reshape(-1, 3), strict=True):
        assert got.tolist() == [_exact(row, pixel) for row in rows]
    white = np.full((1, 1, 3), 255, np.uint8)
    assert transforms.apply(white, "sepia", None).tolist() == [[[255, 255, 239]]]


def test_keyword_order() -> None:
    assert np.array_equal(transforms.apply(RANDOM, "sepia then invert", None), 255 - RANDOM)
    grey = transforms.apply(RANDOM, "grayscale", None)
    assert np.array_equal(transforms.apply(RANDOM, "sepia greyscale", None), grey)


def test_tint_is_the_prompt_hash() -> None:
    # sha256("hello") = 2cf24dba...: the tint is (0x2c, 0xf2, 0x4d).
    x = np.array([[[100, 101, 0]]], np.uint8)
    assert transforms.apply(x, "hello", None).tolist() == [[[72, 171, 38]]]
    # Case matters for the hash (keywords aside): two prompts, two tints.
    assert not np.array_equal(
        transforms.apply(RANDOM, "Hello", None), transforms.apply(RANDOM, "hello", None)
    )


def test_reference_image_is_averaged_in_last() -> None:
    image = np.random.default_rng(3).integers(0, 256, RANDOM.shape, dtype=np.uint8)
    expected = ((255 - RANDOM.astype(np.uint16)) + image) // 2
    assert np.array_equal(transforms.apply(RANDOM, "invert", image), expected)
    plain = (RANDOM.astype(np.uint16) + image) // 2
    assert np.array_equal(transforms.apply(RANDOM, None, image), plain)


def test_avatar_gain() -> None:
    assert transforms.brightness(0.0) == 0.25
    assert transforms.brightness(0.125) == pytest.approx(0.625)
    assert transforms.brightness(0.3) == 1.0
    assert transforms.gain_steps(0.25) == 64
    image = np.full((2, 2, 3), 200, np.uint8)
    assert transforms.scaled(image, 64).tolist() == np.full((2, 2, 3), 50).tolist()
    assert np.array_equal(transforms.scaled(RANDOM, 256), RANDOM)


def test_level_meter_uses_the_last_40_ms() -> None:
    now = [0.0]
    meter = LevelMeter(clock=lambda: now[0])
    assert meter.rms() == 0.0

    def chunk(value: int) -> AudioFrame:
        samples = np.full((1, 960 * 2), value, np.int16)  # 20 ms of s16 stereo at 48 kHz
        frame = AudioFrame.from_ndarray(samples, format="s16", layout="stereo")
        frame.sample_rate = 48000
        return frame

    meter.feed(chunk(16384))
    assert meter.rms() == pytest.approx(0.5)
    meter.feed(chunk(0))
    assert meter.rms() == pytest.approx(math.sqrt(0.125))
    meter.feed(chunk(0))  # the loud chunk is now older than 40 ms
    assert meter.rms() == 0.0
    meter.feed(chunk(-8192))
    now[0] = 1.0  # nothing received for a second: silence
    assert meter.rms() == 0.0


def test_decode_image() -> None:
    rgb = gradient(32, 16)
    assert np.array_equal(decode_image(png_base64(rgb), 32, 16), rgb)
    assert decode_image("data:image/png;base64," + png_base64(rgb), 8, 4).shape == (4, 8, 3)
    for bad in ("", "!!!", base64.b64encode(b"not an image").decode()):
        with pytest.raises(ImageError):
            decode_image(bad, 32, 16)


# -- signaling ----------------------------------------------------------------------


def test_missing_or_wrong_key_is_rejected(emu: Emulator, signaling) -> None:
    channel = signaling(stream_url(emu, key=None))
    assert channel.recv() == {"type": "error", "error": "Invalid API key"}
    channel.expect_closed()
    with Emulator(api_keys={"right"}, models=[SMALL]) as strict:
        wrong = Signaling(stream_url(strict, key="wrong"))
        assert wrong.recv() == {"type": "error", "error": "Invalid API key"}
        wrong.expect_closed()
        right = Signaling(stream_url(strict, key="right"))
        assert right.recv()["type"] == "session_id"
        wrong.close()
        right.close()


def test_unknown_model_is_rejected(emu: Emulator, signaling) -> None:
    channel = signaling(stream_url(emu, model="no-such-model"))
    assert channel.recv() == {"type": "error", "error": "Unknown model: no-such-model"}
    channel.expect_closed()


def test_session_id_prompt_and_image_acks(emu: Emulator, signaling) -> None:
    channel = signaling()
    hello = channel.recv()
    assert hello["type"] == "session_id"
    assert hello["server_ip"] == "127.0.0.1" and hello["server_port"] == emu.port
    session = emu.wait_for_session(session_id=hello["session_id"])
    assert session.model == SMALL

    channel.send({"type": "prompt", "prompt": "invert", "enhance_prompt": False})
    ack = channel.recv()
    assert ack == {"type": "prompt_ack", "prompt": "invert", "success": True, "error": None}
    assert session.prompt == "invert"
    for bad in ("", None, 42):
        channel.send({"type": "prompt", "prompt": bad, "enhance_prompt": True})
        ack = channel.recv()
        assert ack["type"] == "prompt_ack" and ack["prompt"] == bad
        assert ack["success"] is False and ack["error"]
    assert session.prompt == "invert"  # a refused prompt changes nothing

    reference = np.full((SMALL.height, SMALL.width, 3), 77, np.uint8)
    channel.send({"type": "set_image", "image_data": png_base64(reference), "prompt": "sepia"})
    assert channel.recv() == {"type": "set_image_ack", "success": True, "error": None}
    assert session.prompt == "sepia"
    assert session.image is not None and np.array_equal(session.image, reference)

    channel.send({"type": "set_image", "image_data": "bm90IGFuIGltYWdl"})  # "not an image"
    ack = channel.recv()
    assert ack["type"] == "set_image_ack" and ack["success"] is False and ack["error"]
    assert session.image is not None  # unchanged

    channel.send({"type": "set_image", "image_data": None, "prompt": None})
    assert channel.recv()["success"] is True
    assert session.image is None and session.prompt is None
    assert [m["type"] for m in session.messages].count("prompt") == 4


def test_unknown_and_malformed_messages_are_ignored(emu: Emulator, signaling) -> None:
    channel = signaling()
    session = emu.wait_for_session(session_id=channel.recv()["session_id"])
    for junk in ("{nope", "[1, 2]", '"text"', '{"no_type": 1}'):
        channel.send(junk)
    channel.send({"type": "mystery", "data": 1})
    channel.send({"type": "ice-candidate", "candidate": {"candidate": "garbage"}})
    channel.send({"type": "offer", "sdp": 12})
    channel.send({"type": "prompt", "prompt": "still here"})
    assert channel.expect("prompt_ack")["success"] is True
    assert channel.kinds() == ["session_id", "prompt_ack"]
    assert len(session.rejected) == 4
    assert [m["type"] for m in session.messages][:2] == ["mystery", "ice-candidate"]


# -- media over WebRTC ------------------------------------------------------------


def test_frames_come_back_transformed_with_ticks(emu: Emulator, signaling, peers) -> None:
    frame_in = gradient()
    channel = signaling()
    session = emu.wait_for_session(session_id=channel.recv()["session_id"])
    channel.send({"type": "prompt", "prompt": "invert", "enhance_prompt": True})
    assert channel.expect("prompt_ack")["success"] is True

    peer = peers(frame_in)
    offer = peer.offer().replace("s=-\r\n", "s=raw-test\r\n")
    channel.send({"type": "offer", "sdp": offer})
    answer = channel.expect("answer")["sdp"]
    assert session.offer_sdp == offer  # verbatim
    candidates = [line for line in answer.split("\r\n") if line.startswith("a=candidate:")]
    assert candidates and all(" 127." in line for line in candidates)
    peer.accept(answer)
    assert peer.wait_state({"connected", "failed"}) == "connected"

    peer.wait_frame(lambda f: f.shape == frame_in.shape and mean_error(f, 255 - frame_in) < 12)
    channel.expect("generation_started")
    assert channel.expect("generation_tick", timeout=5)["seconds"] == 1
    assert channel.expect("generation_tick", timeout=5)["seconds"] == 2
    assert session.frames_in > 0 and session.frames_out > 0

    # The prompt changes the output of a running session.
    channel.send({"type": "prompt", "prompt": "grayscale"})
    channel.expect("prompt_ack")
    grey = transforms.apply(frame_in, "grayscale", None)
    peer.wait_frame(lambda f: mean_error(f, grey) < TOLERANCE)

    # Dropping the peer alone: media ends, signaling stays.
    emu.drop_sessions("peer")
    assert peer.wait_state({"closed", "failed"}) in ("closed", "failed")
    channel.send({"type": "prompt", "prompt": "after the drop"})
    assert channel.expect("prompt_ack")["success"] is True


@pytest.mark.parametrize("trickle", ["after-offer", "before-offer"])
def test_trickled_candidates_and_the_old_message_order(
    emu: Emulator, signaling, peers, trickle: str
) -> None:
    """Browser SDK releases before the seed: offer first, candidates, then the prompt."""
    frame_in = gradient()
    channel = signaling()
    session = emu.wait_for_session(session_id=channel.recv()["session_id"])
    peer = peers(frame_in)
    offer, candidates = split_candidates(peer.offer())
    assert candidates
    messages: list[dict[str, Any]] = [{"type": "ice-candidate", "candidate": c} for c in candidates]
    messages.append({"type": "ice-candidate", "candidate": None})  # end of candidates
    if trickle == "before-offer":
        messages.append({"type": "offer", "sdp": offer})
    else:
        messages.insert(0, {"type": "offer", "sdp": offer})
    for message in messages:
        channel.send(message)
    peer.accept(channel.expect("answer")["sdp"])
    channel.send({"type": "prompt", "prompt": "invert", "enhance_prompt": True})
    assert channel.expect("prompt_ack")["success"] is True
    assert peer.wait_state({"connected", "failed"}) == "connected"
    peer.wait_frame(lambda f: mean_error(f, 255 - frame_in) < TOLERANCE)
    assert session.prompt == "invert"


def test_subscriber_sees_the_output(emu: Emulator, signaling, peers) -> None:
    frame_in = gradient()
    missing = signaling(f"{emu.url}/subscribe/no-such-session?IP=127.0.0.1&port=1&api_key={KEY}")
    assert missing.recv() == {"type": "error", "error": "Invalid session"}
    missing.expect_closed()

    channel = signaling()
    hello = channel.recv()
    channel.send({"type": "set_image", "image_data": None, "prompt": "invert"})
    channel.expect("set_image_ack")
    publisher = peers(frame_in)
    channel.send({"type": "offer", "sdp": publisher.offer()})
    publisher.accept(channel.expect("answer")["sdp"])

    viewer_url = (
        f"{emu.url}/subscribe/{hello['session_id']}"
        f"?IP={hello['server_ip']}&port={hello['server_port']}&api_key={KEY}"
    )
    viewer_channel = signaling(viewer_url)
    viewer = peers(None, audio="recv")
    viewer_channel.send({"type": "offer", "sdp": viewer.offer()})
    viewer.accept(viewer_channel.expect("answer")["sdp"])
    viewer.wait_frame(lambda f: mean_error(f, 255 - frame_in) < TOLERANCE)
    assert viewer_channel.kinds() == ["answer"]  # no session_id, no generation events
    assert len(emu.subscribers) == 1


def test_live_avatar_follows_the_audio_level(signaling, peers) -> None:
    # The avatar model, small: the emulator's own models= entry overrides the registry's.
    small_avatar = ModelDefinition("live-avatar", fps=25, width=320, height=192)
    with Emulator(models=[small_avatar]) as emu:
        channel = signaling(stream_url(emu, model="live-avatar"))
        channel.recv()
        portrait = np.full((64, 48, 3), 200, np.uint8)  # any size: scaled to the model's
        channel.send({"type": "set_image", "image_data": png_base64(portrait), "prompt": "hi"})
        assert channel.expect("set_image_ack")["success"] is True
        peer = peers(None, audio="tone")
        channel.send({"type": "offer", "sdp": peer.offer()})
        peer.accept(channel.expect("answer")["sdp"])
        quiet = 200 * 0.25  # silence: g = 0.25
        peer.wait_frame(lambda f: f.shape == (192, 320, 3) and abs(f.mean() - quiet) < 8)
        assert peer.tone is not None
        peer.tone.amplitude = 0.5  # rms 0.35 -> g = 1
        peer.wait_frame(lambda f: abs(f.mean() - 200) < 8)
        session = emu.sessions[0]
        assert session.audio_frames_in > 0
        assert session.wait(lambda: session.audio_frames_out > 0, 5)
        assert peer.audio_frames > 0  # the echo comes back
        peer.tone.amplitude = 0.0
        peer.wait_frame(lambda f: abs(f.mean() - quiet) < 8)


# -- drops, faults, admin, shutdown --------------------------------------------------


def test_signaling_drop_leaves_media_until_the_peer_goes(emu: Emulator, signaling, peers) -> None:
    frame_in = gradient()
    channel = signaling()
    session = emu.wait_for_session(session_id=channel.recv()["session_id"])
    peer = peers(frame_in)
    channel.send({"type": "offer", "sdp": peer.offer()})
    peer.accept(channel.expect("answer")["sdp"])
    peer.wait_frame(lambda f: mean_error(f, frame_in) < TOLERANCE)  # passthrough
    emu.drop_sessions("signaling")
    channel.expect_closed()
    # Media goes on without signaling (fresh frames, not ones queued before the drop) ...
    frames_out = session.frames_out
    assert session.wait(lambda: session.frames_out > frames_out + 5, 5)
    assert not session.closed and session in emu.sessions
    # ... until the client gives its peer up.
    peer.close()
    assert session.wait(lambda: session.closed, 10), "the session outlived its peer"
    assert session not in emu.sessions


def test_a_vanished_client_leaves_nothing_running(emu: Emulator, signaling, peers) -> None:
    channel = signaling()
    session = emu.wait_for_session(session_id=channel.recv()["session_id"])
    peer = peers(gradient())
    channel.send({"type": "offer", "sdp": peer.offer()})
    peer.accept(channel.expect("answer")["sdp"])
    peer.wait_frame(lambda f: True)
    channel.ws.shutdown()  # the socket just goes: no closing handshake, the peer stays up
    assert session.wait(lambda: session.closed, 10)
    assert session.peer is not None and session.peer.state == "closed"
    assert session.pending_tasks == 0
    assert session.video_out.readyState == "ended"


@pytest.mark.parametrize("how", ["signaling", "both"])
def test_drop_closes_the_signaling(emu: Emulator, signaling, how: str) -> None:
    channel = signaling()
    session = emu.wait_for_session(session_id=channel.recv()["session_id"])
    assert emu.drop_sessions(how) >= 1
    channel.expect_closed()
    # No peer yet: nothing keeps the session alive without its signaling.
    assert session.wait(lambda: session.closed, 5)
    assert session not in emu.sessions and session in emu.history


def test_admin_drop_and_cli(emu: Emulator, signaling) -> None:
    channel = signaling()
    channel.recv()
    http_url = emu.url.replace("ws://", "http://")
    with urllib.request.urlopen(f"{http_url}/_emulator/sessions", timeout=5) as response:
        listed = json.loads(response.read())
    assert any(s["model"] == SMALL.name for s in listed)
    assert emulator_main(["drop", "--url", emu.url, "--how", "both"]) == 0
    channel.expect_closed()
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"{http_url}/_emulator/drop?how=everything", timeout=5)
    assert info.value.code == 400
    info.value.close()


def test_faults() -> None:
    faults = Faults(reject_prompts="out of credits", malformed=True)
    with Emulator(models=[SMALL], faults=faults) as emu:
        channel = Signaling(stream_url(emu))
        assert channel.recv()["type"] == "session_id"
        channel.send({"type": "prompt", "prompt": "invert"})
        channel.ws.settimeout(5)
        raw = [channel.ws.recv() for _ in range(4)]  # three pieces of junk, then the ack
        ack = json.loads(raw[-1])
        assert ack["type"] == "prompt_ack" and ack["success"] is False
        assert ack["error"] == "out of credits"
        emu.faults.reject_prompts = None
        emu.faults.malformed = False
        channel.send({"type": "prompt", "prompt": "invert"})
        assert channel.recv()["success"] is True
        channel.close()


def test_close_is_bounded_and_leaves_no_threads(peers) -> None:
    before = {t.ident for t in threading.enumerate()}
    emu = Emulator(models=[SMALL]).start()
    assert "decart-sync-emulator" in {t.name for t in threading.enumerate()}
    channel = Signaling(stream_url(emu))
    channel.recv()
    peer = RawPeer(gradient())
    try:
        channel.send({"type": "offer", "sdp": peer.offer()})
        peer.accept(channel.expect("answer")["sdp"])
        peer.wait_frame(lambda f: True)  # media flowing both ways
        start = time.monotonic()
        emu.close()
        assert time.monotonic() - start < 3.0
        emu.close()  # idempotent
        channel.expect_closed()
        assert peer.wait_state({"closed", "failed"}) in ("closed", "failed")
    finally:
        channel.close()
        peer.close()
    left = [t.name for t in threading.enumerate() if t.ident not in before]
    assert not left, f"threads left behind: {left}"
