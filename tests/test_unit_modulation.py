"""Modulation units (chorus, flanger, phaser) against analytic references: the exact delay
and its interpolation with the LFO still, the delay following the LFO, the flanger's comb,
the phaser's notches, the chorus's width."""
import math

import numpy as np
import pytest

from engine.rt.units import chorus as C
from engine.rt.units import flanger as F
from engine.rt.units import phaser as P
from tests.test_units import SR, make, run


def noise(n, seed=1, amp=0.3):
    return amp * np.random.default_rng(seed).standard_normal(n)


def hermite_delay(x, d):
    """x[n - d] by the 4-point Catmull-Rom interpolator (zeros before the start)."""
    i = int(math.floor(d))
    f = d - i
    pad = np.concatenate([np.zeros(i + 3), x])
    k = np.arange(len(x)) + i + 3              # index of x[n] in pad
    xm1, x0, x1, x2 = pad[k - i + 1], pad[k - i], pad[k - i - 1], pad[k - i - 2]
    c1 = 0.5 * (x1 - xm1)
    c2 = xm1 - 2.5 * x0 + 2.0 * x1 - 0.5 * x2
    c3 = 0.5 * (x2 - xm1) + 1.5 * (x0 - x1)
    return ((c3 * f + c2) * f + c1) * f + x0


def centroids(y, starts, span):
    """The first moment of y over [s, s + span) for each s: where an impulse came out."""
    out = []
    for s in starts:
        seg = y[s:s + span]
        k = np.arange(s, s + span)
        out.append((k * seg).sum() / seg.sum())
    return np.array(out)


def correlation(a, b):
    return float((a * b).sum() / math.sqrt((a * a).sum() * (b * b).sum()))


# ---- chorus ---------------------------------------------------------------------------------

@pytest.mark.parametrize("delay_ms", [10.0, 12.3456])
@pytest.mark.parametrize("voices", [0, 2])
def test_chorus_with_depth_zero_is_dry_plus_the_input_delayed(delay_ms, voices):
    x = noise(6000)
    d = delay_ms * SR / 1000
    for mix in (1.0, 0.5, 0.0):
        y = run(C, *make(C, {"depth_ms": 0.0, "delay_ms": delay_ms, "mix": mix,
                             "voices": voices}), x, x)
        ref = (1 - mix) * x + mix * hermite_delay(x, d)
        assert np.allclose(y[0], ref, atol=1e-12) and np.allclose(y[1], ref, atol=1e-12)
    if d == int(d):                             # a whole number of samples: the input itself
        y = run(C, *make(C, {"depth_ms": 0.0, "delay_ms": delay_ms, "mix": 1.0}), x, x)
        assert np.allclose(y[0][int(d):], x[:-int(d)], atol=1e-15)


@pytest.mark.parametrize("voices", [0, 2])
def test_chorus_delay_follows_the_lfo(voices):
    """An impulse every 1000 samples comes out where the voices' delays say. Voice v reads
    at n - D_v(n), D_v(n) = delay_ms + depth_ms * sin(2 pi (rate n / SR + v / V)) in samples:
    an impulse written at s leaves voice v at the o with o - D_v(o) = s (found by iteration);
    the output's centroid is their mean weighted by each blip's area, 1 / (1 - D_v'(o)) (a
    read pointer moving against the signal stretches the blip: the Doppler factor)."""
    n = 2 * SR
    period = 1000
    x = np.zeros(n)
    x[::period] = 1.0
    rate, depth, delay = 2.0, 4.0, 12.0
    y = run(C, *make(C, {"rate_hz": rate, "depth_ms": depth, "delay_ms": delay, "mix": 1.0,
                         "voices": voices, "spread": 0.0}), x, x)[0]
    starts = np.arange(0, n - period, period)
    got = centroids(y, starts, period) - starts
    nv = voices + 1
    outs, weights = [], []
    for v in range(nv):
        o = starts.astype(float)
        for _ in range(30):
            o = starts + (delay + depth * np.sin(2 * np.pi * (rate * o / SR + v / nv))) \
                * SR / 1000
        outs.append(o)
        slope = depth / 1000 * 2 * np.pi * rate * np.cos(2 * np.pi * (rate * o / SR + v / nv))
        weights.append(1 / (1 - slope))
    want = np.average(outs, axis=0, weights=weights) - starts
    assert np.abs(got - want).max() < 0.05
    if nv == 1:
        assert got.max() - got.min() > 0.95 * 2 * depth * SR / 1000


