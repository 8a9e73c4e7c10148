"""Stereo-linked feed-forward compressor (AUDIO THREAD).

After Giannoulis, Massberg & Reiss, "Digital Dynamic Range Compressor Design - A Tutorial and
Analysis" (JAES 2012), the log-domain feed-forward design of their Fig. 7:

  detector level x (dB) -> gain computer (quadratic soft knee, eq. 4) -> gain reduction
  x - y(x) >= 0 dB -> smooth branching detector in the dB domain (eq. 17: attack one-pole while
  the reduction rises, release one-pole while it falls) -> gain 10^((makeup - reduction) / 20)
  applied to both channels (stereo-linked).

* detector "peak": max(|L|, |R|) of the detector rows, sample by sample (all the ballistics are
  in the gain-reduction smoother, as in the paper); "rms": a one-pole (10 ms) on the mean square
  (L^2 + R^2) / 2, read as its true RMS level (a sine at peak A reads A - 3.01 dB).
* sidechain "internal": the detector reads the input rows; "external": the side rows (a kick
  ducking a bass), when the io row has them; with side rows -1 it falls back to the input.
* attack_ms / release_ms: time for the gain reduction to cover 1 - 1/e of a step.
* mix: dry * (1 - mix) + compressed * mix.

Every parameter is smoothed per sample and clamped; input samples that are NaN or infinite are
read as 0 and magnitudes are clamped to 1e9, so the output stays finite; recursive state is
flushed of denormals.
"""
import math

from numba import njit

from engine.rt.dsp import JIT, flush
from engine.rt.units.base import (IO_IN_L, IO_IN_R, IO_OUT_L, IO_OUT_R, IO_SIDE_L, IO_SIDE_R,
                                  Param, clampf, declare, smooth_coef_s, smooth_param)

NAME = "compressor"
PARAMS = declare([
    Param("threshold_db", -60.0, 0.0, -18.0, doc="level where compression starts (knee centre)"),
    Param("ratio", 1.0, 20.0, 4.0, curve="log", doc="input dB over threshold per output dB"),
    Param("knee_db", 0.0, 24.0, 6.0, doc="width of the quadratic soft knee (0: hard knee)"),
    Param("attack_ms", 0.1, 200.0, 10.0, curve="log",
          doc="gain reduction covers 1 - 1/e of a rise in this time"),
    Param("release_ms", 5.0, 2000.0, 100.0, curve="log",
          doc="gain reduction covers 1 - 1/e of a fall in this time"),
    Param("makeup_db", 0.0, 24.0, 0.0, doc="gain after compression"),
    Param("detector", 0.0, 1.0, 0.0, curve="choice", smooth_s=0.0, choices=("peak", "rms"),
          doc="peak: sample magnitude; rms: 10 ms mean square"),
    Param("sidechain", 0.0, 1.0, 0.0, curve="choice", smooth_s=0.0,
          choices=("internal", "external"),
          doc="external: the detector listens to the side rows (input when there are none)"),
    Param("mix", 0.0, 1.0, 1.0, doc="0 dry, 1 compressed (parallel compression between)"),
])
(P_THRESHOLD_DB, P_RATIO, P_KNEE_DB, P_ATTACK_MS, P_RELEASE_MS, P_MAKEUP_DB, P_DETECTOR,
 P_SIDECHAIN, P_MIX) = range(9)
N = len(PARAMS)

RMS_WINDOW_S = 0.010
FLOOR_DB = -240.0           # detector level of silence
MAX_INPUT = 1e9             # input magnitudes are clamped here (+180 dBFS): output stays finite

# state layout
S_MS, S_GR, S_ATTACK_KEY, S_ATTACK_A, S_RELEASE_KEY, S_RELEASE_A = range(6)
STATE_SIZE = 6


def state_size(sample_rate):
    return STATE_SIZE


@njit(**JIT)
def reset(state, sample_rate):
    state[S_MS] = 0.0
    state[S_GR] = 0.0
    state[S_ATTACK_KEY] = -1.0       # no time is -1 ms: the coefficients are recomputed
    state[S_ATTACK_A] = 0.0
    state[S_RELEASE_KEY] = -1.0
    state[S_RELEASE_A] = 0.0


