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
from .units import reverb as _rv

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
D_CHUNK = 32       # samples per stage-by-stage chunk (see delay_process)
D_YL = 16          # scratch: the chunk's line outputs L [D_CHUNK] and R [D_CHUNK]
D_YR = D_YL + D_CHUNK
D_HDR = D_YR + D_CHUNK


def delay_alloc_state(sample_rate, max_delay_s=DELAY_MAX_S):
    """Control side, prepare time: state for delays up to max_delay_s (two lines, L at D_HDR,
    R right after it)."""
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
def _at(i):
    """An index known to be >= 0: unsigned, so no negative-index wraparound is compiled in."""
    return np.uint64(i)


@njit(inline="always", **JIT)
def _hermite(buf, b, k, f):
    """4-point cubic Hermite read of the ring at b around slot k (k - 2 .. k + 1 all inside
    it), a fraction f (0 <= f < 1) of a sample further back than slot k; exact for f = 0."""
    y0 = buf[_at(b + k)]
    ym1 = buf[_at(b + k + 1)]
    y1 = buf[_at(b + k - 1)]
    y2 = buf[_at(b + k - 2)]
    c1 = 0.5 * (y1 - ym1)
    c2 = ym1 - 2.5 * y0 + 2.0 * y1 - 0.5 * y2
    c3 = 0.5 * (y2 - ym1) + 1.5 * (y0 - y1)
    return ((c3 * f + c2) * f + c1) * f + y0


@njit(inline="always", **JIT)
def _hermite2(buf, bl, br, size, pos, di, f):
    """Read the rings of `size` at bl and br (written at `pos`, not yet this sample)
    di + f samples back (0 <= f < 1), 4-point cubic Hermite; exact for f = 0.
    Needs 2 <= di <= size - 3."""
    k = pos - di
    if k < 0:
        k += size
    if k < 2 or k + 1 >= size:  # a neighbour wraps around (rare): the slow, general way
        kp = (k + 1) % size
        km = (k - 1 + size) % size
        km2 = (k - 2 + size) % size
        if f == 0.0:
            return buf[_at(bl + k)], buf[_at(br + k)]
        yl = buf[_at(bl + k)]
        yr = buf[_at(br + k)]
        lm1, l1, l2 = buf[_at(bl + kp)], buf[_at(bl + km)], buf[_at(bl + km2)]
        rm1, r1, r2 = buf[_at(br + kp)], buf[_at(br + km)], buf[_at(br + km2)]
        c1 = 0.5 * (l1 - lm1)
        c2 = lm1 - 2.5 * yl + 2.0 * l1 - 0.5 * l2
        c3 = 0.5 * (l2 - lm1) + 1.5 * (yl - l1)
        yl = ((c3 * f + c2) * f + c1) * f + yl
        c1 = 0.5 * (r1 - rm1)
        c2 = rm1 - 2.5 * yr + 2.0 * r1 - 0.5 * r2
        c3 = 0.5 * (r2 - rm1) + 1.5 * (yr - r1)
        yr = ((c3 * f + c2) * f + c1) * f + yr
        return yl, yr
    if f == 0.0:
        return buf[_at(bl + k)], buf[_at(br + k)]
    return _hermite(buf, bl, k, f), _hermite(buf, br, k, f)


@njit(inline="always", **JIT)
def _delay_mix(fb, pp):
    """Coefficients of the delay's line inputs from the smoothed feedback and ping-pong:
    wl = cxl * xl + cxr * xr + cll * lp_l + clr * lp_r, wr = straight * xr + cll * lp_r
    + clr * lp_l (with pp = 1 the send is mono into the left line, feedback crosses over)."""
    straight = 1.0 - pp
    return straight + 0.5 * pp, 0.5 * pp, straight, fb * straight, fb * pp


