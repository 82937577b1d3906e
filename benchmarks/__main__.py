"""Run the benchmark: see ``python -m benchmarks -h`` and docs/benchmarks.md."""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OFFICIAL = "decart[realtime]==0.0.37"  # the classic models' SDK: plain WebRTC over aiortc
OFFICIAL_LIVEKIT = "decart[realtime]==0.2.4"  # today's: LiveKit
VARIANTS = ("decart_sync", "bare_aiortc", "official_sdk")
LIVEKIT_VARIANTS = ("decart_sync", "official_livekit")
TRANSPORTS = ("webrtc", "livekit")
# Worker command per (transport, variant); both LiveKit clients are named the same model.
WORKERS = {
    ("webrtc", "decart_sync"): ["benchmarks.worker_sync"],
    ("webrtc", "bare_aiortc"): ["benchmarks.worker_bare"],
    ("webrtc", "official_sdk"): ["benchmarks.worker_official"],
    ("livekit", "decart_sync"): ["benchmarks.worker_sync", "--transport", "livekit"],
    ("livekit", "official_livekit"): ["benchmarks.worker_official_livekit"],
}
LIVEKIT_MODEL = "bench-livekit"  # served by the emulator at --livekit-* size and fps
FIGURES = (
    ("fps", "delivered fps", "{:.1f}"),
    ("lost", "frames lost", "{:.0f}"),
    ("misread", "stamps misread", "{:.0f}"),
    ("latency_p50_ms", "latency p50 ms", "{:.1f}"),
    ("latency_p95_ms", "latency p95 ms", "{:.1f}"),
    ("cpu_per_s", "CPU s per s", "{:.3f}"),
    ("bridge_p50_ms", "bridge p50 ms", "{:.2f}"),
    ("bridge_p99_ms", "bridge p99 ms", "{:.2f}"),
    ("connect_s", "connect s", "{:.3f}"),
    ("peak_rss_mb", "peak RSS MB", "{:.0f}"),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--reps", type=int, default=3, help="repetitions, alternated A/B/C")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=704)
    parser.add_argument("--fps", type=float, default=25.0)
    parser.add_argument("--variants", default=",".join(VARIANTS), help="plain WebRTC table")
    parser.add_argument("--transports", default=",".join(TRANSPORTS), help="tables to run")
    parser.add_argument("--livekit-width", type=int, default=1280)
    parser.add_argument("--livekit-height", type=int, default=720)
    parser.add_argument("--livekit-fps", type=float, default=30.0)
    parser.add_argument(
        "--livekit-warmup",
        type=float,
        default=20.0,
        help="the official SDK's camera starts at 320x180 and steps up to full size in ~16 s",
    )
    parser.add_argument("--livekit-variants", default=",".join(LIVEKIT_VARIANTS))
    parser.add_argument("--concurrency", default="1,2,4,8", help="sessions per process, '' = skip")
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results.json"))
    parser.add_argument("--smoke", action="store_true", help="a few seconds, ours only, no targets")
    parser.add_argument(
        "--network",
        action="store_true",
        help="LiveKit clients side by side on impaired networks (benchmarks/network.py)",
    )
    parser.add_argument(
        "--profiles",
        default="clean,loss5-jitter30,cap1500,blackout3",
        help="--network: the network profiles to run",
    )
    args = parser.parse_args(argv)
    if args.network:
        return network_main(args)
    if args.smoke:
        args.seconds, args.warmup, args.livekit_warmup, args.reps = 3.0, 1.0, 1.0, 1
        args.variants, args.concurrency = "decart_sync,bare_aiortc", "2"
        args.livekit_variants = "decart_sync"
    transports = [t for t in args.transports.split(",") if t]
    if set(transports) - set(TRANSPORTS):
        parser.error(f"--transports takes {','.join(TRANSPORTS)}")
    wanted = {
        "webrtc": [v for v in args.variants.split(",") if v],
        "livekit": [v for v in args.livekit_variants.split(",") if v],
    }
    jobs = [(t, v) for t in transports for v in wanted[t]]
    python = {job: sys.executable for job in jobs}
    for job, requirement, venv in (
        (("webrtc", "official_sdk"), OFFICIAL, "official-venv"),
        (("livekit", "official_livekit"), OFFICIAL_LIVEKIT, "official-livekit-venv"),
    ):
        if job in jobs:
            official = official_python(requirement, venv)
            if official is None:
                print(f"note: could not install {requirement}; skipping it")
                jobs.remove(job)
            else:
                python[job] = official
    sizes = {
        "webrtc": (args.width, args.height, args.fps, "lucy-restyle"),
        "livekit": (args.livekit_width, args.livekit_height, args.livekit_fps, LIVEKIT_MODEL),
    }
    warmups = {"webrtc": args.warmup, "livekit": args.livekit_warmup}

    extra = [
        f"bench-small:{args.fps:g}:640x352",
        f"{LIVEKIT_MODEL}:{args.livekit_fps:g}:{args.livekit_width}x{args.livekit_height}",
    ]
    with Emulator(*extra) as url:
        runs: dict[tuple[str, str], list[dict]] = {job: [] for job in jobs}
        for rep in range(args.reps):
            # Every job in turn, the order rotated each repetition: drift hits all alike.
            order = jobs[rep % len(jobs) :] + jobs[: rep % len(jobs)]
            for transport, variant in order:
                width, height, fps, model = sizes[transport]
                cmd = [python[transport, variant], "-m", *WORKERS[transport, variant]]
                cmd += ["--url", url, "--model", model]
                cmd += ["--seconds", str(args.seconds), "--warmup", str(warmups[transport])]
                cmd += ["--width", str(width), "--height", str(height), "--fps", str(fps)]
                result = run_worker(cmd, args.seconds * 3 + warmups[transport] + 60)
                print(f"rep {rep + 1} {transport} {variant}: {result}", flush=True)
                if result:
                    runs[transport, variant].append({**result, "rep": rep})
        multi = []
        for n in [int(x) for x in args.concurrency.split(",") if x]:
            cmd = [sys.executable, "-m", "benchmarks.worker_multi", "--url", url, "--sessions"]
            cmd += [str(n), "--seconds", str(args.seconds), "--fps", str(args.fps)]
            result = run_worker(cmd, args.seconds * 3 + 60 + 10 * n)
            print(f"{n} sessions: {result}", flush=True)
            if result:
                multi.append(result)

    tables = {
        t: {
            "summary": {v: summarise(r) for (tt, v), r in runs.items() if tt == t and r},
            "runs": {v: r for (tt, v), r in runs.items() if tt == t},
        }
        for t in TRANSPORTS
    }
    seed, livekit = tables["webrtc"]["summary"], tables["livekit"]["summary"]
    if "webrtc" in transports:
        print_table(seed, "plain WebRTC (classic models)", args.width, args.height, args.fps, args)
    if "livekit" in transports:
        w, h, fps = args.livekit_width, args.livekit_height, args.livekit_fps
        print_table(livekit, "LiveKit (today's path)", w, h, fps, args)
    print_multi(multi)
    if not args.smoke:
        if "webrtc" in transports:
            print_targets(seed, args.fps)
        if "livekit" in transports:
            print_livekit_targets(livekit, args.livekit_fps, tables["livekit"]["runs"])
    Path(args.json).write_text(
        json.dumps(
            {
                "date": time.strftime("%Y-%m-%d"),
                "machine": machine(),
                "args": vars(args),
                "summary": seed,
                "runs": tables["webrtc"]["runs"],
                "concurrent": multi,
                "livekit": {
                    "width": args.livekit_width,
                    "height": args.livekit_height,
                    "fps": args.livekit_fps,
                    **tables["livekit"],
                },
            },
            indent=2,
        )
    )
    print(f"wrote {args.json}")
    # Fails when decart_sync gave no figures over a transport that was asked for.
    return 0 if all(tables[t]["summary"].get("decart_sync") for t in transports) else 1


def network_main(args: argparse.Namespace) -> int:
    from benchmarks import network

    if args.smoke:
        args.seconds, args.livekit_warmup, args.reps = 6.0, 1.0, 1
        args.livekit_width, args.livekit_height = 320, 192
        args.livekit_variants = "decart_sync"
    jobs = [v for v in args.livekit_variants.split(",") if v]
    python = {v: sys.executable for v in jobs}
    if "official_livekit" in jobs:
        official = official_python(OFFICIAL_LIVEKIT, "official-livekit-venv")
        if official is None:
            print(f"note: could not install {OFFICIAL_LIVEKIT}; skipping it")
            jobs.remove("official_livekit")
        else:
            python["official_livekit"] = official
    results = network.run(args, jobs, python)
    if args.json == str(ROOT / "benchmarks" / "results.json"):  # not the main run's file
        args.json = str(ROOT / "benchmarks" / "network.json")
    Path(args.json).write_text(
        json.dumps(
            {"date": time.strftime("%Y-%m-%d"), "machine": machine(), "network": results},
            indent=2,
        )
    )
    print(f"wrote {args.json}")
    ours = [r for by in results["runs"].values() for r in by.get("decart_sync", [])]
    return 0 if ours and all(r.get("received") for r in ours) else 1


class Emulator:
    """The emulator in its own process: its CPU is not the client's."""

    def __init__(self, *extra_models: str, faults: Sequence[str] = ()) -> None:
        self.cmd = [sys.executable, "-m", "decart_sync.emulator", "--port", "0"]
        for model in extra_models:
            self.cmd += ["--model", model]
        for fault in faults:
            self.cmd += ["--fault", fault]

    def __enter__(self) -> str:
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = re.search(r"ws://[\d.]+:\d+", line)
        if not match:
            self.proc.kill()
            raise SystemExit(f"the emulator did not start: {line!r}")
        return match.group(0)

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def run_worker(cmd: list[str], timeout: float) -> dict | None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT
        )
    except subprocess.TimeoutExpired:
        print(f"  timed out: {' '.join(cmd[:3])}")
        return None
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    print(f"  failed ({proc.returncode}): {proc.stderr.strip()[-800:]}")
    return None


