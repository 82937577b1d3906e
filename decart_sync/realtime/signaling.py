"""The signaling WebSocket: JSON messages over websocket-client.

websocket-client is blocking, so the socket lives on its own reader thread
(``decart-sync-signaling``) and sends go through one sender thread
(``decart-sync-signaling-send``), in order: the event loop only ever awaits.
Received messages are parsed here; whatever is not a JSON object is logged
and dropped, never passed on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import socket
import ssl
from collections.abc import Callable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import websocket

from .._threads import Worker
from ..errors import InvalidAPIKeyError, WebSocketError
from .messages import Message, parse

log = logging.getLogger(__name__)


def redact(url: str) -> str:
    """The URL with its api_key hidden, for logs and error messages."""
    parts = urlsplit(url)
    query = [(k, "***" if k == "api_key" else v) for k, v in parse_qsl(parts.query)]
    return urlunsplit(parts._replace(query=urlencode(query)))


class Signaling:
    """One WebSocket connection; messages are handed to ``on_message`` on the loop."""

    def __init__(
        self,
        url: str,
        *,
        on_message: Callable[[Message], None],
        on_closed: Callable[[BaseException | None], None],
        verify_tls: bool = True,
        secret: str | None = None,
        origin: str | None = None,
    ) -> None:
        self._url = url
        self._origin = origin  # sent only when given: a script has no origin of its own
        self._on_message = on_message
        self._on_closed = on_closed
        self._secret = secret
        self._sslopt = {} if verify_tls else {"cert_reqs": ssl.CERT_NONE, "check_hostname": False}
        self._ws = websocket.WebSocket(sslopt=self._sslopt, enable_multithread=True)
        self._reader: Worker | None = None
        # Our own thread rather than an executor: close() must be able to join it.
        self._outbox: queue.SimpleQueue[tuple[str, asyncio.Future[None]] | None] = (
            queue.SimpleQueue()
        )
        self._sender: Worker | None = None
        self._closing = False
        self._warned: set[str] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    async def open(self, timeout: float | None) -> None:
        """Connect; raises [`WebSocketError`][decart_sync.WebSocketError]
        ([`InvalidAPIKeyError`][decart_sync.InvalidAPIKeyError]: HTTP 401/403)."""
        self._loop = asyncio.get_running_loop()
        opened: asyncio.Future[None] = self._loop.create_future()
        self._reader = Worker(lambda: self._run(opened, timeout), "decart-sync-signaling").start()
        self._sender = Worker(
            self._send_all, "decart-sync-signaling-send", wake=lambda: self._outbox.put(None)
        ).start()
        await opened

    def _run(self, opened: asyncio.Future[None], timeout: float | None) -> None:
        assert self._loop is not None
        try:
            self._ws.connect(
                self._url, timeout=timeout, origin=self._origin, suppress_origin=not self._origin
            )
            self._ws.settimeout(None)
            if self._closing:  # closed while the handshake was under way
                self._ws.shutdown()
                return
        except Exception as exc:
            # The server's HTTP status decides, never the text (which holds the URL).
            refused = getattr(exc, "status_code", None) in (401, 403)
            kind = InvalidAPIKeyError if refused else WebSocketError
            error = kind(
                f"could not open the signaling WebSocket to {redact(self._url)}: "
                f"{self._scrub(str(exc)) or type(exc).__name__}",
                cause=exc,
            )
            self._resolve(opened, error)
            return
        self._resolve(opened, None)
        reason: BaseException | None = None
        try:
            while True:
                text = self._ws.recv()
                if not text:
                    break
                try:
                    message = parse(text)
                except ValueError as exc:
                    self._warn_once(str(exc), text)
                    continue
                self._loop.call_soon_threadsafe(self._on_message, message)
        except Exception as exc:
            if not self._closing:
                reason = exc
        finally:
            if not self._closing:
                with contextlib.suppress(RuntimeError):
                    self._loop.call_soon_threadsafe(self._on_closed, reason)
            reason = None  # its traceback holds this frame: no cycle outliving the thread

    def _send_all(self) -> None:
        while (item := self._outbox.get()) is not None:
            text, sent = item
            try:
                self._ws.send(text)
            except Exception as exc:
                self._resolve(sent, exc)
            else:
                self._resolve(sent, None)

    def _resolve(self, fut: asyncio.Future[None], error: BaseException | None) -> None:
        def settle() -> None:
            if fut.done():
                return
            if error is None:
                fut.set_result(None)
            else:
                fut.set_exception(error)

        assert self._loop is not None
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(settle)

    def _warn_once(self, problem: str, text: str | bytes) -> None:
        # A hostile or buggy server could flood the log; one line per kind of junk.
        if problem not in self._warned:
            self._warned.add(problem)
            log.warning("ignoring a signaling message that is %s: %.80r", problem, text)

    def _scrub(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text

    async def send(self, message: Message) -> None:
        if self._closing or not self._ws.connected:
            raise WebSocketError("the signaling WebSocket is closed")
        sent: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._outbox.put((json.dumps(message), sent))
        try:
            await sent
        except Exception as exc:
            raise WebSocketError(
                f"could not send {message.get('type')!r}: {self._scrub(str(exc))}", cause=exc
            ) from None

    async def drained(self, timeout: float) -> None:
        """Until the reader has handed over every message it read (it ends on close)."""
        if self._reader is not None and not self._reader.in_thread():
            await asyncio.to_thread(self._reader.join, timeout)

    def close(self) -> None:
        """Close without waiting on the peer; never raises, returns quickly."""
        if self._closing:
            return
        self._closing = True
        with contextlib.suppress(Exception):
            if self._ws.connected:
                self._ws.send_close()
        with contextlib.suppress(Exception):
            # Wakes the reader, which a socket closed under its recv() does not (a server
            # that stopped answering). ws.abort() would not: send_close() marks it closed.
            if self._ws.sock is not None:
                self._ws.sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(Exception):
            self._ws.shutdown()
        for worker in (self._sender, self._reader):
            if worker is not None:  # the reader ends with the socket's shutdown
                worker.stop(1.0)
        # The owner's callbacks hold its connection state; a closed socket lets go of it.
        self._on_message = self._on_closed = _ignore


def _ignore(*args: object) -> None:
    pass
