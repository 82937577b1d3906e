"""When a session tries again, and how long it pauses (async core).

The official SDKs' retry (JS SDK 0.1.20, ``REALTIME_CONFIG.session.retry``:
p-retry with 5 retries, 1 s doubling to 10 s), for the first connect and for
reconnects alike. What no retry can fix fails at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator

from .._portal import Deadline
from ..errors import DecartSDKError, RejectedError

log = logging.getLogger(__name__)

RECONNECT_ATTEMPTS = 5
RECONNECT_FIRST_DELAY = 1.0
RECONNECT_MAX_DELAY = 10.0


def backoff() -> Iterator[float]:
    """The pauses before each retry: 1, 2, 4, 8, 10 s."""
    delay = RECONNECT_FIRST_DELAY
    for _ in range(RECONNECT_ATTEMPTS):
        yield delay
        delay = min(delay * 2, RECONNECT_MAX_DELAY)


def is_final(error: DecartSDKError) -> bool:
    """Trying again cannot help: a permanent error, or the same prompt or image refused."""
    return error.permanent or isinstance(error, RejectedError)


async def within_deadline(
    once: Callable[[DecartSDKError | None], Awaitable[None]],
    drop: Callable[[], Awaitable[None]],
    deadline: Deadline,
) -> None:
    """``once(last_failure)`` until it succeeds, with the backoff's pauses while
    ``deadline`` leaves room for them; ``drop()`` clears a failed attempt away."""
    delays = backoff()
    failed: DecartSDKError | None = None  # the last attempt's reason, for a timeout
    while True:
        try:
            await once(failed)
            return
        except DecartSDKError as exc:
            delay = next(delays, None)
            remaining = deadline.remaining()
            if is_final(exc) or delay is None or (remaining is not None and remaining <= delay):
                raise
            failed = exc
            await drop()
            log.info("connecting failed (%s); trying again in %g s", exc.message, delay)
            await asyncio.sleep(delay)


async def after_loss(
    once: Callable[[], Awaitable[None]], drop: Callable[[], Awaitable[None]]
) -> DecartSDKError | None:
    """Reconnecting: ``once()`` after each of the backoff's pauses until it succeeds
    (None) or a final error or the last attempt fails (that error)."""
    error: DecartSDKError | None = None
    for number, delay in enumerate(backoff(), 1):
        await asyncio.sleep(delay)
        try:
            await once()
            return None
        except DecartSDKError as exc:
            error = exc
            await drop()
            log.info("reconnect attempt %d failed: %s", number, exc.message)
            if is_final(exc):
                break
    return error
