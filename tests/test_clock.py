"""engine.control.clock: exact beat <-> sample conversion, tempo segments, swing.

Every expected value is computed here independently, with integer / Fraction arithmetic
written out (floor(beat * 60 * sr / bpm)), never by calling the clock twice.
"""
import math
from fractions import Fraction as F

import numpy as np
import pytest

from engine.control.clock import Clock

HOUR_S = 3600


def direct_sample(beat, bpm, sr) -> int:
    """floor(beat * 60 * sr / bpm) in exact integer arithmetic."""
    beat, bpm = F(beat), F(bpm)
    num = beat.numerator * 60 * sr * bpm.denominator
    den = beat.denominator * bpm.numerator
    return num // den


# ---- exactness ------------------------------------------------------------------------------

def test_120_bpm_at_48k_beat_one_is_sample_24000():
    c = Clock(48000, 120)
    assert c.sample_at(F(0)) == 0
    assert c.sample_at(F(1)) == 24000
    assert c.sample_at(F(1, 2)) == 12000
    assert c.sample_at(F(1, 3)) == 8000
    assert c.sample_at(F(4)) == 96000
    assert c.beat_at(24000) == F(1)
    assert c.beat_at(1) == F(1, 24000)


def test_44k1_at_120_bpm_triplets_floor():
    c = Clock(44100, 120)
    # a beat is 22050 samples; a triplet eighth is 7350; a 16th-note quintuplet 2205 * 2
    assert c.sample_at(F(1, 3)) == 7350
    assert c.sample_at(F(1, 7)) == 3150        # 22050 / 7 = 3150 exactly
    assert c.sample_at(F(1, 11)) == 2004       # 22050 / 11 = 2004.54..., floored
    assert c.sample_at(F(10, 11)) == 20045     # 20045.45..., floored


@pytest.mark.parametrize("sr", [44100, 48000, 96000])
@pytest.mark.parametrize("bpm", [137, 93.7, 61, 173.3, 399])
def test_odd_tempo_matches_direct_floor(sr, bpm):
    c = Clock(sr, bpm)
    exact_bpm = F(str(bpm))     # 93.7 -> 937/10 exactly
    for beat in [F(n, d) for d in (1, 2, 3, 4, 5, 7, 12, 16) for n in range(0, 5 * d)] + \
            [F(10 ** 6 + 1, 7)]:
        assert c.sample_at(beat) == direct_sample(beat, exact_bpm, sr), (beat, bpm, sr)


def test_137_bpm_beat_one_by_hand():
    # 60 * 48000 / 137 = 21021.8978...  ->  21021; beat 2: 42043.795... -> 42043
    c = Clock(48000, 137)
    assert c.sample_at(F(1)) == 21021
    assert c.sample_at(F(2)) == 42043
    assert c.sample_at(F(137)) == 60 * 48000       # 137 beats = one minute exactly
    assert c.beat_at(60 * 48000) == F(137)


@pytest.mark.parametrize("bpm", [120, 137, 93.7])
def test_beat_at_inverts_sample_at_with_floor_semantics(bpm):
    c = Clock(48000, bpm)
    for beat in [F(n, 24) for n in range(0, 24 * 33, 5)]:
        s = c.sample_at(beat)
        assert c.beat_at(s) <= beat < c.beat_at(s + 1)
    for s in (0, 1, 7, 23999, 24000, 10 ** 7 + 3):
        assert c.beat_at(s) == F(s) * F(str(bpm)) / (60 * 48000)


# ---- no drift over an hour ----------------------------------------------------------------------

@pytest.mark.parametrize("sr", [44100, 48000])
@pytest.mark.parametrize("bpm", [120, 137, 61, 93.7, 399])
def test_no_drift_over_an_hour_every_beat(sr, bpm):
    c = Clock(sr, bpm)
    exact_bpm = F(str(bpm))
    nbeats = math.floor(HOUR_S * exact_bpm / 60)
    got = [c.sample_at(F(b)) for b in range(nbeats + 1)]
    want = [direct_sample(b, exact_bpm, sr) for b in range(nbeats + 1)]
    assert got == want
    assert got[-1] <= HOUR_S * sr < got[-1] + math.ceil(60 * sr / exact_bpm)


