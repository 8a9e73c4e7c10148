"""Tempo-synced stereo / ping-pong delay with a lowpass and a highpass in the loop (AUDIO THREAD).

out = dry_level * in + wet_level * wet, written to the out rows (in may equal out). The delay is
time_beats * 60 / tempo seconds at the graph's tempo (`tempo_bpm(bus, io)`, 120 without a
context row) when `sync` is on, time_ms when it is off; either is clamped to the line (4 s).
With pingpong = 1 the input is summed to mono into the left line and the feedback crosses
over, so the first echo is on the left, the next on the right, and so on; pingpong = 0 gives
two straight delays, L into L and R into R. Each repeat passes the loop filters once more: a
one-pole lowpass at tone_hz and a one-pole highpass at low_cut_hz (0: off, exactly), both of
unity gain where they pass, so an echo's DC sum is `feedback` times the one before (low cut off).

This is the DSP of the master send delay: `engine.rt.fx.delay_process` calls `run` below with
its five parameters (low cut and dry 0, the wet signal ADDED into its out rows), so the two are
one kernel. Like that send, the unit smooths what it derives from its parameters in its own
state: the delay time in samples (DELAY_TIME_SMOOTH_S: a tempo change or a new time glides,
tape-like, instead of clicking), the filter coefficients, feedback, ping-pong and levels
(SMOOTH_S). The targets are taken when a call starts and copied to `params[n:2n]` (a NaN or
infinite target is ignored, as `smooth_param` does); after reset the smoothed values start from
what `params[n:2n]` held (the send starts on its targets). Once every smoothed
value is within SETTLE_* of its target they snap, and a steady delay runs in chunks of D_CHUNK
samples whose reads and outputs are vectorisable loops; only the loop filters go sample by
sample. Reads are 4-point cubic Hermite, exact at whole-sample delays. Input samples that are
NaN, infinite or beyond 1e9 are read as 0.

The state is one array: a header (D_*), a scratch of four chunks, then the L and R lines, each
(len - D_HDR) // 2 samples (`engine.rt.fx.delay_alloc_state` lays out the same array).
"""
import math

from numba import njit

from engine.rt.dsp import JIT, clamp, flush, smooth_coef
from engine.rt.units.base import IO_IN_L, IO_IN_R, IO_OUT_L, IO_OUT_R, Param, declare, tempo_bpm
from engine.rt.units.glide import (DELAY_TIME_SMOOTH_S, SETTLE_LEVEL, SETTLE_SAMPLES, SMOOTH_S,
                                   glide, onepole_coef)
from engine.rt.units.glide import at as _at
from engine.rt.units.glide import sane as _sane

NAME = "delay"
PARAMS = declare([
    Param("time_beats", 1.0 / 64.0, 16.0, 0.75, curve="log",
          doc="delay in beats at the graph's tempo when sync is on (0.75: dotted eighth)"),
    Param("sync", 0.0, 1.0, 1.0, curve="choice", smooth_s=0.0, choices=("off", "on"),
          doc="on: time_beats at the tempo; off: time_ms"),
    Param("time_ms", 1.0, 4000.0, 375.0, curve="log", doc="delay when sync is off"),
    Param("feedback", 0.0, 0.95, 0.35, doc="level of each repeat relative to the one before"),
    Param("tone_hz", 100.0, 20000.0, 4500.0, curve="log",
          doc="one-pole lowpass in the loop (at most 0.45 x the sample rate)"),
    Param("low_cut_hz", 0.0, 2000.0, 0.0, doc="one-pole highpass in the loop; 0: off"),
    Param("pingpong", 0.0, 1.0, 1.0, doc="0: two straight delays; 1: mono in, echoes L, R, L..."),
    Param("wet_level", 0.0, 1.0, 0.3, doc="echo level in the output"),
    Param("dry_level", 0.0, 1.0, 1.0, doc="input level in the output (0: a send return)"),
])
(P_TIME_BEATS, P_SYNC, P_TIME_MS, P_FEEDBACK, P_TONE_HZ, P_LOW_CUT_HZ, P_PINGPONG, P_WET,
 P_DRY) = range(9)
N = len(PARAMS)

DELAY_MAX_S = 4.0
FEEDBACK_MAX = 0.95
TEMPO_MIN_BPM, TEMPO_MAX_BPM = 20.0, 400.0

# header
(D_INIT, D_POS, D_SIZE, D_TIME, D_FB, D_TONE, D_PP, D_MIX, D_LP_L, D_LP_R, D_LC, D_DRY, D_HP_L,
 D_HP_R) = range(14)
D_CHUNK = 32       # samples per stage-by-stage chunk (see run)
D_YL = 16          # scratch: the chunk's line outputs L [D_CHUNK] and R [D_CHUNK],
D_YR = D_YL + D_CHUNK
D_WETS = D_YR + D_CHUNK    # and, while gliding, its wet [D_CHUNK] and dry [D_CHUNK] levels
D_DRYS = D_WETS + D_CHUNK
D_HDR = D_DRYS + D_CHUNK


