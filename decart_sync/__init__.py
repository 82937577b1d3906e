"""decart_sync: Decart's realtime video models from plain, blocking Python.

>>> import decart_sync
>>> from decart_sync import models
>>> with decart_sync.connect(frames, model=models.realtime.mirage()) as client:
...     client.set_prompt("invert")
...     for frame in client.frames():
...         ...
"""

from . import models, signals
from ._version import __version__
from .client import InitialState, RealtimeClient, connect, subscribe
from .decart_client import DecartClient
from .errors import (
    DecartSDKError,
    ICEError,
    InvalidAPIKeyError,
    InvalidBaseURLError,
    InvalidInputError,
    InvalidOptionsError,
    ModelNotFoundError,
    ServerError,
    SignalingError,
    WebRTCTimeoutError,
    WebSocketError,
)
from .models import ModelDefinition

__all__ = [
    "DecartClient",
    "DecartSDKError",
    "ICEError",
    "InitialState",
    "InvalidAPIKeyError",
    "InvalidBaseURLError",
    "InvalidInputError",
    "InvalidOptionsError",
    "ModelDefinition",
    "ModelNotFoundError",
    "RealtimeClient",
    "ServerError",
    "SignalingError",
    "WebRTCTimeoutError",
    "WebSocketError",
    "__version__",
    "connect",
    "models",
    "signals",
    "subscribe",
]
