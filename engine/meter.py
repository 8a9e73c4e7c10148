"""The meter map (control side): where every bar starts and how long it is, in quarter-note
beats, when the meter changes (a MIDI file in 4/4, then 3/4, then 6/8...).

A `Meter` is an immutable list of segments, each a time signature from a first bar (and its
first beat) on. Every question about bars goes through it: `bar_start`, `bar_length`,
`bar_at`, `next_bar_line`, `bars_in`, and `pulses` (how a bar's sixteenths group into beats:
a 3/4 bar is three pulses of 4 sixteenths, 6/8 two dotted quarters of 6, 7/8 is 2+2+3
eighths). `Meter.constant(n)` is the fixed meter of n quarter-note beats a bar that the band
plays without a score; its bars are exactly the ``bar * n`` the band always counted.

A meter change that does not fall on a bar line of the meter before it (a file written so)
cuts the bar before it short: that bar ends where the new meter starts.
Everything is a pure function of the map, so live and offline rendering agree.
"""
from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

__all__ = ["Meter", "MeterSegment", "meter_of", "pulses_for", "step_source",
           "check_signature", "MAX_BAR_BEATS"]

#: the longest bar a meter may have (quarter-note beats)
MAX_BAR_BEATS = 16


def check_signature(numerator: int, denominator: int) -> Fraction:
    """The bar length (quarter-note beats) of ``numerator/denominator``; ValueError saying why
    it cannot be a meter: the bar must be 1/4 to `MAX_BAR_BEATS` beats, on the sixteenth grid."""
    if isinstance(numerator, bool) or not isinstance(numerator, int) or numerator < 1:
        raise ValueError(f"time signature {numerator}/{denominator}: the numerator must be a "
                         "positive whole number")
    if isinstance(denominator, bool) or not isinstance(denominator, int) \
            or denominator not in (1, 2, 4, 8, 16):
        raise ValueError(f"time signature {numerator}/{denominator}: the denominator must be "
                         "1, 2, 4, 8 or 16")
    length = Fraction(4 * numerator, denominator)
    if length > MAX_BAR_BEATS:
        raise ValueError(f"time signature {numerator}/{denominator}: a bar of {length} beats "
                         f"is longer than {MAX_BAR_BEATS}")
    return length


