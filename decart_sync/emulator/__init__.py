"""A local emulator of Decart's realtime service, for tests, demos and offline work.

It speaks the service's wire protocol (JSON signaling
over a WebSocket, media over WebRTC through aiortc) and accepts every message
order the official clients use. Instead of a model it applies a small,
exactly specified transform, so tests can predict every output pixel::

    from decart_sync.emulator import Emulator
    with Emulator() as emu:                  # ws://127.0.0.1:<free port>
        client = decart_sync.connect(..., base_url=emu.url, api_key="any")

From a shell: ``python -m decart_sync.emulator --port 8765`` serves until
Ctrl-C; ``python -m decart_sync.emulator drop --url ws://127.0.0.1:8765``
makes a running emulator drop its sessions.

Camera models
-------------
Each received frame is scaled to the model's width x height and converted to
RGB (8 bits a channel) by libswscale, then transformed. Like a model, it
takes at most the model's fps of input (newer frames replace one not yet
taken) and sends each result as soon as it is ready, in order; with no new
result for 1.5 frame periods it repeats the last one at the model's fps. The
transform (`decart_sync.emulator.transforms.apply()`), on integers,
per pixel and channel:

1. The prompt picks a style; keywords are looked for, in this order, in the
   lower-cased prompt:

   - no prompt (never set, or set to null): passthrough, ``out = x``;
   - contains ``invert``: ``out = 255 - x``;
   - contains ``grayscale`` or ``greyscale``: BT.601 luma in all three
     channels, ``Y = (299 R + 587 G + 114 B + 500) // 1000`` (i.e.
     0.299 R + 0.587 G + 0.114 B rounded, halves up);
   - contains ``sepia``: the classic sepia matrix, each channel rounded
     (halves up) and clipped to 255:
     ``R' = min(255, (393 R + 769 G + 189 B + 500) // 1000)``,
     ``G' = min(255, (349 R + 686 G + 168 B + 500) // 1000)``,
     ``B' = min(255, (272 R + 534 G + 131 B + 500) // 1000)``;
   - any other text: a tint; ``t`` = the first three bytes of
     ``sha256(prompt.encode("utf-8"))`` as (R, G, B), ``out = (x + t) // 2``.
     The hash is of the prompt as sent, not lower-cased.

2. With a reference image set (``set_image``; decoded by FFmpeg, any still
   format, scaled to the model size as RGB): ``out = (out + image) // 2``.

Passthrough with no image skips the RGB round trip (the frame is only scaled).

live_avatar
-----------
No camera: the client sends audio (silence until it plays some). The video
sent back is the avatar picture (the ``set_image`` image, or mid-grey 128
when none is set) times a brightness gain
``g = 0.25 + 0.75 * min(1, 4 * rms)``, where ``rms`` is the root mean square
of the most recent ~40 ms of received audio samples, all channels, normalised
to [-1, 1] (int16 / 32768); audio older than 250 ms counts as silence. The
gain is applied in 1/256 steps: ``out = (x * round(g * 256) + 128) >> 8``.
The received audio is sent back as the output audio track (an echo), so a
client gets video and audio.

Image and video models
----------------------
The REST port serves ``POST /v1/generate/<image model>`` (the picture back as
PNG) and the video jobs, ``POST /v1/jobs/<video model>``, ``GET
/v1/jobs/<id>`` and ``GET /v1/jobs/<id>/content`` (MP4), as decart 0.2.4 sends
them: each picture, or every frame of a video, gets the transform above with
the form's prompt (a video model's empty prompt: passthrough) and reference
image, at its own size. Jobs run one at a time: ``pending`` for
``Faults.job_pace`` seconds, then ``processing`` for at least as long; see
`batch` for the statuses, codes and faults.

Signaling behaviour
-------------------
- Stream endpoint: any path; the model is the ``model`` query parameter. A
  missing or unknown API key gets ``{"type": "error", "error": "Invalid API
  key"}``, an unknown model ``"Unknown model: <name>"``; then the socket closes.
- On accept: ``session_id`` with the address the client reached.
- ``prompt``: text that is not blank is stored and acked with
  ``success: true``; anything else is acked ``success: false`` with an error.
- ``set_image``: ``image_data`` null clears the image, base64 sets it, an
  absent key keeps it; a ``prompt`` key (null = passthrough) sets the prompt
  too. The image and prompt change together, or not at all on error.
  ``image_ref`` names a file uploaded to the REST API (``emu.rest_url``,
  `rest`); an unknown, expired or deleted one is acked ``success:
  false`` with ``"File not found: ..."``.
- A client token (``ek_...``, from ``POST /v1/client/tokens``) as the key:
  refused when expired (``"Invalid API key: ..."``), for a model or an
  ``Origin`` header it does not allow (``"... is not allowed for this client
  token"``); its max session duration ends the session with
  ``generation_ended`` reason ``"timeout"``.
- ``offer``: answered with aiortc's SDP (only loopback candidates when bound
  to loopback). ``ice-candidate`` messages may come before or after it.
- The first frame sent brings ``generation_started``, then
  ``generation_tick`` every second; ``generation_ended`` on a clean end.
- Subscribe endpoint ``/subscribe/{sid}``: the session's output, fanned out;
  an unknown ``sid`` gets ``"Invalid session"``.
- Unknown message types and malformed JSON are ignored (kept in
  ``session.rejected`` / ``session.messages`` for tests), never fatal.

Tests
-----
``emu.sessions`` lists live sessions; each keeps ``offer_sdp`` (verbatim),
``messages`` (every JSON message received, in order), ``prompt``, ``image``,
``frames_in``, ``frames_out``, ``closing`` / ``closed`` (the latter once
nothing of it runs any more), and has ``wait(predicate)`` and
``wait_message(type)``; ``emu.wait_for_session()`` hands out new sessions.
``emu.drop_sessions(how)`` simulates a service drop, and [`Faults`][decart_sync.emulator.Faults]
injects misbehaviour (slow or failing acks, no answer, silence, junk
messages, frozen media).
"""

from __future__ import annotations

try:
    import websockets  # noqa: F401  # the server side: an extra, not a core dependency
except ImportError as exc:
    raise ImportError(
        "the decart_sync emulator needs the websockets package: pip install 'decart-sync[emulator]'"
    ) from exc

from .embedded import Emulator
from .faults import Faults
from .session import ServedSession, Subscriber

__all__ = ["Emulator", "Faults", "ServedSession", "Subscriber"]
