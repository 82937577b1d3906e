"""The benchmark's figures: summaries, the printed tables, the targets and their checks."""

from __future__ import annotations

import argparse
import math
import statistics

from benchmarks.processes import VARIANTS

FIGURES = (
    ("fps", "fresh fps", "{:.1f}"),
    ("lost", "frames lost", "{:.0f}"),
    ("misread", "stamps misread", "{:.0f}"),
    ("skipped", "skipped by reader", "{:.0f}"),
    ("latency_p50_ms", "latency p50 ms", "{:.1f}"),
    ("latency_p90_ms", "latency p90 ms", "{:.1f}"),
    ("latency_p95_ms", "latency p95 ms", "{:.1f}"),
    ("cpu_per_s", "CPU s per s", "{:.3f}"),
    ("bridge_p50_ms", "bridge p50 ms", "{:.2f}"),
    ("bridge_p99_ms", "bridge p99 ms", "{:.2f}"),
    ("connect_s", "connect s", "{:.3f}"),
    ("peak_rss_mb", "peak RSS MB", "{:.0f}"),
)


def summarise(runs: list[dict]) -> dict:
    out = {}
    for key, _, _ in FIGURES:
        values = [r[key] for r in runs if r.get(key) is not None]
        if values:
            out[key] = {
                "median": statistics.median(values),
                "min": min(values),
                "max": max(values),
            }
    return out


def print_table(
    summary: dict, title: str, width: int, height: int, fps: float, args: argparse.Namespace
) -> None:
    names = list(summary)
    print(
        f"\n{title}: {width}x{height} @ {fps:g} fps, passthrough, "
        f"{args.seconds:g} s x {args.reps} reps; median [min-max]"
    )
    print(f"{'':18}" + "".join(f"{n:>26}" for n in names))
    for key, label, fmt in FIGURES:
        cells = []
        for n in names:
            fig = summary[n].get(key)
            cells.append(
                "-"
                if fig is None
                else "{} [{}-{}]".format(*(fmt.format(fig[k]) for k in ("median", "min", "max")))
            )
        print(f"{label:18}" + "".join(f"{c:>26}" for c in cells))


def print_multi(multi: list[dict]) -> None:
    if not multi:
        return
    print("\nconcurrent sessions in one process (640x352):")
    print(f"{'sessions':>9}{'total fps':>12}{'fps/session':>13}{'CPU s/s/session':>17}")
    for r in multi:
        n = r["sessions"]
        print(f"{n:>9}{r['fps']:>12.1f}{r['fps'] / n:>13.1f}{r['cpu_per_s'] / n:>17.3f}")


def print_targets(summary: dict, fps: float) -> None:
    ours, bare, official = (summary.get(v, {}) for v in VARIANTS)

    def med(s: dict, key: str) -> float | None:
        return s[key]["median"] if key in s else None

    checks = []
    if med(ours, "cpu_per_s") and med(bare, "cpu_per_s"):
        ratio = med(ours, "cpu_per_s") / med(bare, "cpu_per_s")
        checks.append((f"CPU/s at or under bare aiortc's (ratio {ratio:.3f})", ratio <= 1.0))
    if med(ours, "cpu_per_s") and med(official, "cpu_per_s"):
        checks.append(
            ("CPU/s <= official SDK", med(ours, "cpu_per_s") <= med(official, "cpu_per_s"))
        )
    for name, s in (("decart_sync", ours), ("bare aiortc", bare), ("official", official)):
        if med(s, "fps") is not None:
            checks.append((f"{name} fps >= 98% of {fps:g}", med(s, "fps") >= 0.98 * fps))
    if med(ours, "latency_p50_ms") and med(bare, "latency_p50_ms"):
        gap = med(ours, "latency_p50_ms") - med(bare, "latency_p50_ms")
        checks.append((f"latency p50 within 5 ms of bare (gap {gap:+.1f} ms)", gap <= 5))
    if med(ours, "bridge_p50_ms") is not None:
        checks.append(("bridge p50 <= 0.5 ms", med(ours, "bridge_p50_ms") <= 0.5))
        checks.append(("bridge p99 <= 3 ms", med(ours, "bridge_p99_ms") <= 3))
    if med(ours, "connect_s") is not None:
        checks.append(("connect p50 <= 0.5 s", med(ours, "connect_s") <= 0.5))
    print("\ntargets:")
    for label, met in checks:
        print(f"  [{'met' if met else 'MISSED'}] {label}")


def paired_ratios(
    runs: dict[str, list[dict]],
    key: str = "cpu_per_s",
    ours: str = "decart_sync",
    theirs: str = "official_livekit",
) -> list[float]:
    """``ours``'s figure over ``theirs``'s, one per repetition: the two ran back to
    back, so what the machine was doing then weighs on both."""
    by_rep = {r["rep"]: r[key] for r in runs.get(theirs, []) if r.get(key)}
    return [
        r[key] / by_rep[r["rep"]] for r in runs.get(ours, []) if r.get(key) and r["rep"] in by_rep
    ]


def sign_test(lower: int, n: int) -> float:
    """One-sided: the chance of ``lower`` or more of ``n`` pairs going one way by luck."""
    return sum(math.comb(n, k) for k in range(lower, n + 1)) / 2**n
