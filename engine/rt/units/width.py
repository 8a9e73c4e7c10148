"""Stereo width (mid/side): 0 = mono, 1 = unchanged, 2 = twice the side (AUDIO THREAD)."""
import math

from numba import njit

from engine.rt.dsp import JIT
from engine.rt.units.base import (IO_IN_L, IO_IN_R, IO_OUT_L, IO_OUT_R, Param, clampf, declare,
                                  finite_or_zero, smooth_coef_s, smooth_param)

NAME = "width"
PARAMS = declare([
    Param("width", 0.0, 2.0, 1.0, doc="side level: 0 mono, 1 as is, 2 twice as wide"),
    Param("gain_db", -24.0, 24.0, 0.0, doc="output level"),
])
P_WIDTH, P_GAIN_DB = 0, 1
N = len(PARAMS)


def state_size(sample_rate):
    return 1


@njit(**JIT)
def reset(state, sample_rate):
    state[0] = 0.0


@njit(**JIT)
def process(state, params, bus, io, i0, i1, sample_rate):
    il, ir, ol, orr = io[IO_IN_L], io[IO_IN_R], io[IO_OUT_L], io[IO_OUT_R]
    cw = smooth_coef_s(0.02, sample_rate)
    for i in range(i0, i1):
        w = clampf(smooth_param(params, N, P_WIDTH, cw), 0.0, 2.0)
        g = math.pow(10.0, clampf(smooth_param(params, N, P_GAIN_DB, cw), -24.0, 24.0) / 20.0)
        l = finite_or_zero(bus[il, i])
        r = finite_or_zero(bus[ir, i])
        mid = 0.5 * (l + r)
        side = 0.5 * (l - r) * w
        bus[ol, i] = (mid + side) * g
        bus[orr, i] = (mid - side) * g
