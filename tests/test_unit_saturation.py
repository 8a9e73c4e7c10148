"""Saturation: the curves, oversampling against aliasing, the constant delay and the dry blend."""
import numpy as np
import pytest

from engine.rt.units import saturation as S
from tests.test_units import SR, make, run


def sine(hz, n, amp=0.5):
    return amp * np.sin(2 * np.pi * hz * np.arange(n) / SR)


def alias_db(y, f0):
    """Energy of everything that is not a harmonic of f0 (aliases, after a Hann window),
    relative to the total, in dB."""
    n = len(y)
    spec = np.abs(np.fft.rfft(y * np.hanning(n))) ** 2
    freqs = np.fft.rfftfreq(n, 1 / SR)
    harmonic = np.zeros_like(spec, dtype=bool)
    for k in range(1, int(SR / 2 / f0) + 1):
        harmonic |= np.abs(freqs - k * f0) < 30
    harmonic |= freqs < 20
    return 10 * np.log10(spec[~harmonic].sum() / spec.sum())


@pytest.mark.parametrize("curve", [0, 1, 2])
def test_oversampling_removes_the_aliases(curve):
    n = SR
    x = sine(4700, n, 0.8)          # odd harmonics at 14.1, 23.5, 32.9 ... kHz fold back at 1x
    got = {}
    for mode in (0, 1, 2):
        y = run(S, *make(S, {"drive_db": 18.0, "curve": curve, "oversample": mode}), x, x)[0]
        got[mode] = alias_db(y[4800:], 4700)
    # measured here: tanh -19 / -40 / -83 dB, soft -15 / -29 / -49, hard -17 / -37 / -49
    assert got[1] < got[0] - 12
    assert got[2] < got[1] - 10
    assert got[2] < (-75 if curve == 0 else -45)


def test_the_curves_and_their_levels():
    x = np.linspace(-3, 3, 4801)
    for curve, ref in ((0, np.tanh(x)), (2, np.clip(x, -1, 1)),
                       (1, np.where(np.abs(x) < 1, x - x ** 3 / 3, np.sign(x) * 2 / 3))):
        y = run(S, *make(S, {"curve": curve, "oversample": 0}), x, x)[0]
        assert np.allclose(y, ref, atol=1e-12)


@pytest.mark.parametrize("mode", [0, 1, 2])
def test_delay_is_constant_and_the_dry_blend_does_not_comb(mode):
    """At a low level (the curves are linear there) the wet path is the input delayed by
    latency_samples: half wet, half dry is that same signal, not a comb filter."""
    x = sine(500, 4000, 0.001) + sine(5000, 4000, 0.0005)
    d = S.latency_samples(mode)
    for mix in (1.0, 0.5):
        y = run(S, *make(S, {"oversample": mode, "curve": 0, "mix": mix}), x, x)[0]
        err = y[200 + d:] - x[200:len(x) - d]
        assert np.abs(err).max() < 1e-3 * 0.0015          # -60 dB of the signal
    late = run(S, *make(S, {"oversample": mode, "curve": 0}), x, x)[0]
    if d:
        off = y[200 + d - 1:-1] - x[200:len(x) - d]          # one sample off is clearly worse
        assert np.abs(off).max() > 10 * np.abs(late[200 + d:] - x[200:len(x) - d]).max()


def test_mix_zero_is_the_dry_signal_delayed():
    x = sine(440, 3000, 0.9)
    for mode in (0, 1, 2):
        y = run(S, *make(S, {"oversample": mode, "mix": 0.0, "drive_db": 30.0}), x, x)[0]
        d = S.latency_samples(mode)
        assert np.allclose(y[d:], x[:len(x) - d], atol=1e-15)
