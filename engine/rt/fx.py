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

from .dsp import JIT, flush, smooth_coef

SMOOTH_S = 0.02          # level / feedback / tone / damping smoothing
DELAY_TIME_SMOOTH_S = 0.1  # delay time glides (tape-like) on tempo or time changes: no clicks
INPUT_LIMIT = 1e9

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


@njit(**JIT)
def _clamp(x, lo, hi):
    """Clamp to [lo, hi]; NaN gives lo."""
    if x >= lo:
        return x if x <= hi else hi
    return lo


@njit(**JIT)
def _sane(x):
    """A send sample, or 0 when it is NaN, infinite or absurdly large."""
    return x if abs(x) < INPUT_LIMIT else 0.0


@njit(**JIT)
def _onepole_coef(hz, sr):
    return 1.0 - math.exp(-2.0 * math.pi * hz / sr)


@njit(**JIT)
def _hermite(buf, base, size, pos, d):
    """Read `buf[base:base+size]` (a ring written at `pos`, not yet this sample) `d` samples back,
    4-point cubic Hermite; exact for integer d. Needs 2 <= d <= size - 3."""
    di = int(d)
    f = d - di
    k = (pos - di + size) % size
    y0 = buf[base + k]
    ym1 = buf[base + (k + 1) % size]
    y1 = buf[base + (k - 1 + size) % size]
    y2 = buf[base + (k - 2 + size) % size]
    c1 = 0.5 * (y1 - ym1)
    c2 = ym1 - 2.5 * y0 + 2.0 * y1 - 0.5 * y2
    c3 = 0.5 * (y2 - ym1) + 1.5 * (y0 - y1)
    return ((c3 * f + c2) * f + c1) * f + y0


@njit(**JIT)
def delay_process(state, params, in_l, in_r, out_l, out_r, i0, i1, tempo_bpm, sample_rate):
    """AUDIO THREAD. Tempo-synced stereo / ping-pong delay over [i0, i1); adds wet into out.

    Delay = time_beats * 60 / tempo_bpm seconds (clamped to the buffer), glided per sample
    (DELAY_TIME_SMOOTH_S) and read with cubic interpolation. With pingpong = 1 the send is summed
    to mono, the first echo is on the left, the next on the right, and so on; each repeat passes
    the feedback lowpass (tone_hz) once more.
    """
    if i1 <= i0:
        return
    sr = max(sample_rate, 1000.0)
    size = int(state[D_SIZE])
    bl = D_HDR
    br = D_HDR + size
    tempo = _clamp(tempo_bpm, TEMPO_MIN_BPM, TEMPO_MAX_BPM)
    t_time = _clamp(params[DELAY_TIME_BEATS], 1.0 / 64.0, 16.0) * 60.0 / tempo * sr
    t_time = _clamp(t_time, 4.0, size - 4.0)
    t_fb = _clamp(params[DELAY_FEEDBACK], 0.0, DELAY_FEEDBACK_MAX)
    t_tone = _onepole_coef(_clamp(params[DELAY_TONE_HZ], 100.0, 0.45 * sr), sr)
    t_pp = _clamp(params[DELAY_PINGPONG], 0.0, 1.0)
    t_mix = _clamp(params[DELAY_MIX], 0.0, 1.0)
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
    for i in range(i0, i1):
        d += kt * (t_time - d)
        fb += ks * (t_fb - fb)
        tone += ks * (t_tone - tone)
        pp += ks * (t_pp - pp)
        mix += ks * (t_mix - mix)
        yl = _hermite(state, bl, size, pos, d)
        yr = _hermite(state, br, size, pos, d)
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
REVERB_OUT_GAIN = 1.0

# header: scalars
R_INIT, R_DAMP, R_DAMP_T, R_MIX, R_PD, R_PD_SIZE, R_PD_OFF, R_PD_POS, R_MOD_DEPTH = range(9)
R_G = 10           # smoothed line gains [8]
R_G_T = 18         # their targets, written when each call starts [8]
R_LP = 26          # damping lowpass states [8]
R_LFO = 34         # modulation phases [8]
R_LFO_INC = 42     # [8]
R_LINE_LEN = 50    # nominal line delays (samples) [8]
R_LINE_SIZE = 58   # [8]
R_LINE_OFF = 66    # [8]
R_LINE_POS = 74    # [8]
R_AP_LEN = 82      # [8], 0..3 left, 4..7 right
R_AP_OFF = 90      # [8]
R_AP_POS = 98      # [8]
R_HDR = 112


