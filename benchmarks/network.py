"""decart_sync and the official SDK over LiveKit on impaired networks, side by side.

    python -m benchmarks --network                      # every profile, 20 s each
    python -m benchmarks --network --profiles blackout3 --reps 3

Each profile is an emulator whose media (both ways) cross the network model of
``decart_sync.emulator.netem``; the same worker programs as the main benchmark
run against it, one after the other, each input frame stamped with its index
and a checksum in tiles over the picture (``benchmarks.stamp``). Printed per
profile and client: fresh fps (output frames with an input index not seen
before: a repeated picture does not count), damaged frames (tiles that fail
their checksum or disagree: a frame decoded without all its data), stall
seconds (time in gaps of over 0.5 s between fresh frames), the longest such gap
(after the blackout: how long the picture took to come back once the link
did), glass-to-glass p50/p95 and frames lost.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from typing import Any

from benchmarks.processes import LIVEKIT_MODEL, WORKERS, Emulator, livekit_model, run_worker
from benchmarks.stamp import STALL_GAP

# The connect and the first second of a session come before the measured window.
SETTLE = 2.0


BLACKOUT = 3.0  # seconds of the blackout profile
# Wi-Fi: a little loss and a long, somewhat jittery delay. Bursts (Gilbert-Elliott): a
# burst every thousand packets or so, twenty packets long on average, every one lost.
WIFI = ["loss=0.01", "delay_ms=80", "jitter_ms=10"]
BURSTS = ["bursts=0.001,0.05"]


def profiles(warmup: float, seconds: float) -> dict[str, list[str]]:
    """Emulator ``--fault`` settings per profile; the blackout lands a third into the
    measured window (the emulator counts from the session's start). Jitter keeps packets
    in order, as a link does, but in ``loss5-reorder30`` (netem's per-packet draws)."""
    blackout_at = SETTLE + warmup + seconds / 3
    return {
        "clean": [],
        "wifi": WIFI,
        "loss5-jitter30": ["loss=0.05", "delay_ms=30", "jitter_ms=30"],
        "loss5-reorder30": ["loss=0.05", "delay_ms=30", "jitter_ms=30", "reorder=1"],
        "bursts": BURSTS,
        "cap1500": ["bandwidth_kbps=1500"],
        "blackout3": [f"blackout={blackout_at:g},{BLACKOUT:g}"],
    }


# (key, label, format, how the repetitions are summed up)
FIGURES = (
    ("fps", "fresh fps", "{:.1f}", statistics.median),
    ("fps", "worst fps", "{:.1f}", min),
    ("damaged", "damaged", "{:.0f}", statistics.median),
    ("stall_s", "stall s", "{:.1f}", statistics.median),
    ("longest_gap_s", "longest gap", "{:.1f}", statistics.median),
    ("latency_p50_ms", "g2g p50 ms", "{:.0f}", statistics.median),
    ("latency_p95_ms", "g2g p95 ms", "{:.0f}", statistics.median),
    ("lost", "lost", "{:.0f}", statistics.median),
    ("skipped", "skipped", "{:.0f}", statistics.median),
)


def run(args: argparse.Namespace, jobs: list[str], python: dict[str, str]) -> dict[str, Any]:
    width, height, fps = args.livekit_width, args.livekit_height, args.livekit_fps
    chosen = [p for p in args.profiles.split(",") if p]
    table = profiles(args.livekit_warmup, args.seconds)
    unknown = set(chosen) - set(table)
    if unknown:
        sys.exit(f"unknown profiles {sorted(unknown)}; there are {', '.join(table)}")
    results: dict[str, dict[str, list[dict]]] = {}
    for profile in chosen:
        results[profile] = {variant: [] for variant in jobs}
        model = livekit_model(width, height, fps)
        with Emulator(model, faults=table[profile]) as url:
            for rep in range(args.reps):
                order = jobs[rep % len(jobs) :] + jobs[: rep % len(jobs)]
                for variant in order:
                    cmd = [python[variant], "-m", *WORKERS["livekit", variant]]
                    cmd += ["--url", url, "--model", LIVEKIT_MODEL]
                    cmd += ["--seconds", str(args.seconds), "--warmup", str(args.livekit_warmup)]
                    cmd += ["--width", str(width), "--height", str(height), "--fps", str(fps)]
                    cmd += ["--checked"]
                    result = run_worker(cmd, args.seconds * 3 + args.livekit_warmup + 60)
                    print(f"{profile} rep {rep + 1} {variant}: {result}", flush=True)
                    if result:
                        results[profile][variant].append(result)
    print_table(results, jobs, args)
    return {"width": width, "height": height, "fps": fps, "profiles": table, "runs": results}


def print_table(results: dict[str, dict[str, list[dict]]], jobs: list[str], args: Any) -> None:
    print(
        f"\nLiveKit on impaired networks: {args.livekit_width}x{args.livekit_height} @ "
        f"{args.livekit_fps:g} fps, {args.seconds:g} s x {args.reps} reps, median; "
        f"stall = gaps over {STALL_GAP:g} s between fresh frames; longest gap in s (blackout3: "
        f"{BLACKOUT:g} s of blackout, then the picture's way back)"
    )
    header = f"{'profile':16}{'client':18}" + "".join(f"{f[1]:>12}" for f in FIGURES)
    print(header)
    for profile, by_variant in results.items():
        for variant in jobs:
            runs = by_variant.get(variant, [])
            cells = []
            for key, _, fmt, summed in FIGURES:
                values = [r[key] for r in runs if r.get(key) is not None]
                cells.append(fmt.format(summed(values)) if values else "-")
            print(f"{profile:16}{variant:18}" + "".join(f"{c:>12}" for c in cells))
