"""Polyphony (engine.rt.units.poly) through both instruments: no stuck notes, click-free
stealing, mono and legato, glide, unison spread, the pedal, bend, sample-exact note starts."""
import math

import numpy as np
import pytest

from engine.rt.events import (K_ALL_NOTES_OFF, K_NOTE_OFF, K_NOTE_ON, K_PANIC, K_PITCH_BEND,
                              K_SOURCE_GONE, K_SUSTAIN)
from engine.rt.units import poly
from tests.synthkit import (IDS, INSTRUMENTS, note_hz, patch, pitch_at, pitch_track, render,
                            rms, semitones)
from tests.test_units import SR, make, run

instruments = pytest.mark.parametrize("unit", INSTRUMENTS, ids=IDS)


def levels(y, span=480):
    """Peak level per span of samples."""
    n = len(y) // span
    return np.abs(y[:n * span]).reshape(n, span).max(axis=1)


# ---- no stuck notes -------------------------------------------------------------------------

def _set(unit, params, name, value):
    k = next(p.index for p in unit.PARAMS if p.name == name)
    params[k] = value


@instruments
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("ending", ["note_offs", "pedal_last", "source_gone", "all_notes_off",
                                    "panic"])
def test_no_stuck_notes_after_any_sequence(unit, seed, ending):
    """Random notes from three sources in every play mode, unison, tiny polyphony (so voices
    are stolen), glide, the pedal going up and down and sources unplugged; then the ending
    releases everything: after the release every voice is idle and the output exactly 0."""
    rng = np.random.default_rng(seed)
    state, params = make(unit, patch(unit, release_ms=20.0))
    held = set()
    pedal = False
    z = np.zeros(4800)
    for seg in range(9):
        _set(unit, params, "mode", float(seg % 3))
        _set(unit, params, "unison", float(rng.integers(0, 4)))
        _set(unit, params, "polyphony", float(rng.choice([1, 2, 3, 6])))
        _set(unit, params, "glide_ms", float(rng.choice([0.0, 30.0])))
        _set(unit, params, "glide", float(rng.integers(0, 2)))
        events = []
        for t in sorted(rng.integers(0, 4800, 20).tolist()):
            r = rng.random()
            if r < 0.45:
                key = (float(rng.choice([48, 52, 55, 60, 64])), float(rng.integers(1, 4)))
                events.append((t, K_NOTE_ON, key[0], 0.2 + 0.8 * rng.random(), key[1]))
                held.add(key)
            elif r < 0.8 and held:
                key = sorted(held)[int(rng.integers(0, len(held)))]
                events.append((t, K_NOTE_OFF, key[0], 0.0, key[1]))
                held.discard(key)
            elif r < 0.92:
                pedal = not pedal
                events.append((t, K_SUSTAIN, 0.0, 1.0 if pedal else 0.0, 0.0))
            else:
                src = float(rng.integers(1, 4))
                events.append((t, K_SOURCE_GONE, 0.0, 0.0, src))
                held = {k for k in held if k[1] != src}
        run(unit, state, params, z, z, events=events)
    if ending == "note_offs":
        end = [(0, K_SUSTAIN, 0.0, 0.0, 0.0)] + [(1 + i, K_NOTE_OFF, n, 0.0, s)
                                                 for i, (n, s) in enumerate(sorted(held))]
    elif ending == "pedal_last":
        end = [(i, K_NOTE_OFF, n, 0.0, s) for i, (n, s) in enumerate(sorted(held))] \
            + [(50, K_SUSTAIN, 0.0, 0.0, 0.0)]
    elif ending == "source_gone":     # the pedal may stay down: a gone source's notes end
        end = [(i, K_SOURCE_GONE, 0.0, 0.0, float(s)) for i, s in enumerate((1, 2, 3))]
    elif ending == "all_notes_off":
        end = [(0, K_ALL_NOTES_OFF, 0.0, 0.0, 0.0)]
    else:
        end = [(0, K_PANIC, 0.0, 0.0, 0.0)]
    assert state[poly.H_STEALS] > 0
    n = int(0.4 * SR)
    out = run(unit, state, params, np.zeros(n), np.zeros(n), events=end)
    assert unit.active_voices(state) == 0
    assert not np.any(out[0][-2000:]) and not np.any(out[1][-2000:])
    # and the instrument still plays
    out = run(unit, state, params, z, z, events=[(0, K_NOTE_ON, 60.0, 1.0, 9.0)])
    assert np.abs(out[0]).max() > 0.1


# ---- stealing ---------------------------------------------------------------------------------

