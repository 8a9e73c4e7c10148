"""Formant (vowel) filter: five parallel band-pass resonators tuned to a sung vowel
(AUDIO THREAD).

The table is the "Formant values" appendix of the Csound manual (after the data used for
Csound's fof vocal examples): for each voice (bass, tenor, countertenor, alto, soprano) and
vowel (a, e, i, o, u) five formants, each a centre frequency (Hz), a level (dB, F1 = 0) and a
bandwidth (Hz). See FORMANT_HZ, FORMANT_DB and FORMANT_BW_HZ below.

* `vowel` is continuous: 0 a, 1 e, 2 i, 3 o, 4 u; between two vowels the frequencies and
  bandwidths are interpolated in the log domain (halfway between two vowels a formant sits at
  the geometric mean of theirs) and the levels in dB. `voice` is a choice, but its smoothed
  value moves through the table the same way, so a change of voice glides (50 ms) instead of
  jumping.
* `shift_st` moves every formant by that many semitones (bandwidths with them: the shape is
  kept on a log-frequency axis); `resonance` multiplies every Q (centre / bandwidth).
* Each formant is a trapezoidal (TPT) state-variable filter's band-pass output scaled to 0 dB
  at its centre (Zavalishin, "The Art of VA Filter Design", ch. 4), times the formant's level;
  the five are summed. Frequencies are kept in 20 Hz..0.45 x sample rate, Q in 0.5..200.
* out = dry_level * in + wet_level * formants(in), per channel (the two channels share the
  coefficients).

Parameters are smoothed per sample; the coefficients are recomputed only in a sample where a
value they depend on moved, so a settled filter costs no trigonometry and the output does not
depend on how the block is cut.
"""
import math

import numpy as np
from numba import njit

from engine.rt.dsp import JIT, flush
from engine.rt.units.base import (IO_IN_L, IO_IN_R, IO_OUT_L, IO_OUT_R, Param, clampf, declare,
                                  finite_or_zero, smooth_coef_s, smooth_param)

NAME = "formant"
VOICES = ("bass", "tenor", "countertenor", "alto", "soprano")
VOWELS = ("a", "e", "i", "o", "u")
N_FORMANTS = 5

# [voice][vowel][formant], Csound manual, appendix "Formant values"
FORMANT_HZ = np.array([
    [[600, 1040, 2250, 2450, 2750], [400, 1620, 2400, 2800, 3100],     # bass a e
     [250, 1750, 2600, 3050, 3340], [400, 750, 2400, 2600, 2900],      # bass i o
     [350, 600, 2400, 2675, 2950]],                                    # bass u
    [[650, 1080, 2650, 2900, 3250], [400, 1700, 2600, 3200, 3580],     # tenor
     [290, 1870, 2800, 3250, 3540], [400, 800, 2600, 2800, 3000],
     [350, 600, 2700, 2900, 3300]],
    [[660, 1120, 2750, 3000, 3350], [440, 1800, 2700, 3000, 3300],     # countertenor
     [270, 1850, 2900, 3350, 3590], [430, 820, 2700, 3000, 3300],
     [370, 630, 2750, 3000, 3400]],
    [[800, 1150, 2800, 3500, 4950], [400, 1600, 2700, 3300, 4950],     # alto
     [350, 1700, 2700, 3700, 4950], [450, 800, 2830, 3500, 4950],
     [325, 700, 2530, 3500, 4950]],
    [[800, 1150, 2900, 3900, 4950], [350, 2000, 2800, 3600, 4950],     # soprano
     [270, 2140, 2950, 3900, 4950], [450, 800, 2830, 3800, 4950],
     [325, 700, 2700, 3800, 4950]],
], dtype=np.float64)
FORMANT_DB = np.array([
    [[0, -7, -9, -9, -20], [0, -12, -9, -12, -18], [0, -30, -16, -22, -28],
     [0, -11, -21, -20, -40], [0, -20, -32, -28, -36]],
    [[0, -6, -7, -8, -22], [0, -14, -12, -14, -20], [0, -15, -18, -20, -30],
     [0, -10, -12, -12, -26], [0, -20, -17, -14, -26]],
    [[0, -6, -23, -24, -38], [0, -14, -18, -20, -20], [0, -24, -24, -36, -36],
     [0, -10, -26, -22, -34], [0, -20, -23, -30, -34]],
    [[0, -4, -20, -36, -60], [0, -24, -30, -35, -60], [0, -20, -30, -36, -60],
     [0, -9, -16, -28, -55], [0, -12, -30, -40, -64]],
    [[0, -6, -32, -20, -50], [0, -20, -15, -40, -56], [0, -12, -26, -26, -44],
     [0, -11, -22, -22, -50], [0, -16, -35, -40, -60]],
], dtype=np.float64)
FORMANT_BW_HZ = np.array([
    [[60, 70, 110, 120, 130], [40, 80, 100, 120, 120], [60, 90, 100, 120, 120],
     [40, 80, 100, 120, 120], [40, 80, 100, 120, 120]],
    [[80, 90, 120, 130, 140], [70, 80, 100, 120, 120], [40, 90, 100, 120, 120],
     [40, 80, 100, 120, 120], [40, 60, 100, 120, 120]],
    [[80, 90, 120, 130, 140], [70, 80, 100, 120, 120], [40, 90, 100, 120, 120],
     [40, 80, 100, 120, 120], [40, 60, 100, 120, 120]],
    [[80, 90, 120, 130, 140], [60, 80, 120, 150, 200], [50, 100, 120, 150, 200],
     [70, 80, 100, 130, 135], [50, 60, 170, 180, 200]],
    [[80, 90, 120, 130, 140], [60, 100, 120, 150, 200], [60, 90, 100, 120, 120],
     [70, 80, 100, 130, 135], [50, 60, 170, 180, 200]],
], dtype=np.float64)
LOG_HZ = np.log(FORMANT_HZ)
LOG_BW = np.log(FORMANT_BW_HZ)

