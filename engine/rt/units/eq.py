"""Stereo parametric EQ: six RBJ Audio-EQ-Cookbook biquads in series (AUDIO THREAD).

Bands, in signal order: high-pass (low cut), low shelf, peak 1, peak 2, high shelf, low-pass
(high cut), then the output gain. Each biquad runs in transposed direct form II, float64, one
state pair per channel.

* A shelf or peak at exactly 0 dB is skipped (bypassed, its state cleared), and so are the
  cuts at the ends of their ranges (low cut at its lowest, high cut at its highest, which are
  their defaults): the defaults pass the input through unchanged, bit for bit.
* Every parameter is smoothed per sample (20 ms); a band's coefficients are recomputed only in
  a sample where one of its clamped current values differs from the values they were designed
  from (kept in the state), so a settled EQ costs no trigonometry and the output does not
  depend on how the block is cut.
* Frequencies are clamped to their ranges and below 0.49 * sample_rate; the input is limited
  to +-1e15 (NaN read as 0), and a band whose output is ever not finite restarts from silence.
"""
import math

from numba import njit

from engine.rt.dsp import JIT, flush
from engine.rt.units.base import (IO_IN_L, IO_IN_R, IO_OUT_L, IO_OUT_R, Param, clampf, declare,
                                  smooth_coef_s, smooth_param)

NAME = "eq"

SMOOTH_S = 0.02
LOW_CUT_LO, LOW_CUT_HI = 10.0, 1000.0
HIGH_CUT_LO, HIGH_CUT_HI = 1000.0, 20000.0
CUT_Q_LO, CUT_Q_HI = 0.3, 4.0
LOW_SHELF_LO, LOW_SHELF_HI = 20.0, 1000.0
HIGH_SHELF_LO, HIGH_SHELF_HI = 1000.0, 20000.0
PEAK_LO, PEAK_HI = 20.0, 20000.0
PEAK_Q_LO, PEAK_Q_HI = 0.1, 20.0
GAIN_LO, GAIN_HI = -24.0, 24.0
BUTTERWORTH_Q = 1.0 / math.sqrt(2.0)

PARAMS = declare([
    Param("low_cut_hz", LOW_CUT_LO, LOW_CUT_HI, LOW_CUT_LO, "log", SMOOTH_S,
          doc="high-pass corner; at its lowest (the default) the low cut is off"),
    Param("low_cut_q", CUT_Q_LO, CUT_Q_HI, BUTTERWORTH_Q, "log", SMOOTH_S,
          doc="high-pass resonance (0.707: Butterworth)"),
    Param("low_shelf_hz", LOW_SHELF_LO, LOW_SHELF_HI, 100.0, "log", SMOOTH_S,
          doc="low shelf corner (shelf slope 1)"),
    Param("low_shelf_gain_db", GAIN_LO, GAIN_HI, 0.0, "lin", SMOOTH_S,
          doc="low shelf gain; 0 dB: off"),
    Param("peak1_hz", PEAK_LO, PEAK_HI, 250.0, "log", SMOOTH_S, doc="peak 1 centre"),
    Param("peak1_gain_db", GAIN_LO, GAIN_HI, 0.0, "lin", SMOOTH_S, doc="peak 1 gain; 0 dB: off"),
    Param("peak1_q", PEAK_Q_LO, PEAK_Q_HI, 1.0, "log", SMOOTH_S, doc="peak 1 bandwidth (Q)"),
    Param("peak2_hz", PEAK_LO, PEAK_HI, 2500.0, "log", SMOOTH_S, doc="peak 2 centre"),
    Param("peak2_gain_db", GAIN_LO, GAIN_HI, 0.0, "lin", SMOOTH_S, doc="peak 2 gain; 0 dB: off"),
    Param("peak2_q", PEAK_Q_LO, PEAK_Q_HI, 1.0, "log", SMOOTH_S, doc="peak 2 bandwidth (Q)"),
    Param("high_shelf_hz", HIGH_SHELF_LO, HIGH_SHELF_HI, 8000.0, "log", SMOOTH_S,
          doc="high shelf corner (shelf slope 1)"),
    Param("high_shelf_gain_db", GAIN_LO, GAIN_HI, 0.0, "lin", SMOOTH_S,
          doc="high shelf gain; 0 dB: off"),
    Param("high_cut_hz", HIGH_CUT_LO, HIGH_CUT_HI, HIGH_CUT_HI, "log", SMOOTH_S,
          doc="low-pass corner; at its highest (the default) the high cut is off"),
    Param("high_cut_q", CUT_Q_LO, CUT_Q_HI, BUTTERWORTH_Q, "log", SMOOTH_S,
          doc="low-pass resonance (0.707: Butterworth)"),
    Param("gain_db", GAIN_LO, GAIN_HI, 0.0, "lin", SMOOTH_S, doc="output level"),
])
(P_LOW_CUT_HZ, P_LOW_CUT_Q, P_LOW_SHELF_HZ, P_LOW_SHELF_GAIN_DB, P_PEAK1_HZ, P_PEAK1_GAIN_DB,
 P_PEAK1_Q, P_PEAK2_HZ, P_PEAK2_GAIN_DB, P_PEAK2_Q, P_HIGH_SHELF_HZ, P_HIGH_SHELF_GAIN_DB,
 P_HIGH_CUT_HZ, P_HIGH_CUT_Q, P_GAIN_DB) = range(15)
