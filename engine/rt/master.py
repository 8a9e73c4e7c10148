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
   Both the sliding minimum and the sliding sum cost O(1) per sample (van Herk / Gil-Werman):
   the window is the part of the ring written in the current lap (a running prefix min / sum)
   plus the rest of the previous lap (suffix mins / sums, computed once per lap, when the lap
   ends). The sums only ever add non-negative gains (no running subtraction), so their
   relative rounding error stays ~1e-15 and the gain average never exceeds the smallest
   required gain in its window by more than CEILING_MARGIN covers.
4. a hard clamp at the ceiling, as a second guarantee; it should never engage and is counted
   (M_CLAMPED) when it does.

Latency: the output is delayed by exactly lookahead_samples(sample_rate) samples (72 at 48 kHz).
Counters live in the state (float64, only ever increased by the audio thread): read them with
master_counters(state) and report the difference from the previous read.
"""
import math

import numpy as np
from numba import njit

from .dsp import JIT, clamp, db_to_gain, flush, smooth_coef

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
M_PMIN = 13         # min of the required gains written so far in this lap of the ring
M_PSUM = 14         # sum of the released gains written so far in this lap
M_HDR = 16
# After the header, a ring of lookahead + 1 frames (and one more frame, the empty suffix), each
# frame F_W floats: the sample's audio L and R, its required gain, its released gain, the
# ceiling in force when it came in, and the suffix min of the required gains / suffix sum of
# the released gains of the last completed lap from this slot on (so frame lookahead + 1 holds
# min 1, sum 0).
F_L, F_R, F_REQ, F_REL, F_CEIL, F_SMIN, F_SSUM = range(7)
F_W = 8


def lookahead_samples(sample_rate):
    """Control side: the limiter's latency in samples (constant for a sample rate)."""
    return max(1, int(round(LOOKAHEAD_S * sample_rate)))


def master_alloc_state(sample_rate):
    """Control side, prepare time: the master bus state for this sample rate."""
    la = lookahead_samples(sample_rate)
    st = np.zeros(M_HDR + F_W * (la + 2), dtype=np.float64)
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