def official_python(requirement: str = OFFICIAL, name: str = "official-venv") -> str | None:
    """A virtualenv holding an official SDK release, made once under .bench/."""
    venv = ROOT / ".bench" / name
    python = venv / "bin" / "python"
    if python.exists():
        return str(python)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", requirement, "numpy"],
            check=True,
            timeout=600,
        )
    except (subprocess.SubprocessError, OSError):
        return None
    return str(python)


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
        checks.append((f"CPU/s <= 1.05 x bare aiortc (ratio {ratio:.3f})", ratio <= 1.05))
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


def paired_ratios(runs: dict[str, list[dict]], key: str = "cpu_per_s") -> list[float]:
    """decart_sync's figure over the official SDK's, one per repetition: the two ran
    back to back, so what the machine was doing then weighs on both."""
    theirs = {r["rep"]: r[key] for r in runs.get("official_livekit", []) if r.get(key)}
    return [
        r[key] / theirs[r["rep"]]
        for r in runs.get("decart_sync", [])
        if r.get(key) and r["rep"] in theirs
    ]


def sign_test(lower: int, n: int) -> float:
    """One-sided: the chance of ``lower`` or more of ``n`` pairs going one way by luck."""
    return sum(math.comb(n, k) for k in range(lower, n + 1)) / 2**n


