"""The modulation matrix (engine.rt.units.modmatrix) through both instruments, measured on
their output: vibrato rate and depth from the instantaneous frequency, tempo-synced and
beat-locked LFOs against the context row, velocity to brightness, the mod wheel morphing the
wavetable, per-note random values, sample-and-hold steps, zero amounts bit for bit."""
import math

import numpy as np
import pytest
from scipy.optimize import curve_fit

from engine.rt.events import K_AFTERTOUCH, K_MOD_WHEEL, K_NOTE_OFF, K_NOTE_ON
from engine.rt.units import fm as F
from engine.rt.units import modmatrix as mm
from engine.rt.units import wavetable as W
from engine.rt.units.base import CTX_BEAT, CTX_SAMPLE_TIME, CTX_TEMPO_BPM
from tests.synthkit import (MATRIX_IDS, MATRIX_INSTRUMENTS, harmonic_amps, patch, pitch_at,
                            pitch_track, rms, semitones)
from tests.test_units import SR, io, make, script

instruments = pytest.mark.parametrize("unit", MATRIX_INSTRUMENTS, ids=MATRIX_IDS)   # (not the
# sampler: it has no matrix yet)
CTX = 6


def word(unit, name, w):
    """A choice parameter's number for its word."""
    p = next(p for p in unit.PARAMS if p.name == name)
    return float(p.choices.index(w))


def slot(unit, k, source, dest, amount, via="off"):
    return {f"mod{k}_source": word(unit, f"mod{k}_source", source),
            f"mod{k}_via": word(unit, f"mod{k}_via", via),
            f"mod{k}_dest": word(unit, f"mod{k}_dest", dest),
            f"mod{k}_amount": float(amount)}


def lfo(unit, name="lfo", shape="sine", trigger="free", sync="hz", **fields):
    """An LFO's (or with name "sh", the S&H's) parameters, choices given as words."""
    d = {f"{name}_trigger": word(unit, f"{name}_trigger", trigger),
         f"{name}_sync": word(unit, f"{name}_sync", sync)}
    if name != "sh":
        d[f"{name}_shape"] = word(unit, f"{name}_shape", shape)
    d.update({f"{name}_{k}": float(v) for k, v in fields.items()})
    return d


def play(unit, n, events, over, cuts=(), tempo=None, beat0=0.0, state=None):
    """(left, right) of `unit` over n samples with `over` on its sine patch; events (time,
    kind, a, b, c) at their samples; spans cut at `cuts`; `tempo`: None (no context row) or
    [(sample, bpm), ...], the context row then carrying that tempo and the beat position
    (from beat0 at sample 0, anchored at each change as engine.rt.render does)."""
    if state is None:
        state, params = make(unit, patch(unit, **over))
    else:
        state, params = state
    events = sorted(events, key=lambda e: e[0])
    changes = sorted(tempo or [])
    points = sorted(set([0, n] + [c for c in cuts if 0 < c < n] + list(range(0, n, 4096))
                        + [e[0] for e in events if 0 < e[0] < n]
                        + [t for t, _ in changes if 0 < t < n]))
    bus = np.zeros((8, 4096))
    rows = io(ctx=CTX if tempo else -1)
    out = np.zeros((2, n))
    pending = list(events)
    anchor_t, anchor_b, bpm = 0, beat0, changes[0][1] if changes else 120.0
    for a, b in zip(points[:-1], points[1:]):
        while pending and pending[0][0] <= a:
            _, ek, ea, eb, ec = pending.pop(0)
            unit.event(state, params, ek, ea, eb, ec, float(SR))
        for t, new in changes:
            if t == a and a > 0:
                anchor_b += (a - anchor_t) * bpm / (60.0 * SR)
                anchor_t, bpm = a, new
        bus[CTX, CTX_TEMPO_BPM] = bpm
        bus[CTX, CTX_SAMPLE_TIME] = a
        bus[CTX, CTX_BEAT] = anchor_b + (a - anchor_t) * bpm / (60.0 * SR)
        unit.process(state, params, bus, rows, 0, b - a, float(SR))
        out[:, a:b] = bus[2:4, :b - a]
    return out[0], out[1]


