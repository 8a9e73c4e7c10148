"""Flanger: a short delay (0.1 to 10 ms) swept by a sine LFO, with feedback, blended with the
dry signal (AUDIO THREAD).

The delay is delay_ms * (1 + depth * sin(2 pi phase)) (depth 1 sweeps from 0 to twice
delay_ms; the read never comes closer than 2 samples, see engine.rt.units.moddelay). The line
is fed x + feedback * wet, so the wet path alone is z^-D / (1 - feedback z^-D): peaks at k / D
for a positive feedback, at (k + 1/2) / D for a negative one; blended half and half with the
dry signal and no feedback, notches at (k + 1/2) / D. The right side's LFO is `spread` half
cycles later than the left's. The LFO phase lives in the state and advances once per sample.
"""

from numba import njit

from engine.rt.dsp import JIT
from engine.rt.units.base import (IO_IN_L, IO_IN_R, IO_OUT_L, IO_OUT_R, Param, clampf, declare,
                                  finite_or_zero, smooth_param)
from engine.rt.units.moddelay import (HDR, begin, end, feed, lfo, read, reset,  # noqa: F401
                                      step, stereo_line_size, wrap1)

NAME = "flanger"
PARAMS = declare([
    Param("delay_ms", 0.1, 10.0, 2.0, curve="log", smooth_s=0.1, doc="centre delay"),
    Param("depth", 0.0, 1.0, 0.5, doc="sweep, a share of the centre delay either side"),
    Param("rate_hz", 0.02, 5.0, 0.25, curve="log", doc="LFO rate"),
    Param("feedback", -0.95, 0.95, 0.5, doc="wet sent back into the line"),
    Param("mix", 0.0, 1.0, 0.5, doc="wet share"),
    Param("spread", 0.0, 1.0, 0.0, doc="right LFO later by spread x 1/2 cycle"),
])
P_DELAY, P_DEPTH, P_RATE, P_FEEDBACK, P_MIX, P_SPREAD = range(6)
N = len(PARAMS)

MAX_MS = 20.0


def state_size(sample_rate):
    return stereo_line_size(MAX_MS, sample_rate)


@njit(**JIT)
def process(state, params, bus, io, i0, i1, sample_rate):
    il, ir, ol, orr = io[IO_IN_L], io[IO_IN_R], io[IO_OUT_L], io[IO_OUT_R]
    sr, m, cs, cd, ms, pos, phase = begin(state, sample_rate)
    for i in range(i0, i1):
        delay = clampf(smooth_param(params, N, P_DELAY, cd), 0.1, 10.0)
        depth = clampf(smooth_param(params, N, P_DEPTH, cs), 0.0, 1.0)
        rate = clampf(smooth_param(params, N, P_RATE, cs), 0.02, 5.0)
        fb = clampf(smooth_param(params, N, P_FEEDBACK, cs), -0.95, 0.95)
        mix = clampf(smooth_param(params, N, P_MIX, cs), 0.0, 1.0)
        spread = clampf(smooth_param(params, N, P_SPREAD, cs), 0.0, 1.0)
        for c in range(2):
            base = HDR + c * m
            x = finite_or_zero(bus[il if c == 0 else ir, i])
            ph = phase if c == 0 else wrap1(phase + 0.5 * spread)
            wet = read(state, base, m, pos, delay * (1.0 + depth * lfo(ph)) * ms)
            bus[ol if c == 0 else orr, i] = feed(state, base, pos, x, wet, fb, mix)
        pos, phase = step(pos, phase, m, rate / sr)
    end(state, pos, phase)
