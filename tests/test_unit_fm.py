"""The FM instrument against analytic references: Bessel sidebands, the eight algorithms'
routing against phase-modulation equations computed here, feedback at its maximum, velocity."""
import math

import numpy as np
import pytest
from scipy.special import jv

from engine.rt.events import K_NOTE_ON
from engine.rt.units import fm as F
from tests.synthkit import harmonic_amps, note_hz, patch, render, semitones
from tests.test_units import SR

A = math.sqrt(0.5)          # a centred voice's level in each channel


def op_over(k, **fields):
    """Operator k's parameters (steady: fast attack, full sustain, no velocity, no detune)."""
    d = dict(attack_ms=0.5, sustain=1.0, velocity=0.0, detune_cents=0.0)
    d.update(fields)
    return {f"op{k}_{name}": float(v) for name, v in d.items()}


def sidebands(c, m, index, count):
    """|amplitude| of harmonics 1..count of sin(c w t + I sin(m w t)) = sum over n of
    J_n(I) sin((c + n m) w t); negative frequencies fold back with their sign flipped."""
    amp = np.zeros(count + 1)
    for n in range(-80, 81):
        k = c + n * m
        if k != 0 and abs(k) <= count:
            amp[abs(k)] += math.copysign(1.0, k) * jv(n, index)
    return np.abs(amp[1:])


@pytest.mark.parametrize("c, m", [(1, 1), (5, 1)], ids=["ratio 1:1", "carrier 5, mod 1"])
@pytest.mark.parametrize("index", [1.0, 2.5])
def test_two_operators_make_bessel_sidebands(c, m, index):
    """op2 (ratio m, level I / MOD_INDEX) into op1 (ratio c) in algorithm 1, op3 and op4
    silent: every partial above -60 dB is at the carrier's level times |J_n(I)| (folded)
    within 0.1 dB."""
    f0 = 431.3
    over = patch(F, **op_over(1, ratio=c, level=1.0),
                 **op_over(2, ratio=m, level=index / F.MOD_INDEX))
    left, _, _, _ = render(F, 80000, [(0, K_NOTE_ON, float(semitones(f0)), 1.0, 1.0)], over)
    count = 16
    got = harmonic_amps(left, f0, count)
    want = sidebands(c, m, index, count) * A
    loud = want > A * 1e-3
    assert loud.sum() >= 5
    err_db = np.abs(20 * np.log10(got[loud] / want[loud]))
    assert err_db.max() < 0.1


# The chart in TX81Z operator numbers: who modulates whom, and the carriers.
CHART = {
    1: ({3: [4], 2: [3], 1: [2]}, [1]),
    2: ({2: [3, 4], 1: [2]}, [1]),
    3: ({2: [3], 1: [2, 4]}, [1]),
    4: ({3: [4], 1: [2, 3]}, [1]),
    5: ({3: [4], 1: [2]}, [1, 3]),
    6: ({3: [4], 2: [4], 1: [4]}, [1, 2, 3]),
    7: ({3: [4]}, [1, 2, 3]),
    8: ({}, [1, 2, 3, 4]),
}


def reference(algorithm, ratios, levels, f0, n):
    """The algorithm as phase-modulation equations over samples 0..n-1 (phases from 0)."""
    t = np.arange(n)
    inc = f0 / SR
    mods, carriers = CHART[algorithm]
    out = {}
    for k in (4, 3, 2, 1):                       # modulators before their targets
        phase = 2 * np.pi * ((t * inc * ratios[k]) % 1.0)
        phase = phase + F.MOD_INDEX * sum(out[j] for j in mods.get(k, []))
        out[k] = levels[k] * np.sin(phase)
    return A * sum(out[k] for k in carriers) / len(carriers)