N = len(PARAMS)

HIGHPASS, LOWSHELF, PEAK, HIGHSHELF, LOWPASS = range(5)
BANDS = 6
STRIDE = 16
# within a band's STRIDE: coefficients (normalised by a0), on flag, per-channel TDF2 state,
# the clamped (frequency, gain, q) the coefficients were designed from
B_B0, B_B1, B_B2, B_A1, B_A2, B_ON, B_S1L, B_S2L, B_S1R, B_S2R, B_F, B_G, B_Q = range(13)
O_GAIN_DB = BANDS * STRIDE        # the output gain the linear gain below was computed from
O_GAIN = O_GAIN_DB + 1
STATE_SIZE = O_GAIN + 1
INPUT_LIMIT = 1e15
OUTPUT_LIMIT = 1e100


def state_size(sample_rate):
    return STATE_SIZE


@njit(**JIT)
def reset(state, sample_rate):
    for b in range(BANDS):
        o = b * STRIDE
        for k in range(STRIDE):
            state[o + k] = 0.0
        state[o + B_F] = math.nan      # no design yet: the first sample designs every band
    state[O_GAIN_DB] = math.nan
    state[O_GAIN] = 1.0


@njit(**JIT)
def _design(state, o, kind, f, g, q, fs):
    """RBJ cookbook coefficients of one band into state[o:o+5], normalised by a0."""
    w0 = 2.0 * math.pi * f / fs
    cw = math.cos(w0)
    sw = math.sin(w0)
    if kind == HIGHPASS or kind == LOWPASS:
        alpha = sw / (2.0 * q)
        a0 = 1.0 + alpha
        a1 = -2.0 * cw
        a2 = 1.0 - alpha
        if kind == HIGHPASS:
            b0 = 0.5 * (1.0 + cw)
            b1 = -(1.0 + cw)
        else:
            b0 = 0.5 * (1.0 - cw)
            b1 = 1.0 - cw
        b2 = b0
    elif kind == PEAK:
        a = math.pow(10.0, g / 40.0)
        alpha = sw / (2.0 * q)
        b0 = 1.0 + alpha * a
        b1 = -2.0 * cw
        b2 = 1.0 - alpha * a
        a0 = 1.0 + alpha / a
        a1 = -2.0 * cw
        a2 = 1.0 - alpha / a
    else:
        a = math.pow(10.0, g / 40.0)
        alpha = sw / math.sqrt(2.0)            # shelf slope S = 1
        k = 2.0 * math.sqrt(a) * alpha
        ap, am = a + 1.0, a - 1.0
        if kind == LOWSHELF:
            b0 = a * (ap - am * cw + k)
            b1 = 2.0 * a * (am - ap * cw)
            b2 = a * (ap - am * cw - k)
            a0 = ap + am * cw + k
            a1 = -2.0 * (am + ap * cw)
            a2 = ap + am * cw - k
        else:
            b0 = a * (ap + am * cw + k)
            b1 = -2.0 * a * (am + ap * cw)
            b2 = a * (ap + am * cw - k)
            a0 = ap - am * cw + k
            a1 = 2.0 * (am - ap * cw)
            a2 = ap - am * cw - k
    inv = 1.0 / a0
    state[o + B_B0] = b0 * inv
    state[o + B_B1] = b1 * inv
    state[o + B_B2] = b2 * inv
    state[o + B_A1] = a1 * inv
    state[o + B_A2] = a2 * inv


@njit(inline="always", **JIT)
def _band(state, o, kind, on, f, g, q, fs):
    """Bring one band up to date with its clamped current values (designs only on a change)."""
    if not on:
        if state[o + B_ON] != 0.0:
            state[o + B_ON] = 0.0
            state[o + B_S1L] = 0.0
            state[o + B_S2L] = 0.0
            state[o + B_S1R] = 0.0
            state[o + B_S2R] = 0.0
        return
    if state[o + B_ON] != 0.0 and f == state[o + B_F] and g == state[o + B_G] \
            and q == state[o + B_Q]:
        return
    state[o + B_ON] = 1.0
    state[o + B_F] = f
    state[o + B_G] = g
    state[o + B_Q] = q
    _design(state, o, kind, f, g, q, fs)