@lru_cache(maxsize=256)
def pulses_for(numerator: int, denominator: int) -> tuple[int, ...]:
    """How a bar of ``numerator/denominator`` groups its sixteenths into pulses (beats):
    x/4, x/2, x/1 in quarters; x/8 in dotted quarters when the numerator is a multiple of 3
    (6/8, 9/8, 12/8; 3/8 is one), else in eighth pairs ending in a group of three (5/8 2+3,
    7/8 2+2+3); x/16 in quarters, the rest one shorter or longer last pulse."""
    steps = int(Fraction(16 * numerator, denominator))
    if denominator <= 4:
        return (4,) * (steps // 4)
    if denominator == 8:
        if numerator % 3 == 0:
            return (6,) * (numerator // 3)
        if numerator == 1:
            return (2,)
        return (4,) * ((numerator - 3) // 2) + (6,) if numerator % 2 else (4,) * (numerator // 2)
    quarters, rest = divmod(numerator, 4)
    if quarters == 0:
        return (rest,)
    if rest == 1:
        return (4,) * (quarters - 1) + (5,)
    return (4,) * quarters + ((rest,) if rest else ())


# which step of a 4/4 beat each step of a pulse of 1..6 sixteenths plays: the eighths of a
# dotted quarter (steps 0, 2, 4) play the beat's downbeat and its off-beat eighth twice
_PULSE_STEPS = {1: (0,), 2: (0, 2), 3: (0, 1, 2), 4: (0, 1, 2, 3), 5: (0, 1, 2, 3, 2),
                6: (0, 1, 2, 3, 2, 3)}


def step_source(pulses: tuple[int, ...], step: int) -> int:
    """The step (0..15) of a 4/4 pattern that ``step`` of a bar of ``pulses`` plays: the first
    pulse plays beat 1, the last beat 4 (the backbeat before the next downbeat), the ones in
    between beats 2 and 3 alternately (3/4 plays beats 1, 2, 4; 6/8 beats 1 and 4)."""
    p = 0
    while p < len(pulses) - 1 and step >= pulses[p]:
        step -= pulses[p]
        p += 1
    if p == 0:
        beat = 0
    elif p == len(pulses) - 1:
        beat = 3
    else:
        beat = 1 + (p - 1) % 2
    return 4 * beat + _PULSE_STEPS[pulses[p]][min(step, pulses[p] - 1)]


@dataclass(frozen=True, slots=True)
class MeterSegment:
    """A time signature in force from ``bar`` (whose first beat is ``beat``) on."""

    bar: int
    beat: Fraction
    numerator: int
    denominator: int

    @property
    def length(self) -> Fraction:
        """Quarter-note beats in a bar."""
        return Fraction(4 * self.numerator, self.denominator)


class Meter:
    """An immutable meter map: bars of each segment's length from its first bar on (the first
    segment holds before it too, for beats before 0). Build it with `Meter.constant` or
    `Meter.from_changes`."""

    __slots__ = ("segments", "_beats", "_bars")

    def __init__(self, segments: tuple[MeterSegment, ...]):
        if not segments:
            raise ValueError("a meter needs at least one segment")
        for s in segments:
            check_signature(s.numerator, s.denominator)
        for a, b in zip(segments, segments[1:]):
            if not (b.bar > a.bar and b.beat > a.beat
                    and b.beat <= a.beat + (b.bar - a.bar) * a.length
                    and b.beat > a.beat + (b.bar - a.bar - 1) * a.length):
                raise ValueError(f"meter segments out of order: {a} then {b}")
        self.segments = tuple(segments)
        self._beats = [s.beat for s in self.segments]
        self._bars = [s.bar for s in self.segments]

    @classmethod
    def constant(cls, beats_per_bar: int | Fraction, denominator: int = 4) -> Meter:
        """The same meter throughout: ``beats_per_bar`` beats of a ``denominator``th note."""
        return _constant(int(beats_per_bar), int(denominator))

    @classmethod
    def from_changes(cls, changes) -> Meter:
        """A map from ``(beat, numerator, denominator)`` changes in time order, the first at
        beat 0 (quarter-note beats; each change starts a bar, cutting short the bar of the
        meter before it if it falls inside one). ValueError for a signature that is no meter
        or a change out of order."""
        changes = [(Fraction(b), int(n), int(d)) for b, n, d in changes]
        if not changes or changes[0][0] != 0:
            raise ValueError("the first meter change must be at beat 0")
        segs: list[MeterSegment] = []
        for beat, num, den in changes:
            check_signature(num, den)
            if segs:
                last = segs[-1]
                if beat <= last.beat:
                    raise ValueError(f"meter change at beat {beat} is not after the one at "
                                     f"beat {last.beat}")
                if (num, den) == (last.numerator, last.denominator) \
                        and (beat - last.beat) % last.length == 0:
                    continue                      # the same meter again, on a bar line
                bar = last.bar + math.ceil((beat - last.beat) / last.length)
            else:
                bar = 0
            segs.append(MeterSegment(bar, beat, num, den))
        return cls(tuple(segs))

    # ---- questions ------------------------------------------------------------------------
    @property
    def is_constant(self) -> bool:
        return len(self.segments) == 1

    @property
    def beats_per_bar(self) -> int:
        """Whole beats of the first segment's bar (rounded up): the meter before any change."""
        return math.ceil(self.segments[0].length)

    def segment(self, bar: int) -> MeterSegment:
        """The segment in force in ``bar``."""
        return self.segments[max(0, bisect_right(self._bars, bar) - 1)]

    def _segment_at(self, beat: Fraction) -> MeterSegment:
        return self.segments[max(0, bisect_right(self._beats, beat) - 1)]

    def bar_start(self, bar: int) -> Fraction:
        """The first beat of ``bar``."""
        s = self.segment(bar)
        return s.beat + (bar - s.bar) * s.length

    def bar_length(self, bar: int) -> Fraction:
        """Quarter-note beats in ``bar`` (a bar cut short by a change is shorter)."""
        i = max(0, bisect_right(self._bars, bar) - 1)
        s = self.segments[i]
        if i + 1 < len(self.segments) and bar == self.segments[i + 1].bar - 1:
            return self.segments[i + 1].beat - self.bar_start(bar)
        return s.length

    def signature(self, bar: int) -> tuple[int, int]:
        """(numerator, denominator) of ``bar``."""
        s = self.segment(bar)
        return s.numerator, s.denominator

    def pulses(self, bar: int) -> tuple[int, ...]:
        """The bar's pulses in sixteenths (`pulses_for`; a bar cut short keeps the ones that
        fit, the last cut)."""
        s = self.segment(bar)
        full = pulses_for(s.numerator, s.denominator)
        steps = self.bar_length(bar) * 4
        if steps == s.length * 4:
            return full
        out, left = [], math.ceil(steps)
        for p in full:
            if left <= 0:
                break
            out.append(min(p, left))
            left -= p
        return tuple(out)

    def bar_at(self, beat: Fraction) -> int:
        """The bar in which ``beat`` falls."""
        s = self._segment_at(Fraction(beat))
        return s.bar + math.floor((beat - s.beat) / s.length)

    def next_bar_line(self, beat: Fraction) -> Fraction:
        """The first bar line at or after ``beat``."""
        bar = self.bar_at(beat)
        start = self.bar_start(bar)
        return start if start == beat else self.bar_start(bar + 1)

    def bars_in(self, begin: Fraction, end: Fraction) -> range:
        """The bars that overlap ``[begin, end)``."""
        if end <= begin:
            return range(0)
        last = self.bar_at(end)
        if self.bar_start(last) == end:
            last -= 1
        return range(self.bar_at(begin), last + 1)

    def __eq__(self, other) -> bool:
        return isinstance(other, Meter) and self.segments == other.segments

    def __hash__(self) -> int:
        return hash(self.segments)

    def __repr__(self) -> str:
        return "Meter(" + ", ".join(f"bar {s.bar} (beat {s.beat}): {s.numerator}/"
                                    f"{s.denominator}" for s in self.segments) + ")"


@lru_cache(maxsize=32)
def _constant(beats_per_bar: int, denominator: int) -> Meter:
    return Meter((MeterSegment(0, Fraction(0), beats_per_bar, denominator),))


def meter_of(ctx) -> Meter:
    """The meter a context plays in: its ``meter`` if it has one, else the constant meter of
    its ``beats_per_bar``."""
    m = getattr(ctx, "meter", None)
    return m if m is not None else Meter.constant(ctx.beats_per_bar)
