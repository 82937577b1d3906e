"""Drive the official async SDK (``decart[realtime]==0.0.37``) against the emulator.

Runs in the official SDK's own virtualenv (see ``tests/e2e/test_official_sdk.py``),
which has neither decart_sync nor pytest: this file imports only the SDK, its
dependencies (aiortc, av) and numpy.

    python tests/drivers/official_client.py --url ws://127.0.0.1:PORT --scenario camera [--hold]

It prints one line, ``OBSERVATIONS {json}``, with what the SDK saw. With
``--hold`` it then keeps every connection open until a line (or EOF) arrives
on stdin, so the caller can inspect the emulator's live sessions before the
SDK disconnects. Errors are reported in the JSON (``"ok": false``) and in the
exit status.

Two things about the machine, none about the SDK, are adjusted here:

- aioice leaves 127.0.0.1 out of its host candidates, and the emulator answers
  with loopback candidates only: 127.0.0.1 is added to the candidates (what
  ``decart_sync/_ice.py`` does for decart_sync itself).
- the SDK hardcodes the STUN server ``stun:stun.l.google.com:19302``; nothing
  here may leave 127.0.0.0/8, so the peer connection is built without ICE
  servers. The URL the SDK asked for is reported as ``stun_requested``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import fractions
import io
import json
import logging
import math
import struct
import sys
import threading
import time
import traceback
import wave
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

# What the SDK is asked to send: small, so VP8 stays cheap on a 2-core machine.
WIDTH, HEIGHT = 320, 192
FPS = 25
API_KEY = "official-sdk-test-key"
# Mean absolute error (0..255) under which a received frame counts as the expected one.
TOLERANCE = 12.0
SOLID_TOLERANCE = 5.0
FRAMES_WANTED = 10
FRAME_TIMEOUT = 20.0
ACK_TIMEOUT = 20.0
# The live_avatar scenario's portrait and tone.
PORTRAIT = (200, 160, 120)
TONE_SECONDS = 1.5
TONE_AMPLITUDE = 0.6

stun_requested: list[str] = []


def patch_network() -> None:
    """Loopback host candidates, and no STUN server (see the module docstring)."""
    import aioice.ice
    import decart.realtime.webrtc_connection as webrtc_connection
    from aiortc import RTCConfiguration

    original = aioice.ice.get_host_addresses

    def with_loopback(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        addresses = list(original(use_ipv4, use_ipv6))
        if use_ipv4 and "127.0.0.1" not in addresses:
            addresses.insert(0, "127.0.0.1")
        return addresses

    aioice.ice.get_host_addresses = with_loopback

    def no_ice_servers(iceServers: list[Any] | None = None, **kwargs: Any) -> RTCConfiguration:
        for server in iceServers or []:
            urls = server.urls if isinstance(server.urls, list) else [server.urls]
            stun_requested.extend(urls)
        return RTCConfiguration(iceServers=[], **kwargs)

    webrtc_connection.RTCConfiguration = no_ice_servers


# -- pictures and sounds ---------------------------------------------------------


def pattern() -> np.ndarray:
    """Smooth gradients in every channel (the same as tests/support/helpers.py's)."""
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH]
    r = 40 + xs * 170 // WIDTH
    g = 40 + ys * 170 // HEIGHT
    b = 200 - (xs + ys) * 150 // (WIDTH + HEIGHT)
    return np.stack([r, g, b], axis=-1).astype(np.uint8)


def solid(color: tuple[int, int, int]) -> np.ndarray:
    return np.tile(np.array(color, np.uint8), (HEIGHT, WIDTH, 1))


def invert(rgb: np.ndarray) -> np.ndarray:
    return 255 - rgb


def grayscale(rgb: np.ndarray) -> np.ndarray:
    y = np.round(rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114)
    return np.repeat(y[..., None], 3, axis=-1).astype(np.uint8)


