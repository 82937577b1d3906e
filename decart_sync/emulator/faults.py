"""Fault injection: ways the emulated service can misbehave, for tests of the client.

Every field's default is the well-behaved service. Sessions consult their
[`Faults`][decart_sync.emulator.Faults] at each step rather than copying it, so a test may change a
field while sessions run (``emu.faults.freeze_media = True``) and see the
effect at the next step. ``Emulator(faults=...)`` sets the shared instance;
``session.faults`` may be replaced to target one session.

New faults slot in the same way: a field here, one check at the step it
perturbs (see the ``faults.`` reads in ``session.py`` and ``media.py``).

The network fields (``loss`` to ``seed``) impair the media packets themselves,
both ways, on both transports: `netem`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs


def _between(low: float, high: float) -> Any:
    return [attrs.validators.ge(low), attrs.validators.le(high)]


def _rate(value: Any) -> float | None:
    """kbit/s; None, 0 or "" mean unlimited."""
    if value is None or value == "":
        return None
    rate = float(value)
    if rate < 0:
        raise ValueError(f"bandwidth_kbps must be positive, not {rate}")
    return rate or None


def _window(value: Any) -> tuple[float, float] | None:
    """(at_s, seconds) from a pair or from text "AT,SECONDS"; None or "" for none."""
    if value is None or value == "":
        return None
    parts = value.split(",") if isinstance(value, str) else list(value)
    if len(parts) != 2:
        raise ValueError(f"blackout wants (at_s, seconds), not {value!r}")
    at, seconds = float(parts[0]), float(parts[1])
    if at < 0 or seconds < 0:
        raise ValueError(f"blackout wants non-negative (at_s, seconds), not {value!r}")
    return at, seconds


def _bursts(value: Any) -> tuple[float, float, float] | None:
    """(enter, leave, loss) from a sequence or text "ENTER,LEAVE[,LOSS]"; None or "" for none."""
    if value is None or value == "":
        return None
    parts = value.split(",") if isinstance(value, str) else list(value)
    if len(parts) not in (2, 3):
        raise ValueError(f"bursts wants (enter, leave[, loss]), not {value!r}")
    enter, leave, loss = (float(part) for part in [*parts, 1.0][:3])
    if not (0 < enter <= 1 and 0 < leave <= 1 and 0 <= loss <= 1):
        raise ValueError(f"bursts wants probabilities, enter and leave above 0, not {value!r}")
    return enter, leave, loss


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
    # Seconds each place in that queue lasts.
    queue_step: float = 0.1
    # The next this many stream connections are turned away as a busy service does (an
    # error that a retry may get past); each refusal counts one down.
    refuse_connects: int = 0
    # Video jobs (REST): seconds a job stays pending, then at least this long processing.
    job_pace: float = attrs.field(default=0.5, converter=float, validator=_between(0.0, 3600.0))
    # The next this many submitted jobs end "failed" (counted down as they are submitted).
    fail_jobs: int = 0
    # The next this many job submissions are refused as by a full queue (HTTP 429).
    refuse_jobs: int = 0

    # The network, for media (RTP and RTCP) both ways: see .netem. Probability a packet is lost.
    loss: float = attrs.field(default=0.0, converter=float, validator=_between(0.0, 1.0))
    # One-way delay added to every packet, and a uniform +- spread on it: drawn every 20 ms,
    # packets kept in order (a link's queue), or for each packet with ``reorder`` (netem's
    # way, which at these packet rates reorders nearly every packet).
    delay_ms: float = attrs.field(default=0.0, converter=float, validator=_between(0.0, 60_000.0))
    jitter_ms: float = attrs.field(default=0.0, converter=float, validator=_between(0.0, 60_000.0))
    reorder: bool = False
    # A link of this rate each way (None: unlimited); packets queue, and drop past a full queue.
    bandwidth_kbps: float | None = attrs.field(default=None, converter=_rate)
    # (at_s, seconds) after the session starts, every media packet is lost ("5,3" on the CLI).
    blackout: tuple[float, float] | None = attrs.field(default=None, converter=_window)
    # Bursty loss (Gilbert-Elliott): per packet, the chance a burst begins, the chance it
    # ends, and the chance a packet in it is lost (default 1): "0.001,0.05" loses some 20
    # packets in a row every 1000 or so, on top of ``loss``.
    bursts: tuple[float, float, float] | None = attrs.field(default=None, converter=_bursts)
    # Seeds the random draws of loss and jitter: the same seed loses the same packets.
    seed: int = attrs.field(default=0, converter=int)

    @classmethod
    def parse(cls, settings: Iterable[str], base: Faults | None = None) -> Faults:
        """``FIELD=VALUE`` texts (the CLI's ``--fault``, the admin ``faults`` command) over
        ``base`` (default: a well-behaved service), each value parsed as its field's type
        (``blackout=5,3``: at 5 s for 3 s; ``blackout=``: none; ``bursts=0.001,0.05``).
        ValueError names the culprit."""
        names = [field.name for field in attrs.fields(cls)]
        defaults = cls()
        values: dict[str, Any] = {}
        for setting in settings:
            name, sep, text = setting.partition("=")
            if not sep or name not in names:
                raise ValueError(f"{setting!r}: want FIELD=VALUE with FIELD in {', '.join(names)}")
            default = getattr(defaults, name)
            try:
                if isinstance(default, bool):
                    values[name] = text.lower() in ("1", "true", "yes", "on")
                elif isinstance(default, (int, float)):
                    values[name] = type(default)(text)
                else:  # text, or a field whose converter parses it (bandwidth_kbps, blackout, ...)
                    values[name] = text or None
            except ValueError:
                raise ValueError(f"{setting!r}: {name} wants a {type(default).__name__}") from None
        try:
            return attrs.evolve(base if base is not None else defaults, **values)
        except TypeError as exc:
            raise ValueError(str(exc)) from None

    def network(self) -> tuple[Any, ...]:
        """The network fields, for `netem` to notice a change."""
        return (self.loss, self.delay_ms, self.jitter_ms, self.reorder, self.bandwidth_kbps,
                self.blackout, self.bursts, self.seed)  # fmt: skip
