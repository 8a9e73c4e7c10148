"""The master bus: gain, DC blocker, non-finite guard, and one of two limiters.

LIMITER_MODE picks the limiter (set before a stream starts; config `[mix] limiter`):
- SAFETY (the default, live and offline alike, so a live run equals its offline render): no
  delay at all. A peak limiter (a peak envelope held 20 ms then released over release_ms; the
  gain follows it down with a 1 ms attack) pulls the level down to the threshold (3 dB under
  the ceiling); whatever its attack lets through goes into a soft clipper, transparent below that
  threshold and bending towards the ceiling above it, evaluated at twice the sample rate (at
  each sample and at the midpoint from the previous one) with its distortion low-passed
  before it is added back, then once more at the sample for what that filtering leaves above
  the threshold; below the threshold the output is the input, sample for sample. The curve
  never reaches the ceiling; a final clamp at the ceiling makes it a guarantee against
  rounding (counted in M_CLAMPED, and never engaged in the tests).
  Note-to-sound adds nothing: a note sounds at its own sample.
- LOOKAHEAD (renders and mastering): the look-ahead brickwall limiter below, transparent
  gain changes at the price of lookahead_samples(sample_rate) samples of delay.

Threads:
    master_alloc_state, master_default_params, lookahead_samples, master_counters,
    limiter_state_size
        control side, prepare time (master_counters: any time, it only reads)
    master_process, master_reset
        AUDIO THREAD (nopython, no allocation)
    safety_limit, lookahead_limit, limiter_init, reset_safety, reset_lookahead
        AUDIO THREAD: the two limiters on their own, over a span of any two rows with a state
        of limiter_state_size floats (the `limiter` unit, engine.rt.units.limiter, runs them)

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

Latency: LOOKAHEAD delays the output by exactly lookahead_samples(sample_rate) samples (72 at
48 kHz); SAFETY by none (latency_samples(params, sample_rate) tells which).
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
LIMITER_MODE = 3          # SAFETY (0) or LOOKAHEAD (1)
MASTER_N_PARAMS = 4
SAFETY, LOOKAHEAD = 0.0, 1.0
LIMITER_MODES = {"safety": SAFETY, "lookahead": LOOKAHEAD}

MASTER_PARAM_NAMES = {"gain_db": MASTER_GAIN_DB, "ceiling_db": LIMITER_CEILING_DB,
                      "release_ms": LIMITER_RELEASE_MS, "limiter": LIMITER_MODE}

SAFETY_THRESHOLD_DB = -3.0   # relative to the ceiling: where limiting and clipping begin
SAFETY_ATTACK_S = 0.001
SAFETY_HOLD_S = 0.02         # a peak is held this long before the release (down to 25 Hz)
SPAN_MARGIN = 1.0 - 1e-9     # keeps the clipper's asymptote a hair under the ceiling

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
# the safety limiter's state
M_S_GAIN = 16       # the peak limiter's gain
M_S_PREV_L = 17     # the previous sample into the clipper (for the midpoint)
M_S_PREV_R = 18
M_S_EPREV_L = 19    # the clipper's distortion at the previous sample
M_S_EPREV_R = 20
M_S_ENV = 21        # the peak envelope (held, then released)
M_S_HOLD = 22       # samples left before the envelope may fall
M_LA_INIT = 23      # 1 once the look-ahead ring holds the ceiling in force
M_HDR = 24
# After the header, a ring of lookahead + 1 frames (and one more frame, the empty suffix), each
# frame F_W floats: the sample's audio L and R, its required gain, its released gain, the
# ceiling in force when it came in, and the suffix min of the required gains / suffix sum of
# the released gains of the last completed lap from this slot on (so frame lookahead + 1 holds
# min 1, sum 0).
F_L, F_R, F_REQ, F_REL, F_CEIL, F_SMIN, F_SSUM = range(7)
F_W = 8


def lookahead_samples(sample_rate):
    """Control side: the look-ahead limiter's latency in samples (constant for a sample
    rate). The safety limiter has none."""
    return max(1, int(round(LOOKAHEAD_S * sample_rate)))


def latency_samples(params, sample_rate):
    """Control side: the master's delay in samples with these params (0 for SAFETY)."""
    return lookahead_samples(sample_rate) if params[LIMITER_MODE] == LOOKAHEAD else 0


