"""Reverb: the engine's 8-line feedback-delay-network reverb, as a unit (AUDIO THREAD kernels).

This module holds the DSP of the reverb send too: engine.rt.fx.reverb_process (the send the
render kernel runs from its mono reverb bus) calls `reverb_process` here with the extra controls
at their neutral values, and only ADDS the wet signal into its out rows. As a unit it WRITES
out = dry_level * in + wet (in may equal out); a mono send passes the same row as in L and R.

Signal path (per channel pair):
    input -> low cut (one-pole high-pass, off at its lowest) -> predelay (linear interpolation,
    glides) -> four Schroeder allpasses per channel -> eight delay lines, each slowly modulated
    (MOD_DEPTH_48K samples), damped by a one-pole lowpass at damping_hz (unity at DC) and scaled
    by the gain that makes it lose 60 dB in decay_s, mixed by a normalised 8x8 Hadamard matrix,
    the input added into all eight with alternating signs.
    Left output taps the even lines, right the odd ones (they share no line, so a mono input
    gives a decorrelated, wide tail); `width` mixes them: L' = (1 + w)/2 L + (1 - w)/2 R.

* decay_s is the RT60 where the damping lowpass passes (below it): line k of length L_k
  samples has gain 10^(-3 L_k / (decay_s * sample_rate)) per pass (Jot & Chaigne 1991).
* size scales the line lengths (0.25..1.25; the gains follow, so decay_s stays the RT60); it
  glides at the modulation control points, like a tape speed change.
* With size 1, width 1, low cut off and dry_level 0 the output is bit for bit what the send
  (engine.rt.fx.reverb_process) adds into a silent bus.

Work is done in chunks of at most CHUNK samples that never cross a modulation control point
(every MOD_STEP samples of the reverb's own sample count): every stage but the damping/mixing
one (recursive) runs over the whole chunk in loops LLVM vectorises, exact because no line or
diffuser is shorter than a chunk. The line modulation is linear within a segment, from its
state at the control point. Smoothing (in the state, in the coefficient domain: line gains,
the damping coefficient, the predelay in samples) stops once every smoothed value is within
SETTLE_* of its target (checked per sample; the predelay on its own). Every value of a sample
depends on the state and its place in the segment only, so any split of a block gives the same
output. The unit starts from the current values in params[n:2n] and mirrors its smoothed
values back there after each call.

State: a header of scalars (smoothed values, filter states, positions and the buffer layout,
written by `reset` from the sample rate), scratch for one chunk, then the rings.
"""
import math

import numpy as np
from numba import njit

from engine.rt.dsp import JIT, clamp, flush, smooth_coef
from engine.rt.units.base import (IO_IN_L, IO_IN_R, IO_OUT_L, IO_OUT_R, Param, clampf,
                                  declare)
from engine.rt.units.glide import (DELAY_TIME_SMOOTH_S, SETTLE_LEVEL, SETTLE_SAMPLES, SMOOTH_S,
                                   glide)
from engine.rt.units.glide import at as _at
from engine.rt.units.glide import onepole_coef as _onepole_coef
from engine.rt.units.glide import sane as _sane

NAME = "reverb"

DECAY_MIN_S, DECAY_MAX_S = 0.1, 30.0
DAMPING_MIN_HZ, DAMPING_MAX_HZ = 500.0, 20000.0
PREDELAY_MAX_MS = 250.0
SIZE_MIN, SIZE_MAX = 0.25, 1.25
LOW_CUT_OFF_HZ, LOW_CUT_MAX_HZ = 10.0, 1000.0

PARAMS = declare([
    Param("decay_s", DECAY_MIN_S, DECAY_MAX_S, 2.2, "log", SMOOTH_S,
          doc="RT60 below the damping frequency: the tail falls 60 dB in this time"),
    Param("damping_hz", DAMPING_MIN_HZ, DAMPING_MAX_HZ, 6000.0, "log", SMOOTH_S,
          doc="one-pole lowpass in every line (below 0.45 x sample rate): highs die sooner"),
    Param("predelay_ms", 0.0, PREDELAY_MAX_MS, 20.0, "lin", DELAY_TIME_SMOOTH_S,
          doc="time from the input to the first reflection (interpolated, glides)"),
    Param("size", SIZE_MIN, SIZE_MAX, 1.0, "lin", DELAY_TIME_SMOOTH_S,
          doc="room size: every line's length times this (decay_s stays the RT60)"),
    Param("width", 0.0, 1.0, 1.0, "lin", SMOOTH_S,
          doc="stereo spread of the wet signal: 0 mono, 1 fully decorrelated sides"),
    Param("low_cut_hz", LOW_CUT_OFF_HZ, LOW_CUT_MAX_HZ, LOW_CUT_OFF_HZ, "log", SMOOTH_S,
          doc="one-pole high-pass on the reverb's input; at its lowest (the default) off"),
    Param("wet_level", 0.0, 1.0, 0.25, "lin", SMOOTH_S, doc="reverb level, linear"),
    Param("dry_level", 0.0, 1.0, 1.0, "lin", SMOOTH_S, doc="input level passed through, linear"),
])
(P_DECAY_S, P_DAMPING_HZ, P_PREDELAY_MS, P_SIZE, P_WIDTH, P_LOW_CUT_HZ, P_WET_LEVEL,
 P_DRY_LEVEL) = range(8)
