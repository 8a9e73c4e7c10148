"""The synth voice, asserted on the signal: pitch, aliasing, filter curves, envelopes."""
import math

import numpy as np
import pytest

from engine.rt import layout as L
from engine.rt import voice
from engine.rt.events import K_NOTE_OFF, K_NOTE_ON, K_PITCH_BEND, K_SUSTAIN
from tests.enginekit import SR, engine, peak_hz, render

OPEN = {"filter_type": "ladder", "cutoff_hz": 20000.0, "resonance": 0.0, "key_tracking": 0.0,
        "filter_env_octaves": 0.0, "velocity_to_cutoff_octaves": 0.0, "osc2_level": 0.0,
        "amp_attack_s": 0.001, "amp_sustain": 1.0, "velocity_sensitivity": 0.0, "gain_db": 0.0,
        "drive": 1.0}


def note_bus(patch, note=69, seconds=0.5, vel=1.0):
    st = engine(dict(OPEN, **patch))
    return render(st, [(0, K_NOTE_ON, 0, note, vel, 1)], seconds, part_bus=0)


@pytest.mark.parametrize("wave", ["saw", "pulse", "triangle", "sine"])
@pytest.mark.parametrize("note", [45, 69, 93])
def test_oscillator_pitch_by_fft(wave, note):
    x = note_bus({"osc1_wave": wave}, note)[SR // 10:]
    expected = 440.0 * 2 ** ((note - 69) / 12)
    assert peak_hz(x) == pytest.approx(expected, rel=2e-3)


def _alias_db(x, f0):
    """Energy away from the harmonics of f0, relative to the total, in dB."""
    n = len(x)
    spec = np.abs(np.fft.rfft(x * np.blackman(n))) ** 2
    freqs = np.fft.rfftfreq(n, 1 / SR)
    harmonic = np.zeros_like(spec, dtype=bool)
    for h in np.arange(f0, SR / 2, f0):
        harmonic |= np.abs(freqs - h) < 30.0
    return 10 * np.log10(spec[~harmonic].sum() / spec.sum())


@pytest.mark.parametrize("wave", ["saw", "pulse", "triangle"])
def test_band_limited_oscillators_alias_far_less_than_naive(wave):
    note = 100                                   # 2637 Hz: many harmonics fold at 48 kHz
    f0 = 440.0 * 2 ** ((note - 69) / 12)
    x = note_bus({"osc1_wave": wave}, note, 1.0)[SR // 4:SR // 4 + 32768]
    t = (np.arange(len(x)) * f0 / SR) % 1.0
    naive = {"saw": 2 * t - 1, "pulse": np.where(t < 0.5, -1.0, 1.0),
             "triangle": 4 * np.abs(t - 0.5) - 1}[wave]
    ours, theirs = _alias_db(x, f0), _alias_db(naive, f0)
    assert ours < theirs - 12.0, (ours, theirs)
    assert ours < {"saw": -28.0, "pulse": -28.0, "triangle": -50.0}[wave]  # 2-point PolyBLEP


def _tpt_s(z, g):
    """The bilinear transform with prewarping used by TPT filters: s/wc = (1/g)(z-1)/(z+1)."""
    return (z - 1) / (z + 1) / g


def _impulse_response(filter_type, cutoff, res, n=8192):
    """Drive one voice's filter stage directly with a tiny impulse (linear region)."""
    vf = np.zeros(L.VF_ROWS * L.NVMAX, np.float32)
    w = math.pi * cutoff / SR
    g = math.tan(w)
    lo, hi = np.uint64(0), np.uint64(8)
    out = np.zeros(n)
    amp = 1e-4
    for i in range(n):
        vf[L.VF_OSC * L.NVMAX] = amp if i == 0 else 0.0
        if filter_type == "ladder":
            vf[L.VF_G * L.NVMAX] = g / (1 + g)
            k = 3.9 * res
            voice._ladder(vf, lo, hi, np.float32(k), np.float32(1.0), np.float32(1 + 0.5 * k))
        else:
            vf[L.VF_G * L.NVMAX] = g
            voice._svf(vf, lo, hi, np.float32(2.0 - 1.96 * res), np.float32(1.0),
                       {"lp": 1, "bp": 2, "hp": 3}[filter_type])
        out[i] = vf[L.VF_OUT * L.NVMAX] / amp
    return out, g


@pytest.mark.parametrize("cutoff,res", [(500.0, 0.0), (2000.0, 0.5), (5000.0, 0.9)])
def test_ladder_matches_the_analytic_curve(cutoff, res):
    h, g = _impulse_response("ladder", cutoff, res)
    freqs = np.linspace(20, 0.45 * SR, 400)
    z = np.exp(2j * np.pi * freqs / SR)
    h1 = 1 / (1 + _tpt_s(z, g))
    k = 3.9 * res
    analytic = (1 + 0.5 * k) * h1 ** 4 / (1 + k * h1 ** 4)
    measured = np.array([np.sum(h * z0 ** -np.arange(len(h))) for z0 in z])
    err_db = 20 * np.log10(np.abs(measured) / np.abs(analytic))
    audible = np.abs(analytic) > 1e-4       # above -80 dB: below, float32 state is the floor
    assert np.max(np.abs(err_db[audible])) < 0.05


@pytest.mark.parametrize("mode", ["lp", "bp", "hp"])
@pytest.mark.parametrize("cutoff,res", [(300.0, 0.2), (3000.0, 0.7)])
def test_svf_matches_the_analytic_curve(mode, cutoff, res):
    h, g = _impulse_response(mode, cutoff, res)
    freqs = np.linspace(20, 0.45 * SR, 400)
    z = np.exp(2j * np.pi * freqs / SR)
    s = _tpt_s(z, g)
    damp = 2.0 - 1.96 * res
    den = s * s + damp * s + 1
    analytic = {"lp": 1 / den, "bp": damp * s / den, "hp": s * s / den}[mode]
    measured = np.array([np.sum(h * z0 ** -np.arange(len(h))) for z0 in z])
    err_db = 20 * np.log10(np.abs(measured) / np.abs(analytic))
    audible = np.abs(analytic) > 1e-4
    assert np.max(np.abs(err_db[audible])) < 0.05


def _envelope(x, win=96):
    return np.sqrt(np.convolve(x * x, np.ones(win) / win, mode="same") * 2)


def test_adsr_timings():
    patch = {"osc1_wave": "sine", "amp_attack_s": 0.05, "amp_decay_s": 0.2, "amp_sustain": 0.5,
             "amp_release_s": 0.3}
    st = engine(dict(OPEN, **patch))
    off = int(0.8 * SR)
    x = render(st, [(0, K_NOTE_ON, 0, 69, 1.0, 1), (off, K_NOTE_OFF, 0, 69, 0.0, 1)], 1.4,
               part_bus=0)
    env = _envelope(x)
    peak_at = int(np.argmax(env[: int(0.2 * SR)]))
    env = env / env[peak_at]            # the filter's input drive sets the absolute level
    assert peak_at / SR == pytest.approx(0.05, abs=0.006)
    assert env[int(0.7 * SR)] == pytest.approx(0.5, rel=0.03)       # sustain level
    # decay: 99% of the way from 1 to the sustain level after decay_s
    assert env[int(0.25 * SR)] - 0.5 == pytest.approx(0.005, abs=0.01)
    # release: down to 1% (-40 dB) of the sustain level after release_s
    assert env[off + int(0.3 * SR)] / 0.5 == pytest.approx(0.01, abs=0.004)
    assert np.all(x[off + int(0.6 * SR):] == 0.0)                      # voice freed, silent


def test_velocity_scales_level():
    loud = np.abs(note_bus({"velocity_sensitivity": 1.0}, vel=1.0)).max()
    soft = np.abs(note_bus({"velocity_sensitivity": 1.0}, vel=0.5)).max()
    assert soft / loud == pytest.approx(0.25, rel=0.05)


def test_pitch_bend_glides_to_the_bent_pitch():
    st = engine(dict(OPEN, osc1_wave="sine"))
    x = render(st, [(0, K_NOTE_ON, 0, 69, 1.0, 1), (SR // 4, K_PITCH_BEND, 0, 0, 2.0, 0)], 1.0,
               part_bus=0)
    assert peak_hz(x[SR // 2:]) == pytest.approx(440 * 2 ** (2 / 12), rel=2e-3)
    jumps = np.abs(np.diff(x[SR // 4 - 100:SR // 4 + 2000]))
    assert jumps.max() < 2 * math.pi * 500 / SR * 1.05                 # no step: smoothed


def test_sustain_pedal_holds_and_lifts():
    st = engine(dict(OPEN, osc1_wave="sine", amp_release_s=0.05))
    ev = [(0, K_SUSTAIN, 0, 0, 1.0, 0), (100, K_NOTE_ON, 0, 69, 1.0, 1),
          (SR // 4, K_NOTE_OFF, 0, 69, 0.0, 1), (SR // 2, K_SUSTAIN, 0, 0, 0.0, 0)]
    x = render(st, ev, 1.0, part_bus=0)
    full = np.abs(x[int(0.1 * SR):int(0.2 * SR)]).max()
    assert np.abs(x[int(0.4 * SR):int(0.45 * SR)]).max() > 0.99 * full  # held by the pedal
    assert np.abs(x[int(0.75 * SR):]).max() == 0.0                     # released after lifting


def test_voice_stealing_does_not_click():
    st = engine(dict(OPEN, osc1_wave="sine", amp_attack_s=0.005), polyphony={"keys": 8})
    ev = [(i * 1000, K_NOTE_ON, 0, 57 + i, 1.0, 1) for i in range(8)]
    steal_at = 20000
    ev.append((steal_at, K_NOTE_ON, 0, 80, 1.0, 1))
    x = render(st, ev, 0.6, part_bus=0)
    assert st.counters()["steals"] == 1
    normal = np.abs(np.diff(x[15000:steal_at])).max()
    around = np.abs(np.diff(x[steal_at - 10:steal_at + 2000])).max()
    assert around < 1.3 * normal
    assert peak_hz(x[steal_at + 4800:]) != pytest.approx(440 * 2 ** ((57 - 69) / 12), rel=0.01)


def test_64_voices_of_keys_play_at_once():
    st = engine(dict(OPEN, osc1_wave="sine", gain_db=-40.0))
    ev = [(0, K_NOTE_ON, 0, 30 + i, 1.0, 1) for i in range(64)]
    render(st, ev, 0.1)
    assert st.counters()["voices"] == 64 and st.counters()["steals"] == 0


@pytest.mark.parametrize("sr", [44100, 96000])
def test_other_sample_rates_keep_pitch_and_safety(sr):
    st = engine(dict(OPEN, osc1_wave="sine"), sr=sr)
    x = render(st, [(0, K_NOTE_ON, 0, 69, 1.0, 1), (0, K_NOTE_ON, 4, 38, 1.0, 1)], 0.5,
               part_bus=0)
    assert peak_hz(x[sr // 10:], sr) == pytest.approx(440.0, rel=2e-3)
    out = render(engine(sr=sr, dry=False), [(0, K_NOTE_ON, p, 60, 1.0, 1) for p in range(5)], 0.5)
    assert np.all(np.isfinite(out)) and 0.01 < np.abs(out).max() <= 10 ** (-1 / 20) + 1e-7