def limiter_state_size(sample_rate):
    """Control side: floats in a limiter state (the master's, or a `limiter` unit's) for this
    sample rate: the header and a ring of lookahead_samples(sample_rate) + 2 frames."""
    return M_HDR + F_W * (lookahead_samples(sample_rate) + 2)


def master_alloc_state(sample_rate):
    """Control side, prepare time: the master bus state for this sample rate."""
    st = np.zeros(limiter_state_size(sample_rate), dtype=np.float64)
    limiter_init(st)
    return st


def master_default_params():
    """Control side: gain 0 dB, ceiling -1 dBFS, release 80 ms."""
    p = np.zeros(MASTER_N_PARAMS, dtype=np.float64)
    p[MASTER_GAIN_DB] = 0.0
    p[LIMITER_CEILING_DB] = -1.0
    p[LIMITER_RELEASE_MS] = 80.0
    p[LIMITER_MODE] = SAFETY
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
def _reset_front(state):
    """The front end (gain, DC blocker): cleared; the next sample snaps the gain."""
    state[M_INIT] = 0.0
    state[M_GAIN] = 0.0
    state[M_DC_XL] = 0.0
    state[M_DC_YL] = 0.0
    state[M_DC_XR] = 0.0
    state[M_DC_YR] = 0.0


@njit(**JIT)
def _reset_safety(state):
    state[M_S_GAIN] = 1.0
    state[M_S_PREV_L] = 0.0
    state[M_S_PREV_R] = 0.0
    state[M_S_EPREV_L] = 0.0
    state[M_S_EPREV_R] = 0.0
    state[M_S_ENV] = 0.0
    state[M_S_HOLD] = 0.0
    state[M_LIMIT_GAIN] = 1.0


@njit(**JIT)
def _reset_lookahead(state):
    n = int(state[M_LOOKAHEAD]) + 1
    state[M_LA_INIT] = 0.0
    state[M_POS] = 0.0
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
def _reset_dynamics(state):
    """Clear filter and limiter state, keep counters (the next sample re-snaps the params)."""
    _reset_front(state)
    _reset_safety(state)
    _reset_lookahead(state)


