"""Musical time ↔ sample time, exactly (control side).

Beats are `fractions.Fraction` quarter notes from the session start; sample times are
integers. The tempo map is a list of segments, each starting at an exact beat and an integer
sample, with an exact tempo (a fraction with a denominator of at most 1000), so converting never
accumulates float error: after an hour of music at any tempo the grid still lands on the same
samples as a direct computation.
A tempo change starts a new segment at a future beat (by default the next beat), so the past
is never rescaled and no scheduled event moves. Its start is the sample the old tempo puts
that beat on (`sample_at`: the floor of the exact position), not the exact rational position:
the map after it is at most one sample earlier than an unrounded one, and the numbers stay
small however many changes come (an installation's sensors changing the tempo to 97.3, 101.7,
... for days would otherwise grow each start's denominator without bound). The bars are the
clock's `meter` (engine.meter.Meter: constant, or a score's meter changes, known ahead).
"""
from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from fractions import Fraction

from engine.meter import Meter


@dataclass(frozen=True, slots=True)
class Segment:
    beat: Fraction      # first beat of the segment
    sample: Fraction    # sample time of that beat (an integer: see the module docstring)
    bpm: Fraction


def _beat_of(seg: Segment) -> Fraction:
    return seg.beat


def _sample_of(seg: Segment) -> Fraction:
    return seg.sample


