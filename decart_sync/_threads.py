"""One stoppable background thread: the shape every helper thread of the package shares.

A `Worker` is a named daemon thread running one function. Stopping it
is two steps, which callers may take apart: `Worker.signal()` sets its
``stopping`` Event (and calls ``wake``, for a thread blocked on something
else: a queue's sentinel, a socket's shutdown), then `Worker.join()`
waits for it within a bound. A worker never joins itself, so a thread may stop
its own worker (e.g. a handler that closes the client) without deadlocking;
an exception that escapes the function is logged with the thread's name, not
lost on stderr.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Worker:
    """``target()`` on a thread called ``name`` until it returns; told to end by `signal()`.

    ``stopping`` may be an Event shared with other workers (or with the owner),
    so that one ``set()`` asks all of them to end.
    """

    def __init__(
        self,
        target: Callable[[], object],
        name: str,
        *,
        wake: Callable[[], object] | None = None,
        stopping: threading.Event | None = None,
        daemon: bool = True,
    ) -> None:
        self.name = name
        self.stopping = stopping if stopping is not None else threading.Event()
        self._target = target
        self._wake = wake
        self._signalled = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=name, daemon=daemon)

    def start(self) -> Worker:
        self._thread.start()
        return self

    def signal(self) -> None:
        """Ask the thread to end; never blocks. ``wake`` is called once."""
        self.stopping.set()
        with self._lock:
            wake, self._signalled = (None if self._signalled else self._wake), True
        if wake is not None:
            wake()

    def join(self, timeout: float | None) -> bool:
        """Wait at most ``timeout`` seconds for the thread to end; True once it has.

        A worker never started counts as ended; its own thread does not wait
        for itself (False: it is still running, the caller's frame is on it).
        """
        thread = self._thread
        if thread.ident is None:
            return True
        if thread is threading.current_thread():
            return False
        thread.join(None if timeout is None else max(0.0, timeout))
        return not thread.is_alive()

    def stop(self, timeout: float | None = 1.0) -> bool:
        """`signal()`, then `join()` within ``timeout``."""
        self.signal()
        return self.join(timeout)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def in_thread(self) -> bool:
        return self._thread is threading.current_thread()

    def _run(self) -> None:
        try:
            self._target()
        except Exception:
            log.exception("the %s thread failed", self.name)