def test_chorus_widens_a_mono_input_with_spread():
    x = noise(2 * SR)
    wide = run(C, *make(C, {"spread": 1.0, "depth_ms": 4.0, "rate_hz": 1.0}), x, x)
    assert correlation(wide[0][SR // 2:], wide[1][SR // 2:]) < 0.9
    for voices in (0, 2):
        same = run(C, *make(C, {"spread": 0.0, "voices": voices, "depth_ms": 4.0}), x, x)
        assert np.array_equal(same[0], same[1])
        assert correlation(same[0], same[1]) == pytest.approx(1.0, abs=1e-12)


def test_chorus_feedback_repeats_the_delay():
    x = np.zeros(4000)
    x[0] = 1.0
    y = run(C, *make(C, {"depth_ms": 0.0, "delay_ms": 10.0, "mix": 1.0, "feedback": 0.5}),
            x, x)[0]
    assert y[480] == pytest.approx(1.0) and y[960] == pytest.approx(0.5)
    assert y[1440] == pytest.approx(0.25)
    assert np.abs(np.delete(y, [480, 960, 1440, 1920, 2400, 2880, 3360, 3840])).max() < 1e-15


# ---- flanger ----------------------------------------------------------------------------------

def spectrum_db(h, nfft=1 << 16):
    f = np.fft.rfftfreq(nfft, 1 / SR)
    return f, 20 * np.log10(np.abs(np.fft.rfft(h, nfft)) + 1e-300)


def extrema(f, mag, lo_hz, hi_hz, kind):
    """Frequencies of the local maxima ("max") or minima ("min") of mag within [lo, hi]."""
    m = mag if kind == "max" else -mag
    k = np.nonzero((m[1:-1] > m[:-2]) & (m[1:-1] >= m[2:]))[0] + 1
    k = k[(f[k] >= lo_hz) & (f[k] <= hi_hz)]
    return f[k]


@pytest.mark.parametrize("delay_ms", [2.0, 1.2345])
def test_flanger_with_depth_zero_is_dry_plus_the_input_delayed(delay_ms):
    x = noise(4000)
    for mix in (1.0, 0.5):
        y = run(F, *make(F, {"depth": 0.0, "delay_ms": delay_ms, "mix": mix,
                             "feedback": 0.0}), x, x)
        ref = (1 - mix) * x + mix * hermite_delay(x, delay_ms * SR / 1000)
        assert np.allclose(y[0], ref, atol=1e-12) and np.allclose(y[1], ref, atol=1e-12)


@pytest.mark.parametrize("fb", [0.8, -0.8])
@pytest.mark.parametrize("delay_ms", [2.0, 1.2345])
def test_flanger_comb_peaks_sit_at_multiples_of_one_over_the_delay(fb, delay_ms):
    """Wet only, LFO still: z^-D / (1 - fb z^-D) peaks at k / D (fb > 0), at (k + 1/2) / D
    (fb < 0), and dips half way between; measured on the impulse response."""
    n = 1 << 14
    x = np.zeros(n)
    x[0] = 1.0
    h = run(F, *make(F, {"depth": 0.0, "delay_ms": delay_ms, "mix": 1.0, "feedback": fb}),
            x, x)[0]
    f, mag = spectrum_db(h)
    f0 = 1000 / delay_ms
    shift = 0.0 if fb > 0 else 0.5
    peaks = extrema(f, mag, 0.3 * f0, 5.2 * f0, "max")
    want = (np.arange(len(peaks)) + 1 - shift) * f0
    assert len(peaks) >= 4
    assert np.allclose(peaks, want, rtol=0.03)
    top = 20 * np.log10(1 / (1 - abs(fb)))
    assert np.interp(want[0], f, mag) == pytest.approx(top, abs=0.5)
    dips = extrema(f, mag, 0.3 * f0, 5.2 * f0, "min")
    assert np.allclose(dips, (np.arange(len(dips)) + (0.5 if fb > 0 else 1.0)) * f0, rtol=0.03)


def test_flanger_half_dry_half_wet_notches_at_odd_halves_of_one_over_the_delay():
    n = 1 << 13
    x = np.zeros(n)
    x[0] = 1.0
    h = run(F, *make(F, {"depth": 0.0, "delay_ms": 1.0, "mix": 0.5, "feedback": 0.0}),
            x, x)[0]
    f, mag = spectrum_db(h)
    notches = extrema(f, mag, 100, 8000, "min")
    assert np.allclose(notches, (np.arange(len(notches)) + 0.5) * 1000, rtol=0.02)
    assert len(notches) == 8 and np.interp(500, f, mag) < -60


def test_flanger_delay_follows_the_lfo():
    n = SR
    period = 500
    x = np.zeros(n)
    x[::period] = 1.0
    rate, depth, delay = 3.0, 0.8, 5.0
    y = run(F, *make(F, {"rate_hz": rate, "depth": depth, "delay_ms": delay, "mix": 1.0,
                         "feedback": 0.0}), x, x)[0]
    starts = np.arange(0, n - period, period)
    got = centroids(y, starts, period) - starts
    o = starts.astype(float)
    for _ in range(30):
        o = starts + delay * (1 + depth * np.sin(2 * np.pi * rate * o / SR)) * SR / 1000
    assert np.abs(got - (o - starts)).max() < 0.05
    assert got.max() - got.min() > 0.95 * 2 * depth * delay * SR / 1000


# ---- phaser -----------------------------------------------------------------------------------

def impulse_response(unit, overrides, n=1 << 14):
    x = np.zeros(n)
    x[0] = 1.0
    return run(unit, *make(unit, overrides), x, x)


def phaser_response(f, fc, stages, fb, mix):
    """The analytic frequency response: dry + mix (A^N / (1 - fb z^-1 A^N) - dry)."""
    t = math.tan(math.pi * fc / SR)
    a = (t - 1) / (t + 1)
    z1 = np.exp(-2j * np.pi * f / SR)
    ap = ((a + z1) / (1 + a * z1)) ** stages
    wet = ap / (1 - fb * z1 * ap)
    return 1 + mix * (wet - 1)


@pytest.mark.parametrize("choice,stages", [(0, 4), (1, 6), (2, 8), (3, 12)])
@pytest.mark.parametrize("fc", [440.0, 2500.0])
def test_phaser_frozen_has_n_over_two_notches_where_the_stages_phase_is_odd_halves(
        choice, stages, fc):
    h = impulse_response(P, {"stages": choice, "min_hz": fc, "max_hz": fc, "mix": 0.5,
                             "feedback": 0.0})[0]
    f, mag = spectrum_db(h)
    notches = extrema(f, mag, 5, SR / 2 - 50, "min")
    notches = notches[np.interp(notches, f, mag) < -30]
    t = math.tan(math.pi * fc / SR)
    want = SR / math.pi * np.arctan(t * np.tan((2 * np.arange(stages // 2) + 1) * np.pi
                                               / (2 * stages)))
    assert len(notches) == stages // 2
    assert np.allclose(notches, want, rtol=0.01, atol=2.0)


@pytest.mark.parametrize("fb", [0.0, 0.6, -0.6])
@pytest.mark.parametrize("choice,stages", [(0, 4), (3, 12)])
def test_phaser_frozen_matches_the_analytic_response_with_feedback(fb, choice, stages):
    fc = 1000.0
    for mix in (0.5, 1.0):
        h = impulse_response(P, {"stages": choice, "min_hz": fc, "max_hz": fc, "mix": mix,
                                 "feedback": fb})
        assert np.array_equal(h[0], h[1])
        got = np.abs(np.fft.rfft(h[0]))
        f = np.fft.rfftfreq(len(h[0]), 1 / SR)
        want = np.abs(phaser_response(f, fc, stages, fb, mix))
        assert np.abs(got - want).max() < 1e-6


def test_phaser_sweeps_between_min_and_max_and_spreads_the_sides():
    """A 700 Hz sine through 4 stages swept 200..5000 Hz at 4 Hz: the output level rises and
    falls as the notches pass (an envelope that repeats with the LFO's period), the left and right swept
    half a cycle apart with spread 1, the same with spread 0."""
    n = SR
    x = 0.5 * np.sin(2 * np.pi * 700 * np.arange(n) / SR)
    over = {"min_hz": 200.0, "max_hz": 5000.0, "rate_hz": 4.0, "mix": 0.5}
    y = run(P, *make(P, dict(over, spread=1.0)), x, x)
    env = np.sqrt(np.convolve(y[0][2000:] ** 2, np.ones(96) / 96, "valid"))   # after the onset
    assert env.max() > 0.33 and env.min() < 0.035          # the RMS of the sine: 0.354
    period = SR // 4                                           # the envelope repeats with the LFO
    assert np.abs(env[period:] - env[:-period]).max() < 1e-3
    assert np.abs(env[period // 2:] - env[:-(period // 2)]).max() > 0.1
    assert correlation(y[0] - y[0].mean(), y[1] - y[1].mean()) < 0.9
    same = run(P, *make(P, dict(over, spread=0.0)), x, x)
    assert np.array_equal(same[0], same[1])
