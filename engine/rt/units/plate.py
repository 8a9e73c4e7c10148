"""Plate reverb: Dattorro's figure-of-eight tank (AUDIO THREAD).

After J. Dattorro, "Effect Design Part 1: Reverberator and Other Filters", JAES 45(9), 1997,
Figure 1 and Table 2 (delay lengths and output taps given at 29761 Hz, scaled here to the
sample rate and rounded):

    mono input (L + R) / 2 -> predelay -> bandwidth (one-pole lowpass) -> four input diffusers
    (allpasses of 142, 107, 379, 277 samples, gains 0.75, 0.75, 0.625, 0.625) -> the tank:
    two halves, each  input + cross-feed from the other half -> modulated allpass (672 / 908
    samples, gain -0.7, swept by a sine LFO, the halves in quadrature) -> delay (4453 / 4217)
    -> damping (one-pole lowpass) -> allpass (1800 / 2656, gain "decay diffusion 2" =
    clamp(decay + 0.15, 0.25, 0.5)) -> delay (3720 / 3163) -> cross-feed into the other half.
    Each output sums seven taps (x 0.6) from both halves' delays and allpasses (Table 2).

The allpasses are Dattorro's lattice form: w[n] = x[n] - g w[n - N], y[n] = w[n - N] + g w[n]
(H(z) = (g + z^-N) / (1 + g z^-N)).

decay_s is the RT60, by pole-radius scaling (Jot & Chaigne 1991): where Dattorro has one
"decay" gain at four places, every delay of N samples in the reverberator (each delay line,
the delay inside each allpass, each output tap) is scaled by r^N, r = 10^(-3 / (decay_s fs))
per sample. That is the lossless prototype (all decay gains 1, which is an allpass loop) with
z^-1 replaced by r z^-1 throughout, whose impulse response is the prototype's times r^n: it
falls 60 dB in decay_s exactly, apart from the damping (which takes more from the highs), the
bandwidth filter and the modulation. (With only the loop's delays scaled, the allpasses' own
recirculation, -3 dB per 672 samples at g = 0.7, would ring for about 0.45 s whatever decay_s
says.) "decay" in the decay diffusion formula is r^(D/4), D the loop delay (0.725 s): the gain
of one of Dattorro's four decay multipliers.

Parameters are smoothed per sample (engine.rt.units.base); coefficients are recomputed only
when a smoothed value they depend on moves. Reads of the modulated allpasses are 4-point
Hermite (engine.rt.units.moddelay.read); the predelay is linearly interpolated (exact at whole
samples). The output is out = dry_level * in + wet_level * wet, the wet pair mixed by width
(L' = (1 + w)/2 L + (1 - w)/2 R). Processing is sample by sample, so the output does not
depend on how the block is cut.
"""
import math

import numpy as np
from numba import njit

from engine.rt.dsp import JIT, flush
from engine.rt.units.base import (IO_IN_L, IO_IN_R, IO_OUT_L, IO_OUT_R, Param, clampf, declare,
                                  finite_or_zero, smooth_coef_s, smooth_param)
from engine.rt.units.moddelay import read

NAME = "plate"
FS_REF = 29761.0            # the sample rate of Dattorro's delay lengths and taps

DECAY_MIN_S, DECAY_MAX_S = 0.1, 30.0
PREDELAY_MAX_MS = 250.0
FILTER_MIN_HZ, FILTER_MAX_HZ = 200.0, 20000.0
MOD_DEPTH_MAX_MS = 1.0
MOD_RATE_MIN_HZ, MOD_RATE_MAX_HZ = 0.05, 5.0