PARAMS = declare([
    Param("vowel", 0.0, 4.0, 0.0, "lin", 0.05,
          doc="0 a, 1 e, 2 i, 3 o, 4 u; in between, a log-frequency morph"),
    Param("voice", 0.0, 4.0, 1.0, "choice", 0.05, choices=VOICES,
          doc="whose formants (Csound table); a change glides through the table"),
    Param("shift_st", -12.0, 12.0, 0.0, "lin", 0.05,
          doc="every formant (and its bandwidth) moved by this many semitones"),
    Param("resonance", 0.25, 4.0, 1.0, "log", 0.05,
          doc="Q multiplier: above 1 narrower, more vocal; below 1 broader"),
    Param("wet_level", 0.0, 1.0, 1.0, "lin", 0.02, doc="formant filter level, linear"),
    Param("dry_level", 0.0, 1.0, 0.0, "lin", 0.02, doc="input level passed through, linear"),
])
P_VOWEL, P_VOICE, P_SHIFT_ST, P_RESONANCE, P_WET_LEVEL, P_DRY_LEVEL = range(6)
N = len(PARAMS)

F_MIN_HZ = 20.0
Q_MIN, Q_MAX = 0.5, 200.0

# state: per formant, coefficients (a1, a2, a3, band-pass scale k * level), then per formant
# and channel the SVF's two integrator states; the values the coefficients were made from
C_A1, C_A2, C_A3, C_G = range(4)
COEF = 4
S_COEF = 0
S_IC = S_COEF + COEF * N_FORMANTS          # [formant][channel][2]
S_KEY = S_IC + 4 * N_FORMANTS              # vowel, voice, shift, resonance, sample rate
STATE_SIZE = S_KEY + 5


def state_size(sample_rate):
    return STATE_SIZE


@njit(**JIT)
def reset(state, sample_rate):
    for i in range(state.shape[0]):
        state[i] = 0.0
    for j in range(5):
        state[S_KEY + j] = -1.0            # no vowel (nor voice...) is -1: the first sample designs


@njit(inline="always", **JIT)
def _cell(voice, vowel):
    """The table cell below (voice, vowel) and the fractions towards the next ones."""
    vi = int(voice)
    if vi > 3:
        vi = 3
    wi = int(vowel)
    if wi > 3:
        wi = 3
    return vi, voice - vi, wi, vowel - wi


