"""Helpers for the instrument tests: a pure-sine patch per instrument, rendering with events,
and measurements (frequency from zero crossings, level, harmonic spectra)."""
import math

import numpy as np
from scipy.signal.windows import blackmanharris

from engine.rt.units import fm, sampler, wavetable
from tests.test_units import SR, make, run

INSTRUMENTS = [wavetable, fm, sampler]
IDS = [u.NAME for u in INSTRUMENTS]
MATRIX_INSTRUMENTS = [u for u in INSTRUMENTS if hasattr(u, "MP")]   # with a modulation matrix
MATRIX_IDS = [u.NAME for u in MATRIX_INSTRUMENTS]

SINE = {
    # a sine at the note's pitch, full level as soon as it starts, no filter, no vibrato
    "wavetable": dict(table=3.0, filter=0.0, attack_ms=0.5, sustain=1.0, release_ms=20.0,
                      velocity_sens=0.0, gain_db=0.0, vibrato_st=0.0, polyphony=16.0),
    "fm": dict(algorithm=0.0, op1_level=1.0, op2_level=0.0, op3_level=0.0, op4_level=0.0,
               op1_attack_ms=0.5, op1_sustain=1.0, op1_release_ms=20.0, op1_velocity=0.0,
               op1_detune_cents=0.0, op1_ratio=1.0, gain_db=0.0, vibrato_st=0.0,
               polyphony=16.0),
    # its built-in sine: looped, root A4, peak 1, starting at phase 0
    "sampler": dict(builtin=1.0, filter=0.0, attack_ms=0.5, sustain=1.0, release_ms=20.0,
                    velocity_sens=0.0, gain_db=0.0, vibrato_st=0.0, polyphony=16.0),
}


ENVELOPE = ("attack_ms", "decay_ms", "sustain", "release_ms")


def patch(unit, **over):
    """The unit's sine patch with `over` on top (parameter names as declared; the envelope
    names attack_ms, decay_ms, sustain, release_ms mean the carrier's, op1_*, for FM)."""
    p = dict(SINE[unit.NAME])
    for k, v in over.items():
        p["op1_" + k if unit.NAME == "fm" and k in ENVELOPE else k] = v
    return p


def render(unit, n, events, over=None, table=None):
    """(left, right, state) of `unit` over n samples with its sine patch and `over`."""
    state, params = make(unit, over)
    if table is not None:
        unit.install(state, table)
    z = np.zeros(n)
    left, right = run(unit, state, params, z, z, events=sorted(events, key=lambda e: e[0]))
    return left, right, state, params


def note_hz(note):
    return 440.0 * 2.0 ** ((note - 69.0) / 12.0)


def semitones(hz):
    return 69.0 + 12.0 * np.log2(np.asarray(hz) / 440.0)


def crossings(y):
    """Times (fractional samples) of the upward zero crossings of y."""
    i = np.nonzero((y[:-1] <= 0.0) & (y[1:] > 0.0))[0]
    return i + y[i] / (y[i] - y[i + 1])


def pitch_track(y):
    """(time, semitones) per period, from consecutive upward zero crossings."""
    t = crossings(y)
    period = np.diff(t)
    return 0.5 * (t[1:] + t[:-1]), semitones(SR / period)


def pitch_at(y, a, b):
    """Mean pitch (semitones) over samples [a, b)."""
    t = crossings(y[a:b])
    return float(semitones(SR * (len(t) - 1) / (t[-1] - t[0])))


def rms(y):
    return float(np.sqrt(np.mean(np.square(y))))


def spectrum(y, nfft=65536):
    """Amplitude spectrum of the last nfft samples with a 4-term Blackman-Harris window,
    scaled so a sine of amplitude A reads A at its peak bin."""
    seg = y[-nfft:]
    w = blackmanharris(nfft)
    return np.abs(np.fft.rfft(seg * w)) * 2.0 / w.sum()


def harmonic_amps(y, f0, count, nfft=65536):
    """Amplitudes of harmonics 1..count of f0 in the last nfft samples: the power summed
    over each one's main lobe (so f0 need not sit on a bin), by Parseval."""
    seg = y[-nfft:]
    w = blackmanharris(nfft)
    p = np.abs(np.fft.rfft(seg * w)) ** 2
    df = SR / nfft
    k = np.arange(len(p))
    amps = []
    for h in range(1, count + 1):
        lobe = np.abs(k - h * f0 / df) <= 4
        amps.append(math.sqrt(4.0 * p[lobe].sum() / (nfft * (w ** 2).sum())))
    return np.array(amps)


def alias_db(y, f0, nfft=65536, guard=16, top_hz=None):
    """Energy of the bins off the harmonics of f0 (below Nyquist, or below `top_hz`; DC
    excluded), relative to the fundamental, in dB (Blackman-Harris window; `guard` bins either
    side of a harmonic count as the harmonic)."""
    seg = y[-nfft:]
    p = np.abs(np.fft.rfft(seg * blackmanharris(nfft))) ** 2
    df = SR / nfft
    k = np.arange(len(p))
    on = k <= guard
    for h in range(1, int(SR / 2 / f0) + 1):
        on |= np.abs(k - h * f0 / df) <= guard
    fund = p[np.abs(k - f0 / df) <= guard].sum()
    off = ~on if top_hz is None else ~on & (k * df < top_hz)
    return 10.0 * math.log10(p[off].sum() / fund)
