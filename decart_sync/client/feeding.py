"""The user's input source, read on its own thread into the input holder.

``connect(source)`` starts one; ``set_source()`` swaps it mid-session, and
``close()`` stops it. A swap and a close never cross: once closing has begun,
a swap is refused.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

from ..errors import DecartSDKError, WebSocketError
from ..sources import Feeder, Push


class Feeding:
    """The source's reader thread (a ``sources.Feeder``), at most one at a time."""

    def __init__(self, push: Push, fps: float, on_error: Callable[[DecartSDKError], None]) -> None:
        self._push = push
        self._fps = fps
        self._on_error = on_error
        self._feeder: Feeder | None = None
        self._lock = threading.Lock()
        self._closed = False

    def start(self, frames: Callable[[], Iterator[Any]] | None, timeout: float = 2.0) -> None:
        """Read ``frames`` from now on (None: read nothing), stopping the reader before,
        which may take ``timeout`` seconds for a ``read()`` in progress."""
        with self._lock:
            if self._closed:
                raise WebSocketError("the client is closed")
            old, self._feeder = self._feeder, None
            if old is not None:
                old.stop(timeout)
            if frames is not None:
                self._feeder = Feeder(frames, self._push, self._fps, self._on_error)
                self._feeder.start()

    @property
    def finished(self) -> bool:
        """A source was read to its end (or failed)."""
        feeder = self._feeder
        return feeder is not None and feeder.finished.is_set()

    def stop_soon(self) -> Feeder | None:
        """No more swaps; the reader is asked to stop and returned, to be joined later."""
        with self._lock:
            self._closed = True
            feeder = self._feeder
        if feeder is not None:
            feeder.stop(0.0)
        return feeder