@njit(**JIT)
def formant_at(voice, vowel, k, shift_st):
    """Formant k (0..4) at a (fractional) voice and vowel, shifted: (Hz, bandwidth Hz, dB).
    Voice in 0..4, vowel in 0..4 (clamped)."""
    voice = clampf(voice, 0.0, 4.0)
    vowel = clampf(vowel, 0.0, 4.0)
    vi, fv, wi, fw = _cell(voice, vowel)
    lf = ((1.0 - fv) * ((1.0 - fw) * LOG_HZ[vi, wi, k] + fw * LOG_HZ[vi, wi + 1, k])
          + fv * ((1.0 - fw) * LOG_HZ[vi + 1, wi, k] + fw * LOG_HZ[vi + 1, wi + 1, k]))
    lb = ((1.0 - fv) * ((1.0 - fw) * LOG_BW[vi, wi, k] + fw * LOG_BW[vi, wi + 1, k])
          + fv * ((1.0 - fw) * LOG_BW[vi + 1, wi, k] + fw * LOG_BW[vi + 1, wi + 1, k]))
    db = ((1.0 - fv) * ((1.0 - fw) * FORMANT_DB[vi, wi, k] + fw * FORMANT_DB[vi, wi + 1, k])
          + fv * ((1.0 - fw) * FORMANT_DB[vi + 1, wi, k] + fw * FORMANT_DB[vi + 1, wi + 1, k]))
    shift = math.log(2.0) * shift_st / 12.0
    return math.exp(lf + shift), math.exp(lb + shift), db


@njit(**JIT)
def _design(state, voice, vowel, shift_st, resonance, sr):
    for k in range(N_FORMANTS):
        f, bw, db = formant_at(voice, vowel, k, shift_st)
        q = clampf(resonance * f / bw, Q_MIN, Q_MAX)
        f = clampf(f, F_MIN_HZ, 0.45 * sr)
        g = math.tan(math.pi * f / sr)
        kq = 1.0 / q
        a1 = 1.0 / (1.0 + g * (g + kq))
        o = S_COEF + COEF * k
        state[o + C_A1] = a1
        state[o + C_A2] = g * a1
        state[o + C_A3] = g * g * a1
        state[o + C_G] = kq * math.pow(10.0, db / 20.0)    # 0 dB band-pass, times the level


@njit(**JIT)
def process(state, params, bus, io, i0, i1, sample_rate):
    il, ir, ol, orr = io[IO_IN_L], io[IO_IN_R], io[IO_OUT_L], io[IO_OUT_R]
    sr = clampf(sample_rate, 1000.0, 1e6)
    cs = smooth_coef_s(0.02, sr)
    cm = smooth_coef_s(0.05, sr)
    for i in range(i0, i1):
        vowel = clampf(smooth_param(params, N, P_VOWEL, cm), 0.0, 4.0)
        voice = clampf(smooth_param(params, N, P_VOICE, cm), 0.0, 4.0)
        shift = clampf(smooth_param(params, N, P_SHIFT_ST, cm), -12.0, 12.0)
        res = clampf(smooth_param(params, N, P_RESONANCE, cm), 0.25, 4.0)
        wet = clampf(smooth_param(params, N, P_WET_LEVEL, cs), 0.0, 1.0)
        dry = clampf(smooth_param(params, N, P_DRY_LEVEL, cs), 0.0, 1.0)
        if (vowel != state[S_KEY] or voice != state[S_KEY + 1] or shift != state[S_KEY + 2]
                or res != state[S_KEY + 3] or sr != state[S_KEY + 4]):
            state[S_KEY] = vowel
            state[S_KEY + 1] = voice
            state[S_KEY + 2] = shift
            state[S_KEY + 3] = res
            state[S_KEY + 4] = sr
            _design(state, voice, vowel, shift, res, sr)
        xl = finite_or_zero(bus[il, i])
        xr = finite_or_zero(bus[ir, i])
        yl = 0.0
        yr = 0.0
        for k in range(N_FORMANTS):
            o = S_COEF + COEF * k
            a1 = state[o + C_A1]
            a2 = state[o + C_A2]
            a3 = state[o + C_A3]
            g = state[o + C_G]
            s = S_IC + 4 * k
            ic1 = state[s]
            ic2 = state[s + 1]
            v3 = xl - ic2
            v1 = a1 * ic1 + a2 * v3
            v2 = ic2 + a2 * ic1 + a3 * v3
            state[s] = flush(2.0 * v1 - ic1)
            state[s + 1] = flush(2.0 * v2 - ic2)
            yl += g * v1
            ic1 = state[s + 2]
            ic2 = state[s + 3]
            v3 = xr - ic2
            v1 = a1 * ic1 + a2 * v3
            v2 = ic2 + a2 * ic1 + a3 * v3
            state[s + 2] = flush(2.0 * v1 - ic1)
            state[s + 3] = flush(2.0 * v2 - ic2)
            yr += g * v1
        bus[ol, i] = dry * xl + wet * yl
        bus[orr, i] = dry * xr + wet * yr
