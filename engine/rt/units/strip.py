"""A mixer strip: level, pan, mute and sends of one part or return (AUDIO THREAD).

The strip ADDS its input into the out rows (the mix bus, cleared by the render kernel at each
span) and into the graph's send rows: send k's stereo pair is rows io[IO_AUX] + 2k and + 2k + 1
(io[IO_AUX] = -1: no sends). Sends are post-fader and pre-pan, like a console's.

Pan is equal-power and 0 dB at the centre (a mono input panned hard left gets +3 dB on the left);
a stereo input is balanced by the same two gains. The linear gains, not the parameters, are
smoothed (one pole, SMOOTH_S), starting from silence when the strip is reset, so a new strip
fades in and any move of level, pan or send is click-free.
"""
import math

from numba import njit

from engine.rt.dsp import JIT
from engine.rt.units.base import (IO_AUX, IO_IN_L, IO_IN_R, IO_OUT_L, IO_OUT_R, Param, clampf,
                                  declare, finite_or_zero, smooth_coef_s)

NAME = "strip"
N_SENDS = 4
PARAMS = declare([
    Param("gain_db", -70.0, 12.0, 0.0, doc="level; -70 is silence"),
    Param("pan", -1.0, 1.0, 0.0, doc="-1 left, 0 centre, 1 right (equal power)"),
    Param("mute", 0.0, 1.0, 0.0, curve="choice", choices=("off", "on"), smooth_s=0.0),
    Param("send1", 0.0, 1.0, 0.0, doc="level into send 1 (post-fader), linear"),
    Param("send2", 0.0, 1.0, 0.0, doc="level into send 2"),
    Param("send3", 0.0, 1.0, 0.0, doc="level into send 3"),
    Param("send4", 0.0, 1.0, 0.0, doc="level into send 4"),
])
P_GAIN_DB, P_PAN, P_MUTE, P_SEND1 = 0, 1, 2, 3
N = len(PARAMS)
SMOOTH_S = 0.015
G_LEFT, G_RIGHT, G_SEND = 0, 1, 2     # state: smoothed gains (left, right, sends 1..4)
STATE_SIZE = G_SEND + N_SENDS


def state_size(sample_rate):
    return STATE_SIZE


@njit(**JIT)
def reset(state, sample_rate):
    for i in range(STATE_SIZE):
        state[i] = 0.0


@njit(**JIT)
def process(state, params, bus, io, i0, i1, sample_rate):
    il, ir, ol, orr, aux = io[IO_IN_L], io[IO_IN_R], io[IO_OUT_L], io[IO_OUT_R], io[IO_AUX]
    for k in range(N):
        params[N + k] = params[k]
    g = 0.0
    gain_db = params[P_GAIN_DB]
    if params[P_MUTE] < 0.5 and gain_db > -70.0:
        g = math.pow(10.0, clampf(gain_db, -70.0, 12.0) / 20.0)
    pan = clampf(params[P_PAN], -1.0, 1.0)
    tl = tr = g                       # centre: exactly the level (a return adds x * 1.0)
    if pan != 0.0:
        angle = (pan + 1.0) * (math.pi / 4.0)
        tl = g * math.cos(angle) * math.sqrt(2.0)
        tr = g * math.sin(angle) * math.sqrt(2.0)
    smooth = smooth_coef_s(SMOOTH_S, sample_rate)
    gl, gr = state[G_LEFT], state[G_RIGHT]
    if gl == tl and gr == tr:
        for s in range(i0, i1):
            bus[ol, s] += finite_or_zero(bus[il, s]) * gl
            bus[orr, s] += finite_or_zero(bus[ir, s]) * gr
    else:
        for s in range(i0, i1):
            gl += (tl - gl) * smooth
            gr += (tr - gr) * smooth
            if abs(tl - gl) < 1e-12 and abs(tr - gr) < 1e-12:
                gl, gr = tl, tr       # settled: exactly the target from here on
            bus[ol, s] += finite_or_zero(bus[il, s]) * gl
            bus[orr, s] += finite_or_zero(bus[ir, s]) * gr
    state[G_LEFT], state[G_RIGHT] = gl, gr
    if aux < 0:
        return
    for k in range(N_SENDS):
        ts = g * clampf(params[P_SEND1 + k], 0.0, 1.0)
        gs = state[G_SEND + k]
        if ts == 0.0 and gs == 0.0:
            continue
        rl = aux + 2 * k
        for s in range(i0, i1):
            if gs != ts:
                gs += (ts - gs) * smooth
                if abs(ts - gs) < 1e-12:
                    gs = ts   # settled (a send turned off ends at 0 and is skipped from then)
            bus[rl, s] += finite_or_zero(bus[il, s]) * gs
            bus[rl + 1, s] += finite_or_zero(bus[ir, s]) * gs
        state[G_SEND + k] = gs
