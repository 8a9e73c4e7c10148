"""The wavetable instrument against analytic references: a saw's aliasing and its harmonics,
the position morph, single-cycle WAV tables, the state-variable filter at its cutoff."""
import math

import numpy as np
import pytest
import soundfile

from engine.control.wavetables import load_wav_table
from engine.rt.events import K_NOTE_ON
from engine.rt.units import wavetable as W
from tests.synthkit import alias_db, harmonic_amps, patch, render, semitones
from tests.test_units import SR

SAW = dict(table=0.0)


def note_of(hz):
    return float(semitones(hz))


def play(hz, n, over=None, table=None):
    left, right, state, params = render(W, n, [(0, K_NOTE_ON, note_of(hz), 1.0, 1.0)],
                                        patch(W, **(over or {})), table=table)
    return left, right


# ---- band limiting --------------------------------------------------------------------------

# fundamentals in mip 0, mid-octave, in mip cross-fades (1234.5, 4987.3 Hz) and at 5 kHz
FUNDAMENTALS = [55.0, 440.0, 1234.5, 2345.6, 4321.0, 4987.3]


@pytest.mark.parametrize("f0", FUNDAMENTALS)
def test_a_saw_has_no_alias_above_minus_80_db(f0):
    """Energy off the harmonics of f0 (long FFT, Blackman-Harris window) relative to the
    fundamental. A naive saw measured the same way aliases at -6 to -27 dB, an ideal additive
    saw reads about -100 dB (the window's floor): the wavetable must be below -80."""
    left, right = play(f0, 80000, SAW)
    got = alias_db(left, f0)
    assert got <= -80.0
    t = np.arange(80000) * f0 / SR
    assert alias_db(2.0 * (t - np.floor(t + 0.5)), f0) > -30.0     # the measure sees aliasing


@pytest.mark.parametrize("f0", [110.0, 440.0, 1000.0])
def test_a_saw_s_harmonics_come_out_at_1_over_h(f0):
    """Every harmonic the playing mip holds is at its exact level (the B-spline's droop is
    compensated), relative to the fundamental, within 0.05 dB."""
    left, _ = play(f0, 80000, SAW)
    inc = f0 / SR
    o = 10.0 + math.log2(inc)
    mip = max(0, math.ceil(o))
    assert o <= mip - W.MIP_BLEND            # no cross-fade at these pitches
    count = int(W.MIP_H[mip])
    amps = harmonic_amps(left, f0, count)
    rel = 20 * np.log10(amps / amps[0] * np.arange(1, count + 1))
    assert np.abs(rel).max() < 0.05
    above = harmonic_amps(left, f0, min(2 * count, int(SR / 2 / f0)))[count:]
    assert (20 * np.log10(above / amps[0])).max() < -100.0


# ---- position morph -------------------------------------------------------------------------

def test_the_position_mixes_the_two_frames_around_it():
    """Halfway between frames 3 and 4 of sine_saw, the output is the mean of the two frames'
    outputs (all three renders start the same phase at the same sample)."""
    outs = {}
    for x in (3.0, 3.5, 4.0):
        outs[x], _ = play(220.0, 9600, dict(table=4.0, position=x / 7.0))
    assert np.allclose(outs[3.5], 0.5 * (outs[3.0] + outs[4.0]), atol=1e-12)
    assert not np.allclose(outs[3.0], outs[4.0], atol=1e-3)


def _harmonic_frames():
    """Four frames: sines at harmonics 1, 2, 3, 4."""
    spectra = np.zeros((4, 8), dtype=complex)
    for k in range(4):
        spectra[k, k + 1] = -1j
    return W.build_table(spectra)


def test_a_position_sweep_morphs_without_steps():
    """The LFO sweeps the position over all four frames of a table of sines (harmonics 1..4)
    20 times a second under a 50 Hz note: no sample step exceeds the steepest frame's own
    slope plus the morph's largest per-sample change. A mix moved once per control period
    would step by up to 0.1."""
    table = _harmonic_frames()
    n = 24000
    left, _ = play(50.0, n, dict(position=0.5, position_lfo=1.0, lfo_hz=20.0), table=table)
    a = math.sqrt(0.5)
    slope = a * 2 * math.pi * 200.0 / SR                 # the 4th harmonic's steepest slope
    morph = a * 2 * 3 * (2 * math.pi * 20.0) / SR        # |frame difference| <= 2, 3 gaps
    steps = np.abs(np.diff(left[2400:]))
    assert steps.max() <= slope + morph
    assert steps.max() > 0.5 * slope


# ---- tables from WAV files ------------------------------------------------------------------

