"""The output side of the node: restyled frames out, each with the stamp of its input.

The library does not say which input an output came from, so each output
frame goes out with the header of the newest input handed over when it
arrived; an output with no new input since the last one is not published
(two frames with one stamp would confuse whoever matches them).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np

import decart_sync

from .._threads import Worker
from .settings import Log


class OutputRelay:
    """Reads a client's frames on ``decart-sync-ros-output`` and publishes them."""

    def __init__(self, publish: Callable[[np.ndarray, Any], None], log: Log) -> None:
        self._publish = publish
        self._log = log
        self._lock = threading.Lock()
        self._header: Any = None
        self._header_seq = 0
        self._published_seq = 0
        self._worker: Worker | None = None
        self.frames_out = 0  # published on image_out
        self.repeats = 0  # output frames not published: no new input since the last one

    def input_sent(self, header: Any) -> None:
        """An input frame with this header went to the session (any thread)."""
        with self._lock:
            self._header = header
            self._header_seq += 1

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
        while not stop.is_set():
            ok, frame = client.read(timeout=0.5)
            if not ok or frame is None:
                if client.state == "disconnected":
                    return
                continue
            with self._lock:
                header, seq = self._header, self._header_seq
            if seq == self._published_seq:
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
