"""Noise gate with range, hold and hysteresis, stereo-linked, with an optional side chain
(AUDIO THREAD).

* Detector: the peak max(|L|, |R|) of the detector rows, sample by sample: the side rows when
  the io row has them (io[IO_SIDE_L/R] >= 0, one of them: a mono key; e.g. a kick gating a
  pad), else the input rows. One gain is applied to both channels (stereo-linked).
* Opens on the first sample whose level reaches threshold_db. While open, every sample at or
  above threshold_db - hysteresis_db re-arms the hold; after hold_ms of samples below it (the
  hold counted in whole samples, round(hold_ms * rate / 1000)) the gate closes. The hold also
  bridges a waveform's zero crossings: make it longer than the lowest period gated.
* Gain: 1 when open, 10^(range_db / 20) when closed (range_db 0: no gating; -80: 80 dB down, the
  gate of a down-expander of fixed depth), reached by a one-pole in the linear gain, with
  attack_ms (opening) and release_ms (closing) the time to cover 1 - 1/e of the change. The gain
  moves at most (1 - floor) * (1 - exp(-1 / (attack_ms * rate / 1000))) per sample, so it never
  steps; it snaps to its target once within 1e-9 of it (unity is exact: open is a pass-through).
  After reset the first sample's gain is its target at once (a gate starts open or closed, not
  in between).

threshold_db, range_db and hysteresis_db glide (20 ms); the three times apply at once (a time
constant cannot click). Input samples that are NaN, infinite or beyond 1e15 are read as 0.
"""
import math

import numpy as np
from numba import njit

from engine.rt.dsp import JIT
from engine.rt.units.base import (IO_IN_L, IO_IN_R, IO_OUT_L, IO_OUT_R, IO_SIDE_L, IO_SIDE_R,
                                  Param, clampf, clear, declare, finite_or_zero, params_settled,
                                  smooth_coef_s, smooth_param)

NAME = "gate"
PARAMS = declare([
    Param("threshold_db", -80.0, 0.0, -40.0, doc="the gate opens when the detector reaches this"),
    Param("range_db", -80.0, 0.0, -80.0, doc="gain while closed (0: no gating)"),
    Param("attack_ms", 0.05, 100.0, 0.5, curve="log", smooth_s=0.0,
          doc="opening: the gain covers 1 - 1/e of the way in this time"),
    Param("hold_ms", 0.0, 2000.0, 20.0, smooth_s=0.0,
          doc="stays open this long after the level falls below the closing threshold"),
    Param("release_ms", 1.0, 5000.0, 100.0, curve="log", smooth_s=0.0,
          doc="closing: the gain covers 1 - 1/e of the way in this time"),
    Param("hysteresis_db", 0.0, 24.0, 4.0,
          doc="closes below threshold_db minus this (no chatter around the threshold)"),
])
P_THRESHOLD_DB, P_RANGE_DB, P_ATTACK_MS, P_HOLD_MS, P_RELEASE_MS, P_HYSTERESIS_DB = range(6)
N = len(PARAMS)

SMOOTH_S = 0.02
SNAP = 1e-9          # the gain snaps to its target when this close (relative)

# state layout
(S_GAIN, S_OPEN, S_HOLD, S_FS_KEY, S_ATTACK_KEY, S_A_ATTACK, S_RELEASE_KEY, S_A_RELEASE,
 S_HOLD_KEY, S_HOLD_N) = range(10)
STATE_SIZE = 10


def state_size(sample_rate):
    return STATE_SIZE


@njit(**JIT)
def reset(state, sample_rate):
    clear(state)
    state[S_GAIN] = -1.0             # none yet: the first sample's target is taken at once
    state[S_FS_KEY] = -1.0           # no key: the coefficients are computed on the next call


@njit(inline="always", **JIT)
def _db(x):
    return math.pow(10.0, 0.05 * x)


