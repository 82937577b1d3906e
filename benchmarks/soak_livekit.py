"""Soak over LiveKit on a lossy network with two blackouts: the client rides them out, leak-free.

    python -m benchmarks.soak_livekit                    # 10 minutes at 1280x720/30
    python -m benchmarks.soak_livekit --minutes 0.75 --width 320 --height 192 --warmup 5  # CI's

The emulator runs in a process of its own, so that what is measured is the
client alone. One session of a synthetic source streams through it; its media
(both ways) lose ``--loss`` of their packets throughout, and all of them for
``--blackout`` seconds at a third and at two thirds of the run, set on the
running emulator with its admin ``faults`` command (a blackout counts from the
session's start; the command answers the session's age). Prompts change every
few seconds. ``--iterators`` frame iterators read the output at once: one at
full speed in the main thread, the others in threads of their own, the last a
slow consumer (a fifth of a second per frame).

Printed: frames out and fps, stall seconds, how long the output took to come
back after each blackout, reconnects, error events, RSS, open fds and
threads; the targets: the session never lost, the output back within
``--recover`` seconds of each blackout's end, RSS growth under 20 MB and no
more open fds than after the warm-up, every iterator still delivering at the
end, and after close every thread of ours ended and the fds back to what
they were before connect, give or take what LiveKit's native runtime keeps
for the process (its own threads and fds, made once, not per session).
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import threading
import time
from typing import Any

import decart_sync
from benchmarks.processes import Emulator
from benchmarks.soak import PROMPTS, rss_mb
from benchmarks.stamp import STALL_GAP
from decart_sync import ModelDefinition
from decart_sync.emulator.cli import set_faults
from decart_sync.sources import synthetic

RSS_TARGET_MB = 20
ALIVE_S = 5.0  # an iterator with no frame in the run's last this many seconds is dead
SLOW_S = 0.2  # the slow iterator's time per frame
# fds LiveKit's native runtime keeps once started: 13 measured on 2026-12-04 (epolls,
# eventfds, a socket and a pipe of its own), the same after each of three sessions in a row.
NATIVE_FDS = 14


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak_livekit", description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--loss", type=float, default=0.02, help="packet loss, both ways")
    parser.add_argument("--blackout", type=float, default=3.0, help="seconds, twice")
    parser.add_argument("--recover", type=float, default=10.0, help="target, seconds")
    parser.add_argument("--prompt-every", type=float, default=5.0, help="seconds")
    parser.add_argument("--warmup", type=float, default=20.0, help="seconds before RSS counts")
    parser.add_argument("--iterators", type=int, default=3, help="frame iterators at once")
    args = parser.parse_args(argv)
    name = "soak-livekit"
    model = ModelDefinition(
        name, fps=args.fps, width=args.width, height=args.height, transport="livekit"
    )
    length = args.minutes * 60
    fds_before = open_fds()
    with Emulator(model) as url:
        errors: list[decart_sync.DecartSDKError] = []
        client = decart_sync.connect(
            synthetic(model),
            model=model,
            api_key="soak",
            base_url=url,
            timeout=30,
            initial_state={"prompt": PROMPTS[0]},
            on={"error": errors.append},
        )
        client.connection_quality  # noqa: B018  # reading it starts the verdict
        frames = client.frames(timeout=1.0)
        readers = [
            Reader(client, SLOW_S if k == args.iterators - 1 else 0.0)
            for k in range(1, args.iterators)
        ]
        warm_until = time.monotonic() + args.warmup
        while time.monotonic() < warm_until:
            _next(frames)
        rss_start, fds_start = rss_mb(), open_fds()
        threads_start = sum(t.name.startswith("decart-sync") for t in threading.enumerate())
        start = time.monotonic()
        # Blackouts are windows from the emulator session's start, as netem counts them.
        age = _session_age(set_faults(url, [f"loss={args.loss}", "seed=1"]), client.session_id)
        outages = [age + length * k / 3 for k in (1, 2)]
        set_faults(url, [f"blackout={outages[0]},{args.blackout}"])
        switched = False
        prompts = itertools.cycle(PROMPTS)
        next_prompt, next_report = start + args.prompt_every, start + 60
        received, stall, last_new = 0, 0.0, start
        recovered: list[float | None] = [None, None]
        lost, prompt_failures, fds_peak = False, 0, fds_start
        try:
            while (now := time.monotonic()) - start < length:
                if not switched and now - start > length / 2:  # the second blackout
                    set_faults(url, [f"blackout={outages[1]},{args.blackout}"])
                    switched = True
                frame = _next(frames)
                now = time.monotonic()
                if frame is not None:
                    received += 1
                    if now - last_new > STALL_GAP:
                        stall += now - last_new
                        _note_recovery(recovered, now - start, length, args.blackout)
                    last_new = now
                if now >= next_report:
                    fds = open_fds()
                    fds_peak = max(fds_peak, fds)
                    print(f"  {now - start:4.0f} s: RSS {rss_mb():.1f} MB, fds {fds}, "
                          f"{client.stats}", flush=True)  # fmt: skip
                    next_report += 60
                if now >= next_prompt and client.is_connected():
                    try:
                        client.set_prompt(next(prompts), timeout=15)
                    except decart_sync.DecartSDKError:
                        prompt_failures += 1  # asked during a blackout: no ack in time
                    next_prompt += args.prompt_every
        except decart_sync.DecartSDKError as exc:
            lost = True
            print(f"session lost: {exc}")
        end = time.monotonic()
        elapsed = end - start
        stats = client.stats
        rss_end, fds_end = rss_mb(), max(fds_peak, open_fds())
        client.close()
        for reader in readers:
            reader.join(10)
    fds_after = open_fds()
    ours_after = [t.name for t in threading.enumerate() if t.name.startswith("decart-sync")]
    growth = rss_end - rss_start
    alive = [last_new >= end - ALIVE_S] + [r.last >= end - ALIVE_S for r in readers]
    print(
        f"LiveKit soak: {elapsed:.0f} s of {args.width}x{args.height} @ {args.fps:g} fps, "
        f"loss {args.loss:.0%} both ways, two {args.blackout:g} s blackouts; the emulator "
        "in a process of its own"
    )
    print(
        f"  frames out {received} ({received / elapsed:.1f} fps), stall {stall:.1f} s "
        f"(gaps over {STALL_GAP:g} s), back after each blackout: "
        + ", ".join("never" if r is None else f"{r:.1f} s" for r in recovered)
    )
    print(
        "  other iterators: "
        + ", ".join(
            f"{r.count} frames{' (slow)' if r.pause else ''}, {r.timeouts} timeouts"
            for r in readers
        )
        + f"; alive at the end: {alive}"
    )
    print(
        f"  reconnects {stats['reconnects']}, error events {len(errors)}, prompt calls "
        f"that timed out {prompt_failures}, g2g p50/p90 {stats['g2g_ms_p50']}/"
        f"{stats['g2g_ms_p90']} ms, quality {client.connection_quality}"
    )
    print(
        f"  RSS after warm-up {rss_start:.1f} MB, end {rss_end:.1f} MB ({growth:+.1f} MB); "
        f"fds before connect {fds_before}, after warm-up {fds_start}, most while streaming "
        f"{fds_end}, after close {fds_after}; our threads streaming {threads_start}, "
        f"after close {len(ours_after)} {ours_after}"
    )
    ok = (
        not lost
        and all(r is not None and r <= args.recover for r in recovered)
        and growth < RSS_TARGET_MB
        and fds_end <= fds_start
        and fds_after <= fds_before + NATIVE_FDS
        and all(alive)
        and not ours_after
    )
    print(
        f"  targets {'met' if ok else 'MISSED'}: no lost session, output back within "
        f"{args.recover:g} s of each blackout, RSS growth < {RSS_TARGET_MB} MB, no fds "
        f"gained while streaming, every iterator alive, our threads ended, fds back after "
        f"close (+{NATIVE_FDS} at most for LiveKit's runtime)"
    )
    return 0 if ok else 1


class Reader(threading.Thread):
    """A frame iterator of its own, read in its own thread until the client closes;
    ``pause`` seconds per frame makes it a slow consumer."""

    def __init__(self, client: decart_sync.RealtimeClient, pause: float) -> None:
        super().__init__(name=f"soak-reader-{pause}", daemon=True)
        self.frames = client.frames(timeout=1.0)
        self.pause = pause
        self.count = self.timeouts = 0
        self.last = time.monotonic()
        self.start()

    def run(self) -> None:
        while True:
            try:
                next(self.frames)
            except decart_sync.WebRTCTimeoutError:
                self.timeouts += 1
                continue
            except (StopIteration, decart_sync.DecartSDKError):
                return  # closed
            self.count += 1
            self.last = time.monotonic()
            if self.pause:
                time.sleep(self.pause)  # a consumer busy with each frame: its work, not a wait


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _session_age(report: dict[str, Any], session_id: str | None) -> float:
    return next(s["age_s"] for s in report["sessions"] if s["session_id"] == session_id)


def _next(frames: Any) -> object | None:
    try:
        return next(frames)
    except decart_sync.WebRTCTimeoutError:
        return None


def _note_recovery(
    recovered: list[float | None], at: float, length: float, blackout: float
) -> None:
    """A stall that ended after a blackout's end: how long after it the output came back."""
    for k in (0, 1):
        end = length * (k + 1) / 3 + blackout
        if recovered[k] is None and end - blackout <= at < end + length / 3 - blackout:
            recovered[k] = at - end


if __name__ == "__main__":
    sys.exit(main())