@njit(inline="always", **JIT)
def _tick(state, o, s, x):
    """One sample of a TDF2 biquad; state[s], state[s + 1] are this channel's s1, s2."""
    y = state[o + B_B0] * x + state[s]
    if not abs(y) < OUTPUT_LIMIT:                       # blown up (or NaN): restart silent
        state[s] = 0.0
        state[s + 1] = 0.0
        return 0.0
    state[s] = flush(state[o + B_B1] * x - state[o + B_A1] * y + state[s + 1])
    state[s + 1] = flush(state[o + B_B2] * x - state[o + B_A2] * y)
    return y


@njit(inline="always", **JIT)
def _sane(x):
    if abs(x) <= INPUT_LIMIT:
        return x
    if x > INPUT_LIMIT:
        return INPUT_LIMIT
    if x < -INPUT_LIMIT:
        return -INPUT_LIMIT
    return 0.0                                          # NaN


@njit(**JIT)
def process(state, params, bus, io, i0, i1, sample_rate):
    il, ir, ol, orr = io[IO_IN_L], io[IO_IN_R], io[IO_OUT_L], io[IO_OUT_R]
    fs = sample_rate
    if not (fs >= 1000.0 and fs <= 1e7):               # no usable rate: pass through
        for i in range(i0, i1):
            l = bus[il, i]
            r = bus[ir, i]
            bus[ol, i] = l
            bus[orr, i] = r
        return
    c = smooth_coef_s(SMOOTH_S, fs)
    fmax = 0.49 * fs
    for i in range(i0, i1):
        # low cut: off at its lowest frequency
        f = clampf(smooth_param(params, N, P_LOW_CUT_HZ, c), LOW_CUT_LO, LOW_CUT_HI)
        q = clampf(smooth_param(params, N, P_LOW_CUT_Q, c), CUT_Q_LO, CUT_Q_HI)
        _band(state, 0 * STRIDE, HIGHPASS, f > LOW_CUT_LO, min(f, fmax), 0.0, q, fs)
        # low shelf
        f = clampf(smooth_param(params, N, P_LOW_SHELF_HZ, c), LOW_SHELF_LO, LOW_SHELF_HI)
        g = clampf(smooth_param(params, N, P_LOW_SHELF_GAIN_DB, c), GAIN_LO, GAIN_HI)
        _band(state, 1 * STRIDE, LOWSHELF, g != 0.0, min(f, fmax), g, 0.0, fs)
        # peaks
        f = clampf(smooth_param(params, N, P_PEAK1_HZ, c), PEAK_LO, PEAK_HI)
        g = clampf(smooth_param(params, N, P_PEAK1_GAIN_DB, c), GAIN_LO, GAIN_HI)
        q = clampf(smooth_param(params, N, P_PEAK1_Q, c), PEAK_Q_LO, PEAK_Q_HI)
        _band(state, 2 * STRIDE, PEAK, g != 0.0, min(f, fmax), g, q, fs)
        f = clampf(smooth_param(params, N, P_PEAK2_HZ, c), PEAK_LO, PEAK_HI)
        g = clampf(smooth_param(params, N, P_PEAK2_GAIN_DB, c), GAIN_LO, GAIN_HI)
        q = clampf(smooth_param(params, N, P_PEAK2_Q, c), PEAK_Q_LO, PEAK_Q_HI)
        _band(state, 3 * STRIDE, PEAK, g != 0.0, min(f, fmax), g, q, fs)
        # high shelf
        f = clampf(smooth_param(params, N, P_HIGH_SHELF_HZ, c), HIGH_SHELF_LO, HIGH_SHELF_HI)
        g = clampf(smooth_param(params, N, P_HIGH_SHELF_GAIN_DB, c), GAIN_LO, GAIN_HI)
        _band(state, 4 * STRIDE, HIGHSHELF, g != 0.0, min(f, fmax), g, 0.0, fs)
        # high cut: off at its highest frequency
        f = clampf(smooth_param(params, N, P_HIGH_CUT_HZ, c), HIGH_CUT_LO, HIGH_CUT_HI)
        q = clampf(smooth_param(params, N, P_HIGH_CUT_Q, c), CUT_Q_LO, CUT_Q_HI)
        _band(state, 5 * STRIDE, LOWPASS, f < HIGH_CUT_HI, min(f, fmax), 0.0, q, fs)
        # output gain
        gdb = clampf(smooth_param(params, N, P_GAIN_DB, c), GAIN_LO, GAIN_HI)
        if gdb != state[O_GAIN_DB]:
            state[O_GAIN_DB] = gdb
            state[O_GAIN] = math.pow(10.0, gdb / 20.0)

        l = _sane(bus[il, i])
        r = _sane(bus[ir, i])
        for b in range(BANDS):
            o = b * STRIDE
            if state[o + B_ON] != 0.0:
                l = _tick(state, o, o + B_S1L, l)
                r = _tick(state, o, o + B_S1R, r)
        if gdb != 0.0:
            gl = state[O_GAIN]
            l *= gl
            r *= gl
        bus[ol, i] = l
        bus[orr, i] = r
