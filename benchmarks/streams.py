"""Many streams: N LiveKit sessions at 640x360, ours in one process against N
official-SDK processes, through one emulator; see docs/benchmarks.md.

``python -m benchmarks --streams 1,2,4,6`` runs each count for both clients in
turn (the order swapped every repetition), and prints per count each
client's slowest session's fresh fps, the median session's, their CPU s per s
all told, the emulator's, and the machine's load, then the most sessions
each carried with every one at 95% of the model's fps or more, and at 95% of
what the client gave with one session (the official SDK publishes 640x360 at
its own preset's rate, below the model's).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from benchmarks.processes import ROOT, Emulator, run_worker
from benchmarks.venvs import OFFICIAL_LIVEKIT_VENV, venv_python
from decart_sync.models import ModelDefinition

MODEL = ModelDefinition("bench-streams", fps=30, width=640, height=360, transport="livekit")
ENOUGH = 0.95  # of the model's fps, for every session


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ours(url: str, n: int, args: argparse.Namespace) -> dict | None:
    cmd = [sys.executable, "-m", "benchmarks.worker_streams", "--url", url, "--model", MODEL.name]
    cmd += ["--sessions", str(n), "--seconds", str(args.seconds), "--warmup", str(args.warmup)]
    return run_worker(cmd, args.seconds + args.warmup + 60 + 5 * n)


def official(url: str, n: int, args: argparse.Namespace, python: str) -> dict | None:
    """N processes of the LiveKit table's official worker, started together."""
    cmd = [python, "-m", "benchmarks.worker_official_livekit", "--url", url]
    cmd += ["--model", MODEL.name, "--width", str(MODEL.width), "--height", str(MODEL.height)]
    cmd += ["--fps", str(MODEL.fps), "--seconds", str(args.seconds), "--warmup", str(args.warmup)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        for _ in range(n)
    ]
    results = []
    for proc in procs:
        try:
            out, _ = proc.communicate(timeout=args.seconds + args.warmup + 60 + 5 * n)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        line = next((x for x in out.splitlines() if x.startswith("RESULT ")), None)
        results.append(None if line is None else json.loads(line[len("RESULT ") :]))
    done = [r for r in results if r]
    if not done:
        return None
    return {
        "sessions": n,
        "fps": [r["fps"] if r else 0.0 for r in results],
        "latency_p50_ms": [r["latency_p50_ms"] if r else None for r in results],
        "cpu_per_s": sum(r["cpu_per_s"] for r in done),
        "peak_rss_mb": sum(r["peak_rss_mb"] for r in done),
    }


def run(args: argparse.Namespace) -> dict:
    counts = [int(x) for x in args.streams.split(",") if x]
    python, why = venv_python(*OFFICIAL_LIVEKIT_VENV)
    clients = ["decart_sync"] + (["official_livekit"] if python else [])
    if python is None:
        print(f"note: skipping the official SDK: {why}")
    rows: dict[tuple[int, str], list[dict]] = {}
    emulator = Emulator(MODEL)
    with emulator as url:
        for rep in range(args.reps):
            for n in counts:
                for client in clients if rep % 2 == 0 else clients[::-1]:
                    emulator_cpu = _cpu_seconds(emulator.proc.pid)
                    t0, load = time.monotonic(), os.getloadavg()[0]
                    if client == "decart_sync":
                        result = ours(url, n, args)
                    else:
                        assert python is not None
                        result = official(url, n, args, python)
                    spent = _cpu_seconds(emulator.proc.pid) - emulator_cpu
                    spent /= time.monotonic() - t0  # warm-up and connect included
                    print(f"rep {rep + 1} {n} x {client}: {result}", flush=True)
                    if result:
                        result.update(rep=rep, emulator_cpu_per_s=spent, load=load)
                        rows.setdefault((n, client), []).append(result)
    print_table(rows, counts, clients)
    return {f"{n} {client}": runs for (n, client), runs in rows.items()}


def print_table(
    rows: dict[tuple[int, str], list[dict]], counts: list[int], clients: list[str]
) -> None:
    goal = ENOUGH * MODEL.fps
    print(
        f"\nLiveKit sessions at {MODEL.width}x{MODEL.height}, {MODEL.fps:g} fps: medians over "
        "repetitions; fps of the slowest session / the median session"
    )
    print(
        f"{'sessions':>9}{'client':>18}{'fps min/med':>14}{'CPU s/s':>9}{'emulator':>10}{'load':>6}"
    )
    most = dict.fromkeys(clients, 0)
    own = dict.fromkeys(clients, 0)  # against the client's own rate with one session
    single = {
        c: statistics.median(min(r["fps"]) for r in rows[1, c]) for c in clients if (1, c) in rows
    }
    for n in counts:
        for client in clients:
            runs = rows.get((n, client), [])
            if not runs:
                continue
            slowest = statistics.median(min(r["fps"]) for r in runs)
            middle = statistics.median(statistics.median(r["fps"]) for r in runs)
            cpu = statistics.median(r["cpu_per_s"] for r in runs)
            emu = statistics.median(r["emulator_cpu_per_s"] for r in runs)
            load = statistics.median(r["load"] for r in runs)
            print(
                f"{n:>9}{client:>18}{slowest:>7.1f}/{middle:<6.1f}{cpu:>9.2f}{emu:>10.2f}{load:>6.1f}"
            )
            if slowest >= goal:
                most[client] = max(most[client], n)
            if client in single and slowest >= ENOUGH * single[client]:
                own[client] = max(own[client], n)
    for client, n in most.items():
        print(f"  {client}: {n} sessions with every one at >= {goal:.1f} fps", end="")
        if client in single:
            print(f"; {own[client]} at >= 95% of its one session's {single[client]:.1f}", end="")
        print()
