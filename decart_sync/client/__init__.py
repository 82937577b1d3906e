"""What the user holds: connect() and subscribe() give a RealtimeClient; DecartClient
keeps an account's settings for sessions, uploads and tokens.

``start`` checks the options and starts a session, ``realtime`` is the blocking
client over it (frames, prompts, events, close), ``stats`` gathers its figures,
``output_audio`` keeps the service's audio for readers, and ``account`` is
DecartClient.
"""

from __future__ import annotations

from .account import DecartClient
from .realtime import RealtimeClient
from .start import InitialState, connect, subscribe

__all__ = ["DecartClient", "InitialState", "RealtimeClient", "connect", "subscribe"]
