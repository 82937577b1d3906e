"""Animate a portrait from an audio file with live_avatar.

    python examples/live_avatar.py portrait.png speech.wav
    # no DECART_API_KEY: a local emulator (pip install 'decart-sync[emulator]'),
    # or the one at DECART_REALTIME_BASE_URL if set
"""

from __future__ import annotations

import contextlib
import sys

import decart_sync
from decart_sync import models
from decart_sync.local import service


def main(image: str, audio: str) -> None:
    with contextlib.ExitStack() as stack:
        client = stack.enter_context(
            decart_sync.connect(
                None,  # live_avatar takes no video: the client sends silence until audio plays
                model=models.realtime.live_avatar(),
                initial_state={"image": image, "prompt": {"text": "Friendly greeting expression"}},
                **service(stack),
            )
        )
        client.play_audio(audio)  # blocks until played, in real time
        ok, frame = client.read(timeout=5)
        print("avatar frame:", ok and frame.shape)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
