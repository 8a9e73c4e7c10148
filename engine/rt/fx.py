"""Stereo send effects: a tempo-synced ping-pong delay and an 8-line FDN reverb.

Threads:
    delay_alloc_state, delay_default_params, reverb_alloc_state, reverb_default_params
        control side, prepare time
    delay_process, reverb_process, delay_reset, reverb_reset
        AUDIO THREAD (nopython, no allocation)

The delay's DSP is the "delay" unit's (engine.rt.units.delay); delay_process is the send's view
of it. Both effects are sends: they read the send buffers in_l/in_r (pass the same array twice for a
mono send) over [i0, i1) and ADD only their wet signal, times `mix`, into out_l/out_r. The dry
signal is not passed. in and out may be the same arrays (each sample is read before it is
written). Each state is one 1-D float64 array: a header of scalars (smoothed params, filter
states, positions, and the buffer layout written at prepare time) followed by the delay lines.

Every continuous param is smoothed per sample from targets computed when the call starts (they
depend only on params, tempo and sample rate, so any split of a block gives the same output).
Samples that are not finite (or beyond +-1e9) are read as 0, so nothing can poison a buffer.
"""
import math

import numpy as np
from numba import njit

from .dsp import JIT, clamp, flush, smooth_coef
from .units import delay as delay_unit

SMOOTH_S = 0.02          # level / damping smoothing
INPUT_LIMIT = 1e9
SETTLE_LEVEL = 1e-9    # a smoothed level / coefficient this close to its target snaps to it
SETTLE_SAMPLES = 1e-6  # a smoothed delay time (samples) this close to its target snaps to it

# ================================= delay ===================================================
# The DSP lives in engine.rt.units.delay (the "delay" unit); this is the master send's view of
# it: five parameters, the tempo passed in, and the wet signal ADDED into the out buffers.
DELAY_TIME_BEATS = 0   # beats, 1/64..16; 0.75 = dotted eighth
DELAY_FEEDBACK = 1     # 0..0.95
DELAY_TONE_HZ = 2      # lowpass in the feedback path, 100 Hz..0.45*sample_rate
DELAY_PINGPONG = 3     # 0 = two straight stereo delays, 1 = full ping-pong (mono in, L first)
DELAY_MIX = 4          # wet return level, linear 0..1
DELAY_N_PARAMS = 5

DELAY_PARAM_NAMES = {"time_beats": DELAY_TIME_BEATS, "feedback": DELAY_FEEDBACK,
                     "tone_hz": DELAY_TONE_HZ, "pingpong": DELAY_PINGPONG, "mix": DELAY_MIX}
DELAY_FEEDBACK_MAX = delay_unit.FEEDBACK_MAX
DELAY_MAX_S = delay_unit.DELAY_MAX_S
DELAY_TIME_SMOOTH_S = delay_unit.DELAY_TIME_SMOOTH_S
TEMPO_MIN_BPM, TEMPO_MAX_BPM = delay_unit.TEMPO_MIN_BPM, delay_unit.TEMPO_MAX_BPM

# the state layout (engine.rt.units.delay)
D_INIT, D_POS, D_SIZE, D_TIME = delay_unit.D_INIT, delay_unit.D_POS, delay_unit.D_SIZE, \
    delay_unit.D_TIME
D_HDR = delay_unit.D_HDR


def delay_alloc_state(sample_rate, max_delay_s=DELAY_MAX_S):
    """Control side, prepare time: state for delays up to max_delay_s (two lines, L at D_HDR,
    R right after it)."""
    size = delay_unit.line_size(sample_rate, max_delay_s)
    st = np.zeros(D_HDR + 2 * size, dtype=np.float64)
    st[D_SIZE] = size
    return st


def delay_default_params():
    """Control side: dotted eighth, feedback 0.35, tone 4.5 kHz, full ping-pong, mix 0.3."""
    p = np.zeros(DELAY_N_PARAMS, dtype=np.float64)
    p[DELAY_TIME_BEATS] = 0.75
    p[DELAY_FEEDBACK] = 0.35
    p[DELAY_TONE_HZ] = 4500.0
    p[DELAY_PINGPONG] = 1.0
    p[DELAY_MIX] = 0.3
    return p


