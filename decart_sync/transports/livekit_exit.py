"""Let LiveKit's native callbacks return before the interpreter finalizes.

The ``livekit`` package (1.2.x) disposes its native runtime in an ``atexit``
handler; after that it starts no more calls into Python. A call already under
way is another matter: its log forwarding makes hundreds a second while a
room is torn down (one the server ended goes on tearing down for about 50 ms
after ``disconnect()`` returns), and such a call waits for the GIL. If
finalization starts first, CPython 3.11 ends the waiting thread with
``pthread_exit``, whose forced unwind through a Rust frame that must not
unwind aborts the process ("panic in a function that cannot unwind", exit
134), after every test passed. Seen under gdb: a ``tokio-rt-worker`` thread
exiting while the main thread cleared module dicts.

:func:`install` registers a handler before livekit makes its client; atexit
runs handlers last in, first out, so ours runs after livekit's dispose and
hands the GIL over for a moment so those calls return. There is nothing to
wait on (the calls are invisible from Python), but none can start any more,
so a short grace is enough. Measured with a script that exits right after a
room the server ended: 10 aborts in 60 runs without it, 0 in 30 with a 50 ms
grace, on a busy machine; on a quiet one 0 in 75 either way. Not conclusive.
"""

from __future__ import annotations

import atexit
import sys
import time

GRACE = 0.1  # seconds; only at exit, only if livekit's runtime was started

_installed = False


def install() -> None:
    """Idempotent; call before the first ``livekit.rtc`` object is made."""
    global _installed
    if not _installed:
        _installed = True
        atexit.register(_settle)


def _settle() -> None:
    ffi = sys.modules.get("livekit.rtc._ffi_client")
    client = getattr(getattr(ffi, "FfiClient", None), "_instance", None)
    if client is not None:  # its runtime ran in this process
        time.sleep(GRACE)  # releases the GIL to any callback still under way