@pytest.mark.parametrize("bpm", [137, 61])
def test_float_accumulation_would_drift_but_the_clock_does_not(bpm):
    """The classic naive scheduler (t += seconds_per_beat, in float64) misplaces beats within
    the hour at these tempos; float32 is off by whole samples. The clock lands on every one."""
    sr = 48000
    c = Clock(sr, bpm)
    nbeats = math.floor(HOUR_S * F(bpm) / 60)
    want = np.array([direct_sample(b, bpm, sr) for b in range(nbeats + 1)])
    spb = 60.0 / bpm
    acc64 = np.zeros(nbeats + 1)
    t = 0.0
    for b in range(1, nbeats + 1):
        t += spb
        acc64[b] = t
    naive64 = np.floor(acc64 * sr).astype(np.int64)
    naive32 = np.floor(np.cumsum(np.full(nbeats + 1, np.float32(spb * sr), np.float32),
                                 dtype=np.float32) - np.float32(spb * sr)).astype(np.int64)
    assert np.count_nonzero(naive64 != want) > 0          # floats drift...
    assert np.abs(naive32 - want).max() > 10               # ...float32 by many samples
    clock = np.array([c.sample_at(F(b)) for b in range(nbeats + 1)])
    assert np.array_equal(clock, want)                    # the exact clock never does


def test_sixteenths_over_an_hour_at_137():
    sr, bpm = 48000, 137
    c = Clock(sr, bpm)
    n = 4 * math.floor(HOUR_S * bpm / 60)
    for k in range(0, n + 1, 3):
        beat = F(k, 4)
        assert c.sample_at(beat) == (k * 60 * sr) // (4 * bpm)


# ---- tempo changes ----------------------------------------------------------------------------

def piecewise_sample(beat, changes, sr):
    """Independent tempo-map integral: changes = [(start_beat, bpm), ...] sorted, first at 0.
    Each change starts on a whole sample, the floor of where the tempo before it puts its
    beat (the clock's rule: segment starts stay integers however many changes come)."""
    beat = F(beat)
    pos = F(0)
    for i, (b0, bpm) in enumerate(changes):
        b1 = changes[i + 1][0] if i + 1 < len(changes) else None
        if b1 is not None and beat >= b1:
            pos = F(math.floor(pos + (F(b1) - F(b0)) * 60 * sr / F(bpm)))
        else:
            pos += (beat - F(b0)) * 60 * sr / F(bpm)
            break
    return math.floor(pos)


def test_tempo_change_does_not_move_earlier_beats():
    sr = 48000
    c = Clock(sr, 120)
    grid = [F(n, 4) for n in range(0, 4 * 64)]
    before = [c.sample_at(b) for b in grid]
    c.set_tempo(137, F(32))
    after = [c.sample_at(b) for b in grid]
    for b, s0, s1 in zip(grid, before, after):
        if b <= 32:
            assert s1 == s0, b
        else:
            assert s1 == piecewise_sample(b, [(0, 120), (32, 137)], sr), b
    assert c.sample_at(F(32)) == 32 * 24000
    assert len(c.segments) == 2
    assert c.bpm == 137.0


def test_several_tempo_changes_follow_the_piecewise_map():
    sr = 44100
    changes = [(F(0), F(120)), (F(7), F(137)), (F(29, 2), F(937, 10)), (F(40), F(61)),
               (F(41), F(399))]
    c = Clock(sr, 120)
    for b, bpm in changes[1:]:
        c.set_tempo(bpm, b)
    assert [s.beat for s in c.segments] == [b for b, _ in changes]
    for n in range(0, 60 * 12):
        beat = F(n, 12)
        assert c.sample_at(beat) == piecewise_sample(beat, changes, sr), beat
    # beat_at follows the same map: the exact beat at each segment start
    for seg in c.segments:
        if seg.sample.denominator == 1:
            assert c.beat_at(int(seg.sample)) == seg.beat


