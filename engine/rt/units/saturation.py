"""Saturation with oversampling: tanh, soft (cubic) or hard clipping of the driven signal,
computed at 1, 2 or 4 times the sample rate (AUDIO THREAD).

Oversampling: each 2x stage is a 33-tap Kaiser-windowed half-band FIR (beta 8, about 80 dB
stop band), used to interpolate on the way up and to filter before decimating on the way
down; 4x is two stages. The curve's harmonics above the original Nyquist frequency are removed
before they can fold back as aliases (tests/test_unit_saturation.py measures the alias energy
of each setting). The price is a constant delay: latency_samples(oversample) samples at the
unit's rate (0, 16 or 24); the dry signal of `mix` is delayed by the same amount, so blending
never comb-filters. `oversample` is applied at once (its delay changes with it).
"""
import math

import numpy as np
from numba import njit

from engine.rt.dsp import JIT, flush
from engine.rt.units.base import (IO_IN_L, IO_IN_R, IO_OUT_L, IO_OUT_R, Param, clampf, clear, declare,
                                  finite_or_zero, smooth_coef_s, smooth_param)

NAME = "saturation"
CURVES = ("tanh", "soft", "hard")
OVERSAMPLING = ("1x", "2x", "4x")
PARAMS = declare([
    Param("drive_db", 0.0, 36.0, 0.0, doc="gain into the curve"),
    Param("curve", 0.0, 2.0, 0.0, curve="choice", smooth_s=0.0, choices=CURVES),
    Param("oversample", 0.0, 2.0, 2.0, curve="choice", smooth_s=0.0, choices=OVERSAMPLING),
    Param("mix", 0.0, 1.0, 1.0, doc="wet share"),
    Param("output_db", -36.0, 12.0, 0.0, doc="level after the curve"),
])
P_DRIVE_DB, P_CURVE, P_OVERSAMPLE, P_MIX, P_OUTPUT_DB = range(5)
N = len(PARAMS)


def _halfband(taps=33, beta=8.0):
    n = np.arange(taps) - (taps - 1) / 2
    h = 0.5 * np.sinc(n / 2) * np.kaiser(taps, beta)
    return h / h.sum()


HB = _halfband()
TAPS = len(HB)
STAGE_DELAY = TAPS - 1          # one stage, up and down: samples at the stage's doubled rate
MAX_LATENCY = 24