@njit(**JIT)
def process(state, params, bus, io, i0, i1, sample_rate):
    il, ir, ol, orr = io[IO_IN_L], io[IO_IN_R], io[IO_OUT_L], io[IO_OUT_R]
    sl, sr = io[IO_SIDE_L], io[IO_SIDE_R]
    if sl < 0:
        sl = sr
    if sr < 0:
        sr = sl                      # one side row: a mono key; none: sl = sr = -1
    if sl < 0:
        sl = il
        sr = ir
    fs = clampf(sample_rate, 1000.0, 1e6)
    cp = smooth_coef_s(SMOOTH_S, fs)

    # the times apply at once; their coefficients are recomputed only when they change
    att = clampf(smooth_param(params, N, P_ATTACK_MS, 1.0), 0.05, 100.0)
    hold = clampf(smooth_param(params, N, P_HOLD_MS, 1.0), 0.0, 2000.0)
    rel = clampf(smooth_param(params, N, P_RELEASE_MS, 1.0), 1.0, 5000.0)
    if fs != state[S_FS_KEY]:
        state[S_FS_KEY] = fs
        state[S_ATTACK_KEY] = -1.0
        state[S_RELEASE_KEY] = -1.0
        state[S_HOLD_KEY] = -1.0
    if att != state[S_ATTACK_KEY]:
        state[S_ATTACK_KEY] = att
        state[S_A_ATTACK] = math.exp(-1000.0 / (att * fs))
    if rel != state[S_RELEASE_KEY]:
        state[S_RELEASE_KEY] = rel
        state[S_A_RELEASE] = math.exp(-1000.0 / (rel * fs))
    if hold != state[S_HOLD_KEY]:
        state[S_HOLD_KEY] = hold
        state[S_HOLD_N] = np.floor(hold * fs / 1000.0 + 0.5)
    a_att = state[S_A_ATTACK]
    a_rel = state[S_A_RELEASE]
    hold_n = state[S_HOLD_N]

    g = state[S_GAIN]
    if not (g >= 0.0 and g <= 1.0):
        g = -1.0
    is_open = state[S_OPEN] != 0.0
    left = state[S_HOLD]             # hold samples left (a shorter hold_ms cuts it short)
    if not left >= 0.0:
        left = 0.0
    elif left > hold_n:
        left = hold_n

    moving = not params_settled(params, N)
    thr = clampf(params[N + P_THRESHOLD_DB], -80.0, 0.0)
    floor_ = _db(clampf(params[N + P_RANGE_DB], -80.0, 0.0))
    open_lin = _db(thr)
    close_lin = _db(thr - clampf(params[N + P_HYSTERESIS_DB], 0.0, 24.0))
    for i in range(i0, i1):
        if moving:
            thr = clampf(smooth_param(params, N, P_THRESHOLD_DB, cp), -80.0, 0.0)
            floor_ = _db(clampf(smooth_param(params, N, P_RANGE_DB, cp), -80.0, 0.0))
            hyst = clampf(smooth_param(params, N, P_HYSTERESIS_DB, cp), 0.0, 24.0)
            open_lin = _db(thr)
            close_lin = _db(thr - hyst)
            moving = not params_settled(params, N)
        l = finite_or_zero(bus[il, i])
        r = finite_or_zero(bus[ir, i])
        level = max(abs(finite_or_zero(bus[sl, i])), abs(finite_or_zero(bus[sr, i])))
        if is_open:
            if level >= close_lin:
                left = hold_n
            elif left > 0.0:
                left -= 1.0
            else:
                is_open = False
        elif level >= open_lin:
            is_open = True
            left = hold_n
        target = 1.0 if is_open else floor_
        if g < 0.0:
            g = target
        elif g != target:
            a = a_att if target > g else a_rel
            g = target + a * (g - target)
            if abs(g - target) <= SNAP * target:
                g = target
        bus[ol, i] = l * g
        bus[orr, i] = r * g
    state[S_GAIN] = g
    state[S_OPEN] = 1.0 if is_open else 0.0
    state[S_HOLD] = left
