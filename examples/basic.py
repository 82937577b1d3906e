"""Stream a synthetic pattern through a model and count the restyled frames.

    python examples/basic.py            # no DECART_API_KEY: a local emulator
                                        # (pip install 'decart-sync[emulator]'), or the
                                        # one at DECART_REALTIME_BASE_URL if set
"""

from __future__ import annotations

import contextlib

import decart_sync
from decart_sync import models
from decart_sync.local import service
from decart_sync.sources import synthetic


def main() -> None:
    model = models.realtime("lucy-2.1")  # today's service: LiveKit, 1280x720 at 30 fps
    with contextlib.ExitStack() as stack:
        client = stack.enter_context(
            decart_sync.connect(
                synthetic(model),
                model=model,
                initial_state={"prompt": {"text": "Transform into a watercolor painting"}},
                **service(stack),
            )
        )
        client.on("connection_change", lambda state: print("state:", state))
        client.on("generation_tick", lambda seconds: print("generating for", seconds, "s"))
        summary = "fewer than 100 frames came"
        for count, frame in enumerate(client.frames(timeout=10), start=1):
            if count == 50:
                client.set_prompt("sepia")
            if count == 100:
                summary = f"frame {frame.shape} {frame.dtype} session {client.session_id}"
                break
    # Printed after close: until then the handlers above print from another thread.
    print(summary)


if __name__ == "__main__":
    main()
