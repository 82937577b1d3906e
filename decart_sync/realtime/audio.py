"""live_avatar audio: a track of silence into which played audio is spliced.

The avatar model expects a continuous audio stream. `AvatarAudio`
holds queued 20 ms chunks (48 kHz mono s16, resampled by av); each peer
connection gets its own ``aiortc_tracks.AvatarAudioTrack`` reading from it, sending a
queued chunk when there is one and silence otherwise, in real time.
"""

from __future__ import annotations

import fractions
import io
import os
import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import av
import numpy as np

from .._portal import wait_until
from ..errors import InvalidInputError, TimeoutError_

if TYPE_CHECKING:
    from .aiortc_tracks import AvatarAudioTrack

RATE = 48_000
CHUNK = 960  # 20 ms
TIME_BASE = fractions.Fraction(1, RATE)


class AvatarAudio:
    """Queued chunks shared by the audio tracks of successive connections."""

    def __init__(self) -> None:
        self._chunks: deque[tuple[np.ndarray, threading.Event | None]] = deque()
        self._lock = threading.Lock()
        self.played_chunks = 0

    def queue(self, pcm: np.ndarray) -> threading.Event:
        """Queue mono s16 samples; the event is set once the last chunk was sent."""
        done = threading.Event()
        pieces = [pcm[i : i + CHUNK] for i in range(0, len(pcm), CHUNK)]
        if not pieces:
            done.set()
            return done
        last = pieces[-1]
        if len(last) < CHUNK:
            pieces[-1] = np.pad(last, (0, CHUNK - len(last)))
        with self._lock:
            for i, piece in enumerate(pieces):
                self._chunks.append((piece, done if i == len(pieces) - 1 else None))
        return done

    def play(self, pcm: np.ndarray, timeout: float, over: Callable[[], Exception | None]) -> None:
        """Queue ``pcm`` and wait until it was played (a user thread, never the loop's);
        ``over()`` names why it never will be. What is left is dropped on the way out."""
        done = self.queue(pcm)
        try:
            wait_until(lambda: done.is_set() or over() is not None, done.wait, timeout)
            if not done.is_set():
                raise over() or TimeoutError_(
                    f"the audio did not finish playing within {timeout} s"
                )
        except BaseException:
            self.cancel()
            raise

    def cancel(self) -> None:
        with self._lock:
            pending = [event for _, event in self._chunks if event is not None]
            self._chunks.clear()
        for event in pending:
            event.set()

    def next_chunk(self) -> tuple[np.ndarray | None, threading.Event | None]:
        with self._lock:
            if not self._chunks:
                return None, None
            self.played_chunks += 1
            return self._chunks.popleft()

    def track(self) -> AvatarAudioTrack:
        from .aiortc_tracks import AvatarAudioTrack  # aiortc: loaded by an avatar only

        return AvatarAudioTrack(self)


def decode_audio(audio: Any, sample_rate: int | None = None) -> np.ndarray:
    """Any audio av can decode, or a PCM array, as mono s16 samples at 48 kHz."""
    if isinstance(audio, np.ndarray):
        return _resample(_frames_from_array(audio, sample_rate))
    if sample_rate is not None:
        raise InvalidInputError("sample_rate only applies to a numpy PCM array")
    if isinstance(audio, bytes | bytearray | memoryview):
        source: Any = io.BytesIO(bytes(audio))
    elif isinstance(audio, str | os.PathLike):
        if not os.path.isfile(audio):
            raise InvalidInputError(f"audio file {os.fspath(audio)!r} does not exist")
        source = os.fspath(audio)
    else:
        raise InvalidInputError(
            "audio must be bytes of an audio file, a file path, or a numpy PCM array with "
            f"sample_rate=, got {type(audio).__name__}"
        )
    try:
        with av.open(source) as container:
            if not container.streams.audio:
                raise InvalidInputError("the given file has no audio stream")
            return _resample(list(container.decode(audio=0)))
    except av.FFmpegError as exc:
        raise InvalidInputError(f"the audio could not be decoded: {exc}", cause=exc) from None


def _frames_from_array(pcm: np.ndarray, sample_rate: int | None) -> list[av.AudioFrame]:
    if not sample_rate or sample_rate <= 0:
        raise InvalidInputError("a numpy PCM array needs its sample_rate= (e.g. 16000)")
    if pcm.ndim == 1:
        pcm = pcm[:, None]
    if pcm.ndim != 2 or pcm.shape[1] not in (1, 2) or pcm.size == 0:
        raise InvalidInputError(
            f"PCM must be (samples,) or (samples, channels<=2), got shape {pcm.shape}"
        )
    if pcm.dtype.kind == "f":
        if not np.isfinite(pcm).all():
            raise InvalidInputError("PCM holds NaN or infinite samples")
        pcm = (np.clip(pcm, -1.0, 1.0) * 32767).astype(np.int16)
    elif pcm.dtype != np.int16:
        raise InvalidInputError(f"PCM must be int16 or float in [-1, 1], got {pcm.dtype}")
    layout = "mono" if pcm.shape[1] == 1 else "stereo"
    frame = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(pcm.reshape(1, -1)), format="s16", layout=layout
    )
    frame.sample_rate = sample_rate
    return [frame]


def _resample(frames: list[av.AudioFrame]) -> np.ndarray:
    resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
    out: list[np.ndarray] = []
    for frame in _with_flush(frames):
        for piece in resampler.resample(frame):
            out.append(piece.to_ndarray().reshape(-1))
    if not out:
        raise InvalidInputError("the audio holds no samples")
    return np.concatenate(out)


def _with_flush(frames: list[av.AudioFrame]) -> Iterator[av.AudioFrame | None]:
    for frame in frames:
        frame.pts = None
        yield frame
    yield None
