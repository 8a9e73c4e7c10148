"""Groove templates (control side): each style's micro-timing and accent map, applied in one
place (`Agent._render_bar`) to every part of the band playing that style, scaled by the amount
/band/groove (0: straight and flat, 1: the template as written; config ``[band] groove``).

A template works like an MPC swing setting or a clip in Ableton's groove pool: it is a property
of the *grid position*, not of an instrument, so the drums, the bass, the comping and the lead
lock to the same feel.

* ``swing_to``: where the off-beat eighth (beat + 1/2) of every beat lands at full amount, as an
  exact fraction of the beat (2/3: the triplet swing of jazz). The note is moved in musical time
  (``Note.begin``), so a swung note stays a swung note at any tempo; a note's end on such an
  off-beat moves with it. The scheduler's own /band/swing swings only onsets still on the
  straight off-beat, so the two do not add up.
* ``timing_ms``: per sixteenth of the beat (on, e, and, a) a push (-) or drag (+) in
  milliseconds, added to the note's humanising ``nudge_s`` (clamped to +-12 ms).
* ``accent``: per sixteenth of the *bar* (16 steps; other meters reuse the 4/4 beats as the
  drums do) a velocity factor.

Notes off the sixteenth grid (a triplet fill, a swung note) take the timing and accent of the
position they are nearest to before the bar is swung (triplets: none).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction

from engine.meter import step_source
from engine.patterns.event import Note

__all__ = ["Groove", "GROOVES", "apply_groove", "swing_beat", "MAX_GROOVE_NUDGE_S"]

MAX_GROOVE_NUDGE_S = 0.012
HALF = Fraction(1, 2)


@dataclass(frozen=True)
class Groove:
    """One style's template (see the module docstring)."""

    swing_to: Fraction = HALF
    timing_ms: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    accent: tuple[float, ...] = (1.0,) * 16

    def __post_init__(self) -> None:
        if not HALF <= self.swing_to < 1:
            raise ValueError(f"swing_to must be within 1/2..1 beat, got {self.swing_to}")
        if len(self.timing_ms) != 4 or len(self.accent) != 16:
            raise ValueError("a groove has 4 timings (per sixteenth of a beat) and 16 accents")


def _accent(beat: tuple[float, float, float, float], backbeat: float = 1.0) -> tuple[float, ...]:
    """A bar of accents from one beat's (on, e, and, a), beats 2 and 4 times ``backbeat``."""
    out: list[float] = []
    for b in range(4):
        out += [beat[0] * (backbeat if b % 2 else 1.0)] + list(beat[1:])
    return tuple(out)


GROOVES: dict[str, Groove] = {
    # straight eighths, the sixteenths a touch behind and soft
    "rock": Groove(timing_ms=(0.0, 1.5, 0.5, 1.5), accent=_accent((1.0, 0.92, 0.96, 0.92))),
    # the off-beat (the open hat, the bass octave) pushed a hair, pumping accents
    "house": Groove(timing_ms=(0.0, 1.0, -1.0, 1.0), accent=_accent((1.0, 0.9, 1.02, 0.9))),
    # MPC-style sixteenth swing (about 54 % at 104 BPM), ghosty e's and a's
    "funk": Groove(timing_ms=(0.0, 9.0, 0.0, 9.0), accent=_accent((1.0, 0.88, 0.97, 0.9))),
    # lazy: the off-beats drag
    "hiphop": Groove(timing_ms=(0.0, 11.0, 5.0, 11.0), accent=_accent((1.0, 0.9, 0.94, 0.9))),
    # light, even sixteenths with the clave accents
    "bossa": Groove(timing_ms=(0.0, 2.0, 0.0, 2.0),
                    accent=_accent((1.0, 0.9, 0.95, 0.96), backbeat=0.96)),
    "breakbeat": Groove(timing_ms=(0.0, 5.0, 0.0, 5.0), accent=_accent((1.0, 0.9, 0.96, 0.9))),
    # tight and driving: the sixteenths barely late, the backbeat leans forward
    "dnb": Groove(timing_ms=(0.0, 3.0, 0.0, 3.0),
                  accent=_accent((1.0, 0.86, 0.94, 0.9), backbeat=1.05)),
    # triplet swing; beats 2 and 4 accented (the ride, the hat foot, the walking bass), the
    # swung skip notes lighter, the beat itself a little ahead (riding on top)
    "jazz": Groove(swing_to=Fraction(2, 3), timing_ms=(-2.0, 0.0, 1.0, 0.0),
                   accent=_accent((0.94, 0.85, 0.84, 0.85), backbeat=1.1)),
}


def swing_beat(t: Fraction, shift: Fraction, start: Fraction = Fraction(0),
               pulses: tuple[int, ...] = (4, 4, 4, 4)) -> Fraction:
    """``t`` (beats) moved by ``shift`` if it is an off-beat eighth: the middle of a quarter
    pulse of the bar starting at ``start`` (of ``pulses`` sixteenths; after the bar, of the
    quarters going on from its end). The eighths of a dotted-quarter pulse (6/8) are not
    swung."""
    if not shift:
        return t
    pos = (t - start) * 4
    if pos.denominator != 1:
        return t
    p, total = int(pos), sum(pulses)
    if 0 <= p < total:
        for length in pulses:
            if p < length:
                return t + shift if length == 4 and p == 2 else t
            p -= length
    return t + shift if (p - total) % 4 == 2 else t


def apply_groove(notes: list[Note], style: str, amount: float, start: Fraction,
                 pulses: tuple[int, ...]) -> list[Note]:
    """``notes`` of a bar starting at beat ``start`` (its ``pulses`` in sixteenths, see
    engine.meter: a step of another meter takes the accent of the 4/4 step it plays) played
    with ``style``'s groove at ``amount`` (0..1). Pure: the same notes and amount give the
    same result."""
    groove = GROOVES.get(style)
    if groove is None or amount <= 0.0 or not notes:
        return notes
    a = Fraction(round(amount * 20), 20)            # exact, and what the bar cache keys on
    shift = (groove.swing_to - HALF) * a
    out = []
    for n in notes:
        pos = (n.begin - start) * 4
        vel, nudge = n.velocity, n.nudge_s
        if pos.denominator == 1:
            s = int(pos)
            src = step_source(pulses, s) if 0 <= s < sum(pulses) else s
            vel *= 1.0 + float(a) * (groove.accent[src % 16] - 1.0)
            nudge += float(a) * groove.timing_ms[src % 4] / 1000.0
        begin = swing_beat(n.begin, shift, start, pulses)
        end = swing_beat(n.end, shift, start, pulses)
        dur = max(end - begin, Fraction(1, 32))
        vel = round(min(1.0, max(0.05, vel)), 3)
        nudge = round(max(-MAX_GROOVE_NUDGE_S, min(MAX_GROOVE_NUDGE_S, nudge)), 4) + 0.0
        if (begin, dur, vel, nudge) != (n.begin, n.dur, n.velocity, n.nudge_s):
            n = replace(n, begin=begin, dur=dur, velocity=vel, nudge_s=nudge)
        out.append(n)
    return out
