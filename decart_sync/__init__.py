"""decart_sync: Decart's realtime video models from plain, blocking Python.

>>> import decart_sync
>>> from decart_sync import models
>>> with decart_sync.connect(frames, model=models.realtime.mirage()) as client:
...     client.set_prompt("invert")
...     for frame in client.frames():
...         ...
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import _process, models, signals
from ._version import __version__
from .errors import (
    DecartSDKError,
    FilesError,
    ICEError,
    InvalidAPIKeyError,
    InvalidBaseURLError,
    InvalidInputError,
    InvalidOptionsError,
    ModelNotFoundError,
    ProcessingError,
    QueueResultError,
    QueueStatusError,
    QueueSubmitError,
    QueueTimeoutError,
    ServerError,
    SignalingError,
    TokenCreateError,
    TokenDecodeError,
    TokenVerifyError,
    WebRTCTimeoutError,
    WebSocketError,
)
from .models import ModelDefinition

if TYPE_CHECKING:
    from .client import DecartClient, InitialState, RealtimeClient, connect, subscribe
    from .opencv import VideoCapture
    from .preflight import ConnectivityReport, check_connectivity
    from .realtime.frame_hub import FrameInfo

# The media stack (av, aiortc) loads on first use of these names, not on
# ``import decart_sync``: see _process for why the order of imports matters.
_LAZY = {
    "InitialState": "client",
    "RealtimeClient": "client",
    "connect": "client",
    "subscribe": "client",
    "DecartClient": "client",
    "VideoCapture": "opencv",
    "FrameInfo": "realtime.frame_hub",
    "check_connectivity": "preflight",
    "ConnectivityReport": "preflight",
}
_process.load_opencv_before_av()


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "ConnectivityReport",
    "DecartClient",
    "DecartSDKError",
    "FilesError",
    "FrameInfo",
    "ICEError",
    "InitialState",
    "InvalidAPIKeyError",
    "InvalidBaseURLError",
    "InvalidInputError",
    "InvalidOptionsError",
    "ModelDefinition",
    "ModelNotFoundError",
    "ProcessingError",
    "QueueResultError",
    "QueueStatusError",
    "QueueSubmitError",
    "QueueTimeoutError",
    "RealtimeClient",
    "ServerError",
    "SignalingError",
    "TokenCreateError",
    "TokenDecodeError",
    "TokenVerifyError",
    "VideoCapture",
    "WebRTCTimeoutError",
    "WebSocketError",
    "__version__",
    "check_connectivity",
    "connect",
    "models",
    "signals",
    "subscribe",
]