@njit(fastmath={"contract"}, **JIT)
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
    di = int(d)
    f = d - di
    cxl, cxr, straight, cll, clr = _delay_mix(fb, pp)
    bl = D_HDR
    br = D_HDR + size
    i = i0
    while i < i1:
        c = min(i1 - i, D_CHUNK, size - pos)  # the writes of a chunk never wrap around
        k0 = pos - di
        if k0 < 0:
            k0 += size
        if not settling and di > D_CHUNK + 2 and k0 >= 2 and k0 + c < size:
            # steady, and the chunk's reads (slots k0 - 2 .. k0 + c) neither wrap around nor
            # reach its writes: the reads and the outputs go over the whole chunk in
            # vectorisable loops, only the feedback filter goes sample by sample
            if f == 0.0:
                for t in range(c):
                    state[_at(D_YL + t)] = state[_at(bl + k0 + t)]
                    state[_at(D_YR + t)] = state[_at(br + k0 + t)]
            else:
                for t in range(c):
                    state[_at(D_YL + t)] = _hermite(state, bl, k0 + t, f)
                for t in range(c):
                    state[_at(D_YR + t)] = _hermite(state, br, k0 + t, f)
            for t in range(c):
                yl = state[_at(D_YL + t)]
                yr = state[_at(D_YR + t)]
                lp_l = flush(lp_l + tone * (yl - lp_l))
                lp_r = flush(lp_r + tone * (yr - lp_r))
                xl = _sane(in_l[_at(i + t)])
                xr = _sane(in_r[_at(i + t)])
                state[_at(bl + pos + t)] = flush(cxl * xl + cxr * xr + cll * lp_l + clr * lp_r)
                state[_at(br + pos + t)] = flush(straight * xr + cll * lp_r + clr * lp_l)
            for t in range(c):
                out_l[_at(i + t)] += mix * state[_at(D_YL + t)]
            for t in range(c):
                out_r[_at(i + t)] += mix * state[_at(D_YR + t)]
        else:
            for t in range(c):
                if settling:
                    d += kt * (t_time - d)
                    fb += ks * (t_fb - fb)
                    tone += ks * (t_tone - tone)
                    pp += ks * (t_pp - pp)
                    mix += ks * (t_mix - mix)
                    if (abs(t_time - d) <= SETTLE_SAMPLES and abs(t_fb - fb) <= SETTLE_LEVEL
                            and abs(t_tone - tone) <= SETTLE_LEVEL
                            and abs(t_pp - pp) <= SETTLE_LEVEL
                            and abs(t_mix - mix) <= SETTLE_LEVEL):
                        d = t_time
                        fb = t_fb
                        tone = t_tone
                        pp = t_pp
                        mix = t_mix
                        settling = False
                    di = int(d)
                    f = d - di
                    cxl, cxr, straight, cll, clr = _delay_mix(fb, pp)
                yl, yr = _hermite2(state, bl, br, size, pos + t, di, f)
                lp_l = flush(lp_l + tone * (yl - lp_l))
                lp_r = flush(lp_r + tone * (yr - lp_r))
                xl = _sane(in_l[_at(i + t)])
                xr = _sane(in_r[_at(i + t)])
                state[_at(bl + pos + t)] = flush(cxl * xl + cxr * xr + cll * lp_l + clr * lp_r)
                state[_at(br + pos + t)] = flush(straight * xr + cll * lp_r + clr * lp_l)
                out_l[_at(i + t)] += mix * yl
                out_r[_at(i + t)] += mix * yr
        i += c
        pos += c
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
# The FDN's DSP lives in the reverb unit (engine.rt.units.reverb); the send runs it with the
# unit's extra controls neutral (size 1, width 1, low cut off) and adds only the wet signal.
REVERB_DECAY_S = 0      # RT60 at low frequencies, 0.1..30 s
REVERB_DAMPING_HZ = 1   # lowpass in every line: highs die faster above it, 500 Hz..0.45*sr
REVERB_PREDELAY_MS = 2  # 0..250 ms
REVERB_MIX = 3          # wet return level, linear 0..1
REVERB_N_PARAMS = 4

REVERB_PARAM_NAMES = {"decay_s": REVERB_DECAY_S, "damping_hz": REVERB_DAMPING_HZ,
                      "predelay_ms": REVERB_PREDELAY_MS, "mix": REVERB_MIX}
REVERB_DECAY_MIN_S, REVERB_DECAY_MAX_S = _rv.DECAY_MIN_S, _rv.DECAY_MAX_S
REVERB_PREDELAY_MAX_MS = _rv.PREDELAY_MAX_MS
R_HDR = _rv.R_HDR


def reverb_alloc_state(sample_rate):
    """Control side, prepare time: FDN state with every buffer sized from the sample rate."""
    st = np.zeros(_rv.state_size(sample_rate), dtype=np.float64)
    _rv.reset(st, float(sample_rate))
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
def reverb_process(state, params, in_l, in_r, out_l, out_r, i0, i1, sample_rate):
    """AUDIO THREAD. Stereo FDN reverb over [i0, i1); adds wet * mix into out (see
    engine.rt.units.reverb: predelay, 4 allpasses per input, 8 modulated damped lines mixed
    by a Hadamard matrix; left taps the even lines, right the odd ones). Any split of a block
    gives the same output."""
    _rv.reverb_process(state, in_l, in_r, out_l, out_r, i0, i1, sample_rate,
                    params[REVERB_DECAY_S], params[REVERB_DAMPING_HZ],
                    params[REVERB_PREDELAY_MS], params[REVERB_MIX], 1.0, 1.0,
                    _rv.LOW_CUT_OFF_HZ, _rv.ADD)


@njit(**JIT)
def reverb_reset(state):
    """AUDIO THREAD or control side. Clear every line, filter and position (the layout, made
    for the sample rate it was allocated for, is kept). Touches the whole buffer: not for
    every block."""
    _rv.reset(state, state[_rv.R_SR])
