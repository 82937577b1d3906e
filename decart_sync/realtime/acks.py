"""Requests waiting for the server's acknowledgement.

A ``prompt`` is answered by the ``prompt_ack`` that names the same text; a
``set_image`` by the next ``set_image_ack``, in order. Pure asyncio.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

from ..errors import DecartSDKError, RejectedError, is_permanent
from .messages import Message

_ACK_OF = {"prompt_ack": "prompt", "set_image_ack": "set_image"}


def _key(kind: str, message: Message) -> tuple[str, object]:
    return (kind, message["prompt"] if kind == "prompt" else None)


class Acks:
    def __init__(self) -> None:
        self._waiting: dict[tuple[str, object], deque[asyncio.Future[None]]] = {}

    def expect(self, request: Message) -> asyncio.Future[None]:
        """A future settled by the ack of ``request`` (not yet sent)."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(_key(request["type"], request), deque()).append(fut)
        return fut

    def forget(self, request: Message, fut: asyncio.Future[None]) -> None:
        key = _key(request["type"], request)
        waiters = self._waiting.get(key)
        if waiters is not None:
            with contextlib.suppress(ValueError):
                waiters.remove(fut)
            if not waiters:
                del self._waiting[key]

    def settle(self, ack: Message) -> None:
        """A ``prompt_ack`` or ``set_image_ack``: the oldest matching request learns its fate."""
        kind = _ACK_OF[ack["type"]]
        waiters = self._waiting.get(_key(kind, ack))
        if not waiters:
            return  # an ack nobody waits for (timed out, or the server's own)
        fut = waiters.popleft()
        if fut.done():
            return
        if ack.get("success") is True:
            fut.set_result(None)
        else:
            what = f"the prompt {ack['prompt']!r}" if kind == "prompt" else "the image"
            reason = str(ack.get("error") or "no reason given")
            # Permanent by the server's words alone: a prompt may say "401" too.
            error = RejectedError(
                f"the server rejected {what}: {reason}", data=ack, permanent=is_permanent(reason)
            )
            fut.set_exception(error)

    def fail_all(self, error: DecartSDKError) -> None:
        for waiters in self._waiting.values():
            for fut in waiters:
                if not fut.done():
                    fut.set_exception(error)