@njit(**JIT)
def delay_process(state, params, in_l, in_r, out_l, out_r, i0, i1, tempo_bpm, sample_rate):
    """AUDIO THREAD. Tempo-synced stereo / ping-pong delay over [i0, i1); adds wet into out.

    Delay = time_beats * 60 / tempo_bpm seconds (clamped to the buffer), glided per sample
    (DELAY_TIME_SMOOTH_S) and read with cubic interpolation. With pingpong = 1 the send is summed
    to mono, the first echo is on the left, the next on the right, and so on; each repeat passes
    the feedback lowpass (tone_hz) once more. engine.rt.units.delay.run does the work.
    """
    if i1 <= i0:
        return
    sr = max(sample_rate, 1000.0)
    size = (state.shape[0] - D_HDR) // 2
    t_time = delay_unit.beats_target(params[DELAY_TIME_BEATS], tempo_bpm, sr, size)
    t_fb = clamp(params[DELAY_FEEDBACK], 0.0, DELAY_FEEDBACK_MAX)
    t_tone = delay_unit.onepole_coef(clamp(params[DELAY_TONE_HZ], 100.0, 0.45 * sr), sr)
    t_pp = clamp(params[DELAY_PINGPONG], 0.0, 1.0)
    t_mix = clamp(params[DELAY_MIX], 0.0, 1.0)
    delay_unit.run(state, in_l, in_r, out_l, out_r, i0, i1, t_time, t_fb, t_tone, 0.0, t_pp,
                   t_mix, 0.0, True, sr)


@njit(**JIT)
def delay_reset(state):
    """AUDIO THREAD or control side. Clear the lines and filters (params re-snap next call).
    Touches the whole buffer (about 3 MB at 48 kHz): not for every block."""
    size = int(state[D_SIZE])
    state[:] = 0.0
    state[D_SIZE] = size


# ================================= reverb ==================================================
@njit(inline="always", **JIT)
def _sane(x):
    """A send sample, or 0 when it is NaN, infinite or absurdly large."""
    return x if abs(x) < INPUT_LIMIT else 0.0


@njit(**JIT)
def _onepole_coef(hz, sr):
    return 1.0 - math.exp(-2.0 * math.pi * hz / sr)


@njit(inline="always", **JIT)
def _at(i):
    """An index known to be >= 0: unsigned, so no negative-index wraparound is compiled in."""
    return np.uint64(i)


REVERB_DECAY_S = 0      # RT60 at low frequencies, 0.1..30 s
REVERB_DAMPING_HZ = 1   # lowpass in every line: highs die faster above it, 500 Hz..0.45*sr
REVERB_PREDELAY_MS = 2  # 0..250 ms
REVERB_MIX = 3          # wet return level, linear 0..1
REVERB_N_PARAMS = 4

REVERB_PARAM_NAMES = {"decay_s": REVERB_DECAY_S, "damping_hz": REVERB_DAMPING_HZ,
                      "predelay_ms": REVERB_PREDELAY_MS, "mix": REVERB_MIX}
REVERB_DECAY_MIN_S, REVERB_DECAY_MAX_S = 0.1, 30.0
REVERB_PREDELAY_MAX_MS = 250.0

N_LINES = 8
N_DIFFUSERS = 4  # allpasses per input channel
# Line lengths at 48 kHz (27..63 ms, mutually prime) and input diffusers (L set, R set).
LINE_LEN_48K = (1307, 1559, 1831, 2083, 2297, 2531, 2789, 3037)
DIFFUSER_LEN_48K = (241, 367, 487, 613, 257, 383, 503, 631)
DIFFUSER_GAIN = (0.7, 0.7, 0.62, 0.62)
MOD_DEPTH_48K = 6.0  # samples of slow delay modulation on every line: no metallic ringing
MOD_HZ = (0.31, 0.43, 0.53, 0.67, 0.73, 0.89, 0.97, 1.13)
MOD_STEP = 32  # the modulation is computed every MOD_STEP samples, linear in between
REVERB_OUT_GAIN = 1.0
CHUNK = MOD_STEP  # samples processed stage by stage (never across a modulation control point)
GUARD = CHUNK     # every ring is followed by a copy of its first GUARD frames

