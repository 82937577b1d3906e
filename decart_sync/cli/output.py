"""The output file: restyled video, and the avatar's returned audio, muxed by av.

Video frames are stamped by when they arrived (at the model's fps); audio
chunks follow each other sample by sample, re-anchored to the clock when
chunks were missed. Two threads may write (video from the main loop, audio
from its reader), so muxing takes a lock. `Recorder.close()` flushes
both encoders: a stopped run still leaves a playable file.
"""

from __future__ import annotations

import fractions
import threading

import av
import numpy as np

from ..client.output_audio import AudioChunk
from ..models import ModelDefinition

AUDIO_RATE = 48_000
RESYNC = 0.2  # seconds audio may run behind the clock before it jumps ahead


class Recorder:
    def __init__(self, path: str, model: ModelDefinition, *, audio: bool) -> None:
        self._fps = round(model.fps)
        self._lock = threading.Lock()
        self._container = av.open(path, "w")
        video = self._container.add_stream(
            "libx264", rate=self._fps, options={"preset": "veryfast"}
        )
        video.width, video.height, video.pix_fmt = model.width, model.height, "yuv420p"
        self._video = video
        self._audio = None
        if audio:
            self._audio = self._container.add_stream("aac", rate=AUDIO_RATE)
            self._audio.layout = "stereo"
        self._last_pts = -1
        self._next_sample: int | None = None
        self._closed = False
        self.frames = 0
        self.audio_seconds = 0.0

    def video(self, frame: np.ndarray, elapsed: float) -> None:
        """An rgb24 frame that arrived ``elapsed`` seconds into the recording."""
        picture = av.VideoFrame.from_ndarray(frame, format="rgb24")
        picture.pts = self._last_pts = max(self._last_pts + 1, round(elapsed * self._fps))
        with self._lock:
            if self._closed:
                return
            self._container.mux(self._video.encode(picture))
            self.frames += 1

    def audio(self, chunk: AudioChunk, elapsed: float) -> None:
        """A chunk of returned audio that arrived ``elapsed`` seconds into the recording."""
        if self._audio is None:
            return
        samples = chunk.samples
        if samples.shape[1] == 1:
            samples = np.repeat(samples, 2, axis=1)
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(samples[:, :2]).reshape(1, -1), format="s16", layout="stereo"
        )
        frame.sample_rate = chunk.sample_rate
        now = round(elapsed * chunk.sample_rate)
        start = self._next_sample
        if start is None or now - start > RESYNC * chunk.sample_rate:
            start = now
        frame.pts = start
        frame.time_base = fractions.Fraction(1, chunk.sample_rate)
        self._next_sample = start + len(samples)
        with self._lock:
            if self._closed:
                return
            self._container.mux(self._audio.encode(frame))
            self.audio_seconds += chunk.duration

    def close(self) -> None:
        """Flush the encoders and finish the file; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._container.mux(self._video.encode(None))
                if self._audio is not None:
                    self._container.mux(self._audio.encode(None))
            finally:
                self._container.close()
