"""decart_sync's public blocking API: connect, send_frame, frames(), over either transport."""

from __future__ import annotations

import functools
import importlib
import threading
import time

import decart_sync
from benchmarks.stamp import Pattern, Recorder, emit, feed, worker_args


def run(
    url: str,
    seconds: float,
    width: int,
    height: int,
    fps: float,
    warmup: float,
    model_name: str = "lucy-restyle",
    transport: str = "webrtc",
) -> dict:
    model = decart_sync.ModelDefinition(
        model_name, fps=fps, width=width, height=height, transport=transport
    )
    pattern = Pattern(width, height)
    rec = Recorder()
    # The media stack loads on first use (``import decart_sync`` loads no av); the other
    # workers import theirs before the clock starts, so this one does too.
    importlib.import_module("decart_sync.client.start")
    importlib.import_module(f"decart_sync.realtime.transports.{transport}")
    t0 = time.monotonic()
    client = decart_sync.connect(None, model=model, api_key="bench", base_url=url)
    rec.connect_time = time.monotonic() - t0
    stop = threading.Event()

    # copy=False: feed never writes a frame again (decart_sync keeps the latest for repeats).
    send = functools.partial(client.send_frame, copy=False)
    producer = threading.Thread(target=feed, args=(send, pattern, rec, fps, stop), daemon=True)
    producer.start()
    frames = client.frames(timeout=10)
    end_warmup = time.monotonic() + warmup
    for _ in frames:
        if time.monotonic() >= end_warmup:
            break
    rec.sent.clear()
    rec.begin()
    measured = client.frames(timeout=0.5)  # a stalled network: the clock still ends the run
    while time.monotonic() - rec.start < seconds:
        try:
            frame = next(measured)
        except decart_sync.WebRTCTimeoutError:
            continue
        rec.on_output(frame)
        rec.bridge.append(measured.last_age)
    figures = rec.result("decart_sync" if transport == "webrtc" else f"decart_sync_{transport}")
    figures["skipped"] = measured.dropped  # output frames the reader never saw
    stop.set()
    producer.join(2)
    client.close()
    return figures


def main() -> None:
    args = worker_args()
    emit(
        run(
            args.url,
            args.seconds,
            args.width,
            args.height,
            args.fps,
            args.warmup,
            args.model,
            args.transport,
        )
    )


if __name__ == "__main__":
    main()
