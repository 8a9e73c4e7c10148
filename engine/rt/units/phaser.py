"""Phaser: 4, 6, 8 or 12 first-order all-pass stages whose corner sweeps between min_hz and
max_hz (on a log scale) with a sine LFO, blended with the dry signal, with feedback
(AUDIO THREAD).

Each stage is A(z) = (a + z^-1) / (1 + a z^-1), a = (t - 1) / (t + 1), t = tan(pi fc / sr):
phase -2 arctan(tan(w / 2) / t), -90 degrees at fc. N stages blended half and half with the dry
signal cancel it where their phase is an odd multiple of 180 degrees: N / 2 notches, at
f_k = sr / pi * arctan(t tan((2k + 1) pi / (2N))), k = 0 .. N/2 - 1. `feedback` sends the chain's
previous output back to its input: wet = A^N / (1 - feedback z^-1 A^N). The corner is
fc = min_hz * (max_hz / min_hz) ^ ((1 + sin(2 pi phase)) / 2) (min_hz = max_hz holds it
still); the right side's LFO is `spread` half cycles later. The LFO phase lives in the state
and advances once per sample; `stages` is applied at the start of a block.
"""
import math

from numba import njit

from engine.rt.dsp import JIT, flush
from engine.rt.units.base import (IO_IN_L, IO_IN_R, IO_OUT_L, IO_OUT_R, Param, clampf, declare,
                                  finite_or_zero, smooth_coef_s, smooth_param)
from engine.rt.units.moddelay import advance, lfo, reset, wrap1  # noqa: F401

NAME = "phaser"
STAGES = ("4", "6", "8", "12")
PARAMS = declare([
    Param("stages", 0.0, 3.0, 0.0, curve="choice", smooth_s=0.0, choices=STAGES),
    Param("min_hz", 20.0, 10000.0, 300.0, curve="log", doc="lowest corner of the sweep"),
    Param("max_hz", 20.0, 16000.0, 3000.0, curve="log", doc="highest corner of the sweep"),
    Param("rate_hz", 0.02, 10.0, 0.4, curve="log", doc="LFO rate"),
    Param("feedback", -0.95, 0.95, 0.0, doc="chain output sent back to its input"),
    Param("mix", 0.0, 1.0, 0.5, doc="wet share (0.5: deepest notches)"),
    Param("spread", 0.0, 1.0, 0.5, doc="right LFO later by spread x 1/2 cycle"),
])
P_STAGES, P_MIN, P_MAX, P_RATE, P_FEEDBACK, P_MIX, P_SPREAD = range(7)
N = len(PARAMS)

MAX_STAGES = 12
ST_PHASE = 0
CH = MAX_STAGES + 1             # per channel: the stages' states, then the last chain output
SIZE = 1 + 2 * CH


def state_size(sample_rate):
    return SIZE


@njit(**JIT)
def process(state, params, bus, io, i0, i1, sample_rate):
    il, ir, ol, orr = io[IO_IN_L], io[IO_IN_R], io[IO_OUT_L], io[IO_OUT_R]
    sr = clampf(sample_rate, 1000.0, 1e6)
    cs = smooth_coef_s(0.02, sr)
    choice = int(clampf(params[P_STAGES], 0.0, 3.0) + 0.5)
    params[N + P_STAGES] = choice
    ns = 12 if choice == 3 else 4 + 2 * choice       # 4, 6, 8, 12 (no tuple index: it can raise)
    for c in range(2):                  # stages not in use start clean when they come back
        for k in range(ns, MAX_STAGES):
            state[1 + c * CH + k] = 0.0
    top = 0.45 * sr
    phase = state[ST_PHASE]
    for i in range(i0, i1):
        lmin = math.log(clampf(smooth_param(params, N, P_MIN, cs), 20.0, 10000.0))
        lmax = math.log(clampf(smooth_param(params, N, P_MAX, cs), 20.0, 16000.0))
        rate = clampf(smooth_param(params, N, P_RATE, cs), 0.02, 10.0)
        fb = clampf(smooth_param(params, N, P_FEEDBACK, cs), -0.95, 0.95)
        mix = clampf(smooth_param(params, N, P_MIX, cs), 0.0, 1.0)
        spread = clampf(smooth_param(params, N, P_SPREAD, cs), 0.0, 1.0)
        for c in range(2):
            base = 1 + c * CH
            x = finite_or_zero(bus[il if c == 0 else ir, i])
            ph = phase if c == 0 else wrap1(phase + 0.5 * spread)
            fc = math.exp(lmin + (lmax - lmin) * 0.5 * (1.0 + lfo(ph)))
            if fc > top:
                fc = top
            t = math.tan(math.pi * fc / sr)
            a = (t - 1.0) / (t + 1.0)
            u = x + fb * state[base + MAX_STAGES]
            for k in range(ns):         # y = a u + s; s = u - a y
                y = a * u + state[base + k]
                state[base + k] = flush(u - a * y)
                u = y
            state[base + MAX_STAGES] = flush(u)
            bus[ol if c == 0 else orr, i] = flush(x + mix * (u - x))
        phase = advance(phase, rate / sr)
    state[ST_PHASE] = phase
