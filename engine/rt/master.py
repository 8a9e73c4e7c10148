"""The master bus: gain, DC blocker, non-finite guard, look-ahead brickwall limiter.

Threads:
    master_alloc_state, master_default_params, lookahead_samples, master_counters
        control side, prepare time (master_counters: any time, it only reads)
    master_process, master_reset
        AUDIO THREAD (nopython, no allocation)

master_process works in place on buf_l, buf_r over [i0, i1). Per sample:
1. guard: a sample that is NaN, infinite or beyond +-1e15 becomes 0 before it touches any
   state, and is counted (M_NONFINITE). If the filter/limiter state is ever non-finite
   anyway, it is reset (M_RESETS).
2. gain_db (smoothed), then a DC blocker (one-pole highpass at DC_HZ).
3. look-ahead limiter, stereo-linked: each input sample's required gain
   min(1, ceiling / peak) is held (sliding minimum) over the lookahead window, released with
   release_ms (one-pole, only upwards), then averaged over the lookahead (a linear attack
   ramp). The output is the input delayed by lookahead_samples(sample_rate), times that gain:
   it can never exceed the ceiling.
4. a hard clamp at the ceiling, as a second guarantee; it should never engage and is counted
   (M_CLAMPED) when it does.

Latency: the output is delayed by exactly lookahead_samples(sample_rate) samples (72 at 48 kHz).
Counters live in the state (float64, only ever increased by the audio thread): read them with
master_counters(state) and report the difference from the previous read.
"""
import math

import numpy as np
from numba import njit

from .dsp import JIT, db_to_gain, flush, smooth_coef

MASTER_GAIN_DB = 0        # dB before the limiter, -60..+24 (smoothed)
LIMITER_CEILING_DB = 1    # dBFS, -24..0: no output sample ever exceeds it
LIMITER_RELEASE_MS = 2    # ms, 1..2000
MASTER_N_PARAMS = 3

MASTER_PARAM_NAMES = {"gain_db": MASTER_GAIN_DB, "ceiling_db": LIMITER_CEILING_DB,
                      "release_ms": LIMITER_RELEASE_MS}

LOOKAHEAD_S = 0.0015
DC_HZ = 10.0
GAIN_SMOOTH_S = 0.02
INPUT_LIMIT = 1e15
CEILING_MARGIN = 1.0 - 1e-9  # keeps rounding in the gain average from touching the hard clamp

# header
M_INIT, M_POS, M_LOOKAHEAD, M_GAIN, M_DC_XL, M_DC_YL, M_DC_XR, M_DC_YR, M_RELEASED = range(9)
M_LIMIT_GAIN = 9    # meter: the gain applied to the last output sample (1 = not limiting)
M_NONFINITE = 10    # counter: input samples (per channel) that were NaN / Inf / absurd
M_CLAMPED = 11      # counter: output samples the final hard clamp had to touch
M_RESETS = 12       # counter: state resets after a non-finite state
M_HDR = 16
# rings of size lookahead + 1 after the header: audio L, audio R, required gain, released gain,
# ceiling (the ceiling in force when each sample came in)
N_RINGS = 5


def lookahead_samples(sample_rate):
    """Control side: the limiter's latency in samples (constant for a sample rate)."""
    return max(1, int(round(LOOKAHEAD_S * sample_rate)))


def master_alloc_state(sample_rate):
    """Control side, prepare time: the master bus state for this sample rate."""
    la = lookahead_samples(sample_rate)
    st = np.zeros(M_HDR + N_RINGS * (la + 1), dtype=np.float64)
    st[M_LOOKAHEAD] = la
    _reset_dynamics(st)
    return st


def master_default_params():
    """Control side: gain 0 dB, ceiling -1 dBFS, release 80 ms."""
    p = np.zeros(MASTER_N_PARAMS, dtype=np.float64)
    p[MASTER_GAIN_DB] = 0.0
    p[LIMITER_CEILING_DB] = -1.0
    p[LIMITER_RELEASE_MS] = 80.0
    return p


def master_counters(state):
    """Control side: the counters and the gain meter (totals since the state was allocated)."""
    return {"nonfinite": int(state[M_NONFINITE]), "clamped": int(state[M_CLAMPED]),
            "resets": int(state[M_RESETS]), "limit_gain": float(state[M_LIMIT_GAIN])}


@njit(**JIT)
def _clamp(x, lo, hi):
    """Clamp to [lo, hi]; NaN gives lo."""
    if x >= lo:
        return x if x <= hi else hi
    return lo


