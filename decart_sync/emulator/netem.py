"""A bad network for the emulator's media: loss, delay, jitter, a rate cap and a blackout.

The kernel these tests run on has no netem, so the emulator impairs its media
itself. `Impairment` is the model, pure and seeded: given a packet's
arrival time and size it says when the packet comes out of the network, or
that it never does. `Shaper` is the glue: on an aiortc DTLS transport it
takes the datagrams from ICE before SRTP reads them (a lost packet must not
enter SRTP's replay window, or its retransmission would be refused) and wraps
the private ``_send_rtp`` (RTP and RTCP to the client, before encryption), as
`livekit.twcc` does, releasing each packet at its time from a
per-direction queue. Both transports' peers use it (plain WebRTC's
`Peer`, LiveKit's `Link`), reading the
session's current [`Faults`][decart_sync.emulator.Faults] at every packet: with the defaults
a packet goes straight through, as if there were no shaper.

What it models, per direction: independent (Bernoulli) loss; bursts of loss
(Gilbert-Elliott: a two-state chain, a packet lost in the burst state with
its own chance, the burst's length geometric); a fixed delay plus a uniform
jitter of +-``jitter_ms``, drawn anew every `JITTER_PERIOD` with packets kept
in order, as a link's queue keeps them (with ``reorder``, drawn for each
packet, as netem does: at a thousand packets a second that reorders nearly
every one, which real links seldom do, and a LiveKit publisher's bandwidth
estimate fell to a few hundred kbit/s on it, ours and the official SDK's); a
link of ``bandwidth_kbps`` with a drop-tail queue of `QUEUE_SECONDS`; a
blackout window from the session's start. What it does not: loss of ICE, DTLS or
data-channel packets (a blackout starves the media, not the connection's
liveness checks), packet duplication or corruption, and IP/UDP/SRTP overhead
in the rate (a packet weighs its SRTP bytes).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import heapq
import itertools
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .faults import Faults

log = logging.getLogger(__name__)

# The rate cap's queue: a packet that would wait longer than this to be sent is dropped.
QUEUE_SECONDS = 0.5
JITTER_PERIOD = 0.02  # seconds one draw of the jitter lasts, when packets keep their order

# Delivers a packet, given the delay the network gave it (seconds).
Deliver = Callable[[float], Awaitable[None]]
# Set on a transport while a delayed packet is handed on: the delay the model gave it, so
# that LiveKit's transport-wide feedback (.livekit.twcc) reports the modelled queue.
DELAY_ATTRIBUTE = "_decart_netem_delay"


class Impairment:
    """One direction of the network. ``admit(now, size)``: the packet's release time, or None
    when it is lost. Every packet draws the same random numbers whatever happens to it, so the
    n-th packet's fate depends only on ``seed``, ``label`` and the settings."""

    def __init__(
        self,
        *,
        loss: float = 0.0,
        delay_ms: float = 0.0,
        jitter_ms: float = 0.0,
        reorder: bool = False,
        bandwidth_kbps: float | None = None,
        blackout: tuple[float, float] | None = None,
        bursts: tuple[float, float, float] | None = None,
        seed: int = 0,
        label: str = "",
        start: float = 0.0,
    ) -> None:
        self.loss = loss
        self.delay = delay_ms / 1000
        self.jitter = jitter_ms / 1000
        self.reorder = reorder
        self._period: tuple[int, float] | None = None  # the jitter's period: (index, delay)
        self._released = float("-inf")  # the latest release so far
        self.rate = None if not bandwidth_kbps else bandwidth_kbps * 1000 / 8  # bytes/s
        self.blackout = None if blackout is None else (start + blackout[0], start + sum(blackout))
        self._random = random.Random(f"{seed}/{label}")
        # Bursts draw from their own generator: the other draws stay as without them.
        self.bursts = bursts
        self._bursts = random.Random(f"{seed}/{label}/bursts")
        self.in_burst = False
        self._link_free = float("-inf")  # when the rate-capped link has sent its queue

    @classmethod
    def of(cls, faults: Faults, *, label: str, start: float) -> Impairment | None:
        """The impairment ``faults`` asks for; None for a perfect network."""
        impaired = faults.loss or faults.delay_ms or faults.jitter_ms or faults.bandwidth_kbps
        if not impaired and faults.blackout is None and faults.bursts is None:
            return None
        return cls(
            loss=faults.loss,
            delay_ms=faults.delay_ms,
            jitter_ms=faults.jitter_ms,
            reorder=faults.reorder,
            bandwidth_kbps=faults.bandwidth_kbps,
            blackout=faults.blackout,
            bursts=faults.bursts,
            seed=faults.seed,
            label=label,
            start=start,
        )

    def admit(self, now: float, size: int) -> float | None:
        lost, spread = self._random.random(), self._random.random()
        burst_lost = False
        if self.bursts is not None:
            enter, leave, loss_in_burst = self.bursts
            flip, draw = self._bursts.random(), self._bursts.random()
            self.in_burst = flip >= leave if self.in_burst else flip < enter
            burst_lost = self.in_burst and draw < loss_in_burst
        if self.blackout is not None and self.blackout[0] <= now < self.blackout[1]:
            return None
        if lost < self.loss or burst_lost:
            return None
        sent = now
        if self.rate is not None:
            start = max(now, self._link_free)
            if start - now > QUEUE_SECONDS:
                return None  # the queue is full
            sent = self._link_free = start + size / self.rate
        delay = max(0.0, self.delay + (2 * spread - 1) * self.jitter)
        if self.reorder:
            return sent + delay
        index = int(now // JITTER_PERIOD)
        if self._period is None or self._period[0] != index:
            self._period = index, delay
        self._released = max(sent + self._period[1], self._released)
        return self._released


class _Pipe:
    """One direction of one transport: packets held until their release time, then
    delivered one at a time (in release order, ties in arrival order)."""

    def __init__(self, label: str, faults: Callable[[], Faults], start: float) -> None:
        self.label = label
        self._faults = faults
        self._start = start
        self._settings: tuple[Any, ...] | None = None
        self._impairment: Impairment | None = None
        self._held: list[tuple[float, int, float, Deliver]] = []
        self._order = itertools.count()
        self._ready = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self.packets = 0  # through an impairment, lost or not
        self.dropped = 0

    def impairment(self) -> Impairment | None:
        settings = self._faults().network()
        if settings != self._settings:  # a test changed the plan: start the model afresh
            self._settings = settings
            self._impairment = Impairment.of(self._faults(), label=self.label, start=self._start)
        return self._impairment

    def put(self, impairment: Impairment, size: int, deliver: Deliver) -> None:
        self.packets += 1
        now = time.monotonic()
        release = impairment.admit(now, size)
        if release is None:
            self.dropped += 1
            return
        heapq.heappush(self._held, (release, next(self._order), release - now, deliver))
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())
        if self._held[0][3] is deliver:
            self._wake_at(release)

    def _wake_at(self, release: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        delay = max(0.0, release - time.monotonic())
        self._timer = loop.call_later(delay, self._ready.set)

    async def _run(self) -> None:
        while True:
            await self._ready.wait()
            self._ready.clear()
            while self._held and self._held[0][0] <= time.monotonic():
                _, _, delay, deliver = heapq.heappop(self._held)
                with contextlib.suppress(ConnectionError):
                    await deliver(delay)
            if self._held:
                self._wake_at(self._held[0][0])

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._task is not None:
            self._task.cancel()
        self._held.clear()


class Shaper:
    """The network between the client and one peer connection of ours: `cover()` its DTLS
    transports once they exist; `close()` with the peer. ``faults`` gives the session's
    current plan, ``start`` (``time.monotonic()``) when the session began."""

    def __init__(self, faults: Callable[[], Faults], *, start: float, label: str) -> None:
        self._faults = faults
        self._start = start
        self._label = label
        self._pipes: list[_Pipe] = []
        self._covered: set[int] = set()
        self._pumps: dict[int, asyncio.Task[None]] = {}  # by ICE transport: its reader

    def counts(self) -> dict[str, tuple[int, int]]:
        """By direction ("in": from the client, "out": to it), the packets that crossed an
        impaired network so far, and how many of them it lost."""
        found = {"in": (0, 0), "out": (0, 0)}
        for pipe in self._pipes:
            direction = pipe.label.rsplit("/", 1)[-1]
            packets, dropped = found[direction]
            found[direction] = (packets + pipe.packets, dropped + pipe.dropped)
        return found

    def cover(self, pc: Any) -> None:
        """Impair every DTLS transport of ``pc``'s transceivers not covered yet."""
        for transceiver in pc.getTransceivers():
            for transport in (transceiver.receiver.transport, transceiver.sender.transport):
                if transport is not None and id(transport) not in self._covered:
                    self._covered.add(id(transport))
                    self._wrap(transport, f"{self._label}/{len(self._covered)}")

    def _pipe(self, label: str) -> _Pipe:
        pipe = _Pipe(label, self._faults, self._start)
        self._pipes.append(pipe)
        return pipe

    def _wrap(self, transport: Any, label: str) -> None:
        incoming, outgoing = self._pipe(f"{label}/in"), self._pipe(f"{label}/out")
        self._impair_incoming(transport, incoming)
        send = transport._send_rtp

        async def send_rtp(data: bytes) -> None:
            impairment = outgoing.impairment()
            if impairment is None:
                await send(data)
            elif transport.state != "connected":
                raise ConnectionError("Cannot send encrypted RTP, not connected")
            else:  # the caller goes on at once, as after a send into a real network
                outgoing.put(impairment, len(data), lambda delay: send(data))

        transport._send_rtp = send_rtp

    def _impair_incoming(self, transport: Any, pipe: _Pipe) -> None:
        """Impair what the client sends while it is still encrypted, as a network does.

        Losing a packet after SRTP had read it would leave its index in SRTP's replay
        window, and the client's retransmission of it (libwebrtc resends the packet
        itself when RTX is not negotiated, as LiveKit's publisher does) would then be
        refused as a replay: a loss no retransmission could ever mend. So the DTLS
        transport's reads from ICE are replaced by a queue that a task of ours feeds:
        SRTP and SRTCP datagrams cross the impairment, everything else goes straight.
        The delay each packet was given is left on the transport for ``.livekit.twcc``,
        which reads it when the packet is handled, right after this read returns it.
        """
        ice = transport.transport
        receive = ice._recv
        ready: asyncio.Queue[tuple[bytes, float] | BaseException] = asyncio.Queue()

        async def read_network() -> None:
            try:
                while True:
                    data = await receive()
                    impairment = pipe.impairment() if 127 < data[0] < 192 else None
                    if impairment is None:
                        ready.put_nowait((data, 0.0))
                    else:
                        pipe.put(impairment, len(data), functools.partial(release, data))
            except Exception as exc:  # the connection closed: the reader learns it in turn
                ready.put_nowait(exc)
            # Cancelled by close(), just before the peer closes: the reader waits on, as on a
            # quiet network, so that the peer's close still says goodbye (DTLS close_notify).

        async def release(data: bytes, delay: float) -> None:
            ready.put_nowait((data, delay))

        async def shaped_receive() -> bytes:
            if not self._pumps.get(id(ice)):
                self._pumps[id(ice)] = asyncio.ensure_future(read_network())
            item = await ready.get()
            if isinstance(item, BaseException):
                ready.put_nowait(item)  # every later read fails the same way
                raise item
            data, delay = item
            setattr(transport, DELAY_ATTRIBUTE, delay)
            return data

        ice._recv = shaped_receive

    def close(self) -> None:
        """Held packets are lost; the transports keep the wrappers (they are closing too)."""
        for pipe in self._pipes:
            pipe.close()
        for pump in self._pumps.values():
            pump.cancel()