N = len(PARAMS)

N_LINES = 8
N_DIFFUSERS = 4  # allpasses per input channel
# Line lengths at 48 kHz (27..63 ms, mutually prime) and input diffusers (L set, R set).
LINE_LEN_48K = np.array([1307, 1559, 1831, 2083, 2297, 2531, 2789, 3037], dtype=np.float64)
DIFFUSER_LEN_48K = np.array([241, 367, 487, 613, 257, 383, 503, 631], dtype=np.float64)
DIFFUSER_GAIN = np.array([0.7, 0.7, 0.62, 0.62], dtype=np.float64)
MOD_DEPTH_48K = 6.0  # samples of slow delay modulation on every line: no metallic ringing
MOD_HZ = np.array([0.31, 0.43, 0.53, 0.67, 0.73, 0.89, 0.97, 1.13], dtype=np.float64)
MOD_STEP = 32  # the modulation is computed every MOD_STEP samples, linear in between
OUT_GAIN = 1.0
CHUNK = MOD_STEP  # samples processed stage by stage (never across a modulation control point)
GUARD = CHUNK     # every ring is followed by a copy of its first GUARD frames

# header: scalars
R_INIT, R_DAMP, R_MIX, R_PD, R_N, R_MOD_DEPTH = range(6)
# R_N: sample count modulo the longest ring (every ring is a power of two frames long, so
# `R_N & mask` is each ring's write frame, and `R_N % MOD_STEP == 0` marks a control point)
R_LINE_OFF, R_LINE_MASK, R_AP_OFF, R_AP_MASK, R_PD_OFF, R_PD_MASK = range(6, 12)
R_G_T_KEY = 12     # (decay, sample rate, size) the line gain targets R_G_T were computed for [3]
R_G = 16           # smoothed line gains [8]
R_G_T = 24         # their targets, written when each call starts [8]
R_LP = 32          # damping lowpass states [8]
R_LFO_C = 40       # modulation LFOs: rotating phasors (cos, sin) [8] + [8]
R_LFO_S = 48
R_LINE_LEN = 56    # nominal line delays at size 1 (samples) [8]
R_AP_LEN = 64      # diffuser delays (samples) [8], 0..3 left, 4..7 right
R_MOD_D = 72       # modulated line delays (samples) at the current segment's control point [8]
R_MOD_DD = 80      # their per-sample slopes until the next control point [8]
R_MOD_NXT = 88     # their values at the next control point [8]
R_ROT_C = 96       # each LFO's rotation per MOD_STEP samples (cos, sin) [8] + [8]
R_ROT_S = 104
R_LFO0_C = 112     # the LFOs' starting phasors (cos, sin) [8] + [8], for reset
R_LFO0_S = 120
R_SR = 128         # the sample rate the layout was made for
R_TOTAL = 129      # floats the layout needs (0: the state was too small, the unit is dry)
R_SIZE = 130       # smoothed size (moves at control points)
R_WIDTH = 131      # smoothed width
R_DRY = 132        # smoothed dry level
R_LC = 133         # smoothed low cut (Hz)
R_LC_L = 134       # low-cut lowpass states (the high-pass output is input - state)
R_LC_R = 135
R_HDR = 136
# After the header: scratch for one chunk (the diffused inputs L and R, the 8 line outputs, the
# wet gain per sample, the 8 damped and scaled line outputs), then the rings: 8 lines,
# 8 diffusers, 2 predelay channels. Each ring is a power of two frames long (at least
# 2 * CHUNK) plus GUARD frames that mirror its first ones, so that any CHUNK + 1 consecutive
# frames from any start can be read without wrapping.
S_XL, S_XR, S_O, S_WET, S_S = 0, CHUNK, 2 * CHUNK, 10 * CHUNK, 11 * CHUNK
SCRATCH = 19 * CHUNK


@njit(**JIT)
def _pow2_at_least(n):
    p = 2 * CHUNK
    while p < n:
        p *= 2
    return p


@njit(**JIT)
def _round_half_even(x):
    """Python's round() of a float >= 0, as an int."""
    r = math.floor(x)
    d = x - r
    if d > 0.5 or (d == 0.5 and r % 2.0 == 1.0):
        r += 1.0
    return int(r)


@njit(**JIT)
def _depth(sample_rate):
    return MOD_DEPTH_48K * (sample_rate / 48000.0)