@njit(inline="always", **JIT)
def gain_reduction_db(x_db, threshold_db, ratio, knee_db):
    """The static curve as a reduction x - y(x) >= 0 in dB (Giannoulis et al. eq. 4)."""
    d = x_db - threshold_db
    slope = 1.0 - 1.0 / ratio
    if knee_db > 0.0 and 2.0 * abs(d) <= knee_db:
        t = d + 0.5 * knee_db
        return slope * t * t / (2.0 * knee_db)
    if 2.0 * d > knee_db:
        return slope * d
    return 0.0


@njit(inline="always", **JIT)
def clean(x):
    """A finite sample within +-MAX_INPUT (NaN and infinities read as 0)."""
    if not abs(x) <= MAX_INPUT:
        if abs(x) < math.inf:
            return MAX_INPUT if x > 0.0 else -MAX_INPUT
        return 0.0
    return x


@njit(**JIT)
def process(state, params, bus, io, i0, i1, sample_rate):
    il, ir, ol, orr = io[IO_IN_L], io[IO_IN_R], io[IO_OUT_L], io[IO_OUT_R]
    sl, sr = io[IO_SIDE_L], io[IO_SIDE_R]
    if sl < 0:
        sl = sr
    if sr < 0:
        sr = sl                          # one side row: mono side chain; none: sl = sr = -1
    fs = clampf(sample_rate, 1000.0, 1e6)
    cp = smooth_coef_s(0.02, fs)
    c_rms = smooth_coef_s(RMS_WINDOW_S, fs)
    ms = state[S_MS]
    gr = state[S_GR]
    if not (ms >= 0.0 and ms <= MAX_INPUT * MAX_INPUT):
        ms = 0.0
    if not (gr >= 0.0 and gr <= 1e4):
        gr = 0.0
    for i in range(i0, i1):
        thr = clampf(smooth_param(params, N, P_THRESHOLD_DB, cp), -60.0, 0.0)
        ratio = clampf(smooth_param(params, N, P_RATIO, cp), 1.0, 20.0)
        knee = clampf(smooth_param(params, N, P_KNEE_DB, cp), 0.0, 24.0)
        att = clampf(smooth_param(params, N, P_ATTACK_MS, cp), 0.1, 200.0)
        rel = clampf(smooth_param(params, N, P_RELEASE_MS, cp), 5.0, 2000.0)
        makeup = clampf(smooth_param(params, N, P_MAKEUP_DB, cp), 0.0, 24.0)
        rms = smooth_param(params, N, P_DETECTOR, 1.0) >= 0.5
        external = smooth_param(params, N, P_SIDECHAIN, 1.0) >= 0.5
        mix = clampf(smooth_param(params, N, P_MIX, cp), 0.0, 1.0)
        if att != state[S_ATTACK_KEY]:
            state[S_ATTACK_KEY] = att
            state[S_ATTACK_A] = math.exp(-1000.0 / (att * fs))
        if rel != state[S_RELEASE_KEY]:
            state[S_RELEASE_KEY] = rel
            state[S_RELEASE_A] = math.exp(-1000.0 / (rel * fs))

        l = clean(bus[il, i])
        r = clean(bus[ir, i])
        if external and sl >= 0:
            dl = clean(bus[sl, i])
            dr = clean(bus[sr, i])
        else:
            dl = l
            dr = r
        ms = flush(ms + c_rms * (0.5 * (dl * dl + dr * dr) - ms))
        if rms:
            x_db = 10.0 * math.log10(ms) if ms > 1e-24 else FLOOR_DB
        else:
            pk = max(abs(dl), abs(dr))
            x_db = 20.0 * math.log10(pk) if pk > 1e-12 else FLOOR_DB

        target = gain_reduction_db(x_db, thr, ratio, knee)
        a = state[S_ATTACK_A] if target > gr else state[S_RELEASE_A]
        gr = flush(a * gr + (1.0 - a) * target)

        g = math.pow(10.0, (makeup - gr) * 0.05)
        bus[ol, i] = l * (1.0 - mix) + (l * g) * mix
        bus[orr, i] = r * (1.0 - mix) + (r * g) * mix
    state[S_MS] = ms
    state[S_GR] = gr
