"""Bit crusher: sample-and-hold at a lower rate, then a converter of fewer bits, with optional
TPDF dither and a wet/dry mix (AUDIO THREAD).

* Rate: a sample is taken whenever a phase accumulator, advanced by downsample_hz per sample
  and wrapped by the sample rate, wraps (the first sample after reset is taken), and held until
  the next; at a rate that divides the sample rate the steps are exactly rate / downsample_hz
  samples wide (the accumulator counts in hertz: whole numbers add exactly). At or above the
  sample rate every sample is taken.
* Bits: each taken sample becomes a two's-complement code, as in a `bits`-bit converter: with
  h = 2^(bits - 1), code = floor(x * h + 0.5) clamped to -h .. h - 1, output code / h. So 8 bits
  give the 256 levels -1, -127/128 .. 127/128, silence stays 0, and full scale clips like a
  converter's. Non-integer bits are allowed: the step is 1 / h and the codes run
  -floor(h) .. ceil(h) - 1.
* Dither "tpdf": triangular noise of +-1 step (the difference of two uniform draws) is added
  before rounding, once per taken sample and channel. The generator (xorshift32) lives in the
  state, so the output is the same for any split of the blocks, and reset restores its seed.
* mix: out = (1 - mix) * in + mix * crushed; mix 0 passes the input through bit for bit.

bits, downsample_hz and mix glide (20 ms); dither applies at once. Input samples that are NaN,
infinite or beyond 1e15 are read as 0.
"""
import math

import numpy as np
from numba import njit

from engine.rt.dsp import JIT
from engine.rt.units.base import (IO_IN_L, IO_IN_R, IO_OUT_L, IO_OUT_R, Param, clampf, declare,
                                  finite_or_zero, params_settled, smooth_coef_s, smooth_param)

NAME = "bitcrusher"
PARAMS = declare([
    Param("bits", 1.0, 24.0, 8.0, doc="converter resolution: 2^bits levels (fractions allowed)"),
    Param("downsample_hz", 50.0, 192000.0, 192000.0, curve="log",
          doc="sample-and-hold rate (at or above the sample rate: none)"),
    Param("dither", 0.0, 1.0, 0.0, curve="choice", smooth_s=0.0, choices=("off", "tpdf"),
          doc="tpdf: +-1 step of triangular noise before rounding"),
    Param("mix", 0.0, 1.0, 1.0, doc="0 dry (bit-exact), 1 crushed"),
])
P_BITS, P_DOWNSAMPLE_HZ, P_DITHER, P_MIX = range(4)
N = len(PARAMS)

SMOOTH_S = 0.02
SEED = 2463534242          # the dither generator's state after reset (any non-zero 32-bit value)
U32 = 4294967295
INV_2_32 = 1.0 / 4294967296.0

# state layout
S_PHASE, S_HOLD_L, S_HOLD_R, S_RNG = range(4)
STATE_SIZE = 4


def state_size(sample_rate):
    return STATE_SIZE


@njit(**JIT)
def reset(state, sample_rate):
    state[S_PHASE] = 0.0            # >= 0: the next sample is taken
    state[S_HOLD_L] = 0.0
    state[S_HOLD_R] = 0.0
    state[S_RNG] = SEED


@njit(inline="always", **JIT)
def xorshift32(s):
    """Marsaglia's xorshift32 step on a non-zero 32-bit state held in an int64."""
    s ^= (s << 13) & U32
    s ^= s >> 17
    s ^= (s << 5) & U32
    return s


@njit(inline="always", **JIT)
def quantise(v, lo, hi):
    """x * h (+ dither) to its code: rounded half up, clamped to [lo, hi]."""
    c = np.floor(v + 0.5)
    if c < lo:
        return lo
    return hi if c > hi else c


@njit(inline="always", **JIT)
def _steps(bits):
    """h = 2^(bits - 1), the lowest and highest codes, and the step 1 / h."""
    h = math.pow(2.0, bits - 1.0)
    return h, -np.floor(h), np.ceil(h) - 1.0, 1.0 / h


@njit(**JIT)
def process(state, params, bus, io, i0, i1, sample_rate):
    il, ir, ol, orr = io[IO_IN_L], io[IO_IN_R], io[IO_OUT_L], io[IO_OUT_R]
    fs = clampf(sample_rate, 1000.0, 1e6)
    cp = smooth_coef_s(SMOOTH_S, fs)
    dither = smooth_param(params, N, P_DITHER, 1.0) >= 0.5
    hz_hi = min(192000.0, fs)
    moving = not params_settled(params, N)
    h, lo, hi, step = _steps(clampf(params[N + P_BITS], 1.0, 24.0))
    hz = clampf(params[N + P_DOWNSAMPLE_HZ], 50.0, hz_hi)
    mix = clampf(params[N + P_MIX], 0.0, 1.0)

    ph = state[S_PHASE]
    if not (ph >= -fs and ph < fs):
        ph = 0.0
    hl = state[S_HOLD_L]
    hr = state[S_HOLD_R]
    s = np.int64(state[S_RNG]) if abs(state[S_RNG]) <= U32 else np.int64(SEED)
    if s <= 0 or s > U32:
        s = np.int64(SEED)
    for i in range(i0, i1):
        if moving:
            h, lo, hi, step = _steps(clampf(smooth_param(params, N, P_BITS, cp), 1.0, 24.0))
            hz = clampf(smooth_param(params, N, P_DOWNSAMPLE_HZ, cp), 50.0, hz_hi)
            mix = clampf(smooth_param(params, N, P_MIX, cp), 0.0, 1.0)
            moving = not params_settled(params, N)
        l = finite_or_zero(bus[il, i])
        r = finite_or_zero(bus[ir, i])
        if ph >= 0.0:
            ph -= fs
            dl = 0.0
            dr = 0.0
            if dither:
                s = xorshift32(s)
                dl = s * INV_2_32
                s = xorshift32(s)
                dl -= s * INV_2_32
                s = xorshift32(s)
                dr = s * INV_2_32
                s = xorshift32(s)
                dr -= s * INV_2_32
            hl = quantise(l * h + dl, lo, hi) * step
            hr = quantise(r * h + dr, lo, hi) * step
        ph += hz
        if mix == 0.0:
            bus[ol, i] = l
            bus[orr, i] = r
        else:
            bus[ol, i] = (1.0 - mix) * l + mix * hl
            bus[orr, i] = (1.0 - mix) * r + mix * hr
    state[S_PHASE] = ph
    state[S_HOLD_L] = hl
    state[S_HOLD_R] = hr
    state[S_RNG] = s