@instruments
def test_a_stolen_voice_fades_out_without_a_step(unit):
    """One voice: a 110 Hz note at its peak is stolen by an 880 Hz note. The old note fades
    linearly over STEAL_MS and the new one starts after it: no sample-to-sample step larger
    than the new sine's own slope plus one fade step (a cut would jump by the whole level)."""
    t_steal = 4909                       # the 110 Hz sine is at its peak here
    left, _, state, _ = render(unit, 12000, [(0, K_NOTE_ON, 45.0, 1.0, 1.0),
                                             (t_steal, K_NOTE_ON, 81.0, 1.0, 1.0)],
                               patch(unit, polyphony=1.0))
    a = np.abs(left[2000:4800]).max()
    assert a == pytest.approx(math.sqrt(0.5), rel=1e-3)
    assert abs(left[t_steal - 1]) > 0.99 * a
    fade_n = round(poly.STEAL_MS * 1e-3 * SR)
    bound = a * 2 * math.pi * note_hz(81.0) / SR + 1.5 * a / fade_n
    steps = np.abs(np.diff(left[t_steal - 200:t_steal + 2000]))
    assert steps.max() <= bound
    # the old note is gone within the fade (and a control period); the new one sounds
    gone = t_steal + fade_n + poly.CHUNK
    assert pitch_at(left, gone + 500, gone + 2000) == pytest.approx(81.0, abs=0.01)
    assert unit.active_voices(state) == 1


@instruments
@pytest.mark.parametrize("gone", ["note_off", "source_gone"])
def test_a_note_released_before_its_stolen_voice_is_free_never_starts(unit, gone):
    """Polyphony 1: a note-on steals the voice and its key goes up during the fade: the
    thief is dropped (it would otherwise start with no key left to stop it)."""
    end = (2010, K_NOTE_OFF, 72.0, 0.0, 2.0) if gone == "note_off" else \
        (2010, K_SOURCE_GONE, 0.0, 0.0, 2.0)
    ev = [(0, K_NOTE_ON, 48.0, 1.0, 1.0), (1000, K_NOTE_OFF, 48.0, 0.0, 1.0),
          (2000, K_NOTE_ON, 72.0, 1.0, 2.0), end]
    left, _, state, _ = render(unit, 12000, ev, patch(unit, polyphony=1.0, release_ms=5000.0))
    assert unit.active_voices(state) == 0
    assert not np.any(left[2000 + 200:])


@instruments
def test_stealing_prefers_released_voices_then_the_oldest(unit):
    """Polyphony 2: a released note is stolen before an older held one; with both held, the
    oldest goes."""
    def sounding(events):
        st, pa = make(unit, patch(unit, polyphony=2.0, release_ms=5000.0))
        z = np.zeros(12000)
        run(unit, st, pa, z, z, events=events)
        return sorted(st[poly.at(poly.R_NOTE, v)] for v in range(poly.NV)
                      if st[poly.at(poly.R_STATE, v)] == poly.V_ON)
    assert sounding([(0, K_NOTE_ON, 48.0, 1.0, 1.0), (2000, K_NOTE_ON, 60.0, 1.0, 1.0),
                     (3000, K_NOTE_OFF, 60.0, 0.0, 1.0), (3100, K_NOTE_ON, 72.0, 1.0, 1.0)]) \
        == [48.0, 72.0]
    assert sounding([(0, K_NOTE_ON, 48.0, 1.0, 1.0), (2000, K_NOTE_ON, 60.0, 1.0, 1.0),
                     (3100, K_NOTE_ON, 76.0, 1.0, 1.0)]) == [60.0, 76.0]


# ---- mono, legato, glide -----------------------------------------------------------------------

@instruments
@pytest.mark.parametrize("mode", [1.0, 2.0], ids=["mono", "legato"])
def test_mono_plays_the_last_note_and_returns_to_the_held_one(unit, mode):
    T = 9600
    ev = [(0, K_NOTE_ON, 60.0, 1.0, 1.0), (T, K_NOTE_ON, 67.0, 1.0, 1.0),
          (2 * T, K_NOTE_ON, 64.0, 1.0, 2.0), (3 * T, K_NOTE_OFF, 64.0, 0.0, 2.0),
          (4 * T, K_NOTE_OFF, 60.0, 0.0, 1.0), (5 * T, K_NOTE_OFF, 67.0, 0.0, 1.0)]
    left, _, state, _ = render(unit, 6 * T, ev, patch(unit, mode=mode))
    expect = [60.0, 67.0, 64.0, 67.0, 67.0]
    for k, note in enumerate(expect):
        assert pitch_at(left, k * T + 1000, (k + 1) * T - 100) == pytest.approx(note, abs=0.01)
    assert np.abs(left[5 * T + 4800:]).max() == 0.0
    assert unit.active_voices(state) == 0