def test_beat_at_after_a_tempo_change_is_exact():
    sr = 48000
    c = Clock(sr, 120)
    c.set_tempo(150, F(8))          # beat 8 at sample 192000; then 19200 samples per beat
    assert c.beat_at(192000) == F(8)
    assert c.beat_at(192000 + 19200) == F(9)
    assert c.beat_at(192000 + 9600) == F(17, 2)
    assert c.beat_at(191999) == F(191999, 24000)
    assert c.sample_at(F(9)) == 192000 + 19200


def test_set_tempo_at_the_same_beat_replaces_that_change():
    c = Clock(48000, 120)
    c.set_tempo(90, F(4))
    c.set_tempo(150, F(4))
    assert len(c.segments) == 2
    assert c.sample_at(F(5)) == 4 * 24000 + 19200
    c.set_tempo(100, F(0) + 4)   # still allowed: same beat as the last change
    assert c.sample_at(F(5)) == 4 * 24000 + 28800


def test_set_tempo_into_the_past_raises_and_changes_nothing():
    c = Clock(48000, 120)
    c.set_tempo(140, F(16))
    segments = list(c.segments)
    with pytest.raises(ValueError, match="past"):
        c.set_tempo(100, F(15))
    with pytest.raises(ValueError, match="past"):
        c.set_tempo(100, F(31, 2))
    assert c.segments == segments


@pytest.mark.parametrize("bpm", [0, 19, 19.5, 401, 1000, -120])
def test_tempo_out_of_range_raises(bpm):
    with pytest.raises(ValueError, match="20..400"):
        Clock(48000, bpm)
    c = Clock(48000, 120)
    with pytest.raises(ValueError, match="20..400"):
        c.set_tempo(bpm, F(4))
    assert len(c.segments) == 1 and c.bpm == 120.0


@pytest.mark.parametrize("bpm", [20, 400])
def test_tempo_range_is_inclusive(bpm):
    assert Clock(48000, bpm).sample_at(F(1)) == 60 * 48000 // bpm


def test_bad_sample_rate_raises():
    with pytest.raises(ValueError):
        Clock(0, 120)
    with pytest.raises(ValueError):
        Clock(-48000, 120)


# ---- swing ------------------------------------------------------------------------------------

def test_no_swing_is_identity():
    c = Clock(48000, 120)
    for n in range(64):
        assert c.swung(F(n, 8)) == F(n, 8)


@pytest.mark.parametrize("swing", [F(1, 3), F(1, 2), F(1, 5)])
def test_swing_over_quarter_note_pairs_moves_only_offbeat_eighths(swing):
    """swing_unit = one beat (a pair of eighths): the second eighth of each pair moves later by
    swing * half the unit; on-beats, sixteenths and triplets stay put."""
    c = Clock(48000, 120, swing=float(swing), swing_unit=F(1))
    for beat in range(8):
        assert c.swung(F(beat)) == beat
        assert c.swung(F(beat) + F(1, 2)) == beat + F(1, 2) + swing * F(1, 2)
        for other in (F(1, 4), F(3, 4), F(1, 3), F(2, 3), F(1, 8)):
            assert c.swung(beat + other) == beat + other


def test_triplet_swing_puts_the_offbeat_on_the_last_triplet():
    c = Clock(48000, 120, swing=1 / 3, swing_unit=F(1))
    assert c.swung(F(1, 2)) == F(2, 3)
    assert c.sample_at(c.swung(F(1, 2))) == 16000


def test_default_swing_moves_offbeat_eighths_as_configured():
    # Session builds Clock(sr, tempo, beats_per_bar, swing) with the default swing_unit.
    c = Clock(48000, 120, swing=1 / 3)
    assert c.swung(F(1, 4)) == F(1, 4)          # sixteenths untouched
    assert c.swung(F(1, 2)) == F(2, 3)          # the off-beat eighth moves to the triplet


