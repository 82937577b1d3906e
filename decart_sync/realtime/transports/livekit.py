"""The LiveKit media path: a room next to the control WebSocket (today's models).

See docs/protocol.md, "Connecting over LiveKit".

The session asks for a room with ``livekit_join`` (a viewer fetches its
credentials over REST instead), sends its initial state, then joins the room
with the ``livekit`` package on the session's own event loop (over LiveKit's
single-peer-connection signaling, ``/rtc/v1``, or the classic two-connection
``/rtc`` where a server lacks it: the package's own choice), publishes the
camera (H264 unless ``video_codec`` says otherwise) and receives the video of the
participant whose identity starts with ``inference-server-``. With no
initial state the passthrough goes after publishing, as the official SDK
does.

Pixels: input frames are handed over as RGB24 already at the model's size
(a BGR frame is swapped once by av in the sender's thread; swscale's RGB to
yuv420p costs five times libyuv's, so LiveKit converts); received I420
frames become av frames the output hub converts for each consumer.
LiveKit's native threads are its own; everything here runs on the loop,
except ``capture_frame`` for a new input frame, which runs in the sender's
thread (`feed()` says why).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from collections.abc import Coroutine, Iterable
from typing import Any

import av
import numpy as np
from livekit import rtc

from ... import _process
from ...errors import DecartSDKError, ICEError, TimeoutError_, WebSocketError, local_fault
from ...metrics.rates import ByteRates, NetworkStats, ms
from .. import messages
from ..messages import Message
from ..tracks import feed
from . import MediaHooks, MediaSettings, MediaTransport

log = logging.getLogger(__name__)
_process.settle_livekit_at_exit()  # before this module makes any livekit object

INFERENCE_PREFIX = "inference-server-"
# For livekit_room_info; the first queue_position stops it (JS SDK 0.1.20's pauseTimeout):
# the session's queue_timeout bounds the queue instead.
JOIN_TIMEOUT = 15.0
CODECS = {"h264": rtc.VideoCodec.H264, "vp8": rtc.VideoCodec.VP8, "vp9": rtc.VideoCodec.VP9}
# What the JS SDK 0.1.20 publishes at (REALTIME_CONFIG.livekit): without it LiveKit picks by
# the picture's size, e.g. 15 fps for a 320x192 camera, whatever the model's rate.
PUBLISH_FPS = 30
MAX_BITRATE = {"h264": 3_500_000, "vp8": 3_500_000, "vp9": 3_000_000}  # JS: VP9 less
# libwebrtc's qualityLimitationReason, as the JS SDK reads it ("none" is not a limit).
LIMITATIONS = {1: "cpu", 2: "bandwidth", 3: "other"}


def room_token(room_name: str) -> str:
    """A viewer's subscribe token in LiveKit mode: base64url of ``{"room_name": ...}``."""
    return base64.urlsafe_b64encode(json.dumps({"room_name": room_name}).encode()).decode()