@njit(**JIT)
def _line_len(k, sample_rate):
    """Line k's length at size 1 (a line reads nothing written in the same chunk)."""
    n = _round_half_even(LINE_LEN_48K[k] * (sample_rate / 48000.0))
    return max(n, CHUNK + 2 + int(math.ceil(_depth(sample_rate))))


@njit(**JIT)
def _frames(sample_rate):
    """Ring lengths (lines, diffusers, predelay), each a power of two."""
    depth = int(math.ceil(_depth(sample_rate)))
    longest = 0
    for k in range(N_LINES):
        longest = max(longest, _line_len(k, sample_rate))
    line = _pow2_at_least(int(math.ceil(SIZE_MAX * longest)) + depth + 4)
    ap_longest = 0
    for j in range(2 * N_DIFFUSERS):
        ap_longest = max(ap_longest, max(
            _round_half_even(DIFFUSER_LEN_48K[j] * (sample_rate / 48000.0)), CHUNK))
    ap = _pow2_at_least(ap_longest + 1)
    # (a chunk writes its predelay frames before reading: the longest read stays clear of them)
    pd = _pow2_at_least(int(math.ceil(PREDELAY_MAX_MS * 1e-3 * sample_rate)) + CHUNK + 4)
    return line, ap, pd


@njit(**JIT)
def _total(sample_rate):
    line, ap, pd = _frames(sample_rate)
    return (R_HDR + SCRATCH + N_LINES * (line + GUARD) + 2 * N_DIFFUSERS * (ap + GUARD)
            + 2 * (pd + GUARD))


def state_size(sample_rate):
    return int(_total(float(min(max(sample_rate, 1000.0), 1e6))))


@njit(**JIT)
def reset(state, sample_rate):
    """Clear every line, filter and position and lay the buffers out for `sample_rate`
    (touches the whole state: not for every block). A state too small for the layout makes
    the unit pass the dry signal only."""
    for i in range(state.shape[0]):
        state[i] = 0.0
    if state.shape[0] < R_HDR:
        return
    sr = clampf(sample_rate, 1000.0, 1e6)
    total = _total(sr)
    state[R_SR] = sr
    if state.shape[0] < total:
        return
    state[R_TOTAL] = total
    scale = sr / 48000.0
    state[R_MOD_DEPTH] = MOD_DEPTH_48K * scale
    for k in range(N_LINES):
        state[R_LINE_LEN + k] = _line_len(k, sr)
        step = 2.0 * math.pi * MOD_HZ[k] * MOD_STEP / sr
        state[R_ROT_C + k] = math.cos(step)
        state[R_ROT_S + k] = math.sin(step)
        phase = 2.0 * math.pi * k / N_LINES
        state[R_LFO0_C + k] = state[R_LFO_C + k] = math.cos(phase)
        state[R_LFO0_S + k] = state[R_LFO_S + k] = math.sin(phase)
    for j in range(2 * N_DIFFUSERS):
        state[R_AP_LEN + j] = max(_round_half_even(DIFFUSER_LEN_48K[j] * scale), CHUNK)
    line, ap, pd = _frames(sr)
    off = R_HDR + SCRATCH
    state[R_LINE_OFF] = off
    state[R_LINE_MASK] = line - 1
    off += N_LINES * (line + GUARD)
    state[R_AP_OFF] = off
    state[R_AP_MASK] = ap - 1
    off += 2 * N_DIFFUSERS * (ap + GUARD)
    state[R_PD_OFF] = off
    state[R_PD_MASK] = pd - 1


@njit(inline="always", **JIT)
def _glide(c, t, k):
    """One step of a one-pole glide from c towards t, snapped once within SETTLE_LEVEL."""
    c, near = glide(c, t, k, SETTLE_LEVEL)
    return t if near else c


@njit(inline="always", **JIT)
def _floats8(state, c):
    """state[c:c+8] as a tuple of 8 floats."""
    return (state[c], state[c + 1], state[c + 2], state[c + 3],
            state[c + 4], state[c + 5], state[c + 6], state[c + 7])


@njit(inline="always", **JIT)
def _store8(state, c, x0, x1, x2, x3, x4, x5, x6, x7):
    state[c] = x0
    state[c + 1] = x1
    state[c + 2] = x2
    state[c + 3] = x3
    state[c + 4] = x4
    state[c + 5] = x5
    state[c + 6] = x6
    state[c + 7] = x7


@njit(inline="always", **JIT)
def _mirror(state, ring, frames, w, c):
    """Frames w..w+c-1 of a ring were just written: copy those among its first GUARD frames
    to the guard after its end (a chunk starting below GUARD lies entirely below it)."""
    if w < GUARD:
        for t in range(c):
            state[_at(ring + frames + w + t)] = state[_at(ring + w + t)]