def latency_samples(oversample: int) -> int:
    """The unit's delay in samples at its own rate for an `oversample` choice (0, 1, 2)."""
    return (0, STAGE_DELAY // 2, STAGE_DELAY // 2 + STAGE_DELAY // 4)[int(oversample)]


# state layout, per channel c (0, 1): histories of the 2x stage (base rate input, 2x output
# before decimation), of the 4x stage (2x input, 4x output), and the dry delay line
H = TAPS
ST_UP1, ST_DOWN1, ST_UP2, ST_DOWN2, ST_DRY = 0, H, 2 * H, 3 * H, 4 * H
CH = 4 * H + MAX_LATENCY + 1
ST_POS = 2 * CH             # write positions: [up1, down1, up2, down2, dry] x 2 channels
ST_MODE = ST_POS + 10
SIZE = ST_MODE + 1


def state_size(sample_rate):
    return SIZE


@njit(**JIT)
def reset(state, sample_rate):
    clear(state)
    state[ST_MODE] = -1.0


@njit(inline="always", **JIT)
def _curve(x, kind):
    if kind == 0:
        return math.tanh(x)
    if kind == 1:                       # cubic soft clip: x - x^3/3 up to |x| = 1, then 2/3
        if x >= 1.0:
            return 2.0 / 3.0
        if x <= -1.0:
            return -2.0 / 3.0
        return x - x * x * x / 3.0
    return clampf(x, -1.0, 1.0)


@njit(inline="always", **JIT)
def _push(state, base, posi, x):
    """Write x into a circular history of TAPS values; returns the new write position."""
    p = int(state[posi])
    state[base + p] = x
    p = p + 1 if p + 1 < TAPS else 0
    state[posi] = p
    return p


@njit(inline="always", **JIT)
def _fir(state, base, p, phase):
    """sum_k h[2k + phase] * history[newest - k] (the polyphase branch of the 2x filter)."""
    acc = 0.0
    k = 0
    for i in range(phase, TAPS, 2):
        j = p - 1 - k
        if j < 0:
            j += TAPS
        acc += HB[i] * state[base + j]
        k += 1
    return acc


@njit(inline="always", **JIT)
def _fir_full(state, base, p):
    acc = 0.0
    for i in range(TAPS):
        j = p - 1 - i
        if j < 0:
            j += TAPS
        acc += HB[i] * state[base + j]
    return acc


@njit(inline="always", **JIT)
def _up(state, base, pos, x):
    """One sample into a 2x stage's interpolator: its two outputs (even, odd phase)."""
    p = _push(state, base, pos, x)
    return 2.0 * _fir(state, base, p, 0), 2.0 * _fir(state, base, p, 1)


@njit(inline="always", **JIT)
def _down(state, base, pos, ya, yb):
    """Two 2x-rate samples into a stage's decimator: one output, on the even phase."""
    q = _push(state, base, pos, ya)
    out = _fir_full(state, base, q)
    _push(state, base, pos, yb)
    return out


@njit(inline="always", **JIT)
def _os2(state, c, x, g, kind):
    """One sample through 2x: interpolate, the curve twice, filter, decimate."""
    base = c * CH
    pos = ST_POS + 5 * c
    a, b = _up(state, base + ST_UP1, pos, x)
    return _down(state, base + ST_DOWN1, pos + 1, _curve(a * g, kind), _curve(b * g, kind))


@njit(inline="always", **JIT)
def _os4(state, c, x, g, kind):
    """One sample through 4x: the outer 2x stage around the inner one (at 2x, the curve at
    4x)."""
    base = c * CH
    pos = ST_POS + 5 * c
    a, b = _up(state, base + ST_UP1, pos, x)
    ya = 0.0
    yb = 0.0
    for k in range(2):
        aa, bb = _up(state, base + ST_UP2, pos + 2, a if k == 0 else b)
        y = _down(state, base + ST_DOWN2, pos + 3, _curve(aa * g, kind), _curve(bb * g, kind))
        if k == 0:
            ya = y
        else:
            yb = y
    return _down(state, base + ST_DOWN1, pos + 1, ya, yb)


@njit(inline="always", **JIT)
def _dry(state, c, x, delay):
    """x delayed by `delay` samples (a ring of MAX_LATENCY + 1)."""
    base = c * CH + ST_DRY
    pos = ST_POS + 5 * c + 4
    p = int(state[pos])
    state[base + p] = x
    j = p - delay
    if j < 0:
        j += MAX_LATENCY + 1
    out = state[base + j]
    state[pos] = p + 1 if p + 1 <= MAX_LATENCY else 0
    return out


@njit(**JIT)
def process(state, params, bus, io, i0, i1, sample_rate):
    il, ir, ol, orr = io[IO_IN_L], io[IO_IN_R], io[IO_OUT_L], io[IO_OUT_R]
    cs = smooth_coef_s(0.02, sample_rate)
    kind = int(clampf(params[P_CURVE], 0.0, 2.0) + 0.5)
    mode = int(clampf(params[P_OVERSAMPLE], 0.0, 2.0) + 0.5)
    params[N + P_CURVE] = kind
    params[N + P_OVERSAMPLE] = mode
    if state[ST_MODE] != mode:          # a new oversampling: start its filters clean
        reset(state, sample_rate)
        state[ST_MODE] = mode
    delay = 0 if mode == 0 else (STAGE_DELAY // 2 if mode == 1 else
                                 STAGE_DELAY // 2 + STAGE_DELAY // 4)
    for i in range(i0, i1):
        g = math.pow(10.0, clampf(smooth_param(params, N, P_DRIVE_DB, cs), 0.0, 36.0) / 20.0)
        mix = clampf(smooth_param(params, N, P_MIX, cs), 0.0, 1.0)
        out_g = math.pow(10.0, clampf(smooth_param(params, N, P_OUTPUT_DB, cs), -36.0, 12.0)
                         / 20.0)
        for c in range(2):
            x = finite_or_zero(bus[il if c == 0 else ir, i])
            if mode == 0:
                wet = _curve(x * g, kind)
            elif mode == 1:
                wet = _os2(state, c, x, g, kind)
            else:
                wet = _os4(state, c, x, g, kind)
            dry = _dry(state, c, x, delay)
            y = flush((dry + mix * (wet - dry)) * out_g)
            bus[ol if c == 0 else orr, i] = y