PARAMS = declare([
    Param("decay_s", DECAY_MIN_S, DECAY_MAX_S, 2.5, "log", 0.05,
          doc="RT60 below the damping frequency: the tail falls 60 dB in this time"),
    Param("predelay_ms", 0.0, PREDELAY_MAX_MS, 10.0, "lin", 0.1,
          doc="time from the input to the tank (interpolated, glides)"),
    Param("bandwidth_hz", FILTER_MIN_HZ, FILTER_MAX_HZ, 12000.0, "log", 0.02,
          doc="one-pole lowpass on the input (below 0.45 x sample rate)"),
    Param("damping_hz", FILTER_MIN_HZ, FILTER_MAX_HZ, 8000.0, "log", 0.02,
          doc="one-pole lowpass in each tank half: highs die sooner"),
    Param("mod_depth_ms", 0.0, MOD_DEPTH_MAX_MS, 0.27, "lin", 0.05,
          doc="peak sweep of the tank's modulated allpasses (0.27 ms: Dattorro's 8 samples)"),
    Param("mod_rate_hz", MOD_RATE_MIN_HZ, MOD_RATE_MAX_HZ, 1.0, "log", 0.05,
          doc="rate of that sweep (the two halves in quadrature)"),
    Param("width", 0.0, 1.0, 1.0, "lin", 0.02,
          doc="stereo spread of the wet signal: 0 mono, 1 Dattorro's two outputs"),
    Param("wet_level", 0.0, 1.0, 0.3, "lin", 0.02, doc="reverb level, linear"),
    Param("dry_level", 0.0, 1.0, 1.0, "lin", 0.02, doc="input level passed through, linear"),
])
(P_DECAY_S, P_PREDELAY_MS, P_BANDWIDTH_HZ, P_DAMPING_HZ, P_MOD_DEPTH_MS, P_MOD_RATE_HZ,
 P_WIDTH, P_WET_LEVEL, P_DRY_LEVEL) = range(9)
N = len(PARAMS)

# rings: 0 predelay, 1..4 input diffusers, then per half (left, right): modulated allpass,
# delay 1, allpass 2, delay 2
RG_PRE = 0
RG_IN = 1
RG_L_MAP, RG_L_D1, RG_L_AP2, RG_L_D2 = 5, 6, 7, 8
RG_R_MAP, RG_R_D1, RG_R_AP2, RG_R_D2 = 9, 10, 11, 12
N_RINGS = 13
REF_LEN = np.array([0.0, 142.0, 107.0, 379.0, 277.0, 672.0, 4453.0, 1800.0, 3720.0,
                    908.0, 4217.0, 2656.0, 3163.0])
INPUT_DIFFUSION = np.array([0.75, 0.75, 0.625, 0.625])
DECAY_DIFFUSION_1 = 0.70    # the modulated allpasses run at -0.70 (Dattorro's sign)
TAP_GAIN = 0.6
# Table 2: (ring, tap at 29761 Hz, sign) for the left output, then the right
TAP_RING = np.array([RG_R_D1, RG_R_D1, RG_R_AP2, RG_R_D2, RG_L_D1, RG_L_AP2, RG_L_D2,
                     RG_L_D1, RG_L_D1, RG_L_AP2, RG_L_D2, RG_R_D1, RG_R_AP2, RG_R_D2])
TAP_REF = np.array([266.0, 2974.0, 1913.0, 1996.0, 1990.0, 187.0, 1066.0,
                    353.0, 3627.0, 1228.0, 2673.0, 2111.0, 335.0, 121.0])
TAP_SIGN = np.array([1.0, 1.0, -1.0, 1.0, -1.0, -1.0, -1.0,
                     1.0, 1.0, -1.0, 1.0, -1.0, -1.0, -1.0])
N_TAPS = 14

