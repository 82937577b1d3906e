"""Workload and measurement shared by every benchmark worker (numpy only).

Each input frame carries its index as a 16-bit block code in the top-left
corner (16 blocks of 16x16 px, white = 1), which survives VP8 and H264; the worker
reads it back from the output to match frames end to end.

`stamp_checked` / `read_checked` also tell a damaged output frame from a good one:
the index and a CRC-8 of it, repeated in tiles spread over the whole picture. A frame
decoded without a slice (the decoder paints in the previous picture there) or against
the wrong reference shows a tile that fails its checksum or disagrees with the others.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import threading
import time
from collections.abc import Callable

import numpy as np

BITS = 16
BLOCK = 16
STALL_GAP = 0.5  # seconds without a new output frame that count as a stall


CHECK_COLUMNS, CHECK_ROWS = 8, 3  # one tile: 24 bits, the index's 16 then its CRC-8
# A worker's frames carry checked tiles instead of the corner code (``--checked``, which
# ``python -m benchmarks --network`` passes): set once per worker process by worker_args.
checked_stamps = False


class Pattern:
    """A moving gradient with a block-coded index, made without per-frame allocation
    beyond the frame itself."""

    def __init__(self, width: int, height: int) -> None:
        ys, xs = np.mgrid[0:height, 0:width]
        wide = np.stack(
            [(xs * 255 // width), (ys * 255 // height), np.full_like(xs, 96)], axis=-1
        ).astype(np.uint8)
        self.base = np.concatenate([wide, wide], axis=1)  # rolled by slicing
        self.width, self.height = width, height

    def frame(self, index: int, *, checked: bool | None = None) -> np.ndarray:
        """The picture for ``index``: with the corner code, or ``checked`` tiles (default:
        as the worker was told)."""
        offset = (index * 8) % self.width
        frame = self.base[:, offset : offset + self.width].copy()
        if checked_stamps if checked is None else checked:
            stamp_checked(frame, index)
        else:
            stamp(frame, index)
        return frame


def stamp(frame: np.ndarray, index: int) -> None:
    frame[: BLOCK * 2, : BLOCK * (BITS + 2)] = 0
    for bit in range(BITS):
        if index >> bit & 1:
            x = BLOCK * (bit + 1)
            frame[BLOCK // 2 : BLOCK // 2 + BLOCK, x : x + BLOCK] = 255


def read_stamp(frame: np.ndarray) -> int:
    row = frame[BLOCK // 2 + 4 : BLOCK // 2 + BLOCK - 4, BLOCK : BLOCK * (BITS + 1)]
    levels = row.reshape(row.shape[0], BITS, BLOCK, -1)[:, :, 4:-4].mean(axis=(0, 2, 3))
    return int(sum(1 << bit for bit, level in enumerate(levels) if level > 128))


def crc8(value: int) -> int:
    """CRC-8 (polynomial 0x07) of a 16-bit value, big-endian."""
    crc = 0
    for byte in (value >> 8 & 0xFF, value & 0xFF):
        crc ^= byte
        for _ in range(8):
            crc = (crc << 1 ^ 0x07) & 0xFF if crc & 0x80 else crc << 1
    return crc


def check_block(width: int) -> int:
    """The side of a checked tile's blocks: one 16 px macroblock each (a block smaller than
    a macroblock is dearer to code, and a starved VP8 encoder left some of them stale)."""
    return 16


def check_tiles(width: int, height: int) -> list[tuple[int, int]]:
    """Where the checked tiles go (top-left corners, on the 16 px macroblock grid): up to
    three across, a row of them every two tile heights, from edge to edge."""
    block = check_block(width)
    tile_w, tile_h = CHECK_COLUMNS * block, CHECK_ROWS * block
    across = max(1, min(3, (width + block) // (tile_w + block)))
    down = max(1, (height + tile_h) // (2 * tile_h))
    xs = [c * (width - tile_w) // max(1, across - 1) // 16 * 16 for c in range(across)]
    ys = [r * (height - tile_h) // max(1, down - 1) // 16 * 16 for r in range(down)]
    return [(y, x) for y in ys for x in xs]


def stamp_checked(frame: np.ndarray, index: int) -> None:
    height, width = frame.shape[:2]
    block = check_block(width)
    word = (index & 0xFFFF) << 8 | crc8(index & 0xFFFF)
    bits = np.array([word >> (23 - k) & 1 for k in range(24)], np.uint8) * 255
    tile = np.kron(bits.reshape(CHECK_ROWS, CHECK_COLUMNS), np.ones((block, block), np.uint8))
    for y, x in check_tiles(width, height):
        frame[y : y + tile.shape[0], x : x + tile.shape[1]] = tile[..., None]


def read_checked(frame: np.ndarray) -> int | None:
    """The index every tile agrees on, each with a valid checksum; None for a damaged frame."""
    height, width = frame.shape[:2]
    block, inner = check_block(width), check_block(width) // 4
    found: set[int] = set()
    for y, x in check_tiles(width, height):
        tile = frame[y : y + CHECK_ROWS * block, x : x + CHECK_COLUMNS * block].astype(np.float32)
        cells = tile.mean(axis=2).reshape(CHECK_ROWS, block, CHECK_COLUMNS, block)
        levels = cells[:, inner:-inner, :, inner:-inner].mean(axis=(1, 3)).reshape(-1)
        word = int(sum(1 << (23 - k) for k, level in enumerate(levels) if level > 128))
        if crc8(word >> 8) != word & 0xFF:
            return None
        found.add(word >> 8)
    return found.pop() if len(found) == 1 else None


class Recorder:
    """Send and receive times by frame index, and the figures from them."""

    def __init__(self) -> None:
        self.sent: dict[int, float] = {}
        self.received: dict[int, float] = {}
        self.bridge: list[float] = []
        self.highest = -1
        self.misread = 0
        self.stall = 0.0  # seconds in gaps of over STALL_GAP between new output frames
        self.longest_gap = 0.0  # seconds: the longest time without a new output frame
        self.damaged = 0  # output frames whose checked tiles fail (checked stamps only)
        self._last_new: float | None = None
        self.connect_time = 0.0
        self.start = 0.0
        self.cpu0 = 0.0

    def begin(self) -> None:
        self.start = self._last_new = time.monotonic()
        self.cpu0 = cpu()

    def on_output(self, frame: np.ndarray) -> None:
        if checked_stamps:
            checked = read_checked(frame)
            if checked is None:
                self.damaged += 1
                return
            index = checked
        else:
            index = read_stamp(frame)
        if index in self.sent and index >= self.highest:
            if index not in self.received:
                now = time.monotonic()
                if self._last_new is not None:
                    gap = now - self._last_new
                    self.longest_gap = max(self.longest_gap, gap)
                    if gap > STALL_GAP:
                        self.stall += gap
                self._last_new = now
                self.received[index] = now
                self.highest = index
        elif self.highest >= 0:
            # Video decodes in order: once a measured frame came back, a code that steps
            # back or was never sent is one the codec damaged.
            self.misread += 1

    def result(self, name: str) -> dict[str, object]:
        elapsed = time.monotonic() - self.start
        if self._last_new is not None:
            tail = elapsed + self.start - self._last_new  # stalled at the end too
            self.longest_gap = max(self.longest_gap, tail)
            if tail > STALL_GAP:
                self.stall += tail
        latencies = np.array([self.received[i] - self.sent[i] for i in self.received]) * 1000
        sent_before_end = [i for i, t in self.sent.items() if t < self.start + elapsed - 0.5]
        lost = sum(1 for i in sent_before_end if i not in self.received)
        figures: dict[str, object] = {
            "variant": name,
            "seconds": round(elapsed, 2),
            "fps": len(self.received) / elapsed if elapsed else 0.0,
            "sent": len(self.sent),
            "received": len(self.received),
            "lost": lost,
            "misread": self.misread,
            "stall_s": round(self.stall, 2),
            "longest_gap_s": round(self.longest_gap, 2),
            "damaged": self.damaged if checked_stamps else None,
            "latency_p50_ms": float(np.percentile(latencies, 50)) if len(latencies) else None,
            "latency_p90_ms": float(np.percentile(latencies, 90)) if len(latencies) else None,
            "latency_p95_ms": float(np.percentile(latencies, 95)) if len(latencies) else None,
            "cpu_per_s": (cpu() - self.cpu0) / elapsed if elapsed else 0.0,
            "connect_s": self.connect_time,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
        if self.bridge:
            bridge = np.array(self.bridge) * 1000
            figures["bridge_p50_ms"] = float(np.percentile(bridge, 50))
            figures["bridge_p99_ms"] = float(np.percentile(bridge, 99))
        return figures


def feed(
    send: Callable[[np.ndarray], object],
    pattern: Pattern,
    rec: Recorder,
    fps: float,
    stop: threading.Event,
) -> None:
    """Hand ``send`` the pattern's frames at ``fps`` until ``stop`` is set, noting when
    each index went: a blocking client's producer thread. A fresh array each frame,
    never written again, so a client may keep it as it is (``copy=False``)."""
    index, due = 0, time.monotonic()
    while not stop.is_set():
        frame = pattern.frame(index)
        rec.sent[index] = time.monotonic()
        send(frame)
        index += 1
        due += 1 / fps
        stop.wait(max(0.0, due - time.monotonic()))


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def emit(figures: dict[str, object]) -> None:
    sys.stdout.write("RESULT " + json.dumps(figures) + "\n")
    sys.stdout.flush()


def worker_args() -> argparse.Namespace:
    """The command line every single-session worker takes from ``python -m benchmarks``."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=704)
    parser.add_argument("--fps", type=float, default=25)
    parser.add_argument("--model", default="lucy-restyle", help="a model the emulator serves")
    parser.add_argument("--transport", choices=("webrtc", "livekit"), default="webrtc")
    parser.add_argument(
        "--checked", action="store_true", help="checked stamps: count damaged output frames"
    )
    args = parser.parse_args()
    global checked_stamps
    checked_stamps = args.checked
    return args