def _cycle(length, harmonics, seed):
    rng = np.random.default_rng(seed)
    amps = rng.uniform(0.2, 1.0, harmonics) / np.arange(1, harmonics + 1)
    phases = rng.uniform(0, 2 * np.pi, harmonics)

    def at(t):      # t in cycles
        return sum(a * np.sin(2 * np.pi * (h + 1) * t + p)
                   for h, (a, p) in enumerate(zip(amps, phases)))
    return at(np.arange(length) / length), at


def _fit_error(y, ref):
    g = float(y @ ref / (ref @ ref))
    return g, float(np.linalg.norm(y - g * ref) / np.linalg.norm(ref))


@pytest.mark.parametrize("length", [600, 2048])
def test_a_single_cycle_wav_round_trips(tmp_path, length):
    """A known cycle written with soundfile, loaded, played at 100 Hz (480 samples a period):
    each rendered period is the cycle itself (exact resampling), up to the level."""
    cycle, at = _cycle(length, 20, seed=length)
    path = tmp_path / "cycle.wav"
    soundfile.write(path, 0.9 * cycle / np.abs(cycle).max(), 48000, subtype="FLOAT")
    table = load_wav_table(path)
    assert table.frames == 1
    left, _ = play(100.0, 9600, None, table=table)
    ref = at(np.arange(480) / 480.0)
    for start in (4800, 9120):
        g, err = _fit_error(left[start:start + 480], ref)
        assert g > 0 and err < 1e-5


def test_a_multi_frame_wav_gives_one_frame_per_cycle(tmp_path):
    cycles = [_cycle(512, 12, seed=s) for s in (1, 2, 3)]
    path = tmp_path / "table.wav"
    data = np.concatenate([c for c, _ in cycles])
    soundfile.write(path, 0.9 * data / np.abs(data).max(), 48000, subtype="PCM_24")
    table = load_wav_table(path, frames=3)
    assert table.frames == 3
    for k, (_, at) in enumerate(cycles):
        left, _ = play(100.0, 9600, dict(position=k / 2.0), table=table)
        _, err = _fit_error(left[4800:5280], at(np.arange(480) / 480.0))
        assert err < 1e-4                                 # 24-bit file
    with pytest.raises(ValueError):
        load_wav_table(path, frames=5)


def test_a_long_wav_keeps_max_frames_evenly_spaced(tmp_path):
    frames = 40
    cycles = np.stack([np.sin(2 * np.pi * np.arange(256) / 256 * (1 + k % 5))
                       for k in range(frames)])
    path = tmp_path / "long.wav"
    soundfile.write(path, 0.5 * cycles.ravel(), 48000, subtype="FLOAT")
    table = load_wav_table(path, frames=frames)
    assert table.frames == W.MAX_FRAMES


# ---- built-in tables and the filter -------------------------------------------------------------

def test_prepare_installs_the_table_the_parameter_names():
    """'square' has only odd harmonics at 1/h; 'sine_saw' starts as a sine."""
    left, _ = play(220.0, 80000, dict(table=float(W.TABLES.index("square"))))
    amps = harmonic_amps(left, 220.0, 9)
    assert np.allclose(amps[0::2] / amps[0], 1.0 / np.array([1, 3, 5, 7, 9]), rtol=1e-3)
    assert (amps[1::2] / amps[0]).max() < 1e-5
    left, _ = play(220.0, 80000, dict(table=float(W.TABLES.index("sine_saw")), position=0.0))
    amps = harmonic_amps(left, 220.0, 5)
    assert (amps[1:] / amps[0]).max() < 1e-5
    assert set(W.TABLES) >= {"saw", "square", "triangle", "sine", "sine_saw", "pwm"}
    assert W.builtin_table("pwm").frames == 8


@pytest.mark.parametrize("mode, gain", [(1.0, 0.5), (2.0, 1.0), (3.0, 0.5)],
                         ids=["lowpass", "bandpass", "highpass"])
def test_the_filter_at_its_cutoff(mode, gain):
    """Simper's SVF with resonance 0 (damping k = 2): at the cutoff the lowpass and highpass
    pass 1/k, the bandpass (scaled by k) 1, exactly (the cutoff is prewarped)."""
    dry, _ = play(1000.0, 48000, dict(filter=0.0))
    wet, _ = play(1000.0, 48000, dict(filter=mode, cutoff_hz=1000.0, resonance=0.0,
                                      key_tracking=0.0, aftertouch_oct=0.0))
    ratio = np.abs(wet[24000:]).max() / np.abs(dry[24000:]).max()
    assert ratio == pytest.approx(gain, rel=1e-3)
