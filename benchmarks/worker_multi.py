"""N decart_sync sessions in one process, the several-cameras case (640x352)."""

from __future__ import annotations

import argparse
import threading
import time

import decart_sync
from benchmarks.stamp import Pattern, cpu, emit


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--sessions", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--fps", type=float, default=25)
    args = parser.parse_args()
    model = decart_sync.ModelDefinition("bench-small", fps=args.fps, width=640, height=352)
    pattern = Pattern(model.width, model.height)
    frame = pattern.frame(1)
    clients = [
        decart_sync.connect([frame] * 10**6, model=model, api_key="bench", base_url=args.url)
        for _ in range(args.sessions)
    ]
    counts = [0] * len(clients)
    start = time.monotonic()
    cpu0 = cpu()

    def consume(i: int) -> None:
        for _ in clients[i].frames(timeout=10):
            counts[i] += 1
            if time.monotonic() - start >= args.seconds:
                return

    threads = [threading.Thread(target=consume, args=(i,)) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    used = cpu() - cpu0
    for client in clients:
        client.close()
    emit({"sessions": args.sessions, "fps": sum(counts) / elapsed, "cpu_per_s": used / elapsed})


if __name__ == "__main__":
    main()