@njit(**JIT)
def _reset_dynamics(state):
    """Clear filter and limiter state, keep counters (the next sample re-snaps the params)."""
    n = int(state[M_LOOKAHEAD]) + 1
    state[M_INIT] = 0.0
    state[M_POS] = 0.0
    state[M_GAIN] = 0.0
    state[M_DC_XL] = 0.0
    state[M_DC_YL] = 0.0
    state[M_DC_XR] = 0.0
    state[M_DC_YR] = 0.0
    state[M_RELEASED] = 1.0
    state[M_LIMIT_GAIN] = 1.0
    for k in range(n):
        state[M_HDR + k] = 0.0           # audio L
        state[M_HDR + n + k] = 0.0       # audio R
        state[M_HDR + 2 * n + k] = 1.0   # required gain
        state[M_HDR + 3 * n + k] = 1.0   # released gain
        state[M_HDR + 4 * n + k] = 1.0   # ceiling (re-filled on init)


@njit(**JIT)
def master_reset(state):
    """AUDIO THREAD or control side. Silence the lookahead line and clear every filter state."""
    _reset_dynamics(state)


@njit(**JIT)
def master_process(state, params, buf_l, buf_r, i0, i1, sample_rate):
    """AUDIO THREAD. Master bus in place on buf_l, buf_r over [i0, i1) (see module doc)."""
    if i1 <= i0:
        return
    sr = max(sample_rate, 1000.0)
    la = int(state[M_LOOKAHEAD])
    n = la + 1
    ra = M_HDR            # audio L
    rb = M_HDR + n        # audio R
    rq = M_HDR + 2 * n    # required gain
    rh = M_HDR + 3 * n    # released (held) gain
    rc = M_HDR + 4 * n    # ceiling per sample
    t_gain = db_to_gain(_clamp(params[MASTER_GAIN_DB], -60.0, 24.0))
    ceiling = db_to_gain(_clamp(params[LIMITER_CEILING_DB], -24.0, 0.0))
    rel = smooth_coef(_clamp(params[LIMITER_RELEASE_MS], 1.0, 2000.0) * 1e-3, sr)
    ks = smooth_coef(GAIN_SMOOTH_S, sr)
    r_dc = 1.0 - 2.0 * math.pi * DC_HZ / sr
    inv_la = 1.0 / la
    for i in range(i0, i1):
        if state[M_INIT] == 0.0:
            state[M_INIT] = 1.0
            state[M_GAIN] = t_gain
            for k in range(n):
                state[rc + k] = ceiling
        xl = buf_l[i]
        xr = buf_r[i]
        if not abs(xl) < INPUT_LIMIT:
            xl = 0.0
            state[M_NONFINITE] += 1.0
        if not abs(xr) < INPUT_LIMIT:
            xr = 0.0
            state[M_NONFINITE] += 1.0
        g = state[M_GAIN] + ks * (t_gain - state[M_GAIN])
        state[M_GAIN] = g
        xl *= g
        xr *= g
        # DC blocker
        yl = flush(xl - state[M_DC_XL] + r_dc * state[M_DC_YL])
        yr = flush(xr - state[M_DC_XR] + r_dc * state[M_DC_YR])
        state[M_DC_XL] = xl
        state[M_DC_YL] = yl
        state[M_DC_XR] = xr
        state[M_DC_YR] = yr
        # push into the lookahead rings
        pos = int(state[M_POS])
        state[ra + pos] = yl
        state[rb + pos] = yr
        peak = max(abs(yl), abs(yr))
        lim = ceiling * CEILING_MARGIN
        state[rq + pos] = lim / peak if peak > lim else 1.0
        state[rc + pos] = ceiling
        # hold: minimum required gain over the last la + 1 inputs
        held = 1.0
        for k in range(n):
            q = state[rq + k]
            if q < held:
                held = q
        # release upwards only (never above `held`, so the guarantee stands)
        released = state[M_RELEASED]
        released = held if held < released else released + rel * (held - released)
        state[M_RELEASED] = released
        state[rh + pos] = released
        # attack: average of the last la released gains (skip the oldest slot of the ring)
        old = pos + 1 if pos + 1 < n else 0
        acc = 0.0
        for k in range(n):
            if k != old:
                acc += state[rh + k]
        gain = acc * inv_la
        out_l = state[ra + old] * gain
        out_r = state[rb + old] * gain
        c = state[rc + old]
        if abs(out_l) > c:
            out_l = c if out_l > 0.0 else -c
            state[M_CLAMPED] += 1.0
        if abs(out_r) > c:
            out_r = c if out_r > 0.0 else -c
            state[M_CLAMPED] += 1.0
        state[M_LIMIT_GAIN] = gain
        state[M_POS] = old
        if not (abs(out_l) <= c and abs(out_r) <= c and abs(yl) < 1e300 and abs(yr) < 1e300):
            _reset_dynamics(state)
            state[M_RESETS] += 1.0
            out_l = 0.0
            out_r = 0.0
        buf_l[i] = out_l
        buf_r[i] = out_r