@njit(inline="always", **JIT)
def _allpass_chunk(state, ring, frames, mask, n0, length, x, c, g):
    """Schroeder allpass of `length` samples over the chunk in scratch at x (in place)."""
    r = (n0 - length) & mask
    w = n0 & mask
    for t in range(c):
        dl = state[_at(ring + r + t)]
        v = flush(state[_at(x + t)] + g * dl)
        state[_at(ring + w + t)] = v
        state[_at(x + t)] = dl - g * v
    _mirror(state, ring, frames, w, c)


@njit(inline="always", **JIT)
def _butterfly(state, p, q, c):
    """In place over a chunk: (x, y) -> (x + y, x - y) for the scratch rows at p and q."""
    for t in range(c):
        x = state[_at(p + t)]
        y = state[_at(q + t)]
        state[_at(p + t)] = x + y
        state[_at(q + t)] = x - y


@njit(inline="always", **JIT)
def _butterfly_in(state, p, q, xl, xr, h, ring_a, ring_b, c):
    """Last Hadamard stage into two lines over a chunk: ring_a gets x + y + h * input L,
    ring_b gets x - y + h * input R (x, y the scratch rows at p and q, the inputs at xl, xr)."""
    for t in range(c):
        x = state[_at(p + t)]
        y = state[_at(q + t)]
        state[_at(ring_a + t)] = x + y + h * state[_at(xl + t)]
        state[_at(ring_b + t)] = x - y + h * state[_at(xr + t)]


@njit(inline="always", **JIT)
def _nominal(state, k, size):
    """Line k's centre delay at `size`, kept where the chunked reads stay exact: at least
    CHUNK + 2 samples beyond the modulation, and inside its ring."""
    depth = state[R_MOD_DEPTH]
    d = size * state[R_LINE_LEN + k]
    lo = CHUNK + 2.0 + depth
    hi = state[R_LINE_MASK] - depth - 4.0
    if d < lo:
        return lo
    if d > hi:
        return hi
    return d


@njit(**JIT)
def _mod_step(state, size_t, k_size):
    """Modulation control point (every MOD_STEP samples of the sample count): the size takes
    one glide step towards its target, and each line's delay starts the new segment at the
    value it was heading for and heads for its nominal length plus its LFO's value MOD_STEP
    samples later (linear in between). The LFOs are phasors, rotated (and renormalised) once
    per control point: no sin per sample, nor per control point."""
    size = state[R_SIZE]
    if size != size_t:
        size = _glide(size, size_t, k_size)
        state[R_SIZE] = size
    depth = state[R_MOD_DEPTH]
    for k in range(N_LINES):
        c = state[R_LFO_C + k]
        s = state[R_LFO_S + k]
        rc = state[R_ROT_C + k]
        rs = state[R_ROT_S + k]
        c, s = c * rc - s * rs, s * rc + c * rs
        r = 1.5 - 0.5 * (c * c + s * s)
        c *= r
        s *= r
        state[R_LFO_C + k] = c
        state[R_LFO_S + k] = s
        d = state[R_MOD_NXT + k]
        nxt = _nominal(state, k, size) + depth * s
        state[R_MOD_D + k] = d
        state[R_MOD_NXT + k] = nxt
        state[R_MOD_DD + k] = (nxt - d) * (1.0 / MOD_STEP)


@njit(**JIT)
def _line_gains(state, rt60, sr, size, at):
    """The 8 line gains for a 60 dB loss in rt60 seconds, into state[at:at+8]."""
    for k in range(N_LINES):
        state[at + k] = 10.0 ** (-3.0 * (size * state[R_LINE_LEN + k]) / (rt60 * sr))


@njit(**JIT)
def reverb_init(state, sample_rate, decay_s, damping_hz, predelay_ms, wet, size, width,
             low_cut_hz, dry):
    """Start the smoothed values at these (clamped) ones; the next reverb_process glides from
    them to its targets. reverb_process calls it with its targets when nothing did before."""
    sr = max(sample_rate, 1000.0)
    state[R_INIT] = 1.0
    state[R_SIZE] = clamp(size, SIZE_MIN, SIZE_MAX)
    _line_gains(state, clamp(decay_s, DECAY_MIN_S, DECAY_MAX_S), sr, state[R_SIZE], R_G)
    for k in range(N_LINES):
        state[R_MOD_NXT + k] = (_nominal(state, k, state[R_SIZE])
                                + state[R_MOD_DEPTH] * state[R_LFO_S + k])
    state[R_DAMP] = _onepole_coef(clamp(damping_hz, DAMPING_MIN_HZ, 0.45 * sr), sr)
    pm = int(state[R_PD_MASK])
    state[R_PD] = min(clamp(predelay_ms, 0.0, PREDELAY_MAX_MS) * 1e-3 * sr, pm - CHUNK - 2.0)
    state[R_MIX] = clamp(wet, 0.0, 1.0)
    state[R_WIDTH] = clamp(width, 0.0, 1.0)
    state[R_LC] = clamp(low_cut_hz, LOW_CUT_OFF_HZ, LOW_CUT_MAX_HZ)
    state[R_DRY] = clamp(dry, 0.0, 1.0)


