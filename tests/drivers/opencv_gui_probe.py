"""Show frames with cv2.imshow after importing decart_sync in a given order.

Run by ``tests/e2e/test_opencv_gui.py`` in the OpenCV venv (``tests/support/gui.py``) on
an Xvfb display, with a time limit: a freeze shows as the limit running out.

    python tests/drivers/opencv_gui_probe.py ORDER [EMULATOR_URL]

ORDER names modules to import in turn, comma-separated, where ``connect``
streams ten restyled frames from the emulator (loading av and aiortc) and
those frames are the ones shown: ``decart_sync,cv2``, ``cv2,decart_sync``,
``decart_sync,connect,cv2``; ``av,cv2`` is the known clash (the control).
Prints one line ``SHOWN <n> frames in <s> s; window visible <v>``.
"""

from __future__ import annotations

import importlib
import sys
import time

import numpy as np


def stream(url: str) -> list[np.ndarray]:
    import decart_sync

    model = decart_sync.ModelDefinition("test-small", fps=25, width=320, height=192)
    still = np.full((model.height, model.width, 3), 90, np.uint8)
    with decart_sync.connect(
        iter(lambda: still, None), model=model, api_key="probe", base_url=url, timeout=30
    ) as client:
        frames = client.frames(timeout=10)
        return [next(frames) for _ in range(10)]


def main(order: str, url: str) -> None:
    shown = [np.full((96, 160, 3), i * 20, np.uint8) for i in range(10)]
    for name in order.split(","):  # explicit, so that no tool reorders them
        if name == "connect":
            shown = stream(url)
        else:
            importlib.import_module(name)
    cv2 = sys.modules["cv2"]
    start = time.monotonic()
    for frame in shown:
        cv2.imshow("probe", frame)
        cv2.waitKey(1)
    seconds = time.monotonic() - start
    visible = cv2.getWindowProperty("probe", cv2.WND_PROP_VISIBLE)
    cv2.destroyAllWindows()
    print(f"SHOWN {len(shown)} frames in {seconds:.2f} s; window visible {visible}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "")