@pytest.mark.parametrize("algorithm", range(1, 9))
def test_each_algorithm_routes_as_the_yamaha_chart(algorithm):
    """All four operators on (distinct ratios and levels, no feedback): the output equals the
    chart's phase-modulation equations computed here, sample for sample."""
    ratios = {1: 1.0, 2: 2.0, 3: 3.0, 4: 0.5}
    levels = {1: 0.8, 2: 0.3, 3: 0.6, 4: 0.2}
    over = patch(F, algorithm=float(algorithm - 1), feedback=0.0)
    for k in (1, 2, 3, 4):
        over.update(op_over(k, ratio=ratios[k], level=levels[k]))
    f0 = note_hz(57.0)
    n = 12000
    left, right, _, _ = render(F, n, [(0, K_NOTE_ON, 57.0, 1.0, 1.0)], over)
    want = reference(algorithm, ratios, levels, f0, n)
    assert np.allclose(left[2400:], want[2400:], atol=1e-9)   # after the attack's ramp
    assert np.array_equal(left, right)


def test_the_chart_is_the_ymfm_table():
    """fm.ROUTES / CARRIERS (the kernel's tables) say what CHART says."""
    for a in range(8):
        mods, carriers = CHART[a + 1]
        edges = {(m, t) for t, ms in mods.items() for m in ms}
        assert set(F.ROUTES[a]) == edges and set(F.CARRIERS[a]) == set(carriers)


@pytest.mark.parametrize("period", [486, 39])
def test_feedback_at_its_maximum_stays_finite_bounded_and_periodic(period):
    """op4 alone (algorithm 8) with feedback 1, at a whole number of samples per period:
    bounded by its level, exactly periodic once settled (the averaged loop does not break
    into chaos or a period-2 oscillation), with a saw-like spectrum (the first harmonics
    falling, none missing)."""
    f0 = SR / period
    over = patch(F, algorithm=7.0, feedback=1.0, op1_level=0.0,
                 **op_over(4, ratio=1.0, level=1.0))
    left, right, _, _ = render(F, 96000, [(0, K_NOTE_ON, float(semitones(f0)), 1.0, 1.0)],
                               over)
    assert np.all(np.isfinite(left)) and np.abs(left).max() <= A / 4 * (1 + 1e-9)
    tail = left[48000:]
    assert np.abs(tail[period:] - tail[:-period]).max() < 1e-6
    assert np.abs(tail[1:] - tail[:-1]).max() > 1e-3
    # no oscillation at fs / 2: a one-sample loop without the averaging rings at +-level
    # from sample to sample (second differences near 4 x level)
    assert np.abs(np.diff(tail, 2)).max() < 2.0 * A / 4
    count = min(10, int(SR / 2 / f0))
    amps = harmonic_amps(left, f0, count)
    rel = 20 * np.log10(amps / amps[0])
    assert np.all(np.diff(rel[:6]) < 0) and rel.min() > -45.0


def test_everything_at_its_maximum_stays_finite():
    over = patch(F, algorithm=0.0, feedback=1.0, unison=7.0, unison_detune_cents=100.0)
    for k in (1, 2, 3, 4):
        over.update(op_over(k, ratio=32.0, level=1.0, velocity=1.0))
    ev = [(0, K_NOTE_ON, 127.0, 1.0, 1.0), (100, K_NOTE_ON, 0.0, 1.0, 1.0)]
    left, right, _, _ = render(F, 24000, ev, over)
    voices = 16                                    # two notes of eight unison voices
    assert np.all(np.isfinite(left)) and np.abs(left).max() <= voices * 1.0
    assert np.all(np.isfinite(right)) and np.abs(right).max() <= voices * 1.0


def test_velocity_sensitivity_scales_an_operator_s_level():
    """op1 with velocity 1: the level is proportional to the velocity; with 0, constant."""
    for sens, ratio in ((1.0, 0.5), (0.0, 1.0)):
        over = patch(F, **op_over(1, ratio=1.0, level=1.0, velocity=sens))
        peaks = []
        for vel in (1.0, 0.5):
            left, _, _, _ = render(F, 9600, [(0, K_NOTE_ON, 60.0, vel, 1.0)], over)
            peaks.append(np.abs(left[4800:]).max())
        assert peaks[1] / peaks[0] == pytest.approx(ratio, rel=1e-3)