ADD = -1.0   # reverb_process's dry level for the send: add the wet signal into out, no dry


@njit(**JIT)
def reverb_process(state, in_l, in_r, out_l, out_r, i0, i1, sample_rate, decay_s, damping_hz,
                predelay_ms, wet, size, width, low_cut_hz, dry):
    """The reverb over [i0, i1) of the rows in_l/in_r (read first) into out_l/out_r, towards
    these targets (clamped here): out = dry * in + wet, or, with dry = ADD (< 0), out += wet
    (the send; the width mix is not applied). (The mode rides on a float, not a bool
    argument: Numba would compile the whole kernel once per literal bool.)"""
    if i1 <= i0 or state.shape[0] < R_HDR:
        return
    write = dry >= 0.0
    if state[R_TOTAL] == 0.0 or state.shape[0] < state[R_TOTAL]:
        if write:
            d = clamp(dry, 0.0, 1.0)
            for i in range(i0, i1):
                xl = _sane(in_l[i])
                xr = _sane(in_r[i])
                out_l[i] = d * xl
                out_r[i] = d * xr
        return
    sr = max(sample_rate, 1000.0)
    rt60 = clamp(decay_s, DECAY_MIN_S, DECAY_MAX_S)
    t_size = clamp(size, SIZE_MIN, SIZE_MAX)
    if (state[R_G_T_KEY] != rt60 or state[R_G_T_KEY + 1] != sr
            or state[R_G_T_KEY + 2] != t_size):   # 8 pow: only on a change
        _line_gains(state, rt60, sr, t_size, R_G_T)
        state[R_G_T_KEY] = rt60
        state[R_G_T_KEY + 1] = sr
        state[R_G_T_KEY + 2] = t_size
    t_damp = _onepole_coef(clamp(damping_hz, DAMPING_MIN_HZ, 0.45 * sr), sr)
    pm = int(state[R_PD_MASK])
    t_pd = clamp(predelay_ms, 0.0, PREDELAY_MAX_MS) * 1e-3 * sr
    t_pd = min(t_pd, pm - CHUNK - 2.0)
    t_mix = clamp(wet, 0.0, 1.0)
    t_width = clamp(width, 0.0, 1.0)
    t_lc = clamp(low_cut_hz, LOW_CUT_OFF_HZ, LOW_CUT_MAX_HZ)
    t_dry = clamp(dry, 0.0, 1.0)
    if state[R_INIT] == 0.0:
        reverb_init(state, sr, rt60, damping_hz, predelay_ms, t_mix, t_size, t_width, t_lc, t_dry)
    ks = smooth_coef(SMOOTH_S, sr)
    kt = smooth_coef(DELAY_TIME_SMOOTH_S, sr)
    k_size = 1.0 - math.exp(-MOD_STEP / (DELAY_TIME_SMOOTH_S * sr))
    norm = 1.0 / math.sqrt(8.0)
    lm = int(state[R_LINE_MASK])
    am = int(state[R_AP_MASK])
    lf = lm + 1 + GUARD   # distance between two line rings
    af = am + 1 + GUARD
    lo = int(state[R_LINE_OFF])
    ao = int(state[R_AP_OFF])
    pl = int(state[R_PD_OFF])
    pr = pl + pm + 1 + GUARD
    sc = R_HDR            # scratch
    nm = max(lm, am, pm)  # R_N wraps at the longest ring (a multiple of every other one)
    n0 = int(state[R_N])
    damp = state[R_DAMP]
    mix = state[R_MIX]
    pd = state[R_PD]
    lp0, lp1, lp2, lp3, lp4, lp5, lp6, lp7 = _floats8(state, R_LP)
    g0, g1, g2, g3, g4, g5, g6, g7 = _floats8(state, R_G)
    gt0, gt1, gt2, gt3, gt4, gt5, gt6, gt7 = _floats8(state, R_G_T)
    gn0, gn1, gn2, gn3 = norm * g0, norm * g1, norm * g2, norm * g3
    gn4, gn5, gn6, gn7 = norm * g4, norm * g5, norm * g6, norm * g7
    pd_settling = pd != t_pd
    settling = not (damp == t_damp and mix == t_mix and g0 == gt0 and g1 == gt1
                    and g2 == gt2 and g3 == gt3 and g4 == gt4 and g5 == gt5 and g6 == gt6
                    and g7 == gt7)
    # the unit's own controls: low cut (input), width and dry (output)
    lc = state[R_LC]
    lc_l = state[R_LC_L]
    lc_r = state[R_LC_R]
    lc_settling = lc != t_lc
    lc_idle = not lc_settling and lc <= LOW_CUT_OFF_HZ and lc_l == 0.0 and lc_r == 0.0
    lc_a = _onepole_coef(lc, sr) if lc > LOW_CUT_OFF_HZ else 0.0
    width_c = state[R_WIDTH]
    dry_c = state[R_DRY]
    out_settling = write and (width_c != t_width or dry_c != t_dry)
    wa = 0.5 * (1.0 + width_c)
    wb = 0.5 * (1.0 - width_c)
    i = i0
    while i < i1:
        j0 = n0 & (MOD_STEP - 1)  # place in the modulation segment
        if j0 == 0:
            _mod_step(state, t_size, k_size)
        c = min(i1 - i, MOD_STEP - j0)
        # low cut, then predelay: write the chunk, then read pd samples back (pd = 0 reads
        # this sample)
        w = n0 & pm
        if lc_idle:
            for t in range(c):
                state[_at(pl + w + t)] = _sane(in_l[_at(i + t)])
                state[_at(pr + w + t)] = _sane(in_r[_at(i + t)])
        else:
            for t in range(c):
                if lc_settling:
                    lc = _glide(lc, t_lc, ks)
                    lc_settling = lc != t_lc
                    lc_a = _onepole_coef(lc, sr) if lc > LOW_CUT_OFF_HZ else 0.0
                xl = _sane(in_l[_at(i + t)])
                xr = _sane(in_r[_at(i + t)])
                if lc_a > 0.0:
                    lc_l = flush(lc_l + lc_a * (xl - lc_l))
                    lc_r = flush(lc_r + lc_a * (xr - lc_r))
                else:             # off: the state fades out, then the input passes as it is
                    lc_l = flush(lc_l - ks * lc_l)
                    lc_r = flush(lc_r - ks * lc_r)
                state[_at(pl + w + t)] = xl - lc_l
                state[_at(pr + w + t)] = xr - lc_r
            lc_idle = not lc_settling and lc <= LOW_CUT_OFF_HZ and lc_l == 0.0 and lc_r == 0.0
        _mirror(state, pl, pm + 1, w, c)
        _mirror(state, pr, pm + 1, w, c)
        if pd_settling:
            for t in range(c):
                pd, near = glide(pd, t_pd, kt, SETTLE_SAMPLES)
                if near:
                    pd = t_pd
                    pd_settling = False
                di = int(pd)
                f = pd - di
                b = (n0 + t - di - 1) & pm
                xa = state[_at(pl + b + 1)]
                state[_at(sc + S_XL + t)] = xa + f * (state[_at(pl + b)] - xa)
                xa = state[_at(pr + b + 1)]
                state[_at(sc + S_XR + t)] = xa + f * (state[_at(pr + b)] - xa)
        else:
            di = int(pd)
            f = pd - di
            b = (n0 - di - 1) & pm
            for t in range(c):
                xa = state[_at(pl + b + 1 + t)]
                state[_at(sc + S_XL + t)] = xa + f * (state[_at(pl + b + t)] - xa)
            for t in range(c):
                xa = state[_at(pr + b + 1 + t)]
                state[_at(sc + S_XR + t)] = xa + f * (state[_at(pr + b + t)] - xa)
        # input diffusers
        for j in range(N_DIFFUSERS):
            _allpass_chunk(state, ao + j * af, am + 1, am, n0, int(state[R_AP_LEN + j]),
                           sc + S_XL, c, DIFFUSER_GAIN[j])
            _allpass_chunk(state, ao + (N_DIFFUSERS + j) * af, am + 1, am, n0,
                           int(state[R_AP_LEN + N_DIFFUSERS + j]), sc + S_XR, c,
                           DIFFUSER_GAIN[j])
        # line outputs (taps, read before this chunk's writes)
        for k in range(N_LINES):
            d = state[R_MOD_D + k]
            dd = state[R_MOD_DD + k]
            di = int(d)
            e = d - di
            ring = lo + k * lf
            b = (n0 - di - 1) & lm
            o = sc + S_O + k * CHUNK
            for t in range(c):
                f = e + (j0 + t) * dd
                xa = state[_at(ring + b + 1 + t)]
                state[_at(o + t)] = xa + f * (state[_at(ring + b + t)] - xa)
        # damping and gains (recursive, sample by sample), the normalisation folded into gn
        for t in range(c):
            if settling:
                damp, near0 = glide(damp, t_damp, ks, SETTLE_LEVEL)
                mix, near1 = glide(mix, t_mix, ks, SETTLE_LEVEL)
                g0, near2 = glide(g0, gt0, ks, SETTLE_LEVEL)
                g1, near3 = glide(g1, gt1, ks, SETTLE_LEVEL)
                g2, near4 = glide(g2, gt2, ks, SETTLE_LEVEL)
                g3, near5 = glide(g3, gt3, ks, SETTLE_LEVEL)
                g4, near6 = glide(g4, gt4, ks, SETTLE_LEVEL)
                g5, near7 = glide(g5, gt5, ks, SETTLE_LEVEL)
                g6, near8 = glide(g6, gt6, ks, SETTLE_LEVEL)
                g7, near9 = glide(g7, gt7, ks, SETTLE_LEVEL)
                if (near0 and near1 and near2 and near3 and near4 and near5 and near6 and near7
                        and near8 and near9):
                    damp = t_damp
                    mix = t_mix
                    g0, g1, g2, g3, g4, g5, g6, g7 = gt0, gt1, gt2, gt3, gt4, gt5, gt6, gt7
                    settling = False
                gn0, gn1, gn2, gn3 = norm * g0, norm * g1, norm * g2, norm * g3
                gn4, gn5, gn6, gn7 = norm * g4, norm * g5, norm * g6, norm * g7
            state[_at(sc + S_WET + t)] = mix * (OUT_GAIN * 0.5)
            o = sc + S_O + t
            lp0 = flush(lp0 + damp * (state[_at(o)] - lp0))
            lp1 = flush(lp1 + damp * (state[_at(o + CHUNK)] - lp1))
            lp2 = flush(lp2 + damp * (state[_at(o + 2 * CHUNK)] - lp2))
            lp3 = flush(lp3 + damp * (state[_at(o + 3 * CHUNK)] - lp3))
            lp4 = flush(lp4 + damp * (state[_at(o + 4 * CHUNK)] - lp4))
            lp5 = flush(lp5 + damp * (state[_at(o + 5 * CHUNK)] - lp5))
            lp6 = flush(lp6 + damp * (state[_at(o + 6 * CHUNK)] - lp6))
            lp7 = flush(lp7 + damp * (state[_at(o + 7 * CHUNK)] - lp7))
            q = sc + S_S + t
            state[_at(q)] = gn0 * lp0
            state[_at(q + CHUNK)] = gn1 * lp1
            state[_at(q + 2 * CHUNK)] = gn2 * lp2
            state[_at(q + 3 * CHUNK)] = gn3 * lp3
            state[_at(q + 4 * CHUNK)] = gn4 * lp4
            state[_at(q + 5 * CHUNK)] = gn5 * lp5
            state[_at(q + 6 * CHUNK)] = gn6 * lp6
            state[_at(q + 7 * CHUNK)] = gn7 * lp7
        # Hadamard 8x8 (three butterfly stages) over the chunk, into the lines with the input
        # (line inputs: sums of flushed or exactly-0 values, never denormal themselves)
        q = sc + S_S
        _butterfly(state, q, q + CHUNK, c)
        _butterfly(state, q + 2 * CHUNK, q + 3 * CHUNK, c)
        _butterfly(state, q + 4 * CHUNK, q + 5 * CHUNK, c)
        _butterfly(state, q + 6 * CHUNK, q + 7 * CHUNK, c)
        _butterfly(state, q, q + 2 * CHUNK, c)
        _butterfly(state, q + CHUNK, q + 3 * CHUNK, c)
        _butterfly(state, q + 4 * CHUNK, q + 6 * CHUNK, c)
        _butterfly(state, q + 5 * CHUNK, q + 7 * CHUNK, c)
        w = n0 & lm
        x = lo + w
        xl = sc + S_XL
        xr = sc + S_XR
        _butterfly_in(state, q, q + 4 * CHUNK, xl, xr, 0.5, x, x + 4 * lf, c)
        _butterfly_in(state, q + CHUNK, q + 5 * CHUNK, xl, xr, -0.5, x + lf, x + 5 * lf, c)
        _butterfly_in(state, q + 2 * CHUNK, q + 6 * CHUNK, xl, xr, 0.5, x + 2 * lf, x + 6 * lf, c)
        _butterfly_in(state, q + 3 * CHUNK, q + 7 * CHUNK, xl, xr, -0.5, x + 3 * lf, x + 7 * lf,
                      c)
        if w < GUARD:
            for k in range(N_LINES):
                _mirror(state, lo + k * lf, lm + 1, w, c)
        # outputs: left taps the even lines, right the odd ones
        o = sc + S_O
        if not write:
            for t in range(c):
                out_l[_at(i + t)] += state[_at(sc + S_WET + t)] * (
                    state[_at(o + t)] - state[_at(o + 2 * CHUNK + t)]
                    + state[_at(o + 4 * CHUNK + t)] - state[_at(o + 6 * CHUNK + t)])
            for t in range(c):
                out_r[_at(i + t)] += state[_at(sc + S_WET + t)] * (
                    state[_at(o + CHUNK + t)] - state[_at(o + 3 * CHUNK + t)]
                    + state[_at(o + 5 * CHUNK + t)] - state[_at(o + 7 * CHUNK + t)])
        else:
            for t in range(c):
                if out_settling:
                    width_c = _glide(width_c, t_width, ks)
                    dry_c = _glide(dry_c, t_dry, ks)
                    out_settling = width_c != t_width or dry_c != t_dry
                    wa = 0.5 * (1.0 + width_c)
                    wb = 0.5 * (1.0 - width_c)
                wl = state[_at(sc + S_WET + t)] * (
                    state[_at(o + t)] - state[_at(o + 2 * CHUNK + t)]
                    + state[_at(o + 4 * CHUNK + t)] - state[_at(o + 6 * CHUNK + t)])
                wr = state[_at(sc + S_WET + t)] * (
                    state[_at(o + CHUNK + t)] - state[_at(o + 3 * CHUNK + t)]
                    + state[_at(o + 5 * CHUNK + t)] - state[_at(o + 7 * CHUNK + t)])
                xl = _sane(in_l[_at(i + t)])     # both read before either is written
                xr = _sane(in_r[_at(i + t)])
                out_l[_at(i + t)] = dry_c * xl + (wa * wl + wb * wr)
                out_r[_at(i + t)] = dry_c * xr + (wa * wr + wb * wl)
        n0 = (n0 + c) & nm
        i += c
    state[R_N] = n0
    state[R_DAMP] = damp
    state[R_MIX] = mix
    state[R_PD] = pd
    state[R_LC] = lc
    state[R_LC_L] = lc_l
    state[R_LC_R] = lc_r
    state[R_WIDTH] = width_c
    state[R_DRY] = dry_c
    _store8(state, R_LP, lp0, lp1, lp2, lp3, lp4, lp5, lp6, lp7)
    _store8(state, R_G, g0, g1, g2, g3, g4, g5, g6, g7)