class Clock:
    """Tempo map, meter and swing. Runs on the control side (asyncio thread / offline loop)."""

    def __init__(self, sample_rate: int, bpm: float = 120.0, beats_per_bar: int = 4,
                 swing: float = 0.0, swing_unit: Fraction = Fraction(1)):
        if sample_rate <= 0:
            raise ValueError("sample_rate must be positive")
        self.sample_rate = int(sample_rate)
        self.meter = Meter.constant(int(beats_per_bar))
        self.swing = float(swing)       # swing before the first change (`set_swing`)
        self.swing_unit = Fraction(swing_unit)
        self._swing_beats: list[Fraction] = []     # swing changes: beats and amounts
        self._swings: list[float] = []
        self.segments: list[Segment] = [Segment(Fraction(0), Fraction(0), self._bpm(bpm))]

    @staticmethod
    def _bpm(bpm) -> Fraction:
        value = Fraction(bpm).limit_denominator(1000)
        if not 20 <= value <= 400:
            raise ValueError(f"tempo {float(bpm)} BPM is outside 20..400")
        return value

    # ---- tempo ------------------------------------------------------------------------------
    @property
    def bpm(self) -> float:
        return float(self.segments[-1].bpm)

    def set_tempo(self, bpm: float, at_beat: Fraction) -> None:
        """Change tempo from `at_beat` on (which must not precede the last change); the new
        segment starts on the sample the tempo so far puts `at_beat` on."""
        at_beat = Fraction(at_beat)
        last = self.segments[-1]
        if at_beat < last.beat:
            raise ValueError("a tempo change cannot rewrite the past")
        sample = Fraction(self.sample_at(at_beat))
        if at_beat == last.beat:
            self.segments[-1] = Segment(at_beat, sample, self._bpm(bpm))
        else:
            self.segments.append(Segment(at_beat, sample, self._bpm(bpm)))

    def forget_before(self, beat: Fraction) -> int:
        """Drop the tempo segments and swing changes superseded at or before `beat`
        (conversions stay exact from the first kept segment on; earlier times are no longer
        asked for). Returns how many went."""
        segs = self.segments
        k = 0
        while k + 1 < len(segs) and segs[k + 1].beat <= beat:
            k += 1
        del segs[:k]
        i = bisect_right(self._swing_beats, beat) - 1     # the swing in force at `beat` stays
        if i > 0:
            del self._swing_beats[:i], self._swings[:i]
        return k + max(i, 0)

    def _segment_for_beat(self, beat: Fraction) -> Segment:
        segs = self.segments
        if beat >= segs[-1].beat:       # the usual case: now and what is being scheduled
            return segs[-1]
        return segs[max(bisect_right(segs, beat, key=_beat_of) - 1, 0)]

    def _sample_exact(self, beat: Fraction) -> Fraction:
        seg = self._segment_for_beat(beat)
        return seg.sample + (beat - seg.beat) * 60 * self.sample_rate / seg.bpm

    # ---- conversions ------------------------------------------------------------------------
    def sample_at(self, beat: Fraction) -> int:
        """The sample on which `beat` falls (floor of the exact position)."""
        if not isinstance(beat, (Fraction, int)):
            beat = Fraction(beat)
        seg = self._segment_for_beat(beat)
        # floor(seg.sample + (beat - seg.beat) * 60 * sample_rate / seg.bpm) in integers: the
        # same exact value without a Fraction (and its gcd) for every step (the scheduler calls
        # this for every note)
        bn, bd = beat.numerator, beat.denominator
        sn, sd = seg.beat.numerator, seg.beat.denominator
        xn, xd = seg.sample.numerator, seg.sample.denominator
        pn, pd = seg.bpm.numerator, seg.bpm.denominator
        return (xn * bd * sd * pn + xd * (bn * sd - sn * bd) * 60 * self.sample_rate * pd) \
            // (xd * bd * sd * pn)

    def beat_at(self, sample: int) -> Fraction:
        """The exact beat at integer sample time `sample`."""
        sample = Fraction(sample)
        segs = self.segments
        seg = segs[-1] if sample >= segs[-1].sample else \
            segs[max(bisect_right(segs, sample, key=_sample_of) - 1, 0)]
        return seg.beat + (sample - seg.sample) * seg.bpm / (60 * self.sample_rate)

    def seconds_per_beat(self, beat: Fraction) -> float:
        return 60.0 / float(self._segment_for_beat(Fraction(beat)).bpm)

    def set_swing(self, swing: float, at_beat: Fraction) -> None:
        """Swing `swing` (0..0.5) for onsets from `at_beat` on; changes planned after it are
        dropped (like a tempo change, it must come after what is already scheduled)."""
        if not 0.0 <= swing <= 0.5:
            raise ValueError(f"swing {swing} is outside 0..0.5")
        at_beat = Fraction(at_beat)
        i = bisect_right(self._swing_beats, at_beat)
        if i > 0 and self._swing_beats[i - 1] == at_beat:
            i -= 1
        del self._swing_beats[i:], self._swings[i:]
        self._swing_beats.append(at_beat)
        self._swings.append(float(swing))

    def swing_at(self, beat: Fraction) -> float:
        """The swing in force for an onset at `beat`."""
        if self._swing_beats:
            i = bisect_right(self._swing_beats, beat) - 1
            if i >= 0:
                return self._swings[i]
        return self.swing

    @property
    def swing_latest(self) -> float:
        """The last swing asked for (in force now or from a coming beat)."""
        return self._swings[-1] if self._swings else self.swing

    def swung(self, beat: Fraction) -> Fraction:
        """Apply swing: onsets on the off-beat of each swing unit (by default the off-beat
        eighth of every beat) are delayed by the swing in force × half a unit (0.33 ≈
        triplet feel)."""
        swing = self.swing_at(beat) if self._swing_beats else self.swing
        if swing == 0.0:
            return beat
        half = self.swing_unit / 2
        pos = beat % self.swing_unit
        if pos == half:
            return beat + Fraction(swing).limit_denominator(1000) * half
        return beat

    @property
    def beats_per_bar(self) -> int:
        """Beats in a bar of the meter before any change (the whole meter when constant)."""
        return self.meter.beats_per_bar

    def next_bar(self, beat: Fraction) -> Fraction:
        """The first bar line of the meter at or after `beat`."""
        return self.meter.next_bar_line(Fraction(beat))

    def bar_at(self, beat: Fraction) -> int:
        """The bar (from 0) in which `beat` falls."""
        return self.meter.bar_at(Fraction(beat))
