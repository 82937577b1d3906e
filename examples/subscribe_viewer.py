"""Watch another session's output with its subscribe token.

    python examples/subscribe_viewer.py <token>
"""

from __future__ import annotations

import sys

import decart_sync


def main(token: str) -> None:
    with decart_sync.subscribe(token) as viewer:
        for count, frame in enumerate(viewer.frames(timeout=10), start=1):
            print(f"frame {count}: {frame.shape}")
            if count == 100:
                break


if __name__ == "__main__":
    main(sys.argv[1])
