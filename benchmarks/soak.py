"""Soak: one long session with prompt changes and forced reconnects.

    python -m benchmarks.soak                 # 10 minutes
    python -m benchmarks.soak --minutes 1     # a quick look

Prints frames in and out, drops, reconnects, RSS and threads at start and end,
and whether the targets hold: no lost session, RSS growth under 20 MB,
threads back to their baseline.
"""

from __future__ import annotations

import argparse
import itertools
import queue
import sys
import threading
import time
import urllib.request

import decart_sync
from benchmarks.processes import Emulator
from decart_sync import models
from decart_sync.emulator.cli import admin_url
from decart_sync.sources import synthetic

PROMPTS = ("invert", "grayscale", "sepia", "a watercolor painting", "neon city at night")


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--model", default="lucy-restyle")
    parser.add_argument("--prompt-every", type=float, default=5.0, help="seconds")
    parser.add_argument("--reconnect-every", type=float, default=60.0, help="seconds")
    parser.add_argument(
        "--warmup", type=float, default=30.0, help="seconds before the RSS baseline is taken"
    )
    args = parser.parse_args(argv)
    model = models.realtime(args.model)
    threads_before = threading.active_count()
    with Emulator(model) as url:
        states: queue.Queue[str] = queue.Queue()
        errors: list[decart_sync.DecartSDKError] = []
        client = decart_sync.connect(
            synthetic(model), model=model, api_key="soak", base_url=url, timeout=30
        )
        client.on("connection_change", states.put)
        client.on("error", errors.append)
        frames = client.frames(timeout=30)
        rss_connected = rss_mb()
        # Codec buffers, jitter buffers and allocator arenas fill up first: growth counts after.
        warm_until = time.monotonic() + args.warmup
        for _ in frames:
            if time.monotonic() >= warm_until:
                break
        rss_start = rss_mb()
        threads_start = threading.active_count()
        start = time.monotonic()
        next_prompt, next_drop = start + args.prompt_every, start + args.reconnect_every
        next_report = start + 60
        prompts = itertools.cycle(PROMPTS)
        drops = prompt_failures = 0
        lost = False
        try:
            for _ in frames:
                now = time.monotonic()
                if now - start >= args.minutes * 60:
                    break
                if now >= next_report:
                    print(
                        f"  {now - start:4.0f} s: RSS {rss_mb():.1f} MB, "
                        f"threads {threading.active_count()}, {client.stats}",
                        flush=True,
                    )
                    next_report += 60
                if now >= next_drop:
                    with urllib.request.urlopen(admin_url(url, "drop", how="both"), timeout=10):
                        drops += 1
                    next_drop += args.reconnect_every
                if now >= next_prompt and client.is_connected():
                    try:
                        client.set_prompt(next(prompts), timeout=15)
                    except decart_sync.DecartSDKError:
                        prompt_failures += 1  # a drop may land between send and ack
                    next_prompt += args.prompt_every
        except decart_sync.DecartSDKError as exc:
            lost = True
            print(f"session lost: {exc}")
        elapsed = time.monotonic() - start
        stats = client.stats
        rss_end = rss_mb()
        threads_end = threading.active_count()
        client.close()
    threads_after = threading.active_count()
    growth = rss_end - rss_start
    print(f"soak: {elapsed:.0f} s of {model.name} {model.width}x{model.height}")
    print(
        f"  frames in {stats['frames_sent']:.0f}, out {stats['frames_received']:.0f}, "
        f"iterator delivered {frames.delivered}, dropped {frames.dropped}"
    )
    print(
        f"  forced drops {drops}, reconnects {stats['reconnects']:.0f}, "
        f"prompt calls failed during a drop {prompt_failures}, error events {len(errors)}"
    )
    print(
        f"  RSS at connect {rss_connected:.1f} MB, after {args.warmup:g} s warm-up "
        f"{rss_start:.1f} MB, end {rss_end:.1f} MB (growth {growth:+.1f} MB)"
    )
    print(
        f"  threads before {threads_before}, streaming {threads_start}->{threads_end}, "
        f"after close {threads_after}"
    )
    ok = (
        not lost
        and stats["reconnects"] == drops
        and growth < 20
        and threads_after == (threads_before)
    )
    print(
        f"  targets {'met' if ok else 'MISSED'}: no lost session, every drop reconnected, "
        "RSS growth < 20 MB, threads back to baseline"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
