"""What ``decart-sync stream`` tells the person running it, on standard error.

On a terminal one status line is rewritten in place (``\\r``) a few times a
second; in a log (not a terminal) it is a plain line once a second. Messages
(prompts acknowledged, errors) go above it. The summary and ``--stats-json``
report the final figures.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any, TextIO

TTY_PERIOD = 0.25
LOG_PERIOD = 1.0


class Console:
    def __init__(self, stream: TextIO | None = None) -> None:
        self._out = stream if stream is not None else sys.stderr
        self._tty = _isatty(self._out)
        self._period = TTY_PERIOD if self._tty else LOG_PERIOD
        self._lock = threading.Lock()
        self._line = ""  # the status line on screen (terminal only)
        self._shown = 0.0

    def say(self, text: str) -> None:
        """A message of its own, above the status line."""
        with self._lock:
            if self._tty and self._line:
                self._out.write("\r\x1b[K" + text + "\n" + self._line)
            else:
                self._out.write(text + "\n")
            self._out.flush()

    def due(self) -> bool:
        """Time for a new status line (every ``period`` seconds)."""
        return time.monotonic() - self._shown >= self._period

    def status(self, text: str) -> None:
        self._shown = time.monotonic()
        with self._lock:
            if self._tty:
                self._line = text
                self._out.write("\r\x1b[K" + text)
            else:
                self._out.write(text + "\n")
            self._out.flush()

    def end_status(self) -> None:
        """Leave the status line where it is; what follows starts below it."""
        with self._lock:
            if self._tty and self._line:
                self._out.write("\n")
                self._out.flush()
            self._line = ""


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _figure(value: Any, unit: str, digits: int = 1) -> str:
    return "?" if value is None else f"{value:.{digits}f}{unit}"


def status_line(elapsed: float, total: float | None, written: int, stats: dict[str, Any]) -> str:
    """ffmpeg-like: time / total, fps each way, drops, RTT, bitrates, frames written."""
    clock = f"{elapsed:6.1f} s" + (f" / {total:.1f} s" if total else "")
    return (
        f"{clock}  frames {written}  fps in {stats.get('fps_in', 0):.1f} "
        f"out {stats.get('fps_out', 0):.1f}  drop {stats.get('frames_dropped', 0)}  "
        f"rtt {_figure(stats.get('rtt_ms'), ' ms')}  "
        f"kbit/s in {_figure(stats.get('bitrate_in_kbps'), '', 0)} "
        f"out {_figure(stats.get('bitrate_out_kbps'), '', 0)}"
    )


def summary(report: dict[str, Any]) -> str:
    stats = report["stats"]
    audio = f" and {report['audio_seconds']:.1f} s of audio" if report["audio_seconds"] else ""
    stopped = " (stopped by Ctrl-C)" if report["interrupted"] else ""
    return (
        f"wrote {report['frames_written']} frames ({report['size']} at {report['fps']} fps){audio} "
        f"to {report['output']} in {report['seconds']:.1f} s{stopped}; "
        f"frames in {stats.get('frames_in', 0)}, received {stats.get('frames_received', 0)}, "
        f"dropped {stats.get('frames_dropped', 0)}, reconnects {stats.get('reconnects', 0)}, "
        f"connect {_figure(stats.get('connect_seconds'), ' s', 2)}, "
        f"rtt {_figure(stats.get('rtt_ms'), ' ms')}"
    )


def write_json(path: str, report: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as file:
        json.dump(report, file, indent=2, sort_keys=True)
        file.write("\n")
