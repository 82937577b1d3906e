"""The output side of the node: restyled frames out, each with the stamp of its input.

Over LiveKit each output frame names the input it was made from (its capture
time, ``frames(with_info=True)``), so it goes out with that input's header.
A frame that names none is then one the service sent again, and is not
published (the first few of a connection may come before the frame timing
does: they follow the rule below). On plain WebRTC, where no frame names its
input, each goes out with the header of the newest input handed over when it
arrived, and an output with no new input since the last one is not published
(two frames with one stamp would confuse whoever matches them).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

import decart_sync

from .._threads import Worker
from .settings import Log

KEPT = 256  # input headers remembered, for outputs that name their input


class OutputRelay:
    """Reads a client's frames on ``decart-sync-ros-output`` and publishes them."""

    def __init__(self, publish: Callable[[np.ndarray, Any], None], log: Log) -> None:
        self._publish = publish
        self._log = log
        self._lock = threading.Lock()
        self._header: Any = None
        self._header_seq = 0
        # Headers by their input's capture time (us): the outputs that name their input.
        self._by_capture: OrderedDict[int, tuple[Any, int]] = OrderedDict()
        self._published_seq = 0
        self._timed = False  # outputs have named their inputs (LiveKit frame timing)
        self._worker: Worker | None = None
        self.frames_out = 0  # published on image_out
        self.repeats = 0  # output frames not published: no new input since the last one

    def input_sent(self, header: Any, captured: float | None = None) -> None:
        """An input frame with this header went to the session (any thread);
        ``captured``: what ``send_frame`` returned for it."""
        with self._lock:
            self._header = header
            self._header_seq += 1
            if captured is not None:
                self._by_capture[round(captured * 1e6)] = (header, self._header_seq)
                while len(self._by_capture) > KEPT:
                    self._by_capture.popitem(last=False)

    def start(self, client: decart_sync.RealtimeClient) -> None:
        worker = Worker(lambda: self._run(client, worker.stopping), "decart-sync-ros-output")
        self._worker = worker.start()

    def stop(self) -> None:
        """Ask the thread to end; it does within its next read."""
        if self._worker is not None:
            self._worker.signal()

    def join(self, timeout: float) -> None:
        if self._worker is not None:
            self._worker.join(timeout)
            self._worker = None

    def _run(self, client: decart_sync.RealtimeClient, stop: threading.Event) -> None:
        frames = client.frames(timeout=0.5, with_info=True)
        while not stop.is_set():
            try:
                frame, info = next(frames)
            except decart_sync.WebRTCTimeoutError:
                if client.state == "disconnected":
                    return
                continue
            except (StopIteration, decart_sync.DecartSDKError):
                return
            if info.source_time is not None:
                self._timed = True
            elif self._timed:  # with frame timing, an output naming no input is a repeat
                self.repeats += 1
                continue
            with self._lock:
                named = None
                if info.source_time is not None:
                    named = self._by_capture.get(round(info.source_time * 1e6))
                header, seq = named or (self._header, self._header_seq)
            if seq == self._published_seq:  # no new input, or this input's again
                self.repeats += 1
                continue
            self._published_seq = seq
            try:
                self._publish(frame, header)
            except Exception as exc:  # a publisher torn down during shutdown
                if not stop.is_set():
                    self._log.warning(f"could not publish image_out: {exc!r}")
                continue
            self.frames_out += 1
