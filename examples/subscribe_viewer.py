"""Watch another session's output with its subscribe token.

    python examples/subscribe_viewer.py <token> [frames]
    # no DECART_API_KEY: the emulator at DECART_REALTIME_BASE_URL (the one
    # serving the session), e.g. ws://127.0.0.1:8765 from `decart-sync emulator`
"""

from __future__ import annotations

import os
import sys

import decart_sync


def main(token: str, frames: int = 100) -> None:
    local = not os.environ.get("DECART_API_KEY")  # an emulator takes any key
    with decart_sync.subscribe(token, api_key="local" if local else None) as viewer:
        for count, frame in enumerate(viewer.frames(timeout=10), start=1):
            print(f"frame {count}: {frame.shape}")
            if count == frames:
                break


if __name__ == "__main__":
    main(sys.argv[1], *(int(arg) for arg in sys.argv[2:3]))
