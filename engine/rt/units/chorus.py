"""Stereo chorus: 1 to 3 voices per side, each the input through a delay swept by a sine LFO
(AUDIO THREAD).

Voice v of V reads the delay line at delay_ms + depth_ms * sin(2 pi (phase + v / V)), with the
right side's LFOs a quarter cycle times `spread` later than the left's: the two sides' delays
differ at every moment, which decorrelates them and widens a mono input (spread 0: the sides
are the same). The sweep is kept symmetric and inside the line: depth is limited to
delay_ms - 1 ms. Reads are 4-point Hermite interpolated (engine.rt.units.moddelay); `feedback`
sends the voices' mean back into the line. The LFO phase lives in the state and advances once
per sample, so the output does not depend on how blocks are cut; the voices' sines come from
one sine and cosine of it per sample by angle addition.
"""
import math

from numba import njit

from engine.rt.dsp import JIT
from engine.rt.units.base import (IO_IN_L, IO_IN_R, IO_OUT_L, IO_OUT_R, Param, clampf, declare,
                                  finite_or_zero, smooth_param)
from engine.rt.units.moddelay import (HDR, begin, end, feed, read, reset,  # noqa: F401
                                      step, stereo_line_size)

NAME = "chorus"
VOICES = ("1", "2", "3")
PARAMS = declare([
    Param("rate_hz", 0.05, 5.0, 0.8, curve="log", doc="LFO rate"),
    Param("depth_ms", 0.0, 10.0, 3.0, doc="sweep either side of the centre delay"),
    Param("delay_ms", 5.0, 40.0, 15.0, smooth_s=0.1, doc="centre delay"),
    Param("voices", 0.0, 2.0, 1.0, curve="choice", smooth_s=0.0, choices=VOICES),
    Param("spread", 0.0, 1.0, 1.0, doc="right LFOs later by spread x 1/4 cycle"),
    Param("mix", 0.0, 1.0, 0.5, doc="wet share"),
    Param("feedback", 0.0, 0.9, 0.0, doc="voices' mean sent back into the line"),
])
P_RATE, P_DEPTH, P_DELAY, P_VOICES, P_SPREAD, P_MIX, P_FEEDBACK = range(7)
N = len(PARAMS)

MAX_MS = 40.0 + 10.0
TWO_PI = 2.0 * math.pi


def state_size(sample_rate):
    return stereo_line_size(MAX_MS, sample_rate)


@njit(**JIT)
def process(state, params, bus, io, i0, i1, sample_rate):
    il, ir, ol, orr = io[IO_IN_L], io[IO_IN_R], io[IO_OUT_L], io[IO_OUT_R]
    sr, m, cs, cd, ms, pos, phase = begin(state, sample_rate)
    nv = int(clampf(params[P_VOICES], 0.0, 2.0) + 0.5)
    params[N + P_VOICES] = nv
    nv += 1
    # Each voice's LFO is sin(2 pi (phase + v / nv + off)): from one sine and cosine of the phase
    # per sample, rotated by each voice's constant angle (and the right side's by the spread's),
    # instead of a sine per voice and side (two transcendental calls a sample, not six).
    kc0, ks0 = 1.0, 0.0
    kc1, ks1 = math.cos(TWO_PI / nv), math.sin(TWO_PI / nv)
    kc2, ks2 = math.cos(2.0 * TWO_PI / nv), math.sin(2.0 * TWO_PI / nv)
    last_spread = -1.0
    rc, rs = 1.0, 0.0
    for i in range(i0, i1):
        rate = clampf(smooth_param(params, N, P_RATE, cs), 0.05, 5.0)
        depth = clampf(smooth_param(params, N, P_DEPTH, cs), 0.0, 10.0)
        delay = clampf(smooth_param(params, N, P_DELAY, cd), 5.0, 40.0)
        spread = clampf(smooth_param(params, N, P_SPREAD, cs), 0.0, 1.0)
        mix = clampf(smooth_param(params, N, P_MIX, cs), 0.0, 1.0)
        fb = clampf(smooth_param(params, N, P_FEEDBACK, cs), 0.0, 0.9)
        if depth > delay - 1.0:
            depth = delay - 1.0
        if spread != last_spread:
            rc, rs = math.cos(TWO_PI * 0.25 * spread), math.sin(TWO_PI * 0.25 * spread)
            last_spread = spread
        a = TWO_PI * phase
        s0, c0 = math.sin(a), math.cos(a)
        for c in range(2):
            base = HDR + c * m
            x = finite_or_zero(bus[il if c == 0 else ir, i])
            wet = 0.0
            for v in range(nv):
                kc, ks = (kc0, ks0) if v == 0 else (kc1, ks1) if v == 1 else (kc2, ks2)
                sv = s0 * kc + c0 * ks                  # sin(a + 2 pi v / nv)
                if c == 1:
                    cv = c0 * kc - s0 * ks              # cos(a + 2 pi v / nv)
                    sv = sv * rc + cv * rs              # a quarter cycle x spread later
                wet += read(state, base, m, pos, (delay + depth * sv) * ms)
            wet /= nv
            bus[ol if c == 0 else orr, i] = feed(state, base, pos, x, wet, fb, mix)
        pos, phase = step(pos, phase, m, rate / sr)
    end(state, pos, phase)
