"""Run the benchmark: see ``python -m benchmarks -h`` and docs/benchmarks.md."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from benchmarks import livekit_targets, report
from benchmarks.processes import (
    LIVEKIT_VARIANTS,
    ROOT,
    TRANSPORTS,
    VARIANTS,
    WORKERS,
    Emulator,
    livekit_model,
    machine,
    run_worker,
)
from benchmarks.venvs import OFFICIAL_LIVEKIT_VENV, OFFICIAL_VENV, venv_python
from decart_sync.models import ModelDefinition

MAIN_FILE = str(ROOT / "benchmarks" / "results.json")  # the main run's figures; others have theirs


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
    parser.add_argument("--json", default=MAIN_FILE)
    parser.add_argument("--smoke", action="store_true", help="a few seconds, ours only, no targets")
    parser.add_argument(
        "--network",
        action="store_true",
        help="LiveKit clients side by side on impaired networks (benchmarks/network.py)",
    )
    parser.add_argument(
        "--profiles",
        default="clean,wifi,loss5-jitter30,bursts,cap1500,blackout3",
        help="--network: the network profiles to run (loss5-reorder30 too: netem's jitter)",
    )
    parser.add_argument(
        "--emulator-fault",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="the emulator's --fault for the main tables (repeatable), e.g. bandwidth_kbps=2000 "
        "to hold every LiveKit client to one bitrate",
    )
    parser.add_argument(
        "--streams",
        default="",
        help="LiveKit sessions at 640x360 per step, e.g. 1,2,4,6: ours in one process "
        "against as many official-SDK processes (benchmarks/streams.py)",
    )
    args = parser.parse_args(argv)
    if args.network:
        return network_main(args)
    if args.streams:
        return streams_main(args)
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
    for job, (venv, requirements) in (
        (("webrtc", "official_sdk"), OFFICIAL_VENV),
        (("livekit", "official_livekit"), OFFICIAL_LIVEKIT_VENV),
    ):
        if job in jobs:
            official, why = venv_python(venv, requirements)
            if official is None:
                print(f"note: skipping {requirements[0]}: {why}")
                jobs.remove(job)
            else:
                python[job] = official
    lk_model = livekit_model(args.livekit_width, args.livekit_height, args.livekit_fps)
    sizes = {
        "webrtc": (args.width, args.height, args.fps, "lucy-restyle"),
        "livekit": (lk_model.width, lk_model.height, lk_model.fps, lk_model.name),
    }
    warmups = {"webrtc": args.warmup, "livekit": args.livekit_warmup}

    # benchmarks/worker_multi.py's sessions, and the LiveKit table's.
    small = ModelDefinition("bench-small", fps=args.fps, width=640, height=352)
    with Emulator(small, lk_model, faults=args.emulator_fault) as url:
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
            "summary": {v: report.summarise(r) for (tt, v), r in runs.items() if tt == t and r},
            "runs": {v: r for (tt, v), r in runs.items() if tt == t},
        }
        for t in TRANSPORTS
    }
    seed, livekit = tables["webrtc"]["summary"], tables["livekit"]["summary"]
    if "webrtc" in transports:
        report.print_table(
            seed, "plain WebRTC (classic models)", args.width, args.height, args.fps, args
        )
    if "livekit" in transports:
        w, h, fps = args.livekit_width, args.livekit_height, args.livekit_fps
        report.print_table(livekit, "LiveKit (today's path)", w, h, fps, args)
    report.print_multi(multi)
    if not args.smoke:
        if "webrtc" in transports:
            report.print_targets(seed, args.fps)
        if "livekit" in transports:
            livekit_targets.print_livekit_targets(
                livekit, args.livekit_fps, tables["livekit"]["runs"]
            )
    write_figures(
        args.json,
        {
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
    )
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
        official, why = venv_python(*OFFICIAL_LIVEKIT_VENV)
        if official is None:
            print(f"note: skipping {OFFICIAL_LIVEKIT_VENV[1][0]}: {why}")
            jobs.remove("official_livekit")
        else:
            python["official_livekit"] = official
    results = network.run(args, jobs, python)
    write_figures(own_file(args.json, "network.json"), {"network": results})
    ours = [r for by in results["runs"].values() for r in by.get("decart_sync", [])]
    return 0 if ours and all(r.get("received") for r in ours) else 1


def streams_main(args: argparse.Namespace) -> int:
    from benchmarks import streams

    if args.smoke:
        args.seconds, args.warmup, args.reps = 3.0, 1.0, 1
    else:
        args.warmup = args.livekit_warmup  # the official SDK's camera steps up to full size
    results = streams.run(args)
    write_figures(own_file(args.json, "streams.json"), {"streams": results})
    return 0 if any(k.endswith("decart_sync") for k in results) else 1


def own_file(path: str, name: str) -> str:
    """``path``, or benchmarks/``name`` where it is the main run's default file."""
    return str(ROOT / "benchmarks" / name) if path == MAIN_FILE else path


def write_figures(path: str, figures: dict) -> None:
    """``figures`` as JSON at ``path``, with the date and the machine."""
    stamped = {"date": time.strftime("%Y-%m-%d"), "machine": machine(), **figures}
    Path(path).write_text(json.dumps(stamped, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
