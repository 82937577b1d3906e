"""What stands in for the model in a stream session: the output it makes of the input.

`GeneratingSession` holds a session's output tracks (fanned out through
one `MediaRelay` to its peer, its viewers and its
LiveKit room) and fills them: the client's camera frames transformed by the
prompt and image (`transforms`), or for an avatar the picture at the
brightness of the audio heard; ``generation_started`` with the first frame
out, then a ``generation_tick`` a second. `ServedSession`
adds the control side (prompt and image requests, the media path). Runs on
the emulator's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame, VideoFrame
from websockets.asyncio.server import ServerConnection

from ..models import ModelDefinition
from ..realtime.clock import Pacer
from . import colour, frame_timing, images, media, transforms
from .connection import Connection
from .faults import Faults

INTAKE_MARGIN = 1.5  # the model's top rate over its fps (see _transform_camera)
INTAKE_KEEP = 5  # received frames the model's intake keeps waiting, the newest


class GeneratingSession(Connection):
    """A stream-endpoint connection whose output the emulated model makes."""

    def __init__(
        self,
        ws: ServerConnection,
        model: ModelDefinition,
        *,
        loopback: bool,
        faults: Faults,
        on_closed: Callable[[Connection], None],
    ) -> None:
        super().__init__(ws, loopback=loopback, faults=faults, on_closed=on_closed)
        self.model = model
        self.prompt: str | None = None  # what the output is made with: prompt and image
        self.image: np.ndarray | None = None
        self.frames_in = 0
        # Over LiveKit with frame timing: input frames that carried a capture time, and
        # those that came without one after the first that had one (a client losing stamps).
        self.frames_in_stamped = 0
        self.frames_in_unstamped_later = 0
        self.last_frame_in: VideoFrame | None = None  # for tests: the newest input received
        self.frames_out = 0
        self.audio_frames_in = 0
        self.audio_frames_out = 0
        self.generating = False
        self.seconds = 0
        # One source per kind, fanned out to our own peer and to subscribers.
        self.relay = MediaRelay()
        self.video_out = self._video_track()
        self.audio_out: media.EchoAudioTrack | None = None
        self.level = media.LevelMeter()
        if model.is_avatar:
            self.audio_out = media.EchoAudioTrack(on_frame=self._audio_sent)

    def _video_track(self) -> media.PacedVideoTrack:
        return media.PacedVideoTrack(
            self.model.fps,
            on_frame=self._video_sent,
            frozen=lambda: self.faults.freeze_media,
            min_gap=1 / (self.model.fps * INTAKE_MARGIN),  # the model's own pace
        )

    def _add_tracks(self, pc: RTCPeerConnection) -> None:
        self._attach(pc, self.relay.subscribe(self.video_out, buffered=False))
        if self.audio_out is not None:
            self._attach(pc, self.relay.subscribe(self.audio_out))
            self.spawn(self._render_avatar())

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "video" and not self.model.is_avatar:
            self.spawn(self._transform_camera(track))
        elif track.kind == "audio" and self.audio_out is not None:
            self.spawn(self._listen(track))
        else:
            self.spawn(media.drain(track))

    async def _transform_camera(self, track: MediaStreamTrack) -> None:
        """Received frames, transformed in a worker thread; stale ones are skipped."""
        # Frames held back by a retransmission arrive together: the model works through
        # the newest few rather than take only the last. With the newest alone, each
        # loss of a 1280x720 camera's packet on a 160 ms round trip cost some three
        # frames: 21.8 fresh fps of 30 at 1% loss, against 25.7 keeping three.
        latest: media.Latest[VideoFrame] = media.Latest(keep=INTAKE_KEEP)
        # The model makes one picture at a time, at up to half again its fps: input at
        # exactly its fps never waits, and a backlog is gone within a few periods. At a
        # tenth over its fps a backlog drained at 3 frames a second, the next loss came
        # first, and five kept frames would only have added latency; at 5% loss and
        # 30 ms jitter the intake dropped 5 to 9% of the input, keeping three. Refilled
        # at the input's own rate, a bucket emptied by a burst would stay empty, and
        # every later frame would wait for its token: up to a period more, for good.
        intake = Pacer(self.model.fps * INTAKE_MARGIN, burst=1.0)
        reader = self.spawn(self._read_video(track, latest, intake))
        width, height = self.model.width, self.model.height
        try:
            while True:
                await intake.wait()
                frame = await latest.get()
                prompt, image = self.prompt, self.image
                planes = await asyncio.to_thread(
                    media.camera_planes, frame, width, height, prompt, image
                )
                stamp = frame.opaque
                self.video_out.push(planes, stamp=stamp if isinstance(stamp, int) else None)
        except MediaStreamError:
            pass  # the client's track ended
        finally:
            reader.cancel()

    async def _read_video(
        self, track: MediaStreamTrack, latest: media.Latest[VideoFrame], intake: Pacer
    ) -> None:
        try:
            while True:
                frame = await track.recv()
                if isinstance(frame, VideoFrame):
                    frame.opaque = frame_timing.stamp_of(track, frame.pts)  # LiveKit's trailer
                    colour.tag(track, frame)  # as the client described its pictures
                    self.frames_in += 1
                    if frame.opaque is not None:
                        self.frames_in_stamped += 1
                    elif self.frames_in_stamped:
                        self.frames_in_unstamped_later += 1
                    self.last_frame_in = frame
                    latest.put(frame)
                    intake.arrived()
        except MediaStreamError:
            pass
        finally:
            latest.close()

    async def _listen(self, track: MediaStreamTrack) -> None:
        assert self.audio_out is not None
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if isinstance(frame, AudioFrame):
                    self.audio_frames_in += 1
                    self.level.feed(frame)
                    self.audio_out.feed(frame)

    async def _render_avatar(self) -> None:
        """The avatar picture at the brightness of the latest audio, at the model's rate."""
        width, height = self.model.width, self.model.height
        grey = images.grey(width, height)
        shown: tuple[int, int] | None = None
        interval = 1.0 / self.model.fps
        while True:
            image = self.image if self.image is not None else grey
            steps = transforms.gain_steps(transforms.brightness(self.level.rms()))
            if (id(image), steps) != shown:
                shown = (id(image), steps)
                self.video_out.push(await asyncio.to_thread(media.avatar_planes, image, steps))
            await asyncio.sleep(interval)

    def _video_sent(self) -> None:
        self.frames_out += 1
        if not self.generating:
            self.generating = True
            self.spawn(self._generate())
        self._notify()

    def _audio_sent(self) -> None:
        self.audio_frames_out += 1

    async def _generate(self) -> None:
        """generation_started, then a billing tick each second."""
        await self.send({"type": "generation_started"})
        loop = asyncio.get_running_loop()
        start = loop.time()
        while True:
            await asyncio.sleep(max(0.0, start + self.seconds + 1 - loop.time()))
            self.seconds += 1
            if not self.faults.no_ticks:
                await self.send({"type": "generation_tick", "seconds": self.seconds})

    def _stop_media(self) -> None:
        self.video_out.stop()
        if self.audio_out is not None:
            self.audio_out.stop()