def test_next_bar():
    c = Clock(48000, 120, beats_per_bar=4)
    assert c.next_bar(F(0)) == 0
    assert c.next_bar(F(1, 64)) == 4
    assert c.next_bar(F(4)) == 4
    assert c.next_bar(F(9, 2)) == 8
    c3 = Clock(48000, 120, beats_per_bar=3)
    assert c3.next_bar(F(4)) == 6
    assert c3.next_bar(F(6)) == 6


def test_sample_at_is_the_floor_of_the_exact_position_across_tempo_changes():
    """sample_at's integer arithmetic gives floor(_sample_exact) for any beat and tempo map."""
    import random
    rng = random.Random(5)
    for sr in (44100, 48000, 96000):
        c = Clock(sr, 137.3)
        for at, bpm in ((F(7, 3), 91.7), (F(9), 200), (F(41, 4), 61.13)):
            c.set_tempo(bpm, at)
        for _ in range(400):
            beat = F(rng.randrange(0, 4000), rng.choice([1, 2, 3, 4, 7, 12, 96]))
            assert c.sample_at(beat) == math.floor(c._sample_exact(beat)), (sr, beat)
        assert c.sample_at(5) == math.floor(c._sample_exact(F(5)))


def test_segment_starts_are_whole_samples_after_an_odd_tempo():
    """A change at a beat the old tempo puts between two samples starts on the earlier one,
    so that beat's sample does not move, and the new tempo counts from there."""
    sr = 44100
    c = Clock(sr, F(937, 10))
    exact = F(3) * 60 * sr / F(937, 10)           # 8,470.8... samples
    assert exact.denominator != 1
    c.set_tempo(120, F(3))
    assert c.segments[-1].sample == math.floor(exact)
    assert c.sample_at(F(3)) == math.floor(exact)
    assert c.sample_at(F(4)) == math.floor(exact) + 22050
    assert c.beat_at(math.floor(exact)) == 3
    assert c.beat_at(math.floor(exact) - 1) < 3


def test_ten_thousand_sensor_tempo_changes_keep_the_map_small_and_consistent():
    """An installation's sensors change the tempo endlessly (97.3, 101.7, ...): segment
    starts stay whole samples (denominator 1) and tempos keep denominators <= 1000, so the
    numbers' size is bounded by the run's length, not by the number of changes; samples grow
    with beats, and each beat lands on the sample whose beat span contains it (within one
    sample of the beat times)."""
    import random
    rng = random.Random(97)
    sr = 48000
    c = Clock(sr, 97.3)
    beat = 0
    for _ in range(10_000):
        beat += rng.randint(1, 3)
        c.set_tempo(round(rng.uniform(40.0, 300.0), rng.choice([1, 2, 3, 5])), F(beat))
    assert len(c.segments) == 10_001
    assert max(s.sample.denominator for s in c.segments) == 1
    assert max(s.bpm.denominator for s in c.segments) <= 1000
    last = c.segments[-1].sample
    assert last.numerator.bit_length() <= (beat * 60 * sr // 40).bit_length()
    starts = [s.sample for s in c.segments]
    assert all(a < b for a, b in zip(starts, starts[1:]))
    beats = sorted({F(rng.randrange(0, 12 * beat), 12) for _ in range(2000)}
                   | {F(s.beat) for s in c.segments[::100]} | {F(beat + 7, 3)})
    samples = [c.sample_at(b) for b in beats]
    assert all(a <= b for a, b in zip(samples, samples[1:]))
    for b, s in zip(beats, samples):
        assert c.beat_at(s) <= b < c.beat_at(s + 1), b          # within one sample
        assert s == math.floor(c._sample_exact(b))
    ticks = [rng.randrange(0, int(last) + sr) for _ in range(1000)]
    got = [c.beat_at(t) for t in sorted(ticks)]
    assert all(a <= b for a, b in zip(got, got[1:]))
    for t, b in zip(sorted(ticks), got):
        assert c.sample_at(b) == t                              # round trip
