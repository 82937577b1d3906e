"""``decart_sync.VideoCapture``: a drop-in for ``cv2.VideoCapture`` over a session.

An OpenCV loop keeps its shape; only the capture changes::

    cap = decart_sync.VideoCapture(0, model="lucy-restyle", prompt="sepia")
    while cap.isOpened():
        ok, frame = cap.read()          # the restyled frame, BGR like OpenCV's
        ...
    cap.release()

It sits above the client (public API only) and needs no OpenCV itself, except
to open a camera index or device path, which it hands to ``cv2.VideoCapture``.
Prompts and everything else: ``cap.client``.
"""

from __future__ import annotations

import importlib
from types import TracebackType
from typing import Any

import numpy as np

from .client.start import RealtimeClient, connect
from .errors import InvalidInputError
from .options import forwarded, with_prompt

# OpenCV's property ids (cv2.CAP_PROP_*), so that cap.get(cv2.CAP_PROP_FPS) works.
CAP_PROP_FRAME_WIDTH = 3
CAP_PROP_FRAME_HEIGHT = 4
CAP_PROP_FPS = 5

__all__ = ["VideoCapture"]


class VideoCapture:
    """``read()``, ``grab()``/``retrieve()``, ``isOpened()``, ``get()``, ``release()``
    of ``cv2.VideoCapture``, returning the model's output frames.

    ``source`` is anything [`decart_sync.connect()`][decart_sync.connect] takes (a stream URL too),
    or a camera index or device path (``/dev/video0``), opened with OpenCV
    (needs ``opencv-python``) and released with this capture. ``prompt`` is the initial
    prompt; other keywords go to [`decart_sync.connect()`][decart_sync.connect]. A read that gets
    no frame within ``read_timeout`` seconds returns ``(False, None)``, as
    OpenCV's does when a camera stops.
    """

    def __init__(
        self,
        source: Any = None,
        *,
        model: Any,
        prompt: str | None = None,
        pixel_format: str = "bgr24",
        read_timeout: float = 10.0,
        **connect_options: Any,
    ) -> None:
        forwarded(connect_options, "VideoCapture", own=("prompt", "read_timeout"))
        connect_options = with_prompt(connect_options, prompt)
        self.read_timeout = read_timeout
        self._owned = _open_with_opencv(source) if _is_device(source) else None
        try:
            self.client: RealtimeClient = connect(
                self._owned if self._owned is not None else source,
                model=model,
                pixel_format=pixel_format,
                **connect_options,
            )
        except BaseException:
            self._release_owned()
            raise
        self._grabbed: np.ndarray | None = None
        self._released = False

    # -- cv2.VideoCapture's calls -----------------------------------------

    def read(self) -> tuple[bool, np.ndarray | None]:
        """The next output frame: ``(True, frame)``, or ``(False, None)`` when there is none."""
        if not self.grab():
            return False, None
        return self.retrieve()

    def grab(self) -> bool:
        """Wait for the next output frame and keep it for
        [`retrieve()`][decart_sync.opencv.VideoCapture.retrieve]."""
        if self._released:
            return False
        ok, frame = self.client.read(timeout=self.read_timeout)
        self._grabbed = frame if ok else None
        return ok

    def retrieve(self, image: Any = None, flag: int = 0) -> tuple[bool, np.ndarray | None]:
        """The frame the last [`grab()`][decart_sync.opencv.VideoCapture.grab] got (OpenCV's
        arguments are accepted and unused)."""
        if self._grabbed is None:
            return False, None
        return True, self._grabbed

    def isOpened(self) -> bool:  # OpenCV's spelling
        return not self._released and self.client.state != "disconnected"

    def get(self, prop_id: int) -> float:
        """Frame width, height and fps (the model's); 0.0 for other ids, as OpenCV does."""
        model = self.client.model
        values = {
            CAP_PROP_FRAME_WIDTH: model.width,
            CAP_PROP_FRAME_HEIGHT: model.height,
            CAP_PROP_FPS: model.fps,
        }
        return float(values.get(int(prop_id), 0.0))

    def set(self, prop_id: int, value: float) -> bool:
        """Nothing can be set (the model fixes size and rate): False, as OpenCV says."""
        return False

    def release(self) -> None:
        """Close the session and any camera this capture opened; safe to call again."""
        self._released = True
        self._grabbed = None
        try:
            self.client.close()
        finally:
            self._release_owned()

    def __enter__(self) -> VideoCapture:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        state = "released" if self._released else self.client.state
        return f"<decart_sync.VideoCapture {self.client.model.name} {state}>"

    def _release_owned(self) -> None:
        owned, self._owned = self._owned, None
        if owned is not None:
            owned.release()


def _is_device(source: Any) -> bool:
    """A camera, which OpenCV opens here (with its BGR frames and the camera's own mode)."""
    if isinstance(source, bool):
        return False
    return isinstance(source, int) or (isinstance(source, str) and source.startswith("/dev/"))


def _open_with_opencv(source: int | str) -> Any:
    try:
        cv2 = importlib.import_module("cv2")
    except ImportError:
        raise InvalidInputError(
            f"opening camera {source!r} needs OpenCV: pip install opencv-python; "
            "or pass a source that has read() -> (ok, frame), an iterable of frames or a file"
        ) from None
    capture = cv2.VideoCapture(source)
    if not capture.isOpened():
        capture.release()
        raise InvalidInputError(f"OpenCV could not open camera {source!r}")
    return capture
