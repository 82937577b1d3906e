"""Where a LiveKit client's CPU goes: one worker of the LiveKit table under ``perf``.

``python -m benchmarks.profile [--variant decart_sync|bare_livekit|official_livekit]``
starts the emulator in a process of its own and the worker, waits out the
warm-up, then samples the worker's every thread (``perf record -e cpu-clock``,
LiveKit's native ones too) for ``--seconds`` and prints CPU seconds per second
by part: each thread by its name (Python's own names, read with ``py-spy
dump`` when it is installed; LiveKit names its native threads), and within
it the library the sample landed in. ``liblivekit_ffi.so`` has no symbols,
so inside it only the thread tells the encoder from the decoder or from
``capture_frame``'s colour conversion. Needs ``perf`` and the right to use
it (root, or ``kernel.perf_event_paranoid`` <= 1).
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.processes import ROOT, WORKERS, Emulator, livekit_model
from benchmarks.venvs import OFFICIAL_LIVEKIT_VENV, venv_python

FREQUENCY = 499  # samples a second per thread, off any timer's beat
# Leaf libraries by what they do; the rest keep their own names.
LIBRARIES = (
    ("libswscale", "swscale (colour conversion)"),
    ("libpython", "Python interpreter"),
    ("_multiarray_umath", "numpy"),
    ("liblivekit_ffi", "livekit (libwebrtc, libyuv, Rust)"),
    ("[kernel", "kernel"),
    ("libav", "av (FFmpeg)"),
    ("_message", "protobuf"),
)
COPIES = re.compile(r"__mem(move|cpy|set)")


def thread_names(pid: int) -> dict[int, str]:
    """Python thread names by OS thread id, from ``py-spy dump``; {} without it."""
    if shutil.which("py-spy") is None:
        return {}
    dump = subprocess.run(
        ["py-spy", "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=30
    ).stdout
    return {int(t): name for t, name in re.findall(r'^Thread (\d+) \(\w+\): "(.*)"$', dump, re.M)}


def part(dso: str, symbol: str) -> str:
    if COPIES.match(symbol):
        return "memcpy/memset (copies)"
    for prefix, label in LIBRARIES:
        if dso.startswith(prefix):
            return label
    return dso


def split(data: Path, names: dict[int, str]) -> collections.Counter[tuple[str, str]]:
    """Samples by (thread, part), from where each landed."""
    script = subprocess.run(
        ["perf", "script", "-i", str(data), "-F", "comm,tid,ip,sym,dso"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    counts: collections.Counter[tuple[str, str]] = collections.Counter()
    for line in script.splitlines():
        # comm is printed in 16 columns (the kernel's 15 characters may hold spaces)
        fields = line[16:].split(None, 2)
        if len(fields) < 3:
            continue
        tid, leaf = int(fields[0]), fields[2]
        symbol, _, path = leaf.rstrip(")").rpartition(" (")
        comm = re.sub(r"[\s\d]*$", "", line[:16].strip()) or "?"
        counts[names.get(tid, comm), part(Path(path).name, symbol)] += 1
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__)
    parser.add_argument(
        "--variant",
        default="decart_sync",
        choices=("decart_sync", "bare_livekit", "official_livekit"),
    )
    parser.add_argument("--seconds", type=float, default=30.0, help="sampled seconds")
    parser.add_argument("--warmup", type=float, default=20.0)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--fps", type=float, default=30.0)
    args = parser.parse_args()
    if shutil.which("perf") is None:
        print("perf is not installed")
        return 1
    python = sys.executable
    if args.variant == "official_livekit":
        found, why = venv_python(*OFFICIAL_LIVEKIT_VENV)
        if found is None:
            print(why)
            return 1
        python = found
    model = livekit_model(args.width, args.height, args.fps)
    with Emulator(model) as url, tempfile.TemporaryDirectory() as tmp:
        cmd = [python, "-m", *WORKERS["livekit", args.variant], "--url", url]
        cmd += ["--model", model.name, "--width", str(args.width), "--height", str(args.height)]
        cmd += ["--fps", str(args.fps), "--warmup", str(args.warmup)]
        cmd += ["--seconds", str(args.seconds + 10)]  # still streaming when perf stops
        worker = subprocess.Popen(
            cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            time.sleep(args.warmup + 5)  # connect and warm up: not sampled
            names = thread_names(worker.pid)
            data = Path(tmp) / "perf.data"
            record = ["perf", "record", "-q", "-e", "cpu-clock", "-F", str(FREQUENCY)]
            record += ["-p", str(worker.pid), "-o", str(data), "--", "sleep", str(args.seconds)]
            subprocess.run(record, check=True, capture_output=True)
            counts = split(data, names)
            out, err = worker.communicate(timeout=args.seconds + 60)
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    result = next((line for line in out.splitlines() if line.startswith("RESULT ")), None)
    if result is None:
        print(f"the worker failed: {err.strip()[-800:]}")
        return 1
    scale = 1 / FREQUENCY / args.seconds
    threads: collections.Counter[str] = collections.Counter()
    for (thread, _), n in counts.items():
        threads[thread] += n
    print(f"{args.variant}, {args.width}x{args.height} at {args.fps:g} fps: CPU s per s by thread")
    print(f"  total {sum(threads.values()) * scale:.3f}; the worker's {result}")
    for thread, n in threads.most_common():
        print(f"  {n * scale:.3f}  {thread}")
        for (t, label), m in counts.most_common():
            if t == thread and m * scale >= 0.001:
                print(f"      {m * scale:.3f}  {label}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