def line_size(sample_rate, max_delay_s=DELAY_MAX_S):
    """Samples in each of the two lines for delays up to max_delay_s (control side)."""
    return int(math.ceil(max_delay_s * sample_rate)) + 8


def state_size(sample_rate):
    return D_HDR + 2 * line_size(sample_rate)


@njit(**JIT)
def reset(state, sample_rate):
    """Lines, filters and position cleared (the smoothed values are set on the next call).
    Touches the whole state (about 3 MB at 48 kHz): a prepare-time or panic operation."""
    for i in range(state.shape[0]):
        state[i] = 0.0
    state[D_SIZE] = (state.shape[0] - D_HDR) // 2


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
    wl = cxl * xl + cxr * xr + cll * fl + clr * fr, wr = straight * xr + cll * fr + clr * fl
    (fl, fr: the filtered line outputs; with pp = 1 the input is mono into the left line and the
    feedback crosses over)."""
    straight = 1.0 - pp
    return straight + 0.5 * pp, 0.5 * pp, straight, fb * straight, fb * pp


@njit(inline="always", **JIT)
def ms_target(ms, sr, size):
    """A delay in ms as the target in samples, clamped to what the line can read."""
    return clamp(ms * sr / 1000.0, 4.0, size - 4.0)


@njit(inline="always", **JIT)
def beats_target(beats, tempo, sr, size):
    """time_beats (clamped to 1/64..16) at `tempo` (clamped to 20..400 BPM), in samples."""
    t = clamp(beats, 1.0 / 64.0, 16.0) * 60.0 / clamp(tempo, TEMPO_MIN_BPM, TEMPO_MAX_BPM) * sr
    return clamp(t, 4.0, size - 4.0)


@njit(fastmath={"contract"}, **JIT)
def run(state, in_l, in_r, out_l, out_r, i0, i1, t_time, t_fb, t_tone, t_lc, t_pp, t_wet, t_dry,
        add, sr):
    """The delay over [i0, i1) toward the given targets (delay in samples, clamped by the
    caller; feedback; loop lowpass and highpass coefficients; ping-pong; wet and dry levels).
    add: out += wet * y (the send; the dry level is not used); else out = dry * x + wet * y.

    Smoothing stops once every smoothed value is within SETTLE_* of its target (checked per
    sample, then snapped to the targets), so a steady delay costs no smoothing at all."""
    if i1 <= i0:
        return
    size = (state.shape[0] - D_HDR) // 2
    if state[D_INIT] == 0.0:
        state[D_INIT] = 1.0
        state[D_TIME] = t_time
        state[D_FB] = t_fb
        state[D_TONE] = t_tone
        state[D_PP] = t_pp
        state[D_MIX] = t_wet
        state[D_LC] = t_lc
        state[D_DRY] = t_dry
    ks = smooth_coef(SMOOTH_S, sr)
    kt = smooth_coef(DELAY_TIME_SMOOTH_S, sr)
    pos = int(state[D_POS])
    if not (pos >= 0 and pos < size):
        pos = 0
    d = state[D_TIME]
    fb = state[D_FB]
    tone = state[D_TONE]
    pp = state[D_PP]
    mix = state[D_MIX]
    lc = state[D_LC]
    dry = state[D_DRY]
    lp_l = state[D_LP_L]
    lp_r = state[D_LP_R]
    hp_l = state[D_HP_L]
    hp_r = state[D_HP_R]
    settling = not (d == t_time and fb == t_fb and tone == t_tone and pp == t_pp
                    and mix == t_wet and lc == t_lc and dry == t_dry)
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
            # vectorisable loops, only the loop filters go sample by sample
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
                hp_l = flush(hp_l + lc * (lp_l - hp_l))
                hp_r = flush(hp_r + lc * (lp_r - hp_r))
                fl = lp_l - hp_l
                fr = lp_r - hp_r
                xl = _sane(in_l[_at(i + t)])
                xr = _sane(in_r[_at(i + t)])
                state[_at(bl + pos + t)] = flush(cxl * xl + cxr * xr + cll * fl + clr * fr)
                state[_at(br + pos + t)] = flush(straight * xr + cll * fr + clr * fl)
            # the outputs: out (+)= wet * y, with out = dry * x first when writing (one
            # product per loop: the contraction into an FMA, fma(wet, y, out), is the same in
            # vectorised and scalar iterations, so the bits do not depend on the split)
            if not add:
                for t in range(c):
                    out_l[_at(i + t)] = dry * _sane(in_l[_at(i + t)])
                for t in range(c):
                    out_r[_at(i + t)] = dry * _sane(in_r[_at(i + t)])
            for t in range(c):
                out_l[_at(i + t)] += mix * state[_at(D_YL + t)]
            for t in range(c):
                out_r[_at(i + t)] += mix * state[_at(D_YR + t)]
        else:
            for t in range(c):
                if settling:
                    d, near0 = glide(d, t_time, kt, SETTLE_SAMPLES)
                    fb, near1 = glide(fb, t_fb, ks, SETTLE_LEVEL)
                    tone, near2 = glide(tone, t_tone, ks, SETTLE_LEVEL)
                    pp, near3 = glide(pp, t_pp, ks, SETTLE_LEVEL)
                    mix, near4 = glide(mix, t_wet, ks, SETTLE_LEVEL)
                    lc, near5 = glide(lc, t_lc, ks, SETTLE_LEVEL)
                    dry, near6 = glide(dry, t_dry, ks, SETTLE_LEVEL)
                    if near0 and near1 and near2 and near3 and near4 and near5 and near6:
                        d, fb, tone, pp = t_time, t_fb, t_tone, t_pp
                        mix, lc, dry = t_wet, t_lc, t_dry
                        settling = False
                    di = int(d)
                    f = d - di
                    cxl, cxr, straight, cll, clr = _delay_mix(fb, pp)
                yl, yr = _hermite2(state, bl, br, size, pos + t, di, f)
                lp_l = flush(lp_l + tone * (yl - lp_l))
                lp_r = flush(lp_r + tone * (yr - lp_r))
                hp_l = flush(hp_l + lc * (lp_l - hp_l))
                hp_r = flush(hp_r + lc * (lp_r - hp_r))
                fl = lp_l - hp_l
                fr = lp_r - hp_r
                xl = _sane(in_l[_at(i + t)])
                xr = _sane(in_r[_at(i + t)])
                state[_at(bl + pos + t)] = flush(cxl * xl + cxr * xr + cll * fl + clr * fr)
                state[_at(br + pos + t)] = flush(straight * xr + cll * fr + clr * fl)
                state[_at(D_YL + t)] = yl
                state[_at(D_YR + t)] = yr
                state[_at(D_WETS + t)] = mix
                state[_at(D_DRYS + t)] = dry
            # the outputs as in the steady branch, with each sample's own levels
            if not add:
                for t in range(c):
                    out_l[_at(i + t)] = state[_at(D_DRYS + t)] * _sane(in_l[_at(i + t)])
                for t in range(c):
                    out_r[_at(i + t)] = state[_at(D_DRYS + t)] * _sane(in_r[_at(i + t)])
            for t in range(c):
                out_l[_at(i + t)] += state[_at(D_WETS + t)] * state[_at(D_YL + t)]
            for t in range(c):
                out_r[_at(i + t)] += state[_at(D_WETS + t)] * state[_at(D_YR + t)]
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
    state[D_LC] = lc
    state[D_DRY] = dry
    state[D_LP_L] = lp_l
    state[D_LP_R] = lp_r
    state[D_HP_L] = hp_l
    state[D_HP_R] = hp_r


@njit(inline="always", **JIT)
def _derive(params, base, tempo, sr, size):
    """What the kernel smooths, from the parameter values at params[base:base + N], clamped:
    the delay (samples), feedback, the loop's lowpass and highpass coefficients, ping-pong,
    the wet and dry levels."""
    if params[base + P_SYNC] >= 0.5:
        t_time = beats_target(params[base + P_TIME_BEATS], tempo, sr, size)
    else:
        t_time = ms_target(clamp(params[base + P_TIME_MS], 1.0, 4000.0), sr, size)
    fb = clamp(params[base + P_FEEDBACK], 0.0, FEEDBACK_MAX)
    tone_hz = clamp(params[base + P_TONE_HZ], 100.0, 20000.0)
    tone = onepole_coef(clamp(tone_hz, 100.0, 0.45 * sr), sr)
    lc_hz = clamp(params[base + P_LOW_CUT_HZ], 0.0, 2000.0)
    lc = onepole_coef(clamp(lc_hz, 0.0, 0.45 * sr), sr)
    pp = clamp(params[base + P_PINGPONG], 0.0, 1.0)
    wet = clamp(params[base + P_WET], 0.0, 1.0)
    dry = clamp(params[base + P_DRY], 0.0, 1.0)
    return t_time, fb, tone, lc, pp, wet, dry


@njit(**JIT)
def process(state, params, bus, io, i0, i1, sample_rate):
    if i1 <= i0:
        return
    sr = clamp(sample_rate, 1000.0, 1e6)
    size = (state.shape[0] - D_HDR) // 2
    tempo = tempo_bpm(bus, io)
    if state[D_INIT] == 0.0:             # after reset: start from the current values
        t_time, fb, tone, lc, pp, wet, dry = _derive(params, N, tempo, sr, size)
        state[D_INIT] = 1.0
        state[D_TIME] = t_time
        state[D_FB] = fb
        state[D_TONE] = tone
        state[D_LC] = lc
        state[D_PP] = pp
        state[D_MIX] = wet
        state[D_DRY] = dry
    for k in range(N):                   # take up the targets (a NaN or infinite one: ignored)
        if abs(params[k]) < 1e300:
            params[N + k] = params[k]
    t_time, fb, tone, lc, pp, wet, dry = _derive(params, N, tempo, sr, size)
    run(state, bus[io[IO_IN_L]], bus[io[IO_IN_R]], bus[io[IO_OUT_L]], bus[io[IO_OUT_R]], i0, i1,
        t_time, fb, tone, lc, pp, wet, dry, False, sr)