def blend(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return ((a.astype(np.uint16) + b) // 2).astype(np.uint8)


def scaled(rgb: np.ndarray, gain: float) -> np.ndarray:
    return np.round(rgb.astype(np.float64) * gain).astype(np.uint8)


def mean_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def encode_png(rgb: np.ndarray) -> bytes:
    """A minimal truecolour PNG (stdlib only: the SDK's venv has no imaging library)."""
    height, width, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[row].tobytes() for row in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def tone_wav(seconds: float = TONE_SECONDS, rate: int = 16_000) -> bytes:
    """A 440 Hz mono 16-bit WAV: loud enough to take the avatar to full brightness."""
    t = np.arange(round(seconds * rate)) / rate
    samples = (TONE_AMPLITUDE * 32767 * np.sin(2 * math.pi * 440 * t)).astype("<i2")
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.tobytes())
    return out.getvalue()


# -- media helpers ---------------------------------------------------------------


def pattern_track(picture: np.ndarray) -> Any:
    """A camera stand-in: ``picture`` at FPS frames a second."""
    from aiortc import MediaStreamTrack
    from av import VideoFrame

    class PictureTrack(MediaStreamTrack):
        kind = "video"

        def __init__(self) -> None:
            super().__init__()
            rgb = VideoFrame.from_ndarray(picture, format="rgb24")
            self._planes = rgb.reformat(format="yuv420p").to_ndarray()
            self._start: float | None = None
            self._index = 0

        async def recv(self) -> VideoFrame:
            loop = asyncio.get_running_loop()
            if self._start is None:
                self._start = loop.time()
            due = self._start + self._index / FPS
            if due > loop.time():
                await asyncio.sleep(due - loop.time())  # pacing, as a camera would
            frame = VideoFrame.from_ndarray(self._planes, format="yuv420p")
            frame.pts = self._index * (90_000 // FPS)
            frame.time_base = fractions.Fraction(1, 90_000)
            self._index += 1
            return frame

    return PictureTrack()


class VideoWatch:
    """Reads a remote video track continuously; waits for frames that match."""

    def __init__(self, track: Any) -> None:
        self.track = track
        self.count = 0
        self.size: tuple[int, int] | None = None
        self.latest: np.ndarray | None = None
        self.last_error: float | None = None
        self._changed = asyncio.Condition()
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        from aiortc.mediastreams import MediaStreamError

        try:
            while True:
                frame = await self.track.recv()
                rgb = frame.to_ndarray(format="rgb24", width=WIDTH, height=HEIGHT)
                async with self._changed:
                    self.count += 1
                    self.size = (frame.width, frame.height)
                    self.latest = rgb
                    self._changed.notify_all()
        except MediaStreamError:
            pass

    async def until(
        self,
        expected: np.ndarray,
        *,
        after: int = 0,
        tolerance: float = TOLERANCE,
        timeout: float = FRAME_TIMEOUT,
    ) -> dict[str, Any]:
        """Wait for a frame (the ``after``-th or later) within ``tolerance`` of ``expected``."""

        def matches() -> bool:
            if self.latest is None or self.count < after:
                return False
            self.last_error = mean_error(self.latest, expected)
            return self.last_error < tolerance

        async def wait() -> None:
            async with self._changed:
                await self._changed.wait_for(matches)

        start = time.monotonic()
        matched = True
        try:
            await asyncio.wait_for(wait(), timeout)
        except asyncio.TimeoutError:
            matched = False
        return {
            "matched": matched,
            "error": self.last_error,
            "frames": self.count,
            "seconds": round(time.monotonic() - start, 3),
        }

    def stop(self) -> None:
        self.task.cancel()


class AudioWatch:
    """Reads a remote audio track continuously; keeps the loudest frame's RMS."""

    def __init__(self, track: Any) -> None:
        self.track = track
        self.count = 0
        self.max_rms = 0.0
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        from aiortc.mediastreams import MediaStreamError

        try:
            while True:
                frame = await self.track.recv()
                data = frame.to_ndarray().astype(np.float64).reshape(-1) / 32768.0
                self.count += 1
                if data.size:
                    self.max_rms = max(self.max_rms, float(np.sqrt(np.mean(data * data))))
        except MediaStreamError:
            pass

    def stop(self) -> None:
        self.task.cancel()


class Remote:
    """The SDK's on_remote_stream callback, and the tracks it was given."""

    def __init__(self) -> None:
        self.kinds: list[str] = []
        self.video: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.audio: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def __call__(self, track: Any) -> None:
        self.kinds.append(track.kind)
        future = self.video if track.kind == "video" else self.audio
        if not future.done():
            future.set_result(track)

    async def video_watch(self) -> VideoWatch:
        return VideoWatch(await asyncio.wait_for(self.video, FRAME_TIMEOUT))

    async def audio_watch(self) -> AudioWatch:
        return AudioWatch(await asyncio.wait_for(self.audio, FRAME_TIMEOUT))


class Events:
    """The client's connection_change, error and generation_tick events."""

    def __init__(self, client: Any) -> None:
        self.states: list[str] = []
        self.errors: list[str] = []
        self.ticks: list[int] = []
        self._ticked = asyncio.Event()
        client.on("connection_change", self.states.append)
        client.on("error", lambda error: self.errors.append(str(error)))
        # A SubscribeClient ignores this one.
        client.on("generation_tick", self._tick)

    def _tick(self, message: Any) -> None:
        self.ticks.append(message.seconds)
        self._ticked.set()

    async def first_tick(self, timeout: float = 5.0) -> float:
        """Seconds waited for the first generation_tick."""
        start = time.monotonic()
        await asyncio.wait_for(self._ticked.wait(), timeout)
        return round(time.monotonic() - start, 3)

    def report(self) -> dict[str, Any]:
        return {"states": self.states, "errors": self.errors, "ticks": self.ticks}


async def timed(coro: Awaitable[Any], timeout: float | None = None) -> tuple[Any, float]:
    """The result and the seconds it took.

    Connects go without ``timeout`` (the scenario's budget bounds them): with
    ``wait_for`` around it, the SDK's deferred flush of the events buffered
    during connect would run before the caller could register its handlers.
    """
    start = time.monotonic()
    result = await (coro if timeout is None else asyncio.wait_for(coro, timeout))
    return result, round(time.monotonic() - start, 3)


class LogCapture(logging.Handler):
    """The SDK's own warnings and errors (e.g. a server message it failed to parse)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(f"{record.name}: {record.getMessage()}")


# -- scenarios -------------------------------------------------------------------


class Scenario:
    """One run: connections opened are closed at the end, watches are stopped."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.clients: list[Any] = []
        self.watches: list[VideoWatch | AudioWatch] = []

    async def connect(
        self, model_name: str, *, track: Any = None, initial_state: Any = None
    ) -> tuple[Any, Remote, float]:
        from decart import models
        from decart.realtime.client import RealtimeClient
        from decart.realtime.types import RealtimeConnectOptions

        remote = Remote()
        options = RealtimeConnectOptions(
            model=models.realtime(model_name),
            on_remote_stream=remote,
            initial_state=initial_state,
        )
        client, seconds = await timed(
            RealtimeClient.connect(
                base_url=self.url, api_key=API_KEY, local_track=track, options=options
            )
        )
        self.clients.append(client)
        return client, remote, seconds

    async def video(self, remote: Remote) -> VideoWatch:
        watch = await remote.video_watch()
        self.watches.append(watch)
        return watch

    async def audio(self, remote: Remote) -> AudioWatch:
        watch = await remote.audio_watch()
        self.watches.append(watch)
        return watch

    async def close(self) -> None:
        for watch in self.watches:
            watch.stop()
        for client in reversed(self.clients):
            try:
                await asyncio.wait_for(client.disconnect(), 10)
            except Exception as exc:
                logging.warning("disconnect failed: %r", exc)


def client_report(client: Any, events: Events, connect_s: float) -> dict[str, Any]:
    return {
        "session_id": client.session_id,
        "subscribe_token": client.subscribe_token,
        "state": client.get_connection_state(),
        "connect_s": connect_s,
        **events.report(),
    }


async def camera(run: Scenario) -> dict[str, Any]:
    """mirage with an initial prompt; set_prompt; set_image."""
    from decart import ModelState, Prompt

    picture = pattern()
    client, remote, connect_s = await run.connect(
        "mirage",
        track=pattern_track(picture),
        initial_state=ModelState(prompt=Prompt(text="invert")),
    )
    events = Events(client)
    watch = await run.video(remote)
    out: dict[str, Any] = {}
    out["inverted"] = await watch.until(invert(picture), after=FRAMES_WANTED)

    _, out["set_prompt_s"] = await timed(client.set_prompt("grayscale"), ACK_TIMEOUT)
    out["grayscale"] = await watch.until(grayscale(picture), after=watch.count + 1)

    reference = solid((30, 90, 150))
    _, out["set_image_s"] = await timed(client.set_image(encode_png(reference)), ACK_TIMEOUT)
    # No prompt with the image: the prompt stays, the image blends in.
    out["with_image"] = await watch.until(
        blend(grayscale(picture), reference), after=watch.count + 1
    )
    out["first_tick_s"] = await events.first_tick()
    out["frame_size"] = watch.size
    out["kinds"] = remote.kinds
    out["client"] = client_report(client, events, connect_s)
    return out


async def passthrough(run: Scenario) -> dict[str, Any]:
    """mirage with no initial state (the SDK's passthrough message); then set()."""
    from decart import SetInput

    picture = pattern()
    client, remote, connect_s = await run.connect("mirage", track=pattern_track(picture))
    events = Events(client)
    watch = await run.video(remote)
    out: dict[str, Any] = {}
    out["unchanged"] = await watch.until(picture, after=FRAMES_WANTED)
    reference = solid((220, 200, 40))
    update = SetInput(prompt="invert", image=encode_png(reference))
    _, out["set_s"] = await timed(client.set(update), ACK_TIMEOUT)
    out["set_applied"] = await watch.until(blend(invert(picture), reference), after=watch.count + 1)
    out["frame_size"] = watch.size
    out["kinds"] = remote.kinds
    out["client"] = client_report(client, events, connect_s)
    return out


async def initial_image(run: Scenario) -> dict[str, Any]:
    """lucy-2.1 with an initial reference image (bytes) and prompt; then clear the image."""
    from decart import ModelState, Prompt

    picture = pattern()
    reference = solid((100, 60, 30))
    client, remote, connect_s = await run.connect(
        "lucy-2.1",
        track=pattern_track(picture),
        initial_state=ModelState(image=encode_png(reference), prompt=Prompt(text="invert")),
    )
    events = Events(client)
    watch = await run.video(remote)
    out: dict[str, Any] = {}
    out["with_image"] = await watch.until(blend(invert(picture), reference), after=FRAMES_WANTED)
    _, out["clear_image_s"] = await timed(client.set_image(None), ACK_TIMEOUT)
    out["cleared"] = await watch.until(invert(picture), after=watch.count + 1)
    out["frame_size"] = watch.size
    out["kinds"] = remote.kinds
    out["client"] = client_report(client, events, connect_s)
    return out


async def live_avatar(run: Scenario) -> dict[str, Any]:
    """live_avatar with a portrait (a data: URL) and prompt; play_audio brightens it."""
    from decart import ModelState, Prompt

    portrait = solid(PORTRAIT)
    data_url = "data:image/png;base64," + base64.b64encode(encode_png(portrait)).decode()
    client, remote, connect_s = await run.connect(
        "live_avatar", initial_state=ModelState(image=data_url, prompt=Prompt(text="smile"))
    )
    events = Events(client)
    watch = await run.video(remote)
    echo = await run.audio(remote)
    out: dict[str, Any] = {}
    # Silence: the emulator shows the portrait at a quarter of its brightness. A solid
    # colour survives VP8 almost exactly, so the tolerance is tighter than for gradients.
    silent = scaled(portrait, 0.25)
    out["silent"] = await watch.until(silent, after=FRAMES_WANTED, tolerance=SOLID_TOLERANCE)

    playing = asyncio.ensure_future(client.play_audio(tone_wav()))
    start = time.monotonic()
    out["loud"] = await watch.until(portrait, after=watch.count + 1, tolerance=SOLID_TOLERANCE)
    out["loud_while_playing"] = not playing.done()
    await asyncio.wait_for(playing, TONE_SECONDS + 15)
    out["play_audio_s"] = round(time.monotonic() - start, 3)
    out["silent_again"] = await watch.until(
        silent, after=watch.count + 1, tolerance=SOLID_TOLERANCE
    )
    out["echo_frames"] = echo.count
    out["echo_max_rms"] = round(echo.max_rms, 4)
    out["frame_size"] = watch.size
    out["kinds"] = remote.kinds
    out["client"] = client_report(client, events, connect_s)
    return out


async def bad_key(run: Scenario) -> dict[str, Any]:
    """An empty API key: the server's error must end connect at once, without retries."""
    from decart import models
    from decart.realtime.client import RealtimeClient
    from decart.realtime.types import RealtimeConnectOptions

    options = RealtimeConnectOptions(
        model=models.realtime("lucy-restyle"), on_remote_stream=Remote()
    )
    start = time.monotonic()
    try:
        client = await RealtimeClient.connect(
            base_url=run.url, api_key="", local_track=pattern_track(pattern()), options=options
        )
    except Exception as exc:
        return {
            "raised": type(exc).__name__,
            "message": str(exc),
            "seconds": round(time.monotonic() - start, 3),
        }
    run.clients.append(client)
    return {"raised": None, "seconds": round(time.monotonic() - start, 3)}


async def subscribe(run: Scenario) -> dict[str, Any]:
    """A mirage publisher; a viewer subscribes with its subscribe_token."""
    from decart import ModelState, Prompt
    from decart.realtime.client import RealtimeClient
    from decart.realtime.subscribe import SubscribeOptions, decode_subscribe_token

    picture = pattern()
    publisher, remote, connect_s = await run.connect(
        "mirage",
        track=pattern_track(picture),
        initial_state=ModelState(prompt=Prompt(text="invert")),
    )
    events = Events(publisher)
    watch = await run.video(remote)
    out: dict[str, Any] = {}
    out["publisher_inverted"] = await watch.until(invert(picture), after=FRAMES_WANTED)

    token = publisher.subscribe_token
    payload = decode_subscribe_token(token)
    out["token"] = {"sid": payload.sid, "ip": payload.ip, "port": payload.port}
    viewer_remote = Remote()
    viewer, out["subscribe_connect_s"] = await timed(
        RealtimeClient.subscribe(
            base_url=run.url,
            api_key=API_KEY,
            options=SubscribeOptions(token=token, on_remote_stream=viewer_remote),
        )
    )
    run.clients.append(viewer)
    viewer_events = Events(viewer)
    viewer_watch = await run.video(viewer_remote)
    out["viewer_inverted"] = await viewer_watch.until(invert(picture), after=FRAMES_WANTED)
    out["viewer_frame_size"] = viewer_watch.size
    out["viewer_kinds"] = viewer_remote.kinds
    out["viewer"] = {"state": viewer.get_connection_state(), **viewer_events.report()}
    out["client"] = client_report(publisher, events, connect_s)
    return out


SCENARIOS: dict[str, Callable[[Scenario], Awaitable[dict[str, Any]]]] = {
    "camera": camera,
    "passthrough": passthrough,
    "initial_image": initial_image,
    "live_avatar": live_avatar,
    "subscribe": subscribe,
    "bad_key": bad_key,
}


# -- main ------------------------------------------------------------------------


def emit(observations: dict[str, Any]) -> None:
    print("OBSERVATIONS " + json.dumps(observations), flush=True)


async def wait_for_stdin(timeout: float) -> None:
    """Until a line or EOF on stdin (a daemon thread: a stuck read cannot block exit)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def release() -> None:
        if not done.done():
            done.set_result(None)

    def read() -> None:
        sys.stdin.readline()
        loop.call_soon_threadsafe(release)

    threading.Thread(target=read, name="official-client-stdin", daemon=True).start()
    try:
        await asyncio.wait_for(done, timeout)
    except asyncio.TimeoutError:
        logging.warning("no release on stdin within %s s; disconnecting", timeout)


async def main_async(url: str, scenario: str, hold: bool, budget: float) -> int:
    from importlib.metadata import version

    patch_network()
    sdk_log = LogCapture()
    logging.getLogger("decart").addHandler(sdk_log)
    run = Scenario(url)
    observations: dict[str, Any] = {"scenario": scenario, "sdk_version": version("decart")}
    status = 0
    try:
        result = await asyncio.wait_for(SCENARIOS[scenario](run), budget)
        observations.update(result, ok=True)
    except Exception as exc:
        observations.update(ok=False, error=f"{type(exc).__name__}: {exc}")
        observations["traceback"] = traceback.format_exc()
        status = 1
    observations["stun_requested"] = sorted(set(stun_requested))
    observations["sdk_log"] = sdk_log.records
    emit(observations)
    try:
        if hold:
            await wait_for_stdin(budget)
    finally:
        await run.close()
    return status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--url", required=True, help="the emulator, ws://127.0.0.1:PORT")
    parser.add_argument("--scenario", required=True, choices=sorted(SCENARIOS))
    parser.add_argument("--hold", action="store_true", help="wait for stdin before closing")
    parser.add_argument("--budget", type=float, default=75.0, help="seconds for the scenario")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    sys.exit(asyncio.run(main_async(args.url, args.scenario, args.hold, args.budget)))


if __name__ == "__main__":
    main()
