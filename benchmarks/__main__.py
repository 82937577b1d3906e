"""Run the benchmark: see ``python -m benchmarks -h`` and README's Benchmarks section."""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OFFICIAL = "decart[realtime]==0.0.37"  # the seed's generation: plain WebRTC over aiortc
OFFICIAL_LIVEKIT = "decart[realtime]==0.2.4"  # today's: LiveKit
VARIANTS = ("decart_sync", "bare_aiortc", "official_sdk")
WORKERS = {
    "decart_sync": "benchmarks.worker_sync",
    "bare_aiortc": "benchmarks.worker_bare",
    "official_sdk": "benchmarks.worker_official",
}
FIGURES = (
    ("fps", "delivered fps", "{:.1f}"),
    ("lost", "frames lost", "{:.0f}"),
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
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--concurrency", default="1,2,4,8", help="sessions per process, '' = skip")
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results.json"))
    parser.add_argument("--smoke", action="store_true", help="a few seconds, ours only, no targets")
    args = parser.parse_args(argv)
    if args.smoke:
        args.seconds, args.warmup, args.reps = 3.0, 1.0, 1
        args.variants, args.concurrency = "decart_sync,bare_aiortc", "2"
    variants = [v for v in args.variants.split(",") if v]
    python = {v: sys.executable for v in variants}
    if "official_sdk" in variants:
        official = official_python()
        if official is None:
            print(f"note: could not install {OFFICIAL}; skipping the official SDK")
            variants.remove("official_sdk")
        else:
            python["official_sdk"] = official

    extra = f"bench-small:{args.fps:g}:640x352"
    with Emulator(extra) as url:
        runs: dict[str, list[dict]] = {v: [] for v in variants}
        for rep in range(args.reps):
            order = variants[rep % len(variants) :] + variants[: rep % len(variants)]
            for variant in order:
                cmd = [python[variant], "-m", WORKERS[variant], "--url", url]
                cmd += ["--seconds", str(args.seconds), "--warmup", str(args.warmup)]
                cmd += ["--width", str(args.width), "--height", str(args.height)]
                cmd += ["--fps", str(args.fps)]
                result = run_worker(cmd, args.seconds * 3 + 60)
                print(f"rep {rep + 1} {variant}: {result}", flush=True)
                if result:
                    runs[variant].append(result)
        multi = []
        for n in [int(x) for x in args.concurrency.split(",") if x]:
            cmd = [sys.executable, "-m", "benchmarks.worker_multi", "--url", url, "--sessions"]
            cmd += [str(n), "--seconds", str(args.seconds), "--fps", str(args.fps)]
            result = run_worker(cmd, args.seconds * 3 + 60 + 10 * n)
            print(f"{n} sessions: {result}", flush=True)
            if result:
                multi.append(result)

    summary = {v: summarise(r) for v, r in runs.items() if r}
    print_table(summary, args)
    print_multi(multi)
    if not args.smoke:
        print_targets(summary, args.fps)
    Path(args.json).write_text(
        json.dumps(
            {
                "date": time.strftime("%Y-%m-%d"),
                "machine": machine(),
                "args": vars(args),
                "summary": summary,
                "runs": runs,
                "concurrent": multi,
            },
            indent=2,
        )
    )
    print(f"wrote {args.json}")
    return 0 if summary.get("decart_sync") else 1


class Emulator:
    """The emulator in its own process: its CPU is not the client's."""

    def __init__(self, extra_model: str) -> None:
        self.cmd = [sys.executable, "-m", "decart_sync.emulator", "--port", "0"]
        self.cmd += ["--model", extra_model]

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


def print_table(summary: dict, args: argparse.Namespace) -> None:
    names = list(summary)
    print(
        f"\n{args.width}x{args.height} @ {args.fps:g} fps, passthrough, "
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


def machine() -> str:
    import platform

    return f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}"


if __name__ == "__main__":
    sys.exit(main())