def reverb_alloc_state(sample_rate):
    """Control side, prepare time: FDN state with every buffer sized from the sample rate."""
    scale = sample_rate / 48000.0
    off = R_HDR
    hdr = np.zeros(R_HDR)
    depth = MOD_DEPTH_48K * scale
    hdr[R_MOD_DEPTH] = depth
    for i in range(N_LINES):
        n = max(int(round(LINE_LEN_48K[i] * scale)), 16)
        size = n + int(math.ceil(depth)) + 4
        hdr[R_LINE_LEN + i] = n
        hdr[R_LINE_SIZE + i] = size
        hdr[R_LINE_OFF + i] = off
        hdr[R_LFO_INC + i] = MOD_HZ[i] / sample_rate
        hdr[R_LFO + i] = i / N_LINES
        off += size
    for j in range(2 * N_DIFFUSERS):
        n = max(int(round(DIFFUSER_LEN_48K[j] * scale)), 2)
        hdr[R_AP_LEN + j] = n
        hdr[R_AP_OFF + j] = off
        off += n
    pd_size = int(math.ceil(REVERB_PREDELAY_MAX_MS * 1e-3 * sample_rate)) + 4
    hdr[R_PD_SIZE] = pd_size
    hdr[R_PD_OFF] = off
    off += 2 * pd_size
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


@njit(**JIT)
def _allpass(state, j, x, g):
    """Schroeder allpass j of the input diffusers."""
    n = int(state[R_AP_LEN + j])
    off = int(state[R_AP_OFF + j])
    pos = int(state[R_AP_POS + j])
    dl = state[off + pos]
    w = flush(x + g * dl)
    state[off + pos] = w
    pos += 1
    state[R_AP_POS + j] = pos if pos < n else 0
    return dl - g * w


@njit(**JIT)
def _line_read(state, i):
    """Modulated, linearly interpolated output of FDN line i (read before this sample's write)."""
    ph = state[R_LFO + i] + state[R_LFO_INC + i]
    ph -= math.floor(ph)
    state[R_LFO + i] = ph
    d = state[R_LINE_LEN + i] + state[R_MOD_DEPTH] * math.sin(2.0 * math.pi * ph)
    size = int(state[R_LINE_SIZE + i])
    off = int(state[R_LINE_OFF + i])
    pos = int(state[R_LINE_POS + i])
    di = int(d)
    f = d - di
    a = state[off + (pos - di + size) % size]
    b = state[off + (pos - di - 1 + size) % size]
    return a + f * (b - a)


@njit(**JIT)
def _line_write(state, i, x):
    size = int(state[R_LINE_SIZE + i])
    pos = int(state[R_LINE_POS + i])
    state[int(state[R_LINE_OFF + i]) + pos] = flush(x)
    pos += 1
    state[R_LINE_POS + i] = pos if pos < size else 0


@njit(**JIT)
def _damp(state, k, x, damp, ks):
    """Line k's damping lowpass and decay gain (the gain is smoothed here, per sample)."""
    lp = flush(state[R_LP + k] + damp * (x - state[R_LP + k]))
    state[R_LP + k] = lp
    g = state[R_G + k] + ks * (state[R_G_T + k] - state[R_G + k])
    state[R_G + k] = g
    return g * lp