# header
H_SR, H_TOTAL, H_PHASE, H_BW, H_LP_L, H_LP_R = range(6)
H_KEY_DECAY, H_KEY_BW, H_KEY_DAMP = 6, 7, 8   # values the coefficients were made from
H_DD2, H_BW_A, H_DAMP_A = 9, 10, 11
H_BASE = 16                    # ring offsets [N_RINGS]
H_LEN = H_BASE + N_RINGS       # ring lengths [N_RINGS]
H_POS = H_LEN + N_RINGS        # ring write positions [N_RINGS]
H_DELAY = H_POS + N_RINGS      # each ring's (nominal) delay in samples [N_RINGS]
H_GAIN = H_DELAY + N_RINGS     # r^delay for each ring [N_RINGS]
H_TAP = H_GAIN + N_RINGS       # output taps in samples [N_TAPS]
H_TAP_GAIN = H_TAP + N_TAPS    # r^tap, times the tap's sign and TAP_GAIN [N_TAPS]
HDR = H_TAP_GAIN + N_TAPS
GUARD = 8                      # spare samples in every ring (interpolator reach, sweep)


@njit(**JIT)
def _scaled(ref, sr):
    return max(int(math.floor(ref * sr / FS_REF + 0.5)), 1)


@njit(**JIT)
def _ring_len(k, sr):
    if k == RG_PRE:
        return int(math.ceil(PREDELAY_MAX_MS * sr / 1000.0)) + GUARD
    if k == RG_L_MAP or k == RG_R_MAP:
        return _scaled(REF_LEN[k], sr) + int(math.ceil(MOD_DEPTH_MAX_MS * sr / 1000.0)) + GUARD
    return _scaled(REF_LEN[k], sr) + GUARD


@njit(**JIT)
def _total(sr):
    n = HDR
    for k in range(N_RINGS):
        n += _ring_len(k, sr)
    return n


def state_size(sample_rate):
    return int(_total(float(min(max(sample_rate, 1000.0), 1e6))))


@njit(**JIT)
def reset(state, sample_rate):
    for i in range(state.shape[0]):
        state[i] = 0.0
    if state.shape[0] < HDR:
        return
    sr = clampf(sample_rate, 1000.0, 1e6)
    state[H_SR] = sr
    total = _total(sr)
    if state.shape[0] < total:
        return                 # too small for this rate: the unit passes the dry signal only
    state[H_TOTAL] = total
    off = HDR
    for k in range(N_RINGS):
        m = _ring_len(k, sr)
        state[H_BASE + k] = off
        state[H_LEN + k] = m
        state[H_DELAY + k] = _scaled(REF_LEN[k], sr)
        off += m
    for t in range(N_TAPS):
        state[H_TAP + t] = _scaled(TAP_REF[t], sr)
    state[H_KEY_DECAY] = -1.0          # no value is -1: the coefficients are made first
    state[H_KEY_BW] = -1.0
    state[H_KEY_DAMP] = -1.0


@njit(inline="always", **JIT)
def _get(state, k, d):
    """Ring k's sample d >= 1 samples before the one about to be written."""
    m = int(state[H_LEN + k])
    j = int(state[H_POS + k]) - d
    if j < 0:
        j += m
    return state[int(state[H_BASE + k]) + j]


@njit(inline="always", **JIT)
def _put(state, k, x):
    """Write ring k's current sample and step its position."""
    p = int(state[H_POS + k])
    state[int(state[H_BASE + k]) + p] = x
    p += 1
    state[H_POS + k] = p if p < state[H_LEN + k] else 0


@njit(inline="always", **JIT)
def _allpass(state, k, x, g):
    """Dattorro's lattice allpass on ring k, its delay (H_DELAY[k]) scaled by r^delay:
    d = r^N w[n - N], w = x - g d, y = d + g w."""
    d = state[H_GAIN + k] * _get(state, k, int(state[H_DELAY + k]))
    w = flush(x - g * d)
    _put(state, k, w)
    return d + g * w


@njit(inline="always", **JIT)
def _mod_allpass(state, k, x, g, delay):
    """The same with a fractional, swept delay (4-point Hermite read; scaled by r^nominal)."""
    d = state[H_GAIN + k] * read(state, int(state[H_BASE + k]), int(state[H_LEN + k]),
                                 int(state[H_POS + k]), delay)
    w = flush(x - g * d)
    _put(state, k, w)
    return d + g * w