def fit_sine(t, y):
    """(frequency per sample, amplitude, offset) of the sinusoid best fitting y(t) (started
    from the rate at which y crosses its mean)."""
    d = y - y.mean()
    ups = t[1:][(d[:-1] <= 0) & (d[1:] > 0)]
    f_guess = (len(ups) - 1) / (ups[-1] - ups[0])

    def model(t, f, a, b, c):
        return a * np.sin(2 * np.pi * f * t) + b * np.cos(2 * np.pi * f * t) + c
    p, _ = curve_fit(model, t, y, p0=[f_guess, 0.1, 0.1, np.mean(y)])
    return p[0], math.hypot(p[1], p[2]), p[3]


def centroid(y, nfft=32768):
    seg = y[-nfft:] * np.hanning(nfft)
    p = np.abs(np.fft.rfft(seg)) ** 2
    f = np.fft.rfftfreq(nfft, 1.0 / SR)
    return float((f * p).sum() / p.sum())


# ---- LFOs ---------------------------------------------------------------------------------------

@instruments
@pytest.mark.parametrize("rate_hz, depth_st", [(5.0, 0.5), (1.7, 2.0)])
def test_lfo_to_pitch_gives_the_vibrato_rate_and_depth(unit, rate_hz, depth_st):
    """LFO 1 (sine, free) -> pitch: the instantaneous frequency (per period, from zero
    crossings) swings sinusoidally at the LFO's rate by +-amount semitones around the note."""
    n = 3 * SR
    over = dict(lfo_hz=rate_hz, **lfo(unit), **slot(unit, 1, "lfo1", "pitch", depth_st))
    left, _ = play(unit, n, [(0, K_NOTE_ON, 69.0, 1.0, 1.0)], over)
    t, p = pitch_track(left)
    keep = t > 2400
    f, a, c = fit_sine(t[keep], p[keep])
    assert f * SR == pytest.approx(rate_hz, rel=1e-3)
    assert a == pytest.approx(depth_st, rel=0.01)
    assert c == pytest.approx(69.0, abs=0.01)
    # and without the slot, or with the dedicated knob at 0 and no wheel, no vibrato
    left, _ = play(unit, SR // 2, [(0, K_NOTE_ON, 69.0, 1.0, 1.0)], dict(lfo_hz=rate_hz))
    _, p = pitch_track(left[2400:])
    assert np.abs(p - 69.0).max() < 1e-3


@instruments
def test_the_wheel_as_via_scales_the_vibrato(unit):
    """mod1: LFO 1 -> pitch 1 st via the mod wheel: none at wheel 0, full at wheel 1."""
    over = dict(lfo_hz=6.0, **slot(unit, 1, "lfo1", "pitch", 1.0, via="mod_wheel"))
    T = SR
    ev = [(0, K_NOTE_ON, 69.0, 1.0, 1.0), (T, K_MOD_WHEEL, 0.0, 1.0, 0.0)]
    left, _ = play(unit, 2 * T, ev, over)
    t, p = pitch_track(left)
    assert np.abs(p[(t > 2400) & (t < T)] - 69.0).max() < 1e-3
    late = t > T + 4800
    _, a, _ = fit_sine(t[late], p[late])
    assert a == pytest.approx(1.0, rel=0.01)


@instruments
@pytest.mark.parametrize("beats, tempi", [(0.5, (120.0, 90.0)), (0.75, (97.0, 143.0))])
def test_a_tempo_synced_lfo_period_is_beats_times_60_over_tempo(unit, beats, tempi):
    """LFO 1 synced to `beats`: its period (fitted to the pitch it sways) is beats * 60 /
    tempo seconds to within a sample, and follows a tempo change in the context row."""
    change = 4 * SR
    n = 8 * SR
    over = dict(**lfo(unit, sync="beats", beats=beats), **slot(unit, 1, "lfo1", "pitch", 1.0))
    left, _ = play(unit, n, [(0, K_NOTE_ON, 81.0, 1.0, 1.0)], over,
                   tempo=[(0, tempi[0]), (change, tempi[1])])
    t, p = pitch_track(left)
    for bpm, span in ((tempi[0], (2400, change)), (tempi[1], (change + SR // 2, n))):
        want = beats * 60.0 / bpm * SR                 # samples per cycle
        keep = (t > span[0]) & (t < span[1])
        f, a, _ = fit_sine(t[keep], p[keep])
        assert 1.0 / f == pytest.approx(want, abs=0.1)
        assert a == pytest.approx(1.0, rel=0.01)


@instruments
def test_a_beat_locked_lfo_follows_the_beat_position(unit):
    """A square LFO locked to the beat (1 beat a cycle, 120 BPM: 24000 samples): high for
    the first half of every beat, low for the second, wherever the render starts; starting
    at beat 3.5 it starts low and goes high at the next whole beat (12000 samples on). The
    switches land within one control period after the half beats."""
    over = dict(**lfo(unit, shape="square", trigger="beat", sync="beats", beats=1.0),
                **slot(unit, 1, "lfo1", "pitch", 1.0))
    n = 3 * 24000
    for beat0, first in ((0.0, 82.0), (3.5, 80.0)):
        left, _ = play(unit, n, [(0, K_NOTE_ON, 81.0, 1.0, 1.0)], over, tempo=[(0, 120.0)],
                       beat0=beat0)
        t, p = pitch_track(left)
        high = p > 81.0
        assert abs(p[(t > 1000) & (t < 11000)].mean() - first) < 1e-3
        flips = t[1:][high[1:] != high[:-1]]
        assert len(flips) == 5                     # at 12000, 24000, ... 60000
        assert np.all(np.abs(flips - 12000 * np.arange(1, 6)) < 16 + 60)
    # a note started later plays the same phase as the beat, not a phase of its own
    a, _ = play(unit, n, [(0, K_NOTE_ON, 69.0, 1.0, 1.0)], over, tempo=[(0, 120.0)])
    b, _ = play(unit, n, [(7000, K_NOTE_ON, 69.0, 1.0, 1.0)], over, tempo=[(0, 120.0)])
    assert pitch_at(a, 30000, 35000) == pytest.approx(pitch_at(b, 30000, 35000), abs=1e-6)


@instruments
@pytest.mark.parametrize("shape, start", [("saw", -1.0), ("square", 1.0), ("triangle", 0.0)])
def test_a_note_triggered_lfo_restarts_with_every_note(unit, shape, start):
    """trigger = note: each note's LFO starts at its phase (0: saw at -1, square at +1,
    triangle at 0), wherever the free LFO would be; free: the notes start wherever it is."""
    over = dict(lfo_hz=0.5, **lfo(unit, shape=shape, trigger="note"),
                **slot(unit, 1, "lfo1", "pitch", 2.0))
    T = 30000
    ev = []
    for k in range(3):
        ev += [(k * T + 1234 * k, K_NOTE_ON, 69.0, 1.0, 1.0),
               (k * T + 1234 * k + 9000, K_NOTE_OFF, 69.0, 0.0, 1.0)]
    left, _ = play(unit, 3 * T + 4000, ev, over)
    starts = [pitch_at(left, k * T + 1234 * k + 300, k * T + 1234 * k + 900) for k in range(3)]
    assert np.allclose(starts, 69.0 + 2.0 * start, atol=0.1)
    over.update(lfo(unit, shape=shape, trigger="free"))
    left, _ = play(unit, 3 * T + 4000, ev, over)
    starts = [pitch_at(left, k * T + 1234 * k + 300, k * T + 1234 * k + 900) for k in range(3)]
    assert np.ptp(starts) > 0.5


# ---- per-note sources ---------------------------------------------------------------------

def test_velocity_to_cutoff_brightens_loud_notes():
    """A 110 Hz saw through the lowpass at 300 Hz, velocity -> cutoff 4 octaves
    (velocity_sens 0: the same level): a loud note's spectral centroid is well above a soft
    one's, its 20th harmonic (2.2 kHz) 20 dB stronger against the fundamental (the cutoff at
    4.8 kHz instead of 520 Hz: 12 dB per octave); without the slot the two are the same."""
    base = dict(table=0.0, filter=1.0, cutoff_hz=300.0, resonance=0.0, key_tracking=0.0,
                aftertouch_oct=0.0)
    cents, h20 = {}, {}
    for name, over in (("slot", dict(base, **slot(W, 3, "velocity", "cutoff", 4.0))),
                       ("none", base)):
        for vel in (0.2, 1.0):
            left, _ = play(W, SR, [(0, K_NOTE_ON, 45.0, vel, 1.0)], over)
            cents[name, vel] = centroid(left)
            amps = harmonic_amps(left, 110.0, 20, nfft=32768)
            h20[name, vel] = 20 * math.log10(amps[19] / amps[0])
    assert cents["slot", 1.0] > 1.5 * cents["slot", 0.2]
    assert h20["slot", 1.0] > h20["slot", 0.2] + 20.0
    assert cents["none", 1.0] == pytest.approx(cents["none", 0.2], rel=1e-9)


def test_velocity_to_a_modulator_level_brightens_loud_fm_notes():
    """FM: op2 (modulator of op1) at level 0, velocity -> op2_level 0.4: a soft note is
    nearly a sine, a loud one rich; the sidebands match the index the level makes."""
    over = dict(op2_level=0.0, op2_attack_ms=0.5, op2_sustain=1.0, op2_velocity=0.0,
                op2_detune_cents=0.0, op2_ratio=1.0, **slot(F, 1, "velocity", "op2_level", 0.4))
    cents = {}
    for vel in (0.1, 1.0):
        left, _ = play(F, SR, [(0, K_NOTE_ON, 57.0, vel, 1.0)], over)
        cents[vel] = centroid(left)
        if vel == 1.0:
            amps = harmonic_amps(left, 220.0, 3, nfft=32768)
            from scipy.special import jv
            index = 0.4 * F.MOD_INDEX                 # op2 at level 0.4: index 0.4 * 2 pi
            want = [abs(jv(0, index) - jv(-2, index)), abs(jv(1, index) - jv(-3, index))]
            assert amps[1] / amps[0] == pytest.approx(want[1] / want[0], rel=0.01)
    assert cents[1.0] > 1.5 * cents[0.1]


def _harmonic_frames():
    spectra = np.zeros((4, 8), dtype=complex)
    for k in range(4):
        spectra[k, k + 1] = -1j
    return W.build_table(spectra)


def test_the_mod_wheel_morphs_the_wavetable_position():
    """Four frames of sines at harmonics 1..4; mod wheel -> position 1.0: wheel 0 plays
    frame 0 (the fundamental alone), 0.5 halfway between frames 1 and 2 (harmonics 2 and 3
    at half level each), 1 the last frame (harmonic 4)."""
    state = make(W, patch(W, **slot(W, 2, "mod_wheel", "position", 1.0)))
    W.install(state[0], _harmonic_frames())
    T = SR
    ev = [(0, K_NOTE_ON, float(semitones(200.0)), 1.0, 1.0),
          (T, K_MOD_WHEEL, 0.0, 0.5, 0.0), (2 * T, K_MOD_WHEEL, 0.0, 1.0, 0.0)]
    left, _ = play(W, 3 * T, ev, {}, state=state)
    a = math.sqrt(0.5)
    for k, want in enumerate(([a, 0, 0, 0], [0, a / 2, a / 2, 0], [0, 0, 0, a])):
        amps = harmonic_amps(left[:(k + 1) * T], 200.0, 4, nfft=32768)
        assert np.allclose(amps, want, atol=1e-4)


@instruments
def test_a_per_note_random_value_differs_between_notes_and_never_between_renders(unit):
    """random -> pitch 1 st: each note of the same key sits at its own pitch in 60 +- 1
    (the value the seed and the note's number give), the same whatever the block cuts and
    however often it is rendered; another seed gives other values."""
    T = 9600
    ev = []
    for k in range(8):
        ev += [(k * T, K_NOTE_ON, 60.0, 1.0, 1.0), (k * T + T - 2400, K_NOTE_OFF, 60.0, 0.0, 1.0)]
    n = 8 * T

    def render(seed, cuts=()):
        return play(unit, n, ev, dict(mod_seed=seed, **slot(unit, 4, "random", "pitch", 1.0)),
                    cuts=cuts)

    ref = render(7.0)
    pitches = np.array([pitch_at(ref[0], k * T + 1200, k * T + 6000) for k in range(8)])
    want = [60.0 + 2.0 * mm.hash01(7.0, k + 1.0, 0.0, 0.0) - 1.0 for k in range(8)]
    assert np.allclose(pitches, want, atol=2e-3)
    assert np.all(np.abs(pitches - 60.0) < 1.0) and np.ptp(pitches) > 0.5
    assert len(set(np.round(pitches, 3))) == 8
    for cuts in ((), range(1, n, 1), range(37, n, 37), [T - 1, T, T + 1, 3 * T + 5]):
        got = render(7.0, cuts=list(cuts) if len(cuts) < 2000 else list(cuts)[:600])
        assert np.array_equal(got[0], ref[0]) and np.array_equal(got[1], ref[1])
    other = render(8.0)
    others = np.array([pitch_at(other[0], k * T + 1200, k * T + 6000) for k in range(8)])
    assert np.abs(others - pitches).min() > 1e-3


@instruments
def test_the_sample_and_hold_steps(unit):
    """sh -> pitch 2 st at 10 Hz: the pitch holds still for 4800 samples at a time, on the
    value the seed and the cycle's number give (81 + 2 (2 hash - 1)), and steps between
    holds; with sh_smooth 1 it glides instead. A free S&H gives a later note the values the
    first one has at the same time; a note-triggered one gives each note its own."""
    over = dict(**lfo(unit, "sh", hz=10.0), **slot(unit, 1, "sh", "pitch", 2.0))
    n = SR
    left, _ = play(unit, n, [(0, K_NOTE_ON, 81.0, 1.0, 1.0)], over)
    t, p = pitch_track(left)
    for k, a in enumerate(range(0, n, 4800)):
        hold = p[(t > a + 16 + 60) & (t < a + 4800 - 60)]
        want = 81.0 + 2.0 * (2.0 * mm.hash01(0.0, 0.0, float(k), 3.0) - 1.0)
        assert np.abs(hold - want).max() < 1e-3
    steps = np.abs(np.diff(p))
    assert steps.max() > 0.5
    # smoothed: it glides, so the largest step from period to period is much smaller
    left, _ = play(unit, n, [(0, K_NOTE_ON, 81.0, 1.0, 1.0)], dict(over, sh_smooth=1.0))
    _, ps = pitch_track(left)
    assert np.abs(np.diff(ps)).max() < 0.3 * steps.max()
    # free: a later note (the unit's second) has the first one's values; note: its own
    for trigger in ("free", "note"):
        o = dict(over, **lfo(unit, "sh", hz=10.0, trigger=trigger), release_ms=2.0)
        a, _ = play(unit, n, [(0, K_NOTE_ON, 81.0, 1.0, 1.0)], o)
        b, _ = play(unit, n, [(0, K_NOTE_ON, 81.0, 1.0, 1.0), (100, K_NOTE_OFF, 81.0, 0.0, 1.0),
                              (10000, K_NOTE_ON, 81.0, 1.0, 1.0)], o)
        pa_ = [pitch_at(a, w + 200, w + 4000) for w in (24000, 28800, 33600)]
        pb_ = [pitch_at(b, w + 200, w + 4000) for w in (24000, 28800, 33600)]
        if trigger == "free":
            assert np.allclose(pa_, pb_, atol=1e-4)
        else:
            assert np.abs(np.array(pa_) - np.array(pb_)).min() > 1e-3


@instruments
def test_key_tracks_an_lfo_s_rate(unit):
    """key -> lfo1_rate 1 octave per octave: an octave up, the vibrato runs twice as fast."""
    over = dict(lfo_hz=3.0, **slot(unit, 1, "lfo1", "pitch", 0.5),
                **slot(unit, 2, "key", "lfo1_rate", 1.0))
    rates = []
    for note in (60.0, 72.0):
        left, _ = play(unit, 2 * SR, [(0, K_NOTE_ON, note, 1.0, 1.0)], over)
        t, p = pitch_track(left)
        f, a, _ = fit_sine(t[t > 2400], p[t > 2400])
        rates.append(f * SR)
    assert rates[0] == pytest.approx(3.0, rel=1e-3)
    assert rates[1] == pytest.approx(6.0, rel=1e-3)


@instruments
def test_an_lfo_whose_rate_modulation_ends_keeps_its_phase(unit):
    """Mod wheel -> lfo1_rate 1 octave (wheel full: 8 Hz instead of 4), then the slot's
    amount glides to 0 and the slot drops out: the vibrato carries on at 4 Hz from where it
    was, without a jump in pitch."""
    over = dict(lfo_hz=4.0, **slot(unit, 1, "lfo1", "pitch", 1.0),
                **slot(unit, 2, "mod_wheel", "lfo1_rate", 1.0))
    state, params = make(unit, patch(unit, **over))
    a, _ = play(unit, SR, [(0, K_NOTE_ON, 81.0, 1.0, 1.0), (0, K_MOD_WHEEL, 0.0, 1.0, 0.0)],
                {}, state=(state, params))
    params[next(p.index for p in unit.PARAMS if p.name == "mod2_amount")] = 0.0
    b, _ = play(unit, SR, [], {}, state=(state, params))
    t, p = pitch_track(np.concatenate([a, b]))
    f1, _, _ = fit_sine(t[(t > 4800) & (t < SR)], p[(t > 4800) & (t < SR)])
    f2, a2, _ = fit_sine(t[t > SR + 4800], p[t > SR + 4800])
    assert f1 * SR == pytest.approx(8.0, rel=1e-3) and f2 * SR == pytest.approx(4.0, rel=1e-3)
    assert a2 == pytest.approx(1.0, rel=0.01)
    steady = np.abs(np.diff(p[(t > 4800) & (t < SR)])).max()
    assert np.abs(np.diff(p)).max() < 1.05 * steady


@instruments
def test_aftertouch_to_amp_and_lfo_to_pan(unit):
    """aftertouch -> amp -6 dB halves the level at full pressure; a square LFO -> pan 1
    throws the voice from right to left."""
    over = dict(**slot(unit, 1, "aftertouch", "amp", -6.0206))
    ev = [(0, K_NOTE_ON, 69.0, 1.0, 1.0), (SR // 2, K_AFTERTOUCH, 0.0, 1.0, 0.0)]
    left, _ = play(unit, SR, ev, over)
    assert rms(left[SR // 2 + 2400:]) / rms(left[4800:SR // 2]) == pytest.approx(0.5, rel=1e-3)
    over = dict(lfo_hz=2.0, **lfo(unit, shape="square", trigger="note"),
                **slot(unit, 1, "lfo1", "pan", 1.0))
    left, right = play(unit, SR, [(0, K_NOTE_ON, 69.0, 1.0, 1.0)], over)
    assert rms(left[2400:10000]) < 1e-9 < rms(right[2400:10000])      # +1: hard right
    assert rms(right[14400:22000]) < 1e-9 < rms(left[14400:22000])


def test_the_fm_mod_envelope_and_operator_ratio():
    """FM has a mod envelope: mod_env -> pitch 12 st, decay 100 ms to 0: the note starts
    near an octave up, falls, and settles on its key. op1_ratio +1 (the envelope held at 1)
    moves the carrier to ratio 2."""
    over = dict(mod_attack_ms=0.5, mod_decay_ms=100.0, mod_sustain=0.0,
                **slot(F, 1, "mod_env", "pitch", 12.0))
    left, _ = play(F, SR, [(0, K_NOTE_ON, 57.0, 1.0, 1.0)], over)
    early = [pitch_at(left, a, a + 600) for a in (100, 1200, 2400, 4800)]
    assert early[0] > 65.0 and np.all(np.diff(early) < 0)
    assert pitch_at(left, 24000, 48000) == pytest.approx(57.0, abs=1e-3)
    over = dict(mod_sustain=1.0, **slot(F, 1, "mod_env", "op1_ratio", 1.0))
    left, _ = play(F, SR, [(0, K_NOTE_ON, 57.0, 1.0, 1.0)], over)
    assert pitch_at(left, 24000, 48000) == pytest.approx(69.0, abs=1e-3)


# ---- the contract -------------------------------------------------------------------------

@instruments
def test_a_zero_amount_is_bit_identical_to_no_slot(unit):
    """Every destination from LFO 1, the S&H, the per-note random and the key (via the
    velocity) at amount 0: bit for bit the output with no slot at all."""
    ev = script(12000) + [(3000, K_MOD_WHEEL, 0.0, 0.7, 0.0)]
    ref = play(unit, 12000, ev, {})
    for d in unit.DESTS[1:]:
        for s in ("lfo1", "sh", "random", "key"):
            over = slot(unit, 5, s, d, 0.0, via="velocity")
            got = play(unit, 12000, ev, over)
            assert np.array_equal(got[0], ref[0]) and np.array_equal(got[1], ref[1]), (s, d)


@instruments
def test_a_zero_amount_reached_by_smoothing_ends_its_effect(unit):
    """An amount glided from 2 to 0 (smoothed): the pitch returns exactly to the note."""
    state, params = make(unit, patch(unit, **slot(unit, 1, "velocity", "pitch", 2.0)))
    k = next(p.index for p in unit.PARAMS if p.name == "mod1_amount")
    params[k] = 0.0                                  # target 0, current 2: it glides
    left, _ = play(unit, SR, [(0, K_NOTE_ON, 69.0, 1.0, 1.0)], {}, state=(state, params))
    assert pitch_at(left, 300, 800) > 69.5
    assert pitch_at(left, 24000, 48000) == pytest.approx(69.0, abs=1e-6)


def _busy(unit):
    """Every slot in use: LFOs free, note-triggered and beat-locked, sync and not, S&H."""
    d = dict(**lfo(unit, "lfo", shape="triangle", trigger="note", hz=4.0),
             **lfo(unit, "lfo2", shape="sample_hold", trigger="beat", sync="beats", beats=0.25),
             **lfo(unit, "sh", trigger="free", sync="beats", beats=0.5, smooth=0.3),
             mod_seed=11.0)
    routes = [("lfo1", "pitch", 0.3, "mod_wheel"), ("lfo2", "pan", 0.5, "off"),
              ("sh", unit.DESTS[-1], 0.2, "off"), ("random", "detune", 30.0, "off"),
              ("mod_env", unit.DESTS[8], 0.7, "velocity"), ("key", "lfo1_rate", 0.5, "off"),
              ("aftertouch", "amp", -6.0, "off"), ("velocity", "sh_rate", 1.0, "off")]
    for k, (s, dst, a, via) in enumerate(routes):
        d.update(slot(unit, k + 1, s, dst, a, via=via))
    return d


@instruments
def test_a_busy_matrix_is_block_size_invariant(unit):
    """Without a context row the output is bit for bit the same for any block cuts; with
    one (a tempo change included) the beat-locked LFO reads the beat from each span's start,
    so cuts move it by rounding only."""
    ev = script(12000, seed=3)
    over = _busy(unit)
    ref = play(unit, 12000, ev, over)
    assert np.abs(ref[0]).max() > 1e-3
    for cuts in (list(range(1, 600)), list(range(7, 12000, 7)),
                 sorted(np.random.default_rng(1).integers(1, 11999, 200).tolist())):
        got = play(unit, 12000, ev, over, cuts=cuts)
        assert np.array_equal(got[0], ref[0]) and np.array_equal(got[1], ref[1])
    tempo = [(0, 133.0), (5000, 71.0)]
    ref = play(unit, 12000, ev, over, tempo=tempo, beat0=2.3)
    got = play(unit, 12000, ev, over, cuts=list(range(7, 12000, 7)), tempo=tempo, beat0=2.3)
    assert np.allclose(got[0], ref[0], atol=1e-9) and np.allclose(got[1], ref[1], atol=1e-9)


@instruments
@pytest.mark.parametrize("amount", [-48.0, 48.0])
def test_extreme_amounts_stay_finite(unit, amount):
    """Every source into every destination at the amount's limits, eight at a time, through
    a script with bend, wheel and aftertouch: finite and bounded."""
    ev = script(6000, seed=2)
    srcs = mm.SOURCES[1:]
    for first in range(1, len(unit.DESTS), 4):
        over = dict(**lfo(unit, "lfo2", shape="saw", hz=50.0))
        for k in range(8):
            d = unit.DESTS[1 + (first + k) % (len(unit.DESTS) - 1)]
            over.update(slot(unit, k + 1, srcs[(first + k) % len(srcs)], d, amount,
                             via=srcs[k % len(srcs)]))
        left, right = play(unit, 6000, ev, over)
        assert np.all(np.isfinite(left)) and np.all(np.isfinite(right))
        assert np.abs(left).max() < 100.0 and np.abs(right).max() < 100.0


def test_the_matrix_parameters_are_addressed_by_name():
    """Both instruments declare the same slots and modulators by name (mod1_amount ...), the
    instruments' earlier parameters keep their places, and `param_map` finds each one."""
    for unit in (W, F):
        names = [p.name for p in unit.PARAMS]
        for k in range(1, mm.NSLOTS + 1):
            for f in ("source", "via", "dest", "amount"):
                assert f"mod{k}_{f}" in names
        assert names.index("mod1_source") > names.index("gain_db")
        assert [names[i] for i in unit.MP] == [p.name for p in mm.mod_params()]
        assert unit.DESTS[:len(mm.COMMON_DESTS)] == mm.COMMON_DESTS
    assert {"cutoff", "resonance", "position"} <= set(W.DESTS)
    assert {"op1_level", "op4_ratio", "index"} <= set(F.DESTS)
