"""The LiveKit table's pairs and targets: decart_sync against the bare-LiveKit floor
(benchmarks/worker_bare_livekit.py) and the official SDK.

CPU per streamed second compares only at equal fresh fps (the decoder's work
is per frame received), so each CPU check sits next to an fps check; each
pair's ratios are per repetition (the two ran back to back) as well as of
the medians.
"""

from __future__ import annotations

import statistics

from benchmarks.report import paired_ratios, sign_test

OURS, FLOOR, OFFICIAL = "decart_sync", "bare_livekit", "official_livekit"
PAIRS = ((OURS, FLOOR), (OURS, OFFICIAL), (FLOOR, OFFICIAL))
PAIRED = (
    ("cpu_per_s", "CPU s per s"),
    ("fps", "fresh fps"),
    ("latency_p50_ms", "g2g p50"),
    ("latency_p90_ms", "g2g p90"),
    ("peak_rss_mb", "peak RSS"),
)
# The targets: CPU over the floor's, and over the official SDK's; g2g p50 over the floor's.
CPU_OVER_FLOOR = 1.05
CPU_OVER_OFFICIAL = 0.80
G2G_GAP_MS = 5.0
EQUAL_FPS = 0.02  # fps within 2% count as equal


def _med(summary: dict, variant: str, key: str) -> float | None:
    fig = summary.get(variant, {}).get(key)
    return fig["median"] if fig else None


def print_pairs(runs: dict[str, list[dict]]) -> dict[tuple[str, str], list[float]]:
    """Each pair's ratios per repetition, per figure; returns the CPU ones."""
    cpu: dict[tuple[str, str], list[float]] = {}
    lines = []
    for a, b in PAIRS:
        for key, label in PAIRED:
            ratios = paired_ratios(runs, key, a, b)
            if not ratios:
                continue
            if key == "cpu_per_s":
                cpu[a, b] = ratios
            lower = sum(r < 1 for r in ratios)
            lines.append(
                f"  {a} / {b}, {label}: {statistics.median(ratios):.3f} "
                f"[{min(ratios):.3f}-{max(ratios):.3f}], lower in {lower} of {len(ratios)} "
                f"(sign test p = {sign_test(lower, len(ratios)):.3f}); "
                + " ".join(f"{r:.3f}" for r in ratios)
            )
    if lines:
        print("\nLiveKit, per repetition (one run over the other, back to back): median [min-max]")
        print("\n".join(lines))
    return cpu


def print_livekit_targets(summary: dict, fps: float, runs: dict[str, list[dict]]) -> None:
    cpu_pairs = print_pairs(runs)
    checks: list[tuple[str, bool]] = []
    for name in (OURS, FLOOR, OFFICIAL):
        rate = _med(summary, name, "fps")
        if rate is not None:
            checks.append((f"{name} fresh fps >= 98% of {fps:g} ({rate:.1f})", rate >= 0.98 * fps))
    ours_cpu, ours_fps = _med(summary, OURS, "cpu_per_s"), _med(summary, OURS, "fps")
    for other, bound in ((FLOOR, CPU_OVER_FLOOR), (OFFICIAL, CPU_OVER_OFFICIAL)):
        cpu, rate = _med(summary, other, "cpu_per_s"), _med(summary, other, "fps")
        if not (ours_cpu and ours_fps and cpu and rate):
            continue
        checks.append(
            (
                f"fresh fps equal to {other}'s within 2% ({ours_fps:.1f} vs {rate:.1f})",
                abs(ours_fps - rate) <= EQUAL_FPS * rate,
            )
        )
        # The per-repetition median: drift in the machine's load weighs on both runs of a pair.
        paired = cpu_pairs.get((OURS, other))
        ratio = statistics.median(paired) if paired else ours_cpu / cpu
        checks.append(
            (
                f"CPU/s <= {bound:.2f} x {other}'s (per pair {ratio:.3f}, of medians "
                f"{ours_cpu / cpu:.3f}; {1000 * ours_cpu / ours_fps:.1f} vs "
                f"{1000 * cpu / rate:.1f} ms per fresh frame)",
                ratio <= bound,
            )
        )
    ours_g2g, floor_g2g = (
        _med(summary, OURS, "latency_p50_ms"),
        _med(summary, FLOOR, "latency_p50_ms"),
    )
    if ours_g2g is not None and floor_g2g is not None:
        gap = ours_g2g - floor_g2g
        checks.append(
            (
                f"g2g p50 within {G2G_GAP_MS:g} ms of the floor's (gap {gap:+.1f} ms)",
                gap <= G2G_GAP_MS,
            )
        )
    print("\nLiveKit targets:")
    for label, met in checks:
        print(f"  [{'met' if met else 'MISSED'}] {label}")