@njit(inline="always", **JIT)
def _at(i):
    """An index known to be >= 0: unsigned, so no negative-index wraparound is compiled in."""
    return np.uint64(i)


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
    state[M_PMIN] = 1.0
    state[M_PSUM] = 0.0
    for k in range(n + 1):
        f = M_HDR + F_W * k
        state[f + F_L] = 0.0
        state[f + F_R] = 0.0
        state[f + F_REQ] = 1.0
        state[f + F_REL] = 1.0
        state[f + F_CEIL] = 1.0  # re-filled on init
        state[f + F_SMIN] = 1.0
        state[f + F_SSUM] = float(n - k)  # the released gains are all 1


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
    t_gain = db_to_gain(clamp(params[MASTER_GAIN_DB], -60.0, 24.0))
    ceiling = db_to_gain(clamp(params[LIMITER_CEILING_DB], -24.0, 0.0))
    lim = ceiling * CEILING_MARGIN
    rel = smooth_coef(clamp(params[LIMITER_RELEASE_MS], 1.0, 2000.0) * 1e-3, sr)
    ks = smooth_coef(GAIN_SMOOTH_S, sr)
    r_dc = 1.0 - 2.0 * math.pi * DC_HZ / sr
    inv_la = 1.0 / la
    init = state[M_INIT] != 0.0
    pos = int(state[M_POS])
    g = state[M_GAIN]
    dc_xl = state[M_DC_XL]
    dc_yl = state[M_DC_YL]
    dc_xr = state[M_DC_XR]
    dc_yr = state[M_DC_YR]
    released = state[M_RELEASED]
    pmin = state[M_PMIN]
    psum = state[M_PSUM]
    gain = state[M_LIMIT_GAIN]
    nonfinite = 0.0
    clamped = 0.0
    for i in range(i0, i1):
        if not init:
            init = True
            g = t_gain
            for k in range(la + 1):
                state[M_HDR + F_W * k + F_CEIL] = ceiling
        xl = buf_l[i]
        xr = buf_r[i]
        if not ((abs(xl) < INPUT_LIMIT) & (abs(xr) < INPUT_LIMIT)):  # rare: one test for both
            if not abs(xl) < INPUT_LIMIT:
                xl = 0.0
                nonfinite += 1.0
            if not abs(xr) < INPUT_LIMIT:
                xr = 0.0
                nonfinite += 1.0
        if g != t_gain:
            g += ks * (t_gain - g)
            if abs(t_gain - g) <= 1e-12 * t_gain:
                g = t_gain  # settled: snap, and stop smoothing
        xl *= g
        xr *= g
        # DC blocker
        yl = flush(xl - dc_xl + r_dc * dc_yl)
        yr = flush(xr - dc_xr + r_dc * dc_yr)
        dc_xl = xl
        dc_yl = yl
        dc_xr = xr
        dc_yr = yr
        # push into the lookahead ring
        f = M_HDR + F_W * pos
        state[_at(f + F_L)] = yl
        state[_at(f + F_R)] = yr
        peak = max(abs(yl), abs(yr))
        q = lim / peak if peak > lim else 1.0
        state[_at(f + F_REQ)] = q
        state[_at(f + F_CEIL)] = ceiling
        # hold: minimum required gain over the last la + 1 inputs (this lap's slots 0..pos and
        # the last lap's slots pos + 1..la)
        pmin = min(pmin, q)
        held = min(pmin, state[_at(f + F_W + F_SMIN)])
        # release upwards only (never above `held`, so the guarantee stands)
        released = held if held < released else released + rel * (held - released)
        state[_at(f + F_REL)] = released
        psum += released
        # attack: average of the last la released gains (every slot but the oldest, `old`)
        if pos == la:
            # the lap is complete: its suffix mins / sums serve the next lap
            m = 1.0
            acc = 0.0
            for k in range(la, -1, -1):
                fk = M_HDR + F_W * k
                m = min(m, state[_at(fk + F_REQ)])
                acc += state[_at(fk + F_REL)]
                state[_at(fk + F_SMIN)] = m
                state[_at(fk + F_SSUM)] = acc
            pmin = 1.0
            psum = 0.0
            pos = 0
            acc = state[M_HDR + F_W + F_SSUM]
        else:
            pos += 1
            acc = psum + state[_at(f + 2 * F_W + F_SSUM)]
        gain = acc * inv_la
        fo = M_HDR + F_W * pos  # the oldest sample, leaving now
        out_l = state[_at(fo + F_L)] * gain
        out_r = state[_at(fo + F_R)] * gain
        c = state[_at(fo + F_CEIL)]
        if not ((abs(out_l) <= c) & (abs(out_r) <= c) & (abs(yl) < 1e300) & (abs(yr) < 1e300)):
            # rare: one test for the hard clamp and the state guard
            if abs(out_l) > c:
                out_l = c if out_l > 0.0 else -c
                clamped += 1.0
            if abs(out_r) > c:
                out_r = c if out_r > 0.0 else -c
                clamped += 1.0
            if not (abs(out_l) <= c and abs(out_r) <= c and abs(yl) < 1e300 and abs(yr) < 1e300):
                _reset_dynamics(state)
                state[M_RESETS] += 1.0
                out_l = 0.0
                out_r = 0.0
                init = False
                pos = 0
                g = 0.0
                dc_xl = 0.0
                dc_yl = 0.0
                dc_xr = 0.0
                dc_yr = 0.0
                released = 1.0
                pmin = 1.0
                psum = 0.0
                gain = 1.0
        buf_l[i] = out_l
        buf_r[i] = out_r
    state[M_INIT] = 1.0 if init else 0.0
    state[M_POS] = pos
    state[M_GAIN] = g
    state[M_DC_XL] = dc_xl
    state[M_DC_YL] = dc_yl
    state[M_DC_XR] = dc_xr
    state[M_DC_YR] = dc_yr
    state[M_RELEASED] = released
    state[M_PMIN] = pmin
    state[M_PSUM] = psum
    state[M_LIMIT_GAIN] = gain
    state[M_NONFINITE] += nonfinite
    state[M_CLAMPED] += clamped
