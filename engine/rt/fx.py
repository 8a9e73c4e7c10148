"""Stereo send effects: a tempo-synced ping-pong delay and an 8-line FDN reverb.

Threads:
    delay_alloc_state, delay_default_params, reverb_alloc_state, reverb_default_params
        control side, prepare time
    delay_process, reverb_process, delay_reset, reverb_reset
        AUDIO THREAD (nopython, no allocation)

Both effects are sends: they read the send buffers in_l/in_r (pass the same array twice for a
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

SMOOTH_S = 0.02          # level / feedback / tone / damping smoothing
DELAY_TIME_SMOOTH_S = 0.1  # delay time glides (tape-like) on tempo or time changes: no clicks
INPUT_LIMIT = 1e9
SETTLE_LEVEL = 1e-9    # a smoothed level / coefficient this close to its target snaps to it
SETTLE_SAMPLES = 1e-6  # a smoothed delay time (samples) this close to its target snaps to it

# ================================= delay ===================================================
DELAY_TIME_BEATS = 0   # beats, 1/64..16; 0.75 = dotted eighth
DELAY_FEEDBACK = 1     # 0..0.95
DELAY_TONE_HZ = 2      # lowpass in the feedback path, 100 Hz..0.45*sample_rate
DELAY_PINGPONG = 3     # 0 = two straight stereo delays, 1 = full ping-pong (mono in, L first)
DELAY_MIX = 4          # wet return level, linear 0..1
DELAY_N_PARAMS = 5

DELAY_PARAM_NAMES = {"time_beats": DELAY_TIME_BEATS, "feedback": DELAY_FEEDBACK,
                     "tone_hz": DELAY_TONE_HZ, "pingpong": DELAY_PINGPONG, "mix": DELAY_MIX}
DELAY_FEEDBACK_MAX = 0.95
DELAY_MAX_S = 4.0
TEMPO_MIN_BPM, TEMPO_MAX_BPM = 20.0, 400.0

# header
D_INIT, D_POS, D_SIZE, D_TIME, D_FB, D_TONE, D_PP, D_MIX, D_LP_L, D_LP_R = range(10)
D_HDR = 16


def delay_alloc_state(sample_rate, max_delay_s=DELAY_MAX_S):
    """Control side, prepare time: state for delays up to max_delay_s (two lines, L and R)."""
    size = int(math.ceil(max_delay_s * sample_rate)) + 8
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


@njit(inline="always", **JIT)
def _sane(x):
    """A send sample, or 0 when it is NaN, infinite or absurdly large."""
    return x if abs(x) < INPUT_LIMIT else 0.0


@njit(**JIT)
def _onepole_coef(hz, sr):
    return 1.0 - math.exp(-2.0 * math.pi * hz / sr)


@njit(inline="always", **JIT)
def _hermite2(buf, bl, br, size, pos, d):
    """Read the two rings `buf[bl:bl+size]` and `buf[br:br+size]` (written at `pos`, not yet
    this sample) `d` samples back, 4-point cubic Hermite; exact for integer d.
    Needs 2 <= d <= size - 3."""
    di = int(d)
    f = d - di
    k = pos - di
    if k < 0:
        k += size
    kp = k + 1
    km = k - 1
    km2 = k - 2
    if km2 < 0 or kp >= size:  # a neighbour wraps around (rare): the slow, general way
        kp = kp % size
        km = (km + size) % size
        km2 = (km2 + size) % size
    l0 = buf[bl + k]
    lm1 = buf[bl + kp]
    l1 = buf[bl + km]
    l2 = buf[bl + km2]
    r0 = buf[br + k]
    rm1 = buf[br + kp]
    r1 = buf[br + km]
    r2 = buf[br + km2]
    c1 = 0.5 * (l1 - lm1)
    c2 = lm1 - 2.5 * l0 + 2.0 * l1 - 0.5 * l2
    c3 = 0.5 * (l2 - lm1) + 1.5 * (l0 - l1)
    yl = ((c3 * f + c2) * f + c1) * f + l0
    c1 = 0.5 * (r1 - rm1)
    c2 = rm1 - 2.5 * r0 + 2.0 * r1 - 0.5 * r2
    c3 = 0.5 * (r2 - rm1) + 1.5 * (r0 - r1)
    yr = ((c3 * f + c2) * f + c1) * f + r0
    return yl, yr


@njit(**JIT)
def delay_process(state, params, in_l, in_r, out_l, out_r, i0, i1, tempo_bpm, sample_rate):
    """AUDIO THREAD. Tempo-synced stereo / ping-pong delay over [i0, i1); adds wet into out.

    Delay = time_beats * 60 / tempo_bpm seconds (clamped to the buffer), glided per sample
    (DELAY_TIME_SMOOTH_S) and read with cubic interpolation. With pingpong = 1 the send is summed
    to mono, the first echo is on the left, the next on the right, and so on; each repeat passes
    the feedback lowpass (tone_hz) once more.

    Smoothing stops once every smoothed value is within SETTLE_* of its target (checked per
    sample, then snapped to the targets), so a steady delay costs no smoothing at all.
    """
    if i1 <= i0:
        return
    sr = max(sample_rate, 1000.0)
    size = int(state[D_SIZE])
    bl = D_HDR
    br = D_HDR + size
    tempo = clamp(tempo_bpm, TEMPO_MIN_BPM, TEMPO_MAX_BPM)
    t_time = clamp(params[DELAY_TIME_BEATS], 1.0 / 64.0, 16.0) * 60.0 / tempo * sr
    t_time = clamp(t_time, 4.0, size - 4.0)
    t_fb = clamp(params[DELAY_FEEDBACK], 0.0, DELAY_FEEDBACK_MAX)
    t_tone = _onepole_coef(clamp(params[DELAY_TONE_HZ], 100.0, 0.45 * sr), sr)
    t_pp = clamp(params[DELAY_PINGPONG], 0.0, 1.0)
    t_mix = clamp(params[DELAY_MIX], 0.0, 1.0)
    if state[D_INIT] == 0.0:
        state[D_INIT] = 1.0
        state[D_TIME] = t_time
        state[D_FB] = t_fb
        state[D_TONE] = t_tone
        state[D_PP] = t_pp
        state[D_MIX] = t_mix
    ks = smooth_coef(SMOOTH_S, sr)
    kt = smooth_coef(DELAY_TIME_SMOOTH_S, sr)
    pos = int(state[D_POS])
    d = state[D_TIME]
    fb = state[D_FB]
    tone = state[D_TONE]
    pp = state[D_PP]
    mix = state[D_MIX]
    lp_l = state[D_LP_L]
    lp_r = state[D_LP_R]
    settling = not (d == t_time and fb == t_fb and tone == t_tone and pp == t_pp
                    and mix == t_mix)
    for i in range(i0, i1):
        if settling:
            d += kt * (t_time - d)
            fb += ks * (t_fb - fb)
            tone += ks * (t_tone - tone)
            pp += ks * (t_pp - pp)
            mix += ks * (t_mix - mix)
            if (abs(t_time - d) <= SETTLE_SAMPLES and abs(t_fb - fb) <= SETTLE_LEVEL
                    and abs(t_tone - tone) <= SETTLE_LEVEL and abs(t_pp - pp) <= SETTLE_LEVEL
                    and abs(t_mix - mix) <= SETTLE_LEVEL):
                d = t_time
                fb = t_fb
                tone = t_tone
                pp = t_pp
                mix = t_mix
                settling = False
        yl, yr = _hermite2(state, bl, br, size, pos, d)
        lp_l = flush(lp_l + tone * (yl - lp_l))
        lp_r = flush(lp_r + tone * (yr - lp_r))
        xl = _sane(in_l[i])
        xr = _sane(in_r[i])
        straight = 1.0 - pp
        wl = straight * xl + pp * 0.5 * (xl + xr) + fb * (straight * lp_l + pp * lp_r)
        wr = straight * xr + fb * (straight * lp_r + pp * lp_l)
        state[bl + pos] = flush(wl)
        state[br + pos] = flush(wr)
        out_l[i] += mix * yl
        out_r[i] += mix * yr
        pos += 1
        if pos == size:
            pos = 0
    state[D_POS] = pos
    state[D_TIME] = d
    state[D_FB] = fb
    state[D_TONE] = tone
    state[D_PP] = pp
    state[D_MIX] = mix
    state[D_LP_L] = lp_l
    state[D_LP_R] = lp_r


@njit(**JIT)
def delay_reset(state):
    """AUDIO THREAD or control side. Clear the lines and filters (params re-snap next call).
    Touches the whole buffer (about 3 MB at 48 kHz): not for every block."""
    size = int(state[D_SIZE])
    state[:] = 0.0
    state[D_SIZE] = size


# ================================= reverb ==================================================
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
MOD_STEP = 16  # the modulation is computed every MOD_STEP samples, linear in between
REVERB_OUT_GAIN = 1.0

# header: scalars
R_INIT, R_DAMP, R_MIX, R_PD, R_N, R_MOD_DEPTH = range(6)
# R_N: sample count modulo the largest ring (every ring is a power of two, so `R_N & mask` is
# each ring's write frame, and `R_N & (MOD_STEP - 1) == 0` marks a modulation control point)
R_LINE_OFF, R_LINE_MASK, R_AP_OFF, R_AP_MASK, R_PD_OFF, R_PD_MASK = range(6, 12)
R_G = 16           # smoothed line gains [8]
R_G_T = 24         # their targets, written when each call starts [8]
R_LP = 32          # damping lowpass states [8]
R_LFO = 40         # modulation phases [8]
R_LFO_INC = 48     # [8]
R_LINE_LEN = 56    # nominal line delays (samples) [8]
R_AP_LEN = 64      # diffuser delays (samples) [8], 0..3 left, 4..7 right
R_MOD_D = 72       # current modulated line delays (samples) [8]
R_MOD_DD = 80      # their per-sample slopes until the next control point [8]
R_HDR = 88
# After the header, three rings of interleaved frames (frame f of a ring holds its channels at
# off + 8 * f + k, or 2 * f + k for the predelay), each a power of two frames long:
# the 8 lines, the 8 diffusers, the 2 predelay channels.


def _pow2_at_least(n):
    p = 16
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
        n = max(int(round(LINE_LEN_48K[i] * scale)), 16)
        longest = max(longest, n)
        hdr[R_LINE_LEN + i] = n
        hdr[R_LFO_INC + i] = MOD_HZ[i] / sample_rate
        hdr[R_LFO + i] = i / N_LINES
    line_frames = _pow2_at_least(longest + int(math.ceil(depth)) + 4)
    ap_longest = 0
    for j in range(2 * N_DIFFUSERS):
        n = max(int(round(DIFFUSER_LEN_48K[j] * scale)), 2)
        ap_longest = max(ap_longest, n)
        hdr[R_AP_LEN + j] = n
    ap_frames = _pow2_at_least(ap_longest + 1)
    pd_frames = _pow2_at_least(int(math.ceil(REVERB_PREDELAY_MAX_MS * 1e-3 * sample_rate)) + 4)
    off = R_HDR
    hdr[R_LINE_OFF] = off
    hdr[R_LINE_MASK] = line_frames - 1
    off += N_LINES * line_frames
    hdr[R_AP_OFF] = off
    hdr[R_AP_MASK] = ap_frames - 1
    off += 2 * N_DIFFUSERS * ap_frames
    hdr[R_PD_OFF] = off
    hdr[R_PD_MASK] = pd_frames - 1
    off += 2 * pd_frames
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
def _at(i):
    """An index known to be >= 0: unsigned, so no negative-index wraparound is compiled in."""
    return np.uint64(i)


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
def _tap(state, base, n, mask, d):
    """Line output `d` samples back, linearly interpolated: base is the line ring's offset plus
    the line's channel, n the frame written this sample (not yet written). Needs 1 <= d."""
    di = int(d)
    f = d - di
    a = (n - di) & mask
    b = (a - 1) & mask
    x = state[_at(base + 8 * a)]
    return x + f * (state[_at(base + 8 * b)] - x)