# header: scalars
R_INIT, R_DAMP, R_MIX, R_PD, R_N, R_MOD_DEPTH = range(6)
# R_N: sample count modulo the longest ring (every ring is a power of two frames long, so
# `R_N & mask` is each ring's write frame, and `R_N % MOD_STEP == 0` marks a control point)
R_LINE_OFF, R_LINE_MASK, R_AP_OFF, R_AP_MASK, R_PD_OFF, R_PD_MASK = range(6, 12)
R_G_T_KEY = 12     # (decay, sample rate) the line gain targets R_G_T were computed for [2]
R_G = 16           # smoothed line gains [8]
R_G_T = 24         # their targets, written when each call starts [8]
R_LP = 32          # damping lowpass states [8]
R_LFO_C = 40       # modulation LFOs: rotating phasors (cos, sin) [8] + [8]
R_LFO_S = 48
R_LINE_LEN = 56    # nominal line delays (samples) [8]
R_AP_LEN = 64      # diffuser delays (samples) [8], 0..3 left, 4..7 right
R_MOD_D = 72       # modulated line delays (samples) at the current segment's control point [8]
R_MOD_DD = 80      # their per-sample slopes until the next control point [8]
R_MOD_NXT = 88     # their values at the next control point [8]
R_ROT_C = 96       # each LFO's rotation per MOD_STEP samples (cos, sin) [8] + [8]
R_ROT_S = 104
R_LFO0_C = 112     # the LFOs' starting phasors (cos, sin) [8] + [8], for reverb_reset
R_LFO0_S = 120
R_HDR = 128
# After the header: scratch for one chunk (the diffused inputs L and R, the 8 line outputs, the
# wet gain per sample, the 8 damped and scaled line outputs), then the rings: 8 lines,
# 8 diffusers, 2 predelay channels. Each ring is a power of two frames long (at least
# 2 * CHUNK) plus GUARD frames that mirror its first ones, so that any CHUNK + 1 consecutive
# frames from any start can be read without wrapping.
S_XL, S_XR, S_O, S_WET, S_S = 0, CHUNK, 2 * CHUNK, 10 * CHUNK, 11 * CHUNK
SCRATCH = 19 * CHUNK


def _pow2_at_least(n):
    p = 2 * CHUNK
    while p < n:
        p *= 2
    return p


def reverb_alloc_state(sample_rate):
    """Control side, prepare time: FDN state with every buffer sized from the sample rate."""
    scale = sample_rate / 48000.0
    hdr = np.zeros(R_HDR)
    depth = MOD_DEPTH_48K * scale
    hdr[R_MOD_DEPTH] = depth
    longest = 0
    for i in range(N_LINES):
        # a line reads nothing written in the same chunk: at least CHUNK samples long
        n = max(int(round(LINE_LEN_48K[i] * scale)), CHUNK + 2 + int(math.ceil(depth)))
        longest = max(longest, n)
        hdr[R_LINE_LEN + i] = n
        step = 2.0 * math.pi * MOD_HZ[i] * MOD_STEP / sample_rate
        hdr[R_ROT_C + i], hdr[R_ROT_S + i] = math.cos(step), math.sin(step)
        phase = 2.0 * math.pi * i / N_LINES
        hdr[R_LFO0_C + i] = hdr[R_LFO_C + i] = math.cos(phase)
        hdr[R_LFO0_S + i] = hdr[R_LFO_S + i] = math.sin(phase)
    line_frames = _pow2_at_least(longest + int(math.ceil(depth)) + 4)
    ap_longest = 0
    for j in range(2 * N_DIFFUSERS):
        n = max(int(round(DIFFUSER_LEN_48K[j] * scale)), CHUNK)
        ap_longest = max(ap_longest, n)
        hdr[R_AP_LEN + j] = n
    ap_frames = _pow2_at_least(ap_longest + 1)
    # (a chunk writes its predelay frames before reading: the longest read stays clear of them)
    pd_frames = _pow2_at_least(int(math.ceil(REVERB_PREDELAY_MAX_MS * 1e-3 * sample_rate))
                               + CHUNK + 4)
    off = R_HDR + SCRATCH
    hdr[R_LINE_OFF] = off
    hdr[R_LINE_MASK] = line_frames - 1
    off += N_LINES * (line_frames + GUARD)
    hdr[R_AP_OFF] = off
    hdr[R_AP_MASK] = ap_frames - 1
    off += 2 * N_DIFFUSERS * (ap_frames + GUARD)
    hdr[R_PD_OFF] = off
    hdr[R_PD_MASK] = pd_frames - 1
    off += 2 * (pd_frames + GUARD)
    st = np.zeros(off, dtype=np.float64)
    st[:R_HDR] = hdr
    return st


