"""Restyle a webcam and show it, the OpenCV way (needs opencv-python).

    python examples/opencv_camera.py                        # camera 0
    python examples/opencv_camera.py --source clip.mp4 --seconds 10
    python examples/opencv_camera.py --source clip.mp4 --frames 100
    # no DECART_API_KEY: a local emulator (pip install 'decart-sync[emulator]'),
    # or the one at DECART_REALTIME_BASE_URL if set

Keys in the window: q quits, s switches to a sepia prompt.
"""

from __future__ import annotations

import argparse
import contextlib
import time

import cv2

import decart_sync
from decart_sync import models
from decart_sync.local import service


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", default="0", help="camera index, device, stream URL or file")
    parser.add_argument("--seconds", type=float, help="stop after this long (default: at q)")
    parser.add_argument("--frames", type=int, help="stop after showing this many frames")
    args = parser.parse_args()
    source = int(args.source) if args.source.isdigit() else args.source
    end = None if args.seconds is None else time.monotonic() + args.seconds
    with contextlib.ExitStack() as stack:
        # decart_sync.VideoCapture instead of cv2.VideoCapture: the rest is OpenCV as usual.
        options = service(stack)
        cap = stack.enter_context(
            decart_sync.VideoCapture(
                source, model=models.realtime("lucy-2.1"), prompt="Studio Ghibli style", **options
            )
        )
        shown = 0
        while cap.isOpened() and (end is None or time.monotonic() < end):
            if args.frames is not None and shown >= args.frames:
                break
            ok, frame = cap.read()
            if not ok:
                break
            cv2.imshow("restyled", frame)
            shown += 1
            key = cv2.waitKey(1) & 0xFF
            if key == ord("q"):
                break
            if key == ord("s"):
                cap.client.set_prompt("sepia photograph")
        width, height = cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)
        print(f"shown {shown} restyled frames of {width:.0f}x{height:.0f}")
    cv2.destroyAllWindows()


if __name__ == "__main__":
    main()