@instruments
def test_legato_does_not_retrigger_and_mono_does(unit):
    """Attack 100 ms, decay to 0.3: a second key while the first is held moves the pitch in
    legato with the level staying at the sustain; in mono the envelope attacks again."""
    over = dict(attack_ms=100.0, decay_ms=150.0, sustain=0.3, release_ms=50.0)
    T = 48000
    ev = [(0, K_NOTE_ON, 60.0, 1.0, 1.0), (T, K_NOTE_ON, 64.0, 1.0, 1.0)]
    peak = {}
    for mode, name in ((1.0, "mono"), (2.0, "legato")):
        left, _, _, _ = render(unit, T + 24000, ev, patch(unit, mode=mode, **over))
        a = np.abs(left[T - 4800:T]).max()          # the sustain level before the key
        assert a == pytest.approx(0.3 * math.sqrt(0.5), rel=0.02)
        peak[name] = np.abs(left[T:T + 24000]).max() / a
        assert pitch_at(left, T + 9600, T + 24000) == pytest.approx(64.0, abs=0.01)
    assert peak["legato"] == pytest.approx(1.0, abs=0.02)
    assert peak["mono"] > 3.0                        # back up towards full level
    # legato retriggers a note that does not overlap the last one
    ev = [(0, K_NOTE_ON, 60.0, 1.0, 1.0), (T - 2400, K_NOTE_OFF, 60.0, 0.0, 1.0),
          (T, K_NOTE_ON, 64.0, 1.0, 1.0)]
    left, _, _, _ = render(unit, T + 24000, ev, patch(unit, mode=2.0, **over))
    assert np.abs(left[T:T + 24000]).max() > 0.9 * math.sqrt(0.5)


@instruments
def test_glide_reaches_the_target_pitch_in_the_stated_time(unit):
    """Legato with glide_ms 100: from 60 to 72 the pitch moves linearly in semitones and
    arrives 100 ms after the key (within one control period)."""
    T = 24000
    g = 0.1 * SR
    ev = [(0, K_NOTE_ON, 60.0, 1.0, 1.0), (T, K_NOTE_ON, 72.0, 1.0, 1.0)]
    left, _, _, _ = render(unit, T + 12000, ev, patch(unit, mode=2.0, glide_ms=100.0))
    t, p = pitch_track(left)
    before = p[(t > 2000) & (t < T - 500)]
    assert np.allclose(before, 60.0, atol=0.005)
    ramp = (t > T + 0.1 * g) & (t < T + 0.9 * g)
    slope, icept = np.polyfit(t[ramp] - T, p[ramp], 1)
    assert slope * g == pytest.approx(12.0, rel=0.02)          # 12 semitones in 100 ms
    assert icept == pytest.approx(60.0, abs=0.1)
    after = p[t > T + g + poly.CHUNK + 200]
    assert np.allclose(after, 72.0, atol=0.005)
    mid = p[np.argmin(np.abs(t - (T + 0.5 * g)))]
    assert mid == pytest.approx(66.0, abs=0.2)


@instruments
def test_glide_legato_only_between_overlapping_notes_always_otherwise(unit):
    T = 24000
    ev = [(0, K_NOTE_ON, 60.0, 1.0, 1.0), (T - 2400, K_NOTE_OFF, 60.0, 0.0, 1.0),
          (T, K_NOTE_ON, 72.0, 1.0, 1.0)]
    for glide, moves in ((0.0, False), (1.0, True)):
        left, _, _, _ = render(unit, T + 12000, ev, patch(unit, glide_ms=100.0, glide=glide))
        p = pitch_at(left, T + 2400 - 200, T + 2400 + 200)        # 50 ms after the key
        assert p == pytest.approx(66.0 if moves else 72.0, abs=0.2)


# ---- unison ---------------------------------------------------------------------------------