def reverb_default_params():
    """Control side: 2.2 s decay, damping 6 kHz, predelay 20 ms, mix 0.25."""
    p = np.zeros(REVERB_N_PARAMS, dtype=np.float64)
    p[REVERB_DECAY_S] = 2.2
    p[REVERB_DAMPING_HZ] = 6000.0
    p[REVERB_PREDELAY_MS] = 20.0
    p[REVERB_MIX] = 0.25
    return p


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


@njit(**JIT)
def _mod_step(state):
    """Modulation control point (every MOD_STEP samples of the sample count): each line's delay
    starts the new segment at the value it was heading for, and heads for its LFO's value
    MOD_STEP samples later (linear in between). The LFOs are phasors, rotated (and
    renormalised) once per control point: no sin per sample, nor per control point."""
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
        nxt = state[R_LINE_LEN + k] + depth * s
        state[R_MOD_D + k] = d
        state[R_MOD_NXT + k] = nxt
        state[R_MOD_DD + k] = (nxt - d) * (1.0 / MOD_STEP)


@njit(**JIT)
def reverb_process(state, params, in_l, in_r, out_l, out_r, i0, i1, sample_rate):
    """AUDIO THREAD. Stereo FDN reverb over [i0, i1); adds wet into out.

    Predelay (smoothed, interpolated), four Schroeder allpasses per input channel, then eight
    modulated delay lines mixed by a normalised 8x8 Hadamard matrix. Each line has a gain
    giving a 60 dB decay in decay_s and a one-pole lowpass at damping_hz (unity at DC, so
    decay_s is the low-frequency RT60). Left output taps the even lines, right the odd ones.

    Work is done in chunks of at most CHUNK samples that never cross a modulation control
    point (every MOD_STEP samples of the reverb's own sample count): every stage but the
    damping / mixing one (recursive) runs over the whole chunk in a loop LLVM vectorises, which
    is exact because no line or diffuser is shorter than a chunk. The line modulation (a slow
    sine per line) is linear within a segment, from its state at the control point; smoothing
    stops once every smoothed value is within SETTLE_* of its target (checked per sample; the
    predelay time on its own, the rest together). Every value of a sample depends on state and
    on its place in the segment only, so any split of a block gives the same output.
    """
    if i1 <= i0:
        return
    sr = max(sample_rate, 1000.0)
    rt60 = clamp(params[REVERB_DECAY_S], REVERB_DECAY_MIN_S, REVERB_DECAY_MAX_S)
    if state[R_G_T_KEY] != rt60 or state[R_G_T_KEY + 1] != sr:  # 8 pow: only on a change
        for k in range(N_LINES):
            state[R_G_T + k] = 10.0 ** (-3.0 * state[R_LINE_LEN + k] / (rt60 * sr))
        state[R_G_T_KEY] = rt60
        state[R_G_T_KEY + 1] = sr
    t_damp = _onepole_coef(clamp(params[REVERB_DAMPING_HZ], 500.0, 0.45 * sr), sr)
    pm = int(state[R_PD_MASK])
    t_pd = clamp(params[REVERB_PREDELAY_MS], 0.0, REVERB_PREDELAY_MAX_MS) * 1e-3 * sr
    t_pd = min(t_pd, pm - CHUNK - 2.0)
    t_mix = clamp(params[REVERB_MIX], 0.0, 1.0)
    if state[R_INIT] == 0.0:
        state[R_INIT] = 1.0
        for k in range(N_LINES):
            state[R_G + k] = state[R_G_T + k]
            state[R_MOD_NXT + k] = state[R_LINE_LEN + k] + state[R_MOD_DEPTH] * state[R_LFO_S + k]
        state[R_DAMP] = t_damp
        state[R_PD] = t_pd
        state[R_MIX] = t_mix
    ks = smooth_coef(SMOOTH_S, sr)
    kt = smooth_coef(DELAY_TIME_SMOOTH_S, sr)
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
    i = i0
    while i < i1:
        j0 = n0 & (MOD_STEP - 1)  # place in the modulation segment
        if j0 == 0:
            _mod_step(state)
        c = min(i1 - i, MOD_STEP - j0)
        # predelay: write the chunk, then read pd samples back (pd = 0 reads this sample)
        w = n0 & pm
        for t in range(c):
            state[_at(pl + w + t)] = _sane(in_l[_at(i + t)])
            state[_at(pr + w + t)] = _sane(in_r[_at(i + t)])
        _mirror(state, pl, pm + 1, w, c)
        _mirror(state, pr, pm + 1, w, c)
        if pd_settling:
            for t in range(c):
                pd += kt * (t_pd - pd)
                if abs(t_pd - pd) <= SETTLE_SAMPLES:
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
                damp += ks * (t_damp - damp)
                mix += ks * (t_mix - mix)
                g0 += ks * (gt0 - g0)
                g1 += ks * (gt1 - g1)
                g2 += ks * (gt2 - g2)
                g3 += ks * (gt3 - g3)
                g4 += ks * (gt4 - g4)
                g5 += ks * (gt5 - g5)
                g6 += ks * (gt6 - g6)
                g7 += ks * (gt7 - g7)
                if (abs(t_damp - damp) <= SETTLE_LEVEL and abs(t_mix - mix) <= SETTLE_LEVEL
                        and abs(gt0 - g0) <= SETTLE_LEVEL and abs(gt1 - g1) <= SETTLE_LEVEL
                        and abs(gt2 - g2) <= SETTLE_LEVEL and abs(gt3 - g3) <= SETTLE_LEVEL
                        and abs(gt4 - g4) <= SETTLE_LEVEL and abs(gt5 - g5) <= SETTLE_LEVEL
                        and abs(gt6 - g6) <= SETTLE_LEVEL and abs(gt7 - g7) <= SETTLE_LEVEL):
                    damp = t_damp
                    mix = t_mix
                    g0, g1, g2, g3, g4, g5, g6, g7 = gt0, gt1, gt2, gt3, gt4, gt5, gt6, gt7
                    settling = False
                gn0, gn1, gn2, gn3 = norm * g0, norm * g1, norm * g2, norm * g3
                gn4, gn5, gn6, gn7 = norm * g4, norm * g5, norm * g6, norm * g7
            state[_at(sc + S_WET + t)] = mix * (REVERB_OUT_GAIN * 0.5)
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
        for t in range(c):
            out_l[_at(i + t)] += state[_at(sc + S_WET + t)] * (
                state[_at(o + t)] - state[_at(o + 2 * CHUNK + t)]
                + state[_at(o + 4 * CHUNK + t)] - state[_at(o + 6 * CHUNK + t)])
        for t in range(c):
            out_r[_at(i + t)] += state[_at(sc + S_WET + t)] * (
                state[_at(o + CHUNK + t)] - state[_at(o + 3 * CHUNK + t)]
                + state[_at(o + 5 * CHUNK + t)] - state[_at(o + 7 * CHUNK + t)])
        n0 = (n0 + c) & nm
        i += c
    state[R_N] = n0
    state[R_DAMP] = damp
    state[R_MIX] = mix
    state[R_PD] = pd
    _store8(state, R_LP, lp0, lp1, lp2, lp3, lp4, lp5, lp6, lp7)
    _store8(state, R_G, g0, g1, g2, g3, g4, g5, g6, g7)


@njit(**JIT)
def reverb_reset(state):
    """AUDIO THREAD or control side. Clear every line, filter and position (layout is kept).
    Touches the whole buffer: not for every block."""
    state[R_INIT] = 0.0
    state[R_DAMP] = 0.0
    state[R_MIX] = 0.0
    state[R_PD] = 0.0
    state[R_N] = 0.0
    state[R_G_T_KEY] = 0.0
    state[R_G_T_KEY + 1] = 0.0
    for k in range(N_LINES):
        state[R_G + k] = 0.0
        state[R_G_T + k] = 0.0
        state[R_LP + k] = 0.0
        state[R_LFO_C + k] = state[R_LFO0_C + k]
        state[R_LFO_S + k] = state[R_LFO0_S + k]
        state[R_MOD_D + k] = 0.0
        state[R_MOD_DD + k] = 0.0
        state[R_MOD_NXT + k] = 0.0
    state[R_HDR:] = 0.0
