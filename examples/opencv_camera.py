"""Restyle a webcam and show it, the OpenCV way (needs opencv-python and a camera).

    DECART_API_KEY=... python examples/opencv_camera.py
"""

from __future__ import annotations

import cv2

import decart_sync
from decart_sync import models


def main() -> None:
    camera = cv2.VideoCapture(0)
    with decart_sync.connect(
        camera,  # anything with read() -> (ok, frame)
        model=models.realtime.mirage(),
        pixel_format="bgr24",  # OpenCV's channel order, in and out
        initial_state={"prompt": {"text": "Studio Ghibli style"}},
    ) as client:
        while True:
            ok, frame = client.read(timeout=5)
            if not ok:
                break
            cv2.imshow("restyled", frame)
            key = cv2.waitKey(1) & 0xFF
            if key == ord("q"):
                break
            if key == ord("s"):
                client.set_prompt("sepia photograph")
    camera.release()


if __name__ == "__main__":
    main()