@instruments
def test_unison_spread_places_detuned_voices_across_the_field(unit):
    """Two unison voices, detune 20 cents, spread 1: the left channel is the voice 10 cents
    flat alone, the right the one 10 cents sharp; four voices decorrelate L and R; spread 0
    (or one voice) gives L == R exactly."""
    ev = [(0, K_NOTE_ON, 69.0, 1.0, 1.0)]
    left, right, _, _ = render(unit, 24000, ev, patch(unit, unison=1.0,
                                                       unison_detune_cents=20.0,
                                                       stereo_spread=1.0))
    assert pitch_at(left, 4800, 24000) == pytest.approx(68.9, abs=0.002)
    assert pitch_at(right, 4800, 24000) == pytest.approx(69.1, abs=0.002)
    left, right, _, _ = render(unit, 96000, ev, patch(unit, unison=3.0,
                                                       unison_detune_cents=20.0,
                                                       stereo_spread=1.0))
    l, r = left[4800:], right[4800:]
    corr = float((l * r).sum() / math.sqrt((l * l).sum() * (r * r).sum()))
    assert corr < 0.6
    assert rms(l) == pytest.approx(rms(r), rel=0.05)
    for over in (dict(unison=3.0, unison_detune_cents=20.0, stereo_spread=0.0),
                 dict(unison=0.0, stereo_spread=1.0)):
        left, right, _, _ = render(unit, 24000, ev, patch(unit, **over))
        assert np.array_equal(left, right) and np.abs(left).max() > 0.1


# ---- pedal, bend, timing -------------------------------------------------------------------------

@instruments
def test_the_sustain_pedal_holds_released_notes_until_it_lifts(unit):
    ev = [(0, K_SUSTAIN, 0.0, 1.0, 0.0), (0, K_NOTE_ON, 60.0, 1.0, 1.0),
          (4800, K_NOTE_OFF, 60.0, 0.0, 1.0), (24000, K_SUSTAIN, 0.0, 0.0, 0.0)]
    left, _, state, _ = render(unit, 36000, ev, patch(unit))
    assert np.abs(left[20000:24000]).max() == pytest.approx(math.sqrt(0.5), rel=1e-3)
    assert np.abs(left[30000:]).max() == 0.0
    assert unit.active_voices(state) == 0


@instruments
def test_pitch_bend_moves_the_pitch_by_its_semitones(unit):
    ev = [(0, K_NOTE_ON, 60.0, 1.0, 1.0), (9600, K_PITCH_BEND, 0.0, 1.0, 0.0),
          (19200, K_PITCH_BEND, 0.0, -0.25, 0.0)]
    left, _, _, _ = render(unit, 28800, ev, patch(unit))      # the default range: 2
    assert pitch_at(left, 1000, 9600) == pytest.approx(60.0, abs=0.005)
    assert pitch_at(left, 11000, 19200) == pytest.approx(62.0, abs=0.005)
    assert pitch_at(left, 20600, 28800) == pytest.approx(59.5, abs=0.005)


@instruments
@pytest.mark.parametrize("t", [1000, 1007, 4096])
def test_a_note_starts_at_its_exact_sample(unit, t):
    """Mid control period or on a block edge, the voice starts at the event's sample: its
    first sample is silent (the sine and the level both start from 0), the next is not."""
    left, right, _, _ = render(unit, 6000, [(t, K_NOTE_ON, 60.0, 1.0, 1.0)], patch(unit))
    assert not np.any(left[:t + 1]) and left[t + 1] != 0.0 and right[t + 1] != 0.0


@instruments
def test_the_adsr_follows_its_exponential_segments(unit):
    """Attack 50 ms to 1 (aiming at 1.3), decay 100 ms towards 0.5 (99 % of the way), release
    200 ms (-40 dB), against the closed forms, read at the peaks of a 1.5 kHz sine (one
    every 32 samples, exactly on a sample): within 0.01 everywhere (a segment ends at the end
    of a control period, up to CHUNK samples late: 0.008 of the steepest decay here)."""
    ta, td, tr, sus = 0.05, 0.1, 0.2, 0.5
    off = 24000
    note = float(semitones(1500.0))
    left, _, _, _ = render(unit, 48000, [(0, K_NOTE_ON, note, 1.0, 1.0),
                                         (off, K_NOTE_OFF, note, 0.0, 1.0)],
                           patch(unit, attack_ms=ta * 1e3, decay_ms=td * 1e3, sustain=sus,
                                 release_ms=tr * 1e3))
    peaks = np.arange(8, 48000, 32)
    t = peaks / SR
    att = 1.3 * (1 - np.exp(-t * math.log(13 / 3) / ta))
    dec = sus + (1 - sus) * np.exp(-(t - ta) * math.log(100) / td)
    env = np.where(t < ta, att, dec)
    at_off = sus + (1 - sus) * math.exp(-(off / SR - ta) * math.log(100) / td)
    rel = at_off * np.exp(-(t - off / SR) * math.log(100) / tr)
    env = np.where(peaks < off, env, rel)
    assert np.abs(left[peaks] / math.sqrt(0.5) - env).max() < 0.01
