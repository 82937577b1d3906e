"""A raw client of the emulator for tests/e2e/test_emulator_raw.py: websocket-client
signaling plus a bare aiortc peer, nothing of the decart_sync client."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import queue
import time
from collections.abc import Callable
from typing import Any

import av
import numpy as np
import websocket
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, VideoStreamTrack
from av import AudioFrame, VideoFrame

from decart_sync._portal import Portal
from decart_sync.emulator import Emulator
from decart_sync.models import ModelDefinition

SMALL = ModelDefinition("raw-small", fps=25, width=320, height=192)
KEY = "raw-key"
TOLERANCE = 12.0  # mean absolute error through VP8, on smooth content


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
        self.pc: RTCPeerConnection = self.portal.call(self._create, send, audio, timeout=10)

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

        return self.portal.call(make, timeout=10)

    def accept(self, answer: str) -> None:
        description = RTCSessionDescription(sdp=answer, type="answer")
        self.portal.call(self.pc.setRemoteDescription, description, timeout=10)

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
            self.portal.call(self.pc.close, timeout=5)
            self.portal.stop()


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
