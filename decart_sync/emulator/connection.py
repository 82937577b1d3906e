"""One client of the emulator: its signaling messages and its peer.

`Connection` is what publishers (`ServedSession`) and
viewers (`Subscriber`) share: the message loop (every
message a client sends is kept in ``messages``; malformed input is kept in
``rejected`` and never ends the session), offer/answer and ICE candidates in
any order, fault checks, and a bounded, idempotent `Connection.close()`.

Lifetime: a connection ends when its client closes the WebSocket or goes away.
After `Connection.drop()` of the signaling alone, it lives on over its
peer connection until that closes or fails, as a service whose signaling
server lost the client would.

Everything here runs on the emulator's loop; other threads only read the
public attributes and wait with `Connection.wait()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

from aiortc import MediaStreamTrack, RTCPeerConnection
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from .._portal import wait_until
from . import media
from .faults import Faults
from .netem import Shaper
from .peer import BadCandidate, Peer, parse_client_candidate

log = logging.getLogger(__name__)

Message = dict[str, Any]
# Junk sent before each message under Faults.malformed: not JSON, not an object, unknown type.
_JUNK = ("{not json", "[1, 2, 3]", '{"type": "emulator-noise", "x": 1}')
DROP_MODES = ("signaling", "peer", "both")


class Connection:
    """What publishers and subscribers share: one WebSocket, at most one peer."""

    kind = "connection"

    def __init__(
        self,
        ws: ServerConnection,
        *,
        loopback: bool,
        faults: Faults,
        on_closed: Callable[[Connection], None],
    ) -> None:
        self.session_id = str(uuid.uuid4())
        self.started = time.monotonic()  # netem's blackout counts from here
        self.shapers: list[Shaper] = []  # the network of each of its peer connections
        self.ws = ws
        self.faults = faults
        self.messages: list[Message] = []
        self.rejected: list[str | bytes] = []
        self.offer_sdp: str | None = None
        self.answer_sdp: str | None = None
        self.peer: Peer | None = None
        self.signaling_open = True
        self.closing = False  # set when the close starts
        self.closed = False  # set when it has finished: nothing of it runs any more
        self.close_reason: str | None = None
        self._loopback = loopback
        self._on_closed = on_closed
        self._tasks: set[asyncio.Task[Any]] = set()
        self._proxies: list[MediaStreamTrack] = []
        self._signaling_dropped = False
        self._close_task: asyncio.Future[None] | None = None
        self._changed = threading.Condition()

    # -- observation from any thread ----------------------------------------

    def wait(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        """Until ``predicate()`` holds (re-checked on every change); False at the deadline."""
        # The predicate runs outside the lock: the loop thread takes it to notify, and
        # a predicate may well wait on the loop. The sliced wait covers a missed notify.
        return wait_until(predicate, self._wait_changed, timeout)

    def _wait_changed(self, seconds: float) -> None:
        with self._changed:
            self._changed.wait(seconds)

    def wait_message(self, kind: str, timeout: float = 10.0) -> Message:
        """The first received message of type ``kind``; TimeoutError at the deadline."""
        found: list[Message] = []

        def seen() -> bool:
            found[:] = [m for m in list(self.messages) if m.get("type") == kind][:1]
            return bool(found)

        if not self.wait(seen, timeout):
            raise TimeoutError(f"no {kind!r} message within {timeout} s")
        return found[0]

    @property
    def pending_tasks(self) -> int:
        """Tasks of this connection still running (none once ``closed``)."""
        return sum(1 for task in list(self._tasks) if not task.done())

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    # -- the signaling loop ---------------------------------------------------

    async def serve(self) -> None:
        """The WebSocket handler's body: runs until the client's socket goes away."""
        try:
            await self.opened()
            async for raw in self.ws:
                await self._receive(raw)
        except ConnectionClosed:
            pass
        finally:
            self.signaling_open = False
            self._notify()
            if not (self._signaling_dropped and self._peer_alive()):
                await self.close("the client went away")

    async def opened(self) -> None:
        """What the server sends first."""

    async def _receive(self, raw: str | bytes) -> None:
        try:
            message = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            message = None
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            log.debug("ignoring a malformed signaling message: %.80r", raw)
            self.rejected.append(raw)
            self._notify()
            return
        self.messages.append(message)
        self._notify()
        kind = message["type"]
        handler = getattr(self, "_on_" + kind.replace("-", "_"), None)
        if handler is None:
            log.debug("ignoring a %r message", kind)
            return
        try:
            await handler(message)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.debug("a %r message failed; the session goes on", kind, exc_info=True)

    async def send(self, message: Message, *, always: bool = False) -> bool:
        """Send one message; False if the socket is gone or a fault swallowed it."""
        if not self.signaling_open or (self.faults.silent and not always):
            return False
        try:
            if self.faults.malformed and not always:
                for junk in _JUNK:
                    await self.ws.send(junk)
            await self.ws.send(json.dumps(message))
        except ConnectionClosed:
            return False
        return True

    async def send_raw(self, text: str) -> bool:
        """Send text as is, faults aside: how tests play a hostile or failing service."""
        if not self.signaling_open:
            return False
        try:
            await self.ws.send(text)
        except ConnectionClosed:
            return False
        return True

    # -- offer / answer and candidates ----------------------------------------

    async def _on_offer(self, message: Message) -> None:
        sdp = message.get("sdp")
        if not isinstance(sdp, str) or not sdp.strip():
            log.debug("ignoring an offer without SDP")
            return
        peer = self._ensure_peer()
        if peer.pc.remoteDescription is not None:
            log.debug("ignoring a second offer: renegotiation is not emulated")
            return
        self.offer_sdp = sdp
        self._notify()
        try:
            answer = await peer.answer(sdp, self._add_tracks)
        except Exception as exc:
            # Say so at once: the client would otherwise wait for an answer until it times out.
            reason = str(exc) or type(exc).__name__
            log.info("could not answer an offer: %s", reason)
            await self.send({"type": "error", "error": f"Could not answer the offer: {reason}"})
            return
        self.answer_sdp = answer
        self._notify()
        if self.faults.no_answer:
            log.debug("fault: the offer goes unanswered")
            return
        await self.send({"type": "answer", "sdp": answer})

    async def _on_ice_candidate(self, message: Message) -> None:
        try:
            candidate = parse_client_candidate(message.get("candidate"))
        except BadCandidate as exc:
            log.debug("ignoring an ICE candidate: %s", exc)
            return
        await self._ensure_peer().add_candidate(candidate)

    def _ensure_peer(self) -> Peer:
        if self.peer is None:
            shaper = Shaper(lambda: self.faults, start=self.started, label="peer")
            self.shapers.append(shaper)
            self.peer = Peer(loopback=self._loopback, shaper=shaper)
            self.peer.on("track", self._on_track)
            self.peer.on("connectionstatechange", self._on_peer_state)
        return self.peer

    @property
    def network(self) -> dict[str, tuple[int, int]]:
        """By direction ("in", "out"), media packets that crossed the emulated network
        (`netem`) and how many of them it lost."""
        found = {"in": (0, 0), "out": (0, 0)}
        for shaper in self.shapers:
            for direction, (packets, dropped) in shaper.counts().items():
                total, lost = found[direction]
                found[direction] = (total + packets, lost + dropped)
        return found

    def _add_tracks(self, pc: RTCPeerConnection) -> None:
        """Attach our outgoing media to the transceivers the offer created."""

    def _on_track(self, track: MediaStreamTrack) -> None:
        self.spawn(media.drain(track))

    def _on_peer_state(self) -> None:
        self._notify()
        if not self._peer_alive() and not self.signaling_open:
            self.spawn(self.close("the peer connection ended"))

    def _peer_alive(self) -> bool:
        return self.peer is not None and self.peer.state not in ("closed", "failed")

    def _attach(self, pc: RTCPeerConnection, track: MediaStreamTrack) -> bool:
        """Send ``track`` on the offer's transceiver of its kind, if the offer has one."""
        if not any(t.kind == track.kind for t in pc.getTransceivers()):
            track.stop()
            return False
        pc.addTrack(track)
        self._proxies.append(track)
        return True

    # -- tasks, drops and closing ---------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """A task that lives no longer than this connection."""
        task = asyncio.ensure_future(coro)
        if self.closing:
            task.cancel()
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.debug("a session task failed", exc_info=task.exception())

    async def drop(self, how: str) -> None:
        """Simulate a service-side fault: lose the signaling, the peer, or both."""
        if how not in DROP_MODES:
            raise ValueError(f"how must be one of {', '.join(DROP_MODES)}, not {how!r}")
        if how == "both":
            self._abort_signaling()
            await self.close("dropped")
            return
        if how == "signaling":
            self._signaling_dropped = True
            self._abort_signaling()
        elif self.peer is not None:
            await self.peer.close()

    def _abort_signaling(self) -> None:
        # No closing handshake: the client sees the socket die, as on a network fault.
        self.signaling_open = False
        transport = self.ws.transport
        if transport is not None:
            transport.abort()

    async def close(self, reason: str = "closed") -> None:
        """End everything this connection owns; idempotent, and bounded by the peer's close."""
        if self._close_task is None:
            self.closing = True
            self.close_reason = reason
            self._close_task = asyncio.ensure_future(self._close(reason))
        await asyncio.shield(self._close_task)

    async def _close(self, reason: str) -> None:
        try:
            await self._before_close(reason)
        finally:
            current = asyncio.current_task()
            tasks = [t for t in self._tasks if t is not current]
            for task in tasks:
                task.cancel()
            for track in self._proxies:
                track.stop()
            self._stop_media()
            if self.peer is not None:
                await self.peer.close()
            if tasks:
                await asyncio.wait(tasks, timeout=1.0)
            if self.signaling_open:
                self.signaling_open = False
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.ws.close(), 1.0)  # bounded by close_timeout too
            self._on_closed(self)
            self.closed = True
            self._notify()

    async def _before_close(self, reason: str) -> None:
        """Last words on the signaling socket, while it is still open."""

    def _stop_media(self) -> None:
        """Stop the source tracks this connection owns."""

    def __repr__(self) -> str:
        state = "closed" if self.closed else "closing" if self.closing else "open"
        return f"<{type(self).__name__} {self.session_id} {state}>"
