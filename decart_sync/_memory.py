"""Allocator hygiene after a connection is torn down.

glibc raises its mmap threshold after the first large free; frame-sized
buffers then come from the heap, and what a torn-down connection's codecs
freed in its middle is not handed back by itself: ``benchmarks.soak`` grew
74 MB over 9 reconnects. After a teardown we hand it back. Pinning the
threshold instead made every frame buffer page-fault (see docs/benchmarks.md, Soak).
"""

from __future__ import annotations

import asyncio
import ctypes
from collections.abc import Callable

try:
    _malloc_trim: Callable[[int], int] | None = ctypes.CDLL(None).malloc_trim
except (OSError, AttributeError, TypeError):  # not glibc
    _malloc_trim = None


async def hand_back_freed_memory() -> None:
    """Return freed heap to the system (glibc only), off the event loop."""
    if _malloc_trim is not None:
        await asyncio.to_thread(_malloc_trim, 0)