@njit(**JIT)
def limiter_init(state):
    """AUDIO THREAD or control side: a limiter state laid out afresh for its length (which
    fixes its lookahead: limiter_state_size), counters cleared too."""
    for i in range(state.shape[0]):
        state[i] = 0.0
    state[M_LOOKAHEAD] = max(1, (state.shape[0] - M_HDR) // F_W - 2)
    _reset_dynamics(state)


@njit(**JIT)
def reset_safety(state):
    """AUDIO THREAD: the safety limiter starts afresh (no gain reduction), counters kept."""
    _reset_safety(state)


@njit(**JIT)
def reset_lookahead(state):
    """AUDIO THREAD: the look-ahead ring silenced, counters kept."""
    _reset_lookahead(state)


@njit(**JIT)
def master_reset(state):
    """AUDIO THREAD or control side. Silence the lookahead line and clear every filter state."""
    _reset_dynamics(state)


@njit(**JIT)
def _front(state, params, buf_l, buf_r, i0, i1, sr):
    """Guard, gain (smoothed) and DC blocker, in place over [i0, i1). A sample that is NaN,
    infinite or beyond INPUT_LIMIT becomes 0 before it touches any state, and is counted."""
    t_gain = db_to_gain(clamp(params[MASTER_GAIN_DB], -60.0, 24.0))
    ks = smooth_coef(GAIN_SMOOTH_S, sr)
    r_dc = 1.0 - 2.0 * math.pi * DC_HZ / sr
    g = state[M_GAIN] if state[M_INIT] != 0.0 else t_gain
    dc_xl = state[M_DC_XL]
    dc_yl = state[M_DC_YL]
    dc_xr = state[M_DC_XR]
    dc_yr = state[M_DC_YR]
    nonfinite = 0.0
    for i in range(i0, i1):
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
        yl = flush(xl - dc_xl + r_dc * dc_yl)
        yr = flush(xr - dc_xr + r_dc * dc_yr)
        dc_xl = xl
        dc_yl = yl
        dc_xr = xr
        dc_yr = yr
        buf_l[i] = yl
        buf_r[i] = yr
    state[M_INIT] = 1.0
    state[M_GAIN] = g
    state[M_DC_XL] = dc_xl
    state[M_DC_YL] = dc_yl
    state[M_DC_XR] = dc_xr
    state[M_DC_YR] = dc_yr
    state[M_NONFINITE] += nonfinite


@njit(inline="always", **JIT)
def _soft_excess(x, knee, span):
    """The soft clipper's distortion at x: clip(x) - x, where clip is x below the knee and
    knee + span * tanh((|x| - knee) / span) (with x's sign) above it: below knee + span."""
    a = abs(x)
    if a <= knee:
        return 0.0
    y = knee + span * math.tanh((a - knee) / span)
    return (y - a) if x > 0.0 else (a - y)


@njit(**JIT)
def safety_limit(state, ceiling_db, release_ms, buf_l, buf_r, i0, i1, sr):
    """The zero-delay safety limiter (module doc), in place over [i0, i1) of two rows (the
    master's bus, or a `limiter` unit's out rows), with a limiter state (limiter_init)."""
    ceiling = db_to_gain(clamp(ceiling_db, -24.0, 0.0))
    thr = ceiling * db_to_gain(SAFETY_THRESHOLD_DB)
    span = (ceiling - thr) * SPAN_MARGIN
    hold_n = SAFETY_HOLD_S * sr
    rel = smooth_coef(clamp(release_ms, 1.0, 2000.0) * 1e-3, sr)
    att = smooth_coef(SAFETY_ATTACK_S, sr)
    lg = state[M_S_GAIN]
    env = state[M_S_ENV]
    hold = state[M_S_HOLD]
    pl = state[M_S_PREV_L]
    pr = state[M_S_PREV_R]
    epl = state[M_S_EPREV_L]
    epr = state[M_S_EPREV_R]
    clamped = 0.0
    for i in range(i0, i1):
        yl = buf_l[i]
        yr = buf_r[i]
        # peak limiter: a held, released peak envelope sets the gain that keeps it at the
        # threshold; the gain falls with a 1 ms attack (what that lets through is clipped
        # softly below) and rises as the envelope is released
        peak = max(abs(yl), abs(yr))
        if peak >= env:
            env = peak
            hold = hold_n
        elif hold > 0.0:
            hold -= 1.0
        else:
            env = flush(env + rel * (peak - env))
        q = thr / env if env > thr else 1.0
        lg = lg + att * (q - lg) if q < lg else q
        zl = yl * lg
        zr = yr * lg
        # soft clipper at twice the rate: its distortion at this sample and at the midpoint
        # from the last, low-passed (1/4, 1/4, 1/2) and added back; zero below the threshold
        el = _soft_excess(zl, thr, span)
        er = _soft_excess(zr, thr, span)
        ml = _soft_excess(0.5 * (zl + pl), thr, span)
        mr = _soft_excess(0.5 * (zr + pr), thr, span)
        out_l = zl + 0.5 * el + 0.25 * (ml + epl)
        out_r = zr + 0.5 * er + 0.25 * (mr + epr)
        # what the low-passed distortion leaves above the threshold (deep clipping of a fast
        # waveform) goes through the same curve once more, at the sample: below the ceiling
        out_l += _soft_excess(out_l, thr, span)
        out_r += _soft_excess(out_r, thr, span)
        pl = zl
        pr = zr
        epl = el
        epr = er
        if not ((abs(out_l) <= ceiling) & (abs(out_r) <= ceiling)):   # the guarantee
            if abs(out_l) > ceiling:
                out_l = ceiling if out_l > 0.0 else -ceiling
                clamped += 1.0
            if abs(out_r) > ceiling:
                out_r = ceiling if out_r > 0.0 else -ceiling
                clamped += 1.0
            if not (abs(out_l) <= ceiling and abs(out_r) <= ceiling and lg == lg
                    and env < 1e300):
                # a poisoned state: start the limiter afresh, silent for this sample
                out_l = 0.0
                out_r = 0.0
                state[M_RESETS] += 1.0
                lg = 1.0
                env = 0.0
                hold = 0.0
                pl = 0.0
                pr = 0.0
                epl = 0.0
                epr = 0.0
        buf_l[i] = out_l
        buf_r[i] = out_r
    state[M_S_GAIN] = lg
    state[M_S_ENV] = env
    state[M_S_HOLD] = hold
    state[M_S_PREV_L] = pl
    state[M_S_PREV_R] = pr
    state[M_S_EPREV_L] = epl
    state[M_S_EPREV_R] = epr
    state[M_LIMIT_GAIN] = lg
    state[M_CLAMPED] += clamped


@njit(**JIT)
def lookahead_limit(state, ceiling_db, release_ms, buf_l, buf_r, i0, i1, sr):
    """The look-ahead brickwall limiter (module doc), in place over [i0, i1) of two rows (the
    master's bus, or a `limiter` unit's out rows), with a limiter state (limiter_init): the
    output is the input state[M_LOOKAHEAD] samples late."""
    la = int(state[M_LOOKAHEAD])
    ceiling = db_to_gain(clamp(ceiling_db, -24.0, 0.0))
    lim = ceiling * CEILING_MARGIN
    rel = smooth_coef(clamp(release_ms, 1.0, 2000.0) * 1e-3, sr)
    inv_la = 1.0 / la
    if state[M_LA_INIT] == 0.0:
        state[M_LA_INIT] = 1.0
        for k in range(la + 1):
            state[M_HDR + F_W * k + F_CEIL] = ceiling
    pos = int(state[M_POS])
    released = state[M_RELEASED]
    pmin = state[M_PMIN]
    psum = state[M_PSUM]
    gain = state[M_LIMIT_GAIN]
    clamped = 0.0
    for i in range(i0, i1):
        yl = buf_l[i]
        yr = buf_r[i]
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
        if not ((abs(out_l) <= c) & (abs(out_r) <= c)):
            # rare: one test for the hard clamp and the state guard
            if abs(out_l) > c:
                out_l = c if out_l > 0.0 else -c
                clamped += 1.0
            if abs(out_r) > c:
                out_r = c if out_r > 0.0 else -c
                clamped += 1.0
            if not (abs(out_l) <= c and abs(out_r) <= c):
                # a poisoned ring: start the limiter afresh, silent for this sample
                _reset_lookahead(state)
                state[M_LA_INIT] = 1.0
                for k in range(la + 1):
                    state[M_HDR + F_W * k + F_CEIL] = ceiling
                state[M_RESETS] += 1.0
                out_l = 0.0
                out_r = 0.0
                pos = 0
                released = 1.0
                pmin = 1.0
                psum = 0.0
                gain = 1.0
        buf_l[i] = out_l
        buf_r[i] = out_r
    state[M_POS] = pos
    state[M_RELEASED] = released
    state[M_PMIN] = pmin
    state[M_PSUM] = psum
    state[M_LIMIT_GAIN] = gain
    state[M_CLAMPED] += clamped


@njit(**JIT)
def master_process(state, params, buf_l, buf_r, i0, i1, sample_rate):
    """AUDIO THREAD. Master bus in place on buf_l, buf_r over [i0, i1) (see module doc): the
    front end, then the limiter LIMITER_MODE picks (anything but LOOKAHEAD is SAFETY)."""
    if i1 <= i0:
        return
    sr = max(sample_rate, 1000.0)
    _front(state, params, buf_l, buf_r, i0, i1, sr)
    if params[LIMITER_MODE] == LOOKAHEAD:
        lookahead_limit(state, params[LIMITER_CEILING_DB], params[LIMITER_RELEASE_MS], buf_l,
                        buf_r, i0, i1, sr)
    else:
        safety_limit(state, params[LIMITER_CEILING_DB], params[LIMITER_RELEASE_MS], buf_l, buf_r,
                     i0, i1, sr)