@njit(inline="always", **JIT)
def _onepole(hz, sr):
    return 1.0 - math.exp(-2.0 * math.pi * hz / sr)


@njit(**JIT)
def _decay_gains(state, decay_s, sr):
    """r^N for every ring's delay and every tap (r: 60 dB in decay_s), decay diffusion 2."""
    k = -3.0 / (decay_s * sr)              # log10 r
    loop = 0.0
    for j in range(RG_IN, N_RINGS):
        state[H_GAIN + j] = 10.0 ** (k * state[H_DELAY + j])
        if j >= RG_L_MAP:
            loop += state[H_DELAY + j]
    for t in range(N_TAPS):
        state[H_TAP_GAIN + t] = TAP_GAIN * TAP_SIGN[t] * 10.0 ** (k * state[H_TAP + t])
    state[H_DD2] = clampf(10.0 ** (k * 0.25 * loop) + 0.15, 0.25, 0.5)


def loop_delay_samples(sample_rate) -> int:
    """The tank's loop delay at `sample_rate` (control side: tests, docs)."""
    return sum(int(_scaled(REF_LEN[k], float(sample_rate)))
               for k in range(RG_L_MAP, N_RINGS))


@njit(**JIT)
def process(state, params, bus, io, i0, i1, sample_rate):
    il, ir, ol, orr = io[IO_IN_L], io[IO_IN_R], io[IO_OUT_L], io[IO_OUT_R]
    sr = clampf(sample_rate, 1000.0, 1e6)
    cs = smooth_coef_s(0.02, sr)
    cm = smooth_coef_s(0.05, sr)
    cd = smooth_coef_s(0.1, sr)
    ready = state.shape[0] >= HDR and state[H_TOTAL] > 0.0 and state.shape[0] >= state[H_TOTAL]
    if not ready:
        for i in range(i0, i1):
            dry = clampf(smooth_param(params, N, P_DRY_LEVEL, cs), 0.0, 1.0)
            l = finite_or_zero(bus[il, i])
            r = finite_or_zero(bus[ir, i])
            bus[ol, i] = dry * l
            bus[orr, i] = dry * r
        return
    fs = state[H_SR]                     # the rate the rings were laid out for
    g_in0 = INPUT_DIFFUSION[0]
    g_in1 = INPUT_DIFFUSION[1]
    g_in2 = INPUT_DIFFUSION[2]
    g_in3 = INPUT_DIFFUSION[3]
    g1 = -DECAY_DIFFUSION_1
    phase = state[H_PHASE]
    bw = state[H_BW]
    lp_l = state[H_LP_L]
    lp_r = state[H_LP_R]
    d_l = state[H_DELAY + RG_L_MAP]
    d_r = state[H_DELAY + RG_R_MAP]
    pre_m = state[H_LEN + RG_PRE]
    for i in range(i0, i1):
        decay = clampf(smooth_param(params, N, P_DECAY_S, cm), DECAY_MIN_S, DECAY_MAX_S)
        pre_ms = clampf(smooth_param(params, N, P_PREDELAY_MS, cd), 0.0, PREDELAY_MAX_MS)
        bw_hz = clampf(smooth_param(params, N, P_BANDWIDTH_HZ, cs), FILTER_MIN_HZ,
                       min(FILTER_MAX_HZ, 0.45 * sr))
        damp_hz = clampf(smooth_param(params, N, P_DAMPING_HZ, cs), FILTER_MIN_HZ,
                         min(FILTER_MAX_HZ, 0.45 * sr))
        depth = clampf(smooth_param(params, N, P_MOD_DEPTH_MS, cm), 0.0, MOD_DEPTH_MAX_MS)
        rate = clampf(smooth_param(params, N, P_MOD_RATE_HZ, cm), MOD_RATE_MIN_HZ,
                      MOD_RATE_MAX_HZ)
        width = clampf(smooth_param(params, N, P_WIDTH, cs), 0.0, 1.0)
        wet = clampf(smooth_param(params, N, P_WET_LEVEL, cs), 0.0, 1.0)
        dry = clampf(smooth_param(params, N, P_DRY_LEVEL, cs), 0.0, 1.0)
        if decay != state[H_KEY_DECAY]:
            state[H_KEY_DECAY] = decay
            _decay_gains(state, decay, sr)
        if bw_hz != state[H_KEY_BW]:
            state[H_KEY_BW] = bw_hz
            state[H_BW_A] = _onepole(bw_hz, sr)
        if damp_hz != state[H_KEY_DAMP]:
            state[H_KEY_DAMP] = damp_hz
            state[H_DAMP_A] = _onepole(damp_hz, sr)

        l = finite_or_zero(bus[il, i])
        r = finite_or_zero(bus[ir, i])
        # predelay: write, then read pd samples back (linear; pd = 0 is this sample)
        _put(state, RG_PRE, 0.5 * (l + r))
        pd = pre_ms * fs / 1000.0
        if pd > pre_m - 4.0:
            pd = pre_m - 4.0
        di = int(pd)
        f = pd - di
        x0 = _get(state, RG_PRE, di + 1)
        x = x0 + f * (_get(state, RG_PRE, di + 2) - x0) if f > 0.0 else x0
        bw = flush(bw + state[H_BW_A] * (x - bw))
        x = _allpass(state, RG_IN, bw, g_in0)
        x = _allpass(state, RG_IN + 1, x, g_in1)
        x = _allpass(state, RG_IN + 2, x, g_in2)
        x = _allpass(state, RG_IN + 3, x, g_in3)

        # output taps and cross-feeds, read before this sample's tank writes
        yl = 0.0
        yr = 0.0
        for t in range(N_TAPS):
            v = state[H_TAP_GAIN + t] * _get(state, TAP_RING[t], int(state[H_TAP + t]))
            if t < 7:
                yl += v
            else:
                yr += v
        # (cross-feeds: the other half's last delay, scaled by r^delay)
        fb_l = state[H_GAIN + RG_R_D2] * _get(state, RG_R_D2, int(state[H_DELAY + RG_R_D2]))
        fb_r = state[H_GAIN + RG_L_D2] * _get(state, RG_L_D2, int(state[H_DELAY + RG_L_D2]))

        sweep = depth * fs / 1000.0
        s = math.sin(2.0 * math.pi * phase)
        c = math.cos(2.0 * math.pi * phase)
        dd2 = state[H_DD2]
        damp_a = state[H_DAMP_A]
        # left half
        u = _mod_allpass(state, RG_L_MAP, x + fb_l, g1, d_l + sweep * s)
        v = state[H_GAIN + RG_L_D1] * _get(state, RG_L_D1, int(state[H_DELAY + RG_L_D1]))
        _put(state, RG_L_D1, u)
        lp_l = flush(lp_l + damp_a * (v - lp_l))
        u = _allpass(state, RG_L_AP2, lp_l, dd2)
        _put(state, RG_L_D2, u)
        # right half
        u = _mod_allpass(state, RG_R_MAP, x + fb_r, g1, d_r + sweep * c)
        v = state[H_GAIN + RG_R_D1] * _get(state, RG_R_D1, int(state[H_DELAY + RG_R_D1]))
        _put(state, RG_R_D1, u)
        lp_r = flush(lp_r + damp_a * (v - lp_r))
        u = _allpass(state, RG_R_AP2, lp_r, dd2)
        _put(state, RG_R_D2, u)

        phase += rate / sr
        if phase >= 1.0:
            phase -= 1.0
        wl = wet * yl
        wr = wet * yr
        a = 0.5 * (1.0 + width)
        b = 0.5 * (1.0 - width)
        bus[ol, i] = dry * l + (a * wl + b * wr)
        bus[orr, i] = dry * r + (a * wr + b * wl)
    state[H_PHASE] = phase
    state[H_BW] = bw
    state[H_LP_L] = lp_l
    state[H_LP_R] = lp_r
