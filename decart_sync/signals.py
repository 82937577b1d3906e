"""Events as blinker signals, delivered on one dispatcher thread per client.

The sender of every signal is the client. Receivers run on the client's
``decart-sync-events`` thread, in order, never on the event-loop thread; one
that raises is logged and the others still run. Events raised while
``connect()`` is in progress reach the handlers given to it (``on=``) at
once, as the JS SDK's ``onConnectionChange``/``onQueuePosition`` do, and are
held for every other receiver until it returns.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

import attrs
from blinker import NamedSignal, signal

from ._threads import Worker
from .errors import InvalidOptionsError

log = logging.getLogger(__name__)

#: kwarg ``state``: one of connecting, connected, generating, disconnected, reconnecting
connection_changed: NamedSignal = signal("decart-sync.connection-changed")
#: kwarg ``error``: a DecartSDKError
error: NamedSignal = signal("decart-sync.error")
#: kwarg ``seconds``: seconds of generation so far (billing tick)
generation_tick: NamedSignal = signal("decart-sync.generation-tick")
#: kwarg ``ended``: ``{"seconds": int | None, "reason": str | None}`` as the service says
generation_ended: NamedSignal = signal("decart-sync.generation-ended")
#: kwarg ``tracks``: the raw remote track (aiortc, or LiveKit's), for on_remote_stream
remote_stream: NamedSignal = signal("decart-sync.remote-stream")
#: kwarg ``queue``: ``{"position": int, "queue_size": int}`` while a LiveKit session waits
queue_position: NamedSignal = signal("decart-sync.queue-position")
#: kwarg ``report``: ``client.connection_quality``'s dict, when its level changes
connection_quality: NamedSignal = signal("decart-sync.connection-quality")
#: kwarg ``stats``: the dict of ``client.stats``, every ``stats_interval`` seconds when asked
stats: NamedSignal = signal("decart-sync.stats")


@attrs.frozen
class Event:
    """One kind of event: its signal, the keyword its value travels under, its names.

    Adding an event takes two steps: an [`Event`][decart_sync.signals.Event] here, and an ``emit``
    where it happens.
    """

    signal: NamedSignal
    arg: str
    names: tuple[str, ...] = ()  # what ``client.on()`` accepts: Python and the JS SDK's spellings


CONNECTION_CHANGE = Event(
    connection_changed, "state", ("connection_change", "connectionChange", "connection_changed")
)
ERROR = Event(error, "error", ("error",))
GENERATION_TICK = Event(generation_tick, "seconds", ("generation_tick", "generationTick"))
GENERATION_ENDED = Event(generation_ended, "ended", ("generation_ended", "generationEnded"))
QUEUE_POSITION = Event(queue_position, "queue", ("queue_position", "queuePosition"))
REMOTE_STREAM = Event(remote_stream, "tracks")
STATS = Event(stats, "stats", ("stats",))
CONNECTION_QUALITY = Event(
    connection_quality, "report", ("connection_quality", "connectionQuality")
)

NAMED = (
    CONNECTION_CHANGE,
    CONNECTION_QUALITY,
    ERROR,
    GENERATION_TICK,
    GENERATION_ENDED,
    QUEUE_POSITION,
    STATS,
)
_BY_NAME = {name: event for event in NAMED for name in event.names}


def named(name: str) -> Event:
    """The event ``client.on(name, ...)`` means."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise InvalidOptionsError(
            f"unknown event {name!r}; use connection_change, connection_quality, error, "
            "generation_tick, generation_ended, queue_position or stats"
        ) from None


class Handlers:
    """User callbacks on one sender's events, each called with the event's value."""

    def __init__(self, sender: object) -> None:
        self._sender = sender
        self._receivers: dict[tuple[Event, Callable[[Any], Any]], Callable[..., None]] = {}

    def add(self, event: Event, handler: Callable[[Any], Any]) -> Callable[..., None]:
        """Connect ``handler``; returns the receiver made for it
        (for [`Dispatcher.early()`][decart_sync.signals.Dispatcher.early])."""

        def receiver(sender: object, **kwargs: Any) -> None:
            handler(kwargs[event.arg])

        self._receivers[(event, handler)] = receiver
        event.signal.connect(receiver, sender=self._sender, weak=False)
        return receiver

    def remove(self, event: Event, handler: Callable[[Any], Any]) -> None:
        receiver = self._receivers.pop((event, handler), None)
        if receiver is not None:
            event.signal.disconnect(receiver, sender=self._sender)

    def clear(self) -> None:
        for (event, _), receiver in list(self._receivers.items()):
            event.signal.disconnect(receiver, sender=self._sender)
        self._receivers.clear()


_STOP, _RELEASE = object(), object()


class Dispatcher:
    """A queue drained by one named thread. Until `release()`, events reach only the
    [`early()`][decart_sync.signals.Dispatcher.early] receivers, and are held for the others."""

    def __init__(self, sender: object) -> None:
        self._sender = sender
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._early: set[Callable[..., None]] = set()
        self._worker = Worker(self._run, "decart-sync-events", wake=self._wake).start()

    def early(self, receiver: Callable[..., None]) -> None:
        """``receiver`` gets events as they happen, also while connect() is in progress."""
        self._early.add(receiver)

    def emit(self, event: Event, value: Any) -> None:
        """Thread-safe and non-blocking: callable from the loop."""
        self._queue.put((event, value))

    def caught_up(self, timeout: float = 1.0) -> None:
        """Wait (up to ``timeout``) until every event so far has been given to the early
        receivers: connect() returns after the handlers given to it saw "connected". Never
        waits on the dispatcher's own thread (a handler calling it)."""
        done = threading.Event()
        self._queue.put(done)
        if not self._worker.in_thread():
            done.wait(timeout)

    def release(self) -> None:
        self._queue.put(_RELEASE)

    def stop(self, timeout: float | None = 1.0) -> None:
        """Deliver what is queued, then end; a handler may call this (it does not wait)."""
        self._worker.stop(timeout)

    def _wake(self) -> None:
        self._queue.put(_STOP)

    def _run(self) -> None:
        held: list[tuple[Event, Any]] | None = []  # None once released
        while True:
            item = self._queue.get()
            if isinstance(item, threading.Event):
                item.set()  # caught up
                continue
            if item is _STOP or item is _RELEASE:
                for event, value in held or ():
                    self._deliver(event, value, late_only=True)
                held = None
                if item is _STOP:
                    return
                continue
            event, value = item
            if held is None:
                self._deliver(event, value)
            else:
                self._deliver(event, value, early_only=True)
                held.append(item)

    def _deliver(
        self, event: Event, value: Any, *, early_only: bool = False, late_only: bool = False
    ) -> None:
        for receiver in list(event.signal.receivers_for(self._sender)):
            early = receiver in self._early
            if (early_only and not early) or (late_only and early):
                continue
            try:
                receiver(self._sender, **{event.arg: value})
            except Exception:
                log.exception("a decart_sync event handler raised; other handlers still run")