class LiveKitTransport(MediaTransport):
    passthrough_first = False

    def __init__(self, settings: MediaSettings, hooks: MediaHooks) -> None:
        loop = asyncio.get_running_loop()
        self._settings = settings
        self._hooks = hooks
        self._room_info: asyncio.Future[Message] = loop.create_future()
        self._queued = False
        self._room: rtc.Room | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self._rates: ByteRates | None = None  # from the moment the room is joined

    # -- before the initial state: the room --------------------------------------

    async def join(self, passthrough: bool) -> None:
        watch = self._settings.watch
        if watch is not None:
            info = await asyncio.to_thread(watch)  # a viewer: credentials over REST
        else:
            await self._hooks.send(messages.livekit_join(passthrough))
            info = await self._wait_room_info()
        self._info = info
        session_id = info.get("session_id")
        self._hooks.identify(
            session_id if isinstance(session_id, str) else None, room_token(info["room_name"])
        )

    async def _wait_room_info(self) -> Message:
        loop = asyncio.get_running_loop()
        end = loop.time() + JOIN_TIMEOUT
        while not self._room_info.done():
            remaining = None if self._queued else end - loop.time()
            if remaining is not None and remaining <= 0:
                raise TimeoutError_(f"the service gave no LiveKit room within {JOIN_TIMEOUT} s")
            await asyncio.wait([self._room_info], timeout=remaining)
        return self._room_info.result()

    def handle(self, message: Message) -> bool:
        kind = message["type"]
        if kind == "livekit_room_info":
            for field in ("livekit_url", "token", "room_name"):
                if not isinstance(message[field], str) or not message[field]:
                    raise TypeError(f"{field} is not text")
            if not self._room_info.done():
                self._room_info.set_result(message)
        elif kind == "queue_position":
            position, size = message["position"], message["queue_size"]
            if not isinstance(position, int) or not isinstance(size, int):
                raise TypeError("position and queue_size must be integers")
            self._queued = True
            self._hooks.queued(position, size)
        elif kind != "session_id":  # the legacy message: LiveKit sessions ignore it
            return False
        return True

    # -- after the initial state: media --------------------------------------------

    async def start(self) -> None:
        try:
            await self._join_room()
        except DecartSDKError:
            raise
        except Exception as exc:
            # The room's own failure, by name: what to fix, not just that it did not connect.
            raise ICEError(
                f"the LiveKit room failed: {type(exc).__name__}: {exc}",
                cause=exc,
                permanent=local_fault(exc),
            ) from exc

    async def _join_room(self) -> None:
        settings = self._settings
        room = self._room = rtc.Room(loop=asyncio.get_running_loop())
        room.on("track_subscribed", self._on_track)
        room.on("disconnected", self._on_disconnected)
        await room.connect(self._info["livekit_url"], self._info["token"])
        self._rates = ByteRates()
        if settings.input is not None:
            model = settings.model
            source = rtc.VideoSource(model.width, model.height)
            track = rtc.LocalVideoTrack.create_video_track("camera", source)
            # One layer: the track has one subscriber, the model, which wants the full
            # picture. LiveKit's default (simulcast) would also encode a half- and a
            # quarter-size copy of every frame. And the picture keeps its size: by
            # default libwebrtc starts a 1280x720 camera at 320x180 while its bandwidth
            # estimate is young and steps back up over some 16 s; a restyled picture
            # upscaled from that is what the user would see. Short of bandwidth, the
            # frame rate and the quantizer give way instead.
            options = rtc.TrackPublishOptions(
                video_codec=CODECS[settings.codec],
                video_encoding=rtc.VideoEncoding(
                    max_framerate=PUBLISH_FPS, max_bitrate=MAX_BITRATE[settings.codec]
                ),
                source=rtc.TrackSource.SOURCE_CAMERA,
                simulcast=False,
                # Each frame's capture time rides along (livekit_join's frame_timing).
                frame_metadata_features=[rtc.FrameMetadataFeature.FMF_USER_TIMESTAMP],
                # The package's own IntEnum for this protobuf enum; its stubs know only the latter.
                degradation_preference=rtc.DegradationPreference.MAINTAIN_RESOLUTION,  # type: ignore[arg-type]
            )
            await room.local_participant.publish_track(track, options)
            self._spawn(self._send_video(source))
        if settings.audio is not None:
            audio = rtc.AudioSource(48_000, 1)
            microphone = rtc.LocalAudioTrack.create_audio_track("microphone", audio)
            options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
            await room.local_participant.publish_track(microphone, options)
            self._spawn(self._send_audio(audio))

    def _on_track(self, track: rtc.Track, publication: Any, participant: Any) -> None:
        if not participant.identity.startswith(INFERENCE_PREFIX):
            return
        if track.kind == rtc.TrackKind.KIND_VIDEO:
            if self._settings.wants_remote_stream:
                self._hooks.remote_stream(track)
            self._spawn(self._receive_video(track))
        elif track.kind == rtc.TrackKind.KIND_AUDIO:
            self._spawn(self._receive_audio(track))

    def _on_disconnected(self, reason: Any = None) -> None:
        if not self._closing:
            self._hooks.lost(f"the LiveKit room disconnected ({reason})", None)

    async def _send_video(self, source: rtc.VideoSource) -> None:
        assert self._settings.input is not None
        rgb24 = rtc.VideoBufferType.RGB24

        def capture(frame: av.VideoFrame) -> None:  # in a sender's thread, or on the loop
            # rgb24 at the model's size (INPUT_PIXELS), as one flat block: LiveKit copies
            # it as it converts it to I420 (libyuv), before capture_frame returns.
            pixels = frame.to_ndarray().reshape(-1)
            stamp = frame.opaque
            metadata = rtc.FrameMetadata(user_timestamp=stamp) if isinstance(stamp, int) else None
            source.capture_frame(
                rtc.VideoFrame(frame.width, frame.height, rgb24, pixels.data), metadata=metadata
            )

        try:
            await feed(self._settings.input, capture)  # paced, newest frame wins
        finally:
            await source.aclose()

    async def _send_audio(self, source: rtc.AudioSource) -> None:
        assert self._settings.audio is not None
        track = self._settings.audio()  # real-time paced: played chunks, else silence
        try:
            while True:
                frame = await track.recv()
                pcm = frame.to_ndarray()
                await source.capture_frame(
                    rtc.AudioFrame(pcm.tobytes(), frame.sample_rate, 1, frame.samples)
                )
        finally:
            track.stop()
            await source.aclose()

    async def _receive_video(self, track: rtc.Track) -> None:
        # A small ring: a stalled loop drops old frames rather than queueing them.
        stream = rtc.VideoStream(track, format=rtc.VideoBufferType.I420, capacity=2)
        try:
            async for event in stream:
                frame = _to_av(event.frame)
                metadata = event.metadata  # the input's capture time, copied by the service
                if metadata is not None and metadata.user_timestamp:
                    frame.opaque = metadata.user_timestamp
                self._hooks.video(frame)
        finally:
            await stream.aclose()

    async def _receive_audio(self, track: rtc.Track) -> None:
        stream = rtc.AudioStream(track, capacity=10)
        try:
            async for event in stream:
                self._hooks.audio(event.frame)
        finally:
            await stream.aclose()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("LiveKit media task failed: %r", task.exception())

    async def stats(self) -> NetworkStats:
        room, rates = self._room, self._rates
        if room is None or rates is None or not room.isconnected():
            return NetworkStats()
        return network_stats(await self.sent_report(), rates)

    async def sent_report(self) -> list[Any]:
        """The published tracks' ``get_stats()`` (LiveKit's ``RtcStats``)."""
        room = self._room
        if room is None or not room.isconnected():
            return []
        # What we send only. LiveKit (1.2.1) aborts the whole process, a Rust panic no
        # Python code can catch, when libwebrtc's receiver stats hold a number JSON
        # cannot spell (random-pixel video does it: np.random frames through the
        # emulator). No figure of what we receive is worth that.
        report: list[Any] = []
        for publication in list(room.local_participant.track_publications.values()):
            if publication.track is not None:
                report.extend(await publication.track.get_stats())
        return report

    # -- ending ---------------------------------------------------------------

    def abort(self, error: DecartSDKError) -> None:
        if not self._room_info.done():
            self._room_info.set_exception(error)
            self._room_info.exception()  # retrieved: a failed attempt may never await it

    async def close(self) -> None:
        self._closing = True
        self.abort(WebSocketError("the connection was closed"))
        # The room goes first, then the streams: with streams closed under a live room,
        # LiveKit's native runtime now and then aborted the process at exit (not seen since).
        room, self._room = self._room, None
        if room is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(room.disconnect(), 1.0)
            room.off("track_subscribed", self._on_track)
            room.off("disconnected", self._on_disconnected)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def network_stats(report: Iterable[Any], rates: ByteRates) -> NetworkStats:
    """The figures of what we send, from a published track's stats (libwebrtc's; its
    times are in seconds). The RTT comes from RTCP receiver reports, else from the
    ICE candidate pair: on LiveKit's one peer connection (``/rtc/v1``) the pair both
    ways share, on its classic two the publisher's; either way its available
    outgoing bitrate is what we may send. No figure of what we receive:
    `LiveKitTransport.stats()` says why."""
    rtts: list[float] = []
    fractions: list[float] = []
    pair_rtt = available = limitation = None
    lost_out = sent = None
    for item in report:
        which = item.WhichOneof("stats")
        if which == "remote_inbound_rtp":
            stat = item.remote_inbound_rtp
            if stat.remote_inbound.round_trip_time_measurements:
                rtts.append(stat.remote_inbound.round_trip_time)
            lost_out = (lost_out or 0) + stat.received.packets_lost
            fractions.append(stat.remote_inbound.fraction_lost)
        elif which == "outbound_rtp":
            sent = (sent or 0) + item.outbound_rtp.sent.bytes_sent
            reason = item.outbound_rtp.outbound.quality_limitation_reason
            limitation = LIMITATIONS.get(reason, limitation)
        elif which == "candidate_pair" and item.candidate_pair.candidate_pair.nominated:
            pair = item.candidate_pair.candidate_pair
            pair_rtt = pair.current_round_trip_time or pair_rtt
            available = pair.available_outgoing_bitrate or available
    out, _ = rates.update(sent, None)
    rtt = sum(rtts) / len(rtts) if rtts else pair_rtt
    return NetworkStats(
        rtt_ms=ms(rtt),
        packets_lost_out=lost_out,
        bitrate_out_kbps=out,
        fraction_lost_out=max(fractions) if fractions else None,
        available_out_kbps=None if available is None else round(available / 1000, 1),
        limitation=limitation,
    )


def _to_av(frame: rtc.VideoFrame) -> av.VideoFrame:
    """A received frame as an av frame over the same memory (LiveKit hands each frame
    its own Python buffer); I420 of even size maps onto yuv420p."""
    width, height = frame.width, frame.height
    if width % 2 or height % 2:
        rgb = frame.convert(rtc.VideoBufferType.RGB24)
        array = np.frombuffer(rgb.data, np.uint8).reshape(height, width, 3)
        return av.VideoFrame.from_numpy_buffer(array, format="rgb24")
    planes = np.frombuffer(frame.data, np.uint8).reshape(height * 3 // 2, width)
    return av.VideoFrame.from_numpy_buffer(planes, format="yuv420p")