@njit(**JIT)
def process(state, params, bus, io, i0, i1, sample_rate):
    if i1 <= i0:
        return
    il, ir, ol, orr = io[IO_IN_L], io[IO_IN_R], io[IO_OUT_L], io[IO_OUT_R]
    sr = clampf(sample_rate, 1000.0, 1e6)
    if state.shape[0] >= R_HDR and state[R_INIT] == 0.0:     # start from the current values
        reverb_init(state, sr, clampf(params[N + P_DECAY_S], DECAY_MIN_S, DECAY_MAX_S),
                 clampf(params[N + P_DAMPING_HZ], DAMPING_MIN_HZ, DAMPING_MAX_HZ),
                 clampf(params[N + P_PREDELAY_MS], 0.0, PREDELAY_MAX_MS),
                 clampf(params[N + P_WET_LEVEL], 0.0, 1.0),
                 clampf(params[N + P_SIZE], SIZE_MIN, SIZE_MAX),
                 clampf(params[N + P_WIDTH], 0.0, 1.0),
                 clampf(params[N + P_LOW_CUT_HZ], LOW_CUT_OFF_HZ, LOW_CUT_MAX_HZ),
                 clampf(params[N + P_DRY_LEVEL], 0.0, 1.0))
    decay = clampf(params[P_DECAY_S], DECAY_MIN_S, DECAY_MAX_S)
    damping = clampf(params[P_DAMPING_HZ], DAMPING_MIN_HZ, DAMPING_MAX_HZ)
    predelay = clampf(params[P_PREDELAY_MS], 0.0, PREDELAY_MAX_MS)
    size = clampf(params[P_SIZE], SIZE_MIN, SIZE_MAX)
    width = clampf(params[P_WIDTH], 0.0, 1.0)
    low_cut = clampf(params[P_LOW_CUT_HZ], LOW_CUT_OFF_HZ, LOW_CUT_MAX_HZ)
    wet = clampf(params[P_WET_LEVEL], 0.0, 1.0)
    dry = clampf(params[P_DRY_LEVEL], 0.0, 1.0)
    reverb_process(state, bus[il], bus[ir], bus[ol], bus[orr], i0, i1, sr, decay, damping,
                predelay, wet, size, width, low_cut, dry)
    if state.shape[0] < R_HDR or state[R_TOTAL] == 0.0:
        return
    # the smoothed values, as parameter values, for the control side to read (the clamped
    # targets themselves once settled, so a reset restarts from exactly them)
    params[N + P_WET_LEVEL] = state[R_MIX]
    pd = state[R_PD]
    params[N + P_PREDELAY_MS] = (predelay if pd == min(predelay * 1e-3 * sr,
                                                       state[R_PD_MASK] - CHUNK - 2.0)
                                 else pd * 1000.0 / sr)
    params[N + P_SIZE] = state[R_SIZE]
    params[N + P_WIDTH] = state[R_WIDTH]
    params[N + P_LOW_CUT_HZ] = state[R_LC]
    params[N + P_DRY_LEVEL] = state[R_DRY]
    damp = state[R_DAMP]
    params[N + P_DAMPING_HZ] = (damping if damp == _onepole_coef(min(damping, 0.45 * sr), sr)
                                else -math.log(1.0 - damp) * sr / (2.0 * math.pi))
    g = state[R_G]
    params[N + P_DECAY_S] = (decay if g == state[R_G_T] or not 0.0 < g < 1.0
                             else -3.0 * state[R_SIZE] * state[R_LINE_LEN] / (sr * math.log10(g)))