def print_livekit_targets(summary: dict, fps: float, runs: dict[str, list[dict]]) -> None:
    ours, official = (summary.get(v, {}) for v in LIVEKIT_VARIANTS)

    def med(s: dict, key: str) -> float | None:
        return s[key]["median"] if key in s else None

    checks = []
    for name, s in (("decart_sync", ours), ("official 0.2.4", official)):
        if med(s, "fps") is not None:
            checks.append((f"LiveKit {name} fps >= 98% of {fps:g}", med(s, "fps") >= 0.98 * fps))
    cpu, their_cpu = med(ours, "cpu_per_s"), med(official, "cpu_per_s")
    rate, their_rate = med(ours, "fps"), med(official, "fps")
    if cpu and their_cpu and rate and their_rate:
        # CPU per second compares only at equal fps; per frame is printed to show the rest.
        checks.append(
            (
                f"LiveKit fps equal within 2% ({rate:.1f} vs {their_rate:.1f})",
                abs(rate - their_rate) <= 0.02 * their_rate,
            )
        )
        checks.append(
            (
                f"LiveKit CPU/s <= official 0.2.4 (ratio {cpu / their_cpu:.3f}; "
                f"{1000 * cpu / rate:.1f} vs {1000 * their_cpu / their_rate:.1f} ms per frame)",
                cpu <= their_cpu,
            )
        )
    ratios = paired_ratios(runs)
    if ratios:
        lower = sum(r < 1 for r in ratios)
        print(
            f"\nLiveKit CPU/s, decart_sync / official per repetition: median "
            f"{statistics.median(ratios):.3f} [{min(ratios):.3f}-{max(ratios):.3f}]; "
            f"decart_sync lower in {lower} of {len(ratios)} "
            f"(sign test p = {sign_test(lower, len(ratios)):.3f})"
        )
    print("\nLiveKit targets:")
    for label, met in checks:
        print(f"  [{'met' if met else 'MISSED'}] {label}")


def machine() -> str:
    import platform

    return f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}"


if __name__ == "__main__":
    sys.exit(main())
