"""Fault injection: ways the emulated service can misbehave, for tests of the client.

Every field's default is the well-behaved service. Sessions consult their
:class:`Faults` at each step rather than copying it, so a test may change a
field while sessions run (``emu.faults.freeze_media = True``) and see the
effect at the next step. ``Emulator(faults=...)`` sets the shared instance;
``session.faults`` may be replaced to target one session.

New faults slot in the same way: a field here, one check at the step it
perturbs (see the ``faults.`` reads in ``session.py`` and ``media.py``).
"""

from __future__ import annotations

import attrs


@attrs.define
class Faults:
    # Seconds to wait before each prompt_ack / set_image_ack.
    ack_delay: float = 0.0
    # When set, every prompt / set_image is acked with success false and this error.
    reject_prompts: str | None = None
    reject_images: str | None = None
    # Never answer an offer (the client's connect then times out).
    no_answer: bool = False
    # Send nothing at all after session_id: no acks, answers, ticks.
    silent: bool = False
    # Precede every message with junk: invalid JSON, a JSON array, an unknown type.
    malformed: bool = False
    # Output video stops (the connection stays up): a stalled model.
    freeze_media: bool = False
    # No generation_tick messages.
    no_ticks: bool = False
    # LiveKit mode: wait in a queue this long, announcing our place, before the room.
    queue_positions: int = 0
