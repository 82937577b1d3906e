"""Events as blinker signals, delivered on one dispatcher thread per client.

The sender of every signal is the client. Receivers run on the client's
``decart-sync-events`` thread, in order, never on the event-loop thread; one
that raises is logged and the others still run. Events raised while
``connect()`` is in progress are held and delivered once it returns.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from blinker import NamedSignal, signal

log = logging.getLogger(__name__)

#: kwarg ``state``: one of connecting, connected, generating, disconnected, reconnecting
connection_changed: NamedSignal = signal("decart-sync.connection-changed")
#: kwarg ``error``: a DecartSDKError
error: NamedSignal = signal("decart-sync.error")
#: kwarg ``seconds``: seconds of generation so far (billing tick)
generation_tick: NamedSignal = signal("decart-sync.generation-tick")
#: kwarg ``tracks``: the raw aiortc remote tracks (used for on_remote_stream)
remote_stream: NamedSignal = signal("decart-sync.remote-stream")

# Both the Python spelling and the seed's JS spelling, to the signal and its kwarg.
EVENT_NAMES: dict[str, tuple[NamedSignal, str]] = {
    "connection_change": (connection_changed, "state"),
    "connectionChange": (connection_changed, "state"),
    "connection_changed": (connection_changed, "state"),
    "error": (error, "error"),
    "generation_tick": (generation_tick, "seconds"),
    "generationTick": (generation_tick, "seconds"),
}

_STOP = object()


class Dispatcher:
    """A queue drained by one named thread; held until :meth:`release`."""

    def __init__(self, sender: object) -> None:
        self._sender = sender
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._released = threading.Event()
        self._thread = threading.Thread(target=self._run, name="decart-sync-events", daemon=True)
        self._thread.start()

    def emit(self, sig: NamedSignal, **kwargs: Any) -> None:
        """Thread-safe and non-blocking: callable from the loop."""
        self._queue.put((sig, kwargs))

    def call(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run a user callback on the dispatcher thread."""
        self._queue.put((fn, args))

    def release(self) -> None:
        self._released.set()

    def stop(self, timeout: float = 1.0) -> None:
        self._queue.put(_STOP)
        self._released.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        self._released.wait()
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            target, payload = item
            if isinstance(target, NamedSignal):
                for receiver in list(target.receivers_for(self._sender)):
                    self._invoke(receiver, (self._sender,), payload)
            else:
                self._invoke(target, payload, {})

    @staticmethod
    def _invoke(fn: Callable[..., Any], args: Any, kwargs: dict[str, Any]) -> None:
        try:
            fn(*args, **kwargs)
        except Exception:
            log.exception("a decart_sync event handler raised; other handlers still run")


EVENT_NAMES_BY_SIGNAL: dict[str, NamedSignal] = {sig.name: sig for sig, _ in EVENT_NAMES.values()}