@njit(inline="always", **JIT)
def _allpass(state, base, n, length, mask, x, g):
    """Schroeder allpass of `length` samples: base is the diffuser ring's offset plus the
    diffuser's channel, n this sample's frame."""
    dl = state[_at(base + 8 * ((n - length) & mask))]
    w = flush(x + g * dl)
    state[_at(base + 8 * (n & mask))] = w
    return dl - g * w


@njit(**JIT)
def _mod_step(state):
    """Modulation control point (every MOD_STEP samples of the sample count): advance each
    line's LFO by MOD_STEP samples and set the per-sample slope of its delay (R_MOD_DD) so that
    the delay reaches the LFO's value at the next control point (linear in between)."""
    depth = state[R_MOD_DEPTH]
    for k in range(N_LINES):
        ph = state[R_LFO + k] + MOD_STEP * state[R_LFO_INC + k]
        ph -= math.floor(ph)
        state[R_LFO + k] = ph
        nxt = state[R_LINE_LEN + k] + depth * math.sin(2.0 * math.pi * ph)
        state[R_MOD_DD + k] = (nxt - state[R_MOD_D + k]) * (1.0 / MOD_STEP)


@njit(**JIT)
def reverb_process(state, params, in_l, in_r, out_l, out_r, i0, i1, sample_rate):
    """AUDIO THREAD. Stereo FDN reverb over [i0, i1); adds wet into out.

    Predelay (smoothed, interpolated), four Schroeder allpasses per input channel, then eight
    modulated delay lines mixed by a normalised 8x8 Hadamard matrix. Each line has a gain
    giving a 60 dB decay in decay_s and a one-pole lowpass at damping_hz (unity at DC, so
    decay_s is the low-frequency RT60). Left output taps the even lines, right the odd ones.

    The line modulation (a slow sine per line) is computed every MOD_STEP samples of the
    reverb's own sample count and interpolated linearly in between; smoothing stops once every
    smoothed value is within SETTLE_* of its target. Both are per-sample decisions on state, so
    any split of a block gives the same output.
    """
    if i1 <= i0:
        return
    sr = max(sample_rate, 1000.0)
    rt60 = clamp(params[REVERB_DECAY_S], REVERB_DECAY_MIN_S, REVERB_DECAY_MAX_S)
    for k in range(N_LINES):
        state[R_G_T + k] = 10.0 ** (-3.0 * state[R_LINE_LEN + k] / (rt60 * sr))
    t_damp = _onepole_coef(clamp(params[REVERB_DAMPING_HZ], 500.0, 0.45 * sr), sr)
    pm = int(state[R_PD_MASK])
    t_pd = clamp(params[REVERB_PREDELAY_MS], 0.0, REVERB_PREDELAY_MAX_MS) * 1e-3 * sr
    t_pd = min(t_pd, pm - 1.0)
    t_mix = clamp(params[REVERB_MIX], 0.0, 1.0)
    if state[R_INIT] == 0.0:
        state[R_INIT] = 1.0
        for k in range(N_LINES):
            state[R_G + k] = state[R_G_T + k]
            state[R_MOD_D + k] = (state[R_LINE_LEN + k]
                                  + state[R_MOD_DEPTH] * math.sin(2.0 * math.pi * state[R_LFO + k]))
        state[R_DAMP] = t_damp
        state[R_PD] = t_pd
        state[R_MIX] = t_mix
    ks = smooth_coef(SMOOTH_S, sr)
    kt = smooth_coef(DELAY_TIME_SMOOTH_S, sr)
    norm = 1.0 / math.sqrt(8.0)
    lo = int(state[R_LINE_OFF])
    lm = int(state[R_LINE_MASK])
    ao = int(state[R_AP_OFF])
    am = int(state[R_AP_MASK])
    po = int(state[R_PD_OFF])
    nm = max(lm, am, pm)  # R_N wraps at the longest ring (a multiple of every other one)
    n = int(state[R_N])
    damp = state[R_DAMP]
    mix = state[R_MIX]
    pd = state[R_PD]
    d0, d1, d2, d3, d4, d5, d6, d7 = _floats8(state, R_MOD_D)
    dd0, dd1, dd2, dd3, dd4, dd5, dd6, dd7 = _floats8(state, R_MOD_DD)
    lp0, lp1, lp2, lp3, lp4, lp5, lp6, lp7 = _floats8(state, R_LP)
    g0, g1, g2, g3, g4, g5, g6, g7 = _floats8(state, R_G)
    gt0, gt1, gt2, gt3, gt4, gt5, gt6, gt7 = _floats8(state, R_G_T)
    n0 = int(state[R_AP_LEN])
    n1 = int(state[R_AP_LEN + 1])
    n2 = int(state[R_AP_LEN + 2])
    n3 = int(state[R_AP_LEN + 3])
    n4 = int(state[R_AP_LEN + 4])
    n5 = int(state[R_AP_LEN + 5])
    n6 = int(state[R_AP_LEN + 6])
    n7 = int(state[R_AP_LEN + 7])
    settling = not (damp == t_damp and mix == t_mix and pd == t_pd and g0 == gt0 and g1 == gt1
                    and g2 == gt2 and g3 == gt3 and g4 == gt4 and g5 == gt5 and g6 == gt6
                    and g7 == gt7)
    for i in range(i0, i1):
        if settling:
            damp += ks * (t_damp - damp)
            mix += ks * (t_mix - mix)
            pd += kt * (t_pd - pd)
            g0 += ks * (gt0 - g0)
            g1 += ks * (gt1 - g1)
            g2 += ks * (gt2 - g2)
            g3 += ks * (gt3 - g3)
            g4 += ks * (gt4 - g4)
            g5 += ks * (gt5 - g5)
            g6 += ks * (gt6 - g6)
            g7 += ks * (gt7 - g7)
            if (abs(t_damp - damp) <= SETTLE_LEVEL and abs(t_mix - mix) <= SETTLE_LEVEL
                    and abs(t_pd - pd) <= SETTLE_SAMPLES
                    and abs(gt0 - g0) <= SETTLE_LEVEL and abs(gt1 - g1) <= SETTLE_LEVEL
                    and abs(gt2 - g2) <= SETTLE_LEVEL and abs(gt3 - g3) <= SETTLE_LEVEL
                    and abs(gt4 - g4) <= SETTLE_LEVEL and abs(gt5 - g5) <= SETTLE_LEVEL
                    and abs(gt6 - g6) <= SETTLE_LEVEL and abs(gt7 - g7) <= SETTLE_LEVEL):
                damp = t_damp
                mix = t_mix
                pd = t_pd
                g0, g1, g2, g3, g4, g5, g6, g7 = gt0, gt1, gt2, gt3, gt4, gt5, gt6, gt7
                settling = False
        if n & (MOD_STEP - 1) == 0:
            _store8(state, R_MOD_D, d0, d1, d2, d3, d4, d5, d6, d7)
            _mod_step(state)
            dd0, dd1, dd2, dd3, dd4, dd5, dd6, dd7 = _floats8(state, R_MOD_DD)
        # predelay: write, then read pd samples back (pd = 0 reads this sample)
        w = po + 2 * (n & pm)
        state[_at(w)] = _sane(in_l[i])
        state[_at(w + 1)] = _sane(in_r[i])
        di = int(pd)
        f = pd - di
        a = po + 2 * ((n - di) & pm)
        b = po + 2 * ((n - di - 1) & pm)
        xl = state[_at(a)]
        xr = state[_at(a + 1)]
        xl += f * (state[_at(b)] - xl)
        xr += f * (state[_at(b + 1)] - xr)
        # input diffusers
        xl = _allpass(state, ao, n, n0, am, xl, DIFFUSER_GAIN[0])
        xr = _allpass(state, ao + 4, n, n4, am, xr, DIFFUSER_GAIN[0])
        xl = _allpass(state, ao + 1, n, n1, am, xl, DIFFUSER_GAIN[1])
        xr = _allpass(state, ao + 5, n, n5, am, xr, DIFFUSER_GAIN[1])
        xl = _allpass(state, ao + 2, n, n2, am, xl, DIFFUSER_GAIN[2])
        xr = _allpass(state, ao + 6, n, n6, am, xr, DIFFUSER_GAIN[2])
        xl = _allpass(state, ao + 3, n, n3, am, xl, DIFFUSER_GAIN[3])
        xr = _allpass(state, ao + 7, n, n7, am, xr, DIFFUSER_GAIN[3])
        # line outputs, damped and scaled
        o0 = _tap(state, lo, n, lm, d0)
        o1 = _tap(state, lo + 1, n, lm, d1)
        o2 = _tap(state, lo + 2, n, lm, d2)
        o3 = _tap(state, lo + 3, n, lm, d3)
        o4 = _tap(state, lo + 4, n, lm, d4)
        o5 = _tap(state, lo + 5, n, lm, d5)
        o6 = _tap(state, lo + 6, n, lm, d6)
        o7 = _tap(state, lo + 7, n, lm, d7)
        wet = mix * (REVERB_OUT_GAIN * 0.5)
        out_l[i] += wet * (o0 - o2 + o4 - o6)
        out_r[i] += wet * (o1 - o3 + o5 - o7)
        lp0 = flush(lp0 + damp * (o0 - lp0))
        lp1 = flush(lp1 + damp * (o1 - lp1))
        lp2 = flush(lp2 + damp * (o2 - lp2))
        lp3 = flush(lp3 + damp * (o3 - lp3))
        lp4 = flush(lp4 + damp * (o4 - lp4))
        lp5 = flush(lp5 + damp * (o5 - lp5))
        lp6 = flush(lp6 + damp * (o6 - lp6))
        lp7 = flush(lp7 + damp * (o7 - lp7))
        s0 = g0 * lp0
        s1 = g1 * lp1
        s2 = g2 * lp2
        s3 = g3 * lp3
        s4 = g4 * lp4
        s5 = g5 * lp5
        s6 = g6 * lp6
        s7 = g7 * lp7
        # Hadamard 8x8 (three butterfly stages), normalised
        a0, a1 = s0 + s1, s0 - s1
        a2, a3 = s2 + s3, s2 - s3
        a4, a5 = s4 + s5, s4 - s5
        a6, a7 = s6 + s7, s6 - s7
        b0, b2 = a0 + a2, a0 - a2
        b1, b3 = a1 + a3, a1 - a3
        b4, b6 = a4 + a6, a4 - a6
        b5, b7 = a5 + a7, a5 - a7
        # line inputs: sums of flushed (or exactly 0) values, never denormal themselves
        w = lo + 8 * (n & lm)
        hl = 0.5 * xl
        hr = 0.5 * xr
        state[_at(w)] = norm * (b0 + b4) + hl
        state[_at(w + 1)] = norm * (b1 + b5) - hl
        state[_at(w + 2)] = norm * (b2 + b6) + hl
        state[_at(w + 3)] = norm * (b3 + b7) - hl
        state[_at(w + 4)] = norm * (b0 - b4) + hr
        state[_at(w + 5)] = norm * (b1 - b5) - hr
        state[_at(w + 6)] = norm * (b2 - b6) + hr
        state[_at(w + 7)] = norm * (b3 - b7) - hr
        d0 += dd0
        d1 += dd1
        d2 += dd2
        d3 += dd3
        d4 += dd4
        d5 += dd5
        d6 += dd6
        d7 += dd7
        n = (n + 1) & nm
    state[R_N] = n
    state[R_DAMP] = damp
    state[R_MIX] = mix
    state[R_PD] = pd
    _store8(state, R_MOD_D, d0, d1, d2, d3, d4, d5, d6, d7)
    _store8(state, R_MOD_DD, dd0, dd1, dd2, dd3, dd4, dd5, dd6, dd7)
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
    for k in range(N_LINES):
        state[R_G + k] = 0.0
        state[R_G_T + k] = 0.0
        state[R_LP + k] = 0.0
        state[R_LFO + k] = k / N_LINES
        state[R_MOD_D + k] = 0.0
        state[R_MOD_DD + k] = 0.0
    state[R_HDR:] = 0.0
