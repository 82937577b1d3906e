"""One connection of a session: what it owns, how it sends, how it is taken down.

An `Attempt` holds the control WebSocket and the media transport of a
single connection, and the first reason it failed. The session
(`session`) builds one per connect or reconnect and throws it away on
loss; what must outlive a connection (the latest prompt and image, pending
acks, the output hub) is the session's, never the attempt's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from .._portal import Deadline
from .._process import hand_back_freed_memory
from ..errors import DecartSDKError, TimeoutError_, WebSocketError
from ..metrics.rates import NetworkStats
from .messages import Message
from .signaling import Signaling
from .transports import MediaTransport


class Attempt:
    """Everything one connection owns."""

    def __init__(self) -> None:
        self.signaling: Signaling | None = None
        self.media: MediaTransport | None = None
        self.established = False
        self.generating = False
        self.error: DecartSDKError | None = None  # the first reason this attempt failed
        self.queued = False  # waiting in the service's queue for a model (LiveKit)
        self._deadline: Deadline | None = None
        self._queue_timer: asyncio.TimerHandle | None = None

    def fail(self, error: DecartSDKError) -> None:
        if self.error is None:
            self.error = error
        if self.media is not None:
            self.media.abort(error)

    def enter_queue(self, deadline: Deadline, queue_timeout: float | None) -> None:
        """The service queued us: the connect clock stops, ``queue_timeout`` bounds the wait."""
        if self.queued:
            return
        self.queued = True
        self._deadline = deadline
        deadline.pause()
        if queue_timeout is not None:
            error = TimeoutError_(
                f"waited {queue_timeout:g} s in the service's queue without getting a model; "
                "pass a larger queue_timeout= (None waits as long as it takes)",
                permanent=True,  # the user's own bound: trying again would queue again
            )
            self._queue_timer = asyncio.get_running_loop().call_later(
                queue_timeout, self.fail, error
            )

    def leave_queue(self) -> None:
        """Out of the queue (or given up): the connect clock runs again."""
        if self._queue_timer is not None:
            self._queue_timer.cancel()
            self._queue_timer = None
        if self._deadline is not None:
            self._deadline.resume()
            self._deadline = None
        self.queued = False

    async def open_signaling(
        self,
        url: str,
        *,
        on_message: Callable[[Message], None],
        on_closed: Callable[[BaseException | None], None],
        verify_tls: bool,
        secret: str | None,
        timeout: float | None,
        origin: str | None = None,
    ) -> None:
        self.signaling = Signaling(
            url,
            on_message=on_message,
            on_closed=on_closed,
            verify_tls=verify_tls,
            secret=secret,
            origin=origin,
        )
        await self.signaling.open(timeout)

    async def send(self, message: Message) -> None:
        assert self.signaling is not None
        if self.error is not None:  # e.g. the server refused us before we said a word
            raise self.error
        try:
            await self.signaling.send(message)
        except WebSocketError:
            # A server that says why and then hangs up: its reason, not the closed socket.
            # The reason may still be on its way from the reader thread.
            await self.signaling.drained(1.0)
            if self.error is not None:
                raise self.error from None
            raise

    async def stats(self) -> NetworkStats:
        """The network figures of a connection made; all unknown before."""
        if self.media is None or not self.established:
            return NetworkStats()
        return await self.media.stats()

    async def sent_report(self) -> list[Any]:
        """The media library's stats of what a connection made sends; [] before."""
        if self.media is None or not self.established:
            return []
        return await self.media.sent_report()

    async def tear_down(self) -> None:
        self.leave_queue()
        self.fail(WebSocketError("the connection was closed"))
        # The WebSocket first: its close is quick and joins our threads, while a media
        # close can be slow (LiveKit's disconnect) and be cut short by close()'s bound.
        if self.signaling is not None:
            await asyncio.to_thread(self.signaling.close)
        if self.media is not None:
            await self.media.close()
        self.media = self.signaling = None
        await hand_back_freed_memory()