@njit(**JIT)
def reverb_process(state, params, in_l, in_r, out_l, out_r, i0, i1, sample_rate):
    """AUDIO THREAD. Stereo FDN reverb over [i0, i1); adds wet into out.

    Predelay (smoothed, interpolated), four Schroeder allpasses per input channel, then eight
    modulated delay lines mixed by a normalised 8x8 Hadamard matrix. Each line has a gain
    giving a 60 dB decay in decay_s and a one-pole lowpass at damping_hz (unity at DC, so
    decay_s is the low-frequency RT60). Left output taps the even lines, right the odd ones.
    """
    if i1 <= i0:
        return
    sr = max(sample_rate, 1000.0)
    rt60 = _clamp(params[REVERB_DECAY_S], REVERB_DECAY_MIN_S, REVERB_DECAY_MAX_S)
    for k in range(N_LINES):
        state[R_G_T + k] = 10.0 ** (-3.0 * state[R_LINE_LEN + k] / (rt60 * sr))
    t_damp = _onepole_coef(_clamp(params[REVERB_DAMPING_HZ], 500.0, 0.45 * sr), sr)
    pd_size = int(state[R_PD_SIZE])
    t_pd = _clamp(params[REVERB_PREDELAY_MS], 0.0, REVERB_PREDELAY_MAX_MS) * 1e-3 * sr
    t_pd = min(t_pd, pd_size - 2.0)
    t_mix = _clamp(params[REVERB_MIX], 0.0, 1.0)
    if state[R_INIT] == 0.0:
        state[R_INIT] = 1.0
        for k in range(N_LINES):
            state[R_G + k] = state[R_G_T + k]
        state[R_DAMP] = t_damp
        state[R_PD] = t_pd
        state[R_MIX] = t_mix
    ks = smooth_coef(SMOOTH_S, sr)
    kt = smooth_coef(DELAY_TIME_SMOOTH_S, sr)
    norm = 1.0 / math.sqrt(8.0)
    pd_l = int(state[R_PD_OFF])
    pd_r = pd_l + pd_size
    for i in range(i0, i1):
        damp = state[R_DAMP] + ks * (t_damp - state[R_DAMP])
        state[R_DAMP] = damp
        mix = state[R_MIX] + ks * (t_mix - state[R_MIX])
        state[R_MIX] = mix
        pd = state[R_PD] + kt * (t_pd - state[R_PD])
        state[R_PD] = pd
        # predelay: write, then read pd samples back (pd = 0 reads this sample)
        pos = int(state[R_PD_POS])
        state[pd_l + pos] = _sane(in_l[i])
        state[pd_r + pos] = _sane(in_r[i])
        di = int(pd)
        f = pd - di
        a = (pos - di + pd_size) % pd_size
        b = (pos - di - 1 + pd_size) % pd_size
        xl = state[pd_l + a] + f * (state[pd_l + b] - state[pd_l + a])
        xr = state[pd_r + a] + f * (state[pd_r + b] - state[pd_r + a])
        pos += 1
        state[R_PD_POS] = pos if pos < pd_size else 0
        for j in range(N_DIFFUSERS):
            xl = _allpass(state, j, xl, DIFFUSER_GAIN[j])
            xr = _allpass(state, N_DIFFUSERS + j, xr, DIFFUSER_GAIN[j])
        # line outputs, damped and scaled
        o0 = _line_read(state, 0)
        o1 = _line_read(state, 1)
        o2 = _line_read(state, 2)
        o3 = _line_read(state, 3)
        o4 = _line_read(state, 4)
        o5 = _line_read(state, 5)
        o6 = _line_read(state, 6)
        o7 = _line_read(state, 7)
        out_l[i] += mix * REVERB_OUT_GAIN * 0.5 * (o0 - o2 + o4 - o6)
        out_r[i] += mix * REVERB_OUT_GAIN * 0.5 * (o1 - o3 + o5 - o7)
        s0 = _damp(state, 0, o0, damp, ks)
        s1 = _damp(state, 1, o1, damp, ks)
        s2 = _damp(state, 2, o2, damp, ks)
        s3 = _damp(state, 3, o3, damp, ks)
        s4 = _damp(state, 4, o4, damp, ks)
        s5 = _damp(state, 5, o5, damp, ks)
        s6 = _damp(state, 6, o6, damp, ks)
        s7 = _damp(state, 7, o7, damp, ks)
        # Hadamard 8x8 (three butterfly stages), normalised
        a0, a1 = s0 + s1, s0 - s1
        a2, a3 = s2 + s3, s2 - s3
        a4, a5 = s4 + s5, s4 - s5
        a6, a7 = s6 + s7, s6 - s7
        b0, b2 = a0 + a2, a0 - a2
        b1, b3 = a1 + a3, a1 - a3
        b4, b6 = a4 + a6, a4 - a6
        b5, b7 = a5 + a7, a5 - a7
        _line_write(state, 0, norm * (b0 + b4) + 0.5 * xl)
        _line_write(state, 1, norm * (b1 + b5) - 0.5 * xl)
        _line_write(state, 2, norm * (b2 + b6) + 0.5 * xl)
        _line_write(state, 3, norm * (b3 + b7) - 0.5 * xl)
        _line_write(state, 4, norm * (b0 - b4) + 0.5 * xr)
        _line_write(state, 5, norm * (b1 - b5) - 0.5 * xr)
        _line_write(state, 6, norm * (b2 - b6) + 0.5 * xr)
        _line_write(state, 7, norm * (b3 - b7) - 0.5 * xr)


@njit(**JIT)
def reverb_reset(state):
    """AUDIO THREAD or control side. Clear every line, filter and position (layout is kept).
    Touches the whole buffer: not for every block."""
    state[R_INIT] = 0.0
    state[R_DAMP] = 0.0
    state[R_MIX] = 0.0
    state[R_PD] = 0.0
    for k in range(N_LINES):
        state[R_G + k] = 0.0
        state[R_G_T + k] = 0.0
        state[R_LP + k] = 0.0
        state[R_LINE_POS + k] = 0.0
        state[R_LFO + k] = k / N_LINES
    for j in range(2 * N_DIFFUSERS):
        state[R_AP_POS + j] = 0.0
    state[R_PD_POS] = 0.0
    state[R_HDR:] = 0.0
