"""Soak over LiveKit on a lossy network with two blackouts: the session rides them out.

    python -m benchmarks.soak_livekit                    # 10 minutes at 1280x720/30
    python -m benchmarks.soak_livekit --minutes 0.75 --width 320 --height 192   # CI's

One session of a synthetic source through the embedded emulator, whose media
(both ways) lose ``--loss`` of their packets throughout and all of them for
``--blackout`` seconds at a third and at two thirds of the run. Prompts change
every few seconds. Printed: frames out and fps, stall seconds, how long the
output took to come back after each blackout, reconnects, error events, RSS
and threads; the targets: the session never lost, the output back within
``--recover`` seconds of each blackout's end, RSS growth under 40 MB, every
thread of ours ended after close (LiveKit's native ones are its own).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import threading
import time
from typing import Any

import decart_sync
from benchmarks.soak import PROMPTS, rss_mb
from benchmarks.stamp import STALL_GAP
from decart_sync import ModelDefinition
from decart_sync.emulator import Emulator, Faults
from decart_sync.sources import synthetic


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
    args = parser.parse_args(argv)
    model = ModelDefinition(
        "soak-livekit", fps=args.fps, width=args.width, height=args.height, transport="livekit"
    )
    length = args.minutes * 60
    with Emulator(models={model.name: model}) as emu:
        errors: list[decart_sync.DecartSDKError] = []
        client = decart_sync.connect(
            synthetic(model),
            model=model,
            api_key="soak",
            base_url=emu.url,
            timeout=30,
            initial_state={"prompt": PROMPTS[0]},
            on={"error": errors.append},
        )
        client.connection_quality  # noqa: B018  # reading it starts the verdict
        frames = client.frames(timeout=1.0)
        warm_until = time.monotonic() + args.warmup
        while time.monotonic() < warm_until:
            _next(frames)
        rss_start = rss_mb()
        threads_start = sum(t.name.startswith("decart-sync") for t in threading.enumerate())
        served = emu.wait_for_session(session_id=client.session_id)
        start = time.monotonic()
        # Blackouts are windows from the emulator session's start, as netem counts them.
        offset = start - served.started
        outages = [(offset + length * k / 3, args.blackout) for k in (1, 2)]
        emu.faults = Faults(loss=args.loss, blackout=outages[0], seed=1)
        switched = False
        prompts = itertools.cycle(PROMPTS)
        next_prompt, next_report = start + args.prompt_every, start + 60
        received, stall, last_new = 0, 0.0, start
        recovered: list[float | None] = [None, None]
        lost, prompt_failures = False, 0
        try:
            while (now := time.monotonic()) - start < length:
                if not switched and now - start > length / 2:  # the second blackout
                    emu.faults = Faults(loss=args.loss, blackout=outages[1], seed=1)
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
                    print(f"  {now - start:4.0f} s: RSS {rss_mb():.1f} MB, {client.stats}")
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
        elapsed = time.monotonic() - start
        stats = client.stats
        rss_end = rss_mb()
        client.close()
    ours_after = [t.name for t in threading.enumerate() if t.name.startswith("decart-sync")]
    print([t.name for t in threading.enumerate()])
    growth = rss_end - rss_start
    print(
        f"LiveKit soak: {elapsed:.0f} s of {args.width}x{args.height} @ {args.fps:g} fps, "
        f"loss {args.loss:.0%} both ways, two {args.blackout:g} s blackouts"
    )
    print(
        f"  frames out {received} ({received / elapsed:.1f} fps), stall {stall:.1f} s "
        f"(gaps over {STALL_GAP:g} s), back after each blackout: "
        + ", ".join("never" if r is None else f"{r:.1f} s" for r in recovered)
    )
    print(
        f"  reconnects {stats['reconnects']}, error events {len(errors)}, prompt calls "
        f"that timed out {prompt_failures}, g2g p50/p90 {stats['g2g_ms_p50']}/"
        f"{stats['g2g_ms_p90']} ms, quality {client.connection_quality}"
    )
    print(
        f"  RSS after warm-up {rss_start:.1f} MB, end {rss_end:.1f} MB ({growth:+.1f} MB); "
        f"our threads streaming {threads_start}, after close {len(ours_after)} {ours_after}"
    )
    ok = (
        not lost
        and all(r is not None and r <= args.recover for r in recovered)
        and growth < 40
        and not ours_after
    )
    print(
        f"  targets {'met' if ok else 'MISSED'}: no lost session, output back within "
        f"{args.recover:g} s of each blackout, RSS growth < 40 MB, our threads ended"
    )
    return 0 if ok else 1


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
