"""N decart_sync LiveKit sessions in one process, as one program would run several
cameras: per session a producer thread (``send_frame``) and a consumer thread
(``frames()``), the stamped pattern both ways (benchmarks/stamp.py).

Prints one ``RESULT`` line: each session's fresh fps, lost frames and g2g p50,
and the process's CPU per second and peak RSS over the measured window, which
starts for all sessions at once after the warm-up.
"""

from __future__ import annotations

import argparse
import functools
import threading
import time

import decart_sync
from benchmarks.stamp import Pattern, Recorder, cpu, emit, feed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--model", required=True, help="a LiveKit model the emulator serves")
    parser.add_argument("--sessions", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--warmup", type=float, default=10)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--fps", type=float, default=30)
    args = parser.parse_args()
    model = decart_sync.ModelDefinition(
        args.model, fps=args.fps, width=args.width, height=args.height, transport="livekit"
    )
    pattern = Pattern(args.width, args.height)
    clients = [
        decart_sync.connect(None, model=model, api_key="bench", base_url=args.url)
        for _ in range(args.sessions)
    ]
    recs = [Recorder() for _ in clients]
    results: list[dict | None] = [None] * len(clients)
    stop = threading.Event()
    begin = time.monotonic() + args.warmup
    end = begin + args.seconds

    def produce(client: decart_sync.RealtimeClient, rec: Recorder) -> None:
        feed(functools.partial(client.send_frame, copy=False), pattern, rec, args.fps, stop)

    def consume(client: decart_sync.RealtimeClient, rec: Recorder) -> None:
        frames = client.frames(timeout=0.1)
        while time.monotonic() < end:
            try:
                frame = next(frames)
            except decart_sync.WebRTCTimeoutError:
                continue
            if not rec.start and time.monotonic() >= begin:
                rec.sent.clear()
                rec.begin()
            if rec.start:
                rec.on_output(frame)
        if rec.start:  # taken here, at the end of the window, not after the joins
            results[recs.index(rec)] = rec.result("decart_sync")

    threads = [
        threading.Thread(target=work, args=(client, rec), daemon=True)
        for client, rec in zip(clients, recs, strict=True)
        for work in (produce, consume)
    ]
    for thread in threads:
        thread.start()
    time.sleep(max(0.0, begin - time.monotonic()))
    cpu0 = cpu()
    time.sleep(max(0.0, end - time.monotonic()))
    used = cpu() - cpu0
    stop.set()
    for thread in threads:
        thread.join(5)
    for client in clients:
        client.close()
    emit(
        {
            "sessions": args.sessions,
            "fps": [r["fps"] if r else 0.0 for r in results],
            "lost": [r["lost"] if r else None for r in results],
            "latency_p50_ms": [r["latency_p50_ms"] if r else None for r in results],
            "cpu_per_s": used / args.seconds,
            "peak_rss_mb": results[0]["peak_rss_mb"] if results[0] else None,
        }
    )


if __name__ == "__main__":
    main()
