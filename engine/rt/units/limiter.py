"""Limiter: the master bus's two limiters as a unit, for a part, a send or the master's inserts
(AUDIO THREAD kernels).

input_gain_db (smoothed) drives the input into one of the limiters engine.rt.master runs (the
same kernels, `safety_limit` and `lookahead_limit`, here over the unit's out rows); no output
sample ever exceeds ceiling_db:
- mode "safety" (the default): no delay. A held peak envelope (20 ms, then released over
  release_ms) pulls the level to 3 dB under the ceiling with a 1 ms attack; what the attack
  lets through is soft-clipped (at twice the rate) between that threshold and the ceiling.
  Below the threshold the output is the input, sample for sample.
- mode "lookahead": a stereo-linked brickwall limiter with a 1.5 ms look-ahead: transparent gain
  changes (no clipping), at the price of delay (below).
Both limit sample peaks. Between samples (true peak, 4x oversampled; tests/test_unit_limiter.py,
input 20 dB over a -1 dB ceiling) the look-ahead output stays within 0.1 dB of the ceiling on
sines under 5 kHz and goes up to 1.5 dB over it on full-band noise or content near Nyquist;
the safety limiter's clipping, up to 3.7 dB over (high sines). Set the ceiling that much lower
where true peak matters.

LATENCY: "safety" adds none; "lookahead" delays the unit's output by lookahead_samples(rate)
samples, round(1.5 ms x rate): 66 at 44.1 kHz, 72 at 48 kHz, 144 at 96 kHz
(`latency_samples(params, sample_rate)` says which). The graph does not compensate for it: a
look-ahead limiter on one part puts that part 1.5 ms behind the others, and on a send its
return comes 1.5 ms after the dry signal.

ceiling_db, release_ms and mode apply at once (a NaN or infinite target is ignored). A change of
mode starts the limiter it switches to afresh (the output steps: choose it once, not live).
Input samples that are NaN, infinite or beyond 1e15 are read as 0. The state is a unit header
then a limiter state (engine.rt.master: its counters and gain meter, `counters(state)`).
"""
from numba import njit

from engine.rt import master
from engine.rt.dsp import JIT, db_to_gain
from engine.rt.units.base import (IO_IN_L, IO_IN_R, IO_OUT_L, IO_OUT_R, Param, clampf, declare,
                                  finite_or_zero, smooth_coef_s, smooth_param)

NAME = "limiter"
MODES = ("safety", "lookahead")
PARAMS = declare([
    Param("mode", 0.0, 1.0, 0.0, curve="choice", smooth_s=0.0, choices=MODES,
          doc="safety: no delay, soft clip above ceiling - 3 dB; lookahead: 1.5 ms late, clean"),
    Param("input_gain_db", -24.0, 24.0, 0.0, doc="gain before the limiter (drives it)"),
    Param("ceiling_db", -24.0, 0.0, -1.0, smooth_s=0.0, doc="no output sample exceeds it (dBFS)"),
    Param("release_ms", 1.0, 2000.0, 80.0, curve="log", smooth_s=0.0,
          doc="time for the gain to recover 63 % after a peak"),
])
P_MODE, P_INPUT_GAIN_DB, P_CEILING_DB, P_RELEASE_MS = range(4)
N = len(PARAMS)
GAIN_SMOOTH_S = 0.02

U_READY, U_MODE = range(2)   # header: laid out (1), the mode the limiter last ran in
U_HDR = 2                    # then the limiter state (engine.rt.master.limiter_state_size)


def state_size(sample_rate):
    return U_HDR + master.limiter_state_size(sample_rate)


def latency_samples(params, sample_rate):
    """Control side: the unit's delay in samples with these params (0 in safety mode)."""
    return master.lookahead_samples(sample_rate) if params[P_MODE] >= 0.5 else 0


def counters(state):
    """Control side: the limiter's counters and gain meter (engine.rt.master.master_counters)."""
    return master.master_counters(state[U_HDR:])


@njit(**JIT)
def reset(state, sample_rate):
    if state.shape[0] < U_HDR + master.M_HDR + 3 * master.F_W:
        return
    master.limiter_init(state[U_HDR:])
    state[U_MODE] = 0.0
    state[U_READY] = 1.0


@njit(inline="always", **JIT)
def _at_once(params, k, lo, hi):
    """Parameter k's target, clamped, applied at once (a NaN or infinite one is ignored)."""
    t = params[k]
    if abs(t) < 1e300:
        params[N + k] = clampf(t, lo, hi)
    return params[N + k]


@njit(**JIT)
def process(state, params, bus, io, i0, i1, sample_rate):
    if i1 <= i0 or state.shape[0] < U_HDR + master.M_HDR + 3 * master.F_W:
        return
    il, ir, ol, orr = io[IO_IN_L], io[IO_IN_R], io[IO_OUT_L], io[IO_OUT_R]
    sr = clampf(sample_rate, 1000.0, 1e6)
    if state[U_READY] != 1.0:
        reset(state, sr)
    lim = state[U_HDR:]
    mode = 1.0 if _at_once(params, P_MODE, 0.0, 1.0) >= 0.5 else 0.0
    params[N + P_MODE] = mode
    if mode != state[U_MODE]:           # the limiter switched to starts afresh
        if mode == 1.0:
            master.reset_lookahead(lim)
        else:
            master.reset_safety(lim)
        state[U_MODE] = mode
    ceiling_db = _at_once(params, P_CEILING_DB, -24.0, 0.0)
    release_ms = _at_once(params, P_RELEASE_MS, 1.0, 2000.0)
    # the input gain into the out rows (both inputs read before either output is written)
    if params[N + P_INPUT_GAIN_DB] == params[P_INPUT_GAIN_DB]:
        g = db_to_gain(clampf(params[P_INPUT_GAIN_DB], -24.0, 24.0))
        for i in range(i0, i1):
            xl = finite_or_zero(bus[il, i])
            xr = finite_or_zero(bus[ir, i])
            bus[ol, i] = xl * g
            bus[orr, i] = xr * g
    else:
        cg = smooth_coef_s(GAIN_SMOOTH_S, sr)
        for i in range(i0, i1):
            g = db_to_gain(clampf(smooth_param(params, N, P_INPUT_GAIN_DB, cg), -24.0, 24.0))
            xl = finite_or_zero(bus[il, i])
            xr = finite_or_zero(bus[ir, i])
            bus[ol, i] = xl * g
            bus[orr, i] = xr * g
    if mode == 1.0:
        master.lookahead_limit(lim, ceiling_db, release_ms, bus[ol], bus[orr], i0, i1, sr)
    else:
        master.safety_limit(lim, ceiling_db, release_ms, bus[ol], bus[orr], i0, i1, sr)
