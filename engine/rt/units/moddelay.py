"""Shared pieces of the modulation units (chorus, flanger, phaser): a sine LFO whose phase
lives in the unit's state, and a circular delay line read at a fractional delay with 4-point
(Catmull-Rom) Hermite interpolation (AUDIO THREAD). Not a unit itself.

A delay line of `m` samples at `base` in the state holds past input; `pos` is where the current
sample will be written. The read comes first, then the write, so a delay of d samples needs
2 <= d <= m - 4 (the interpolator's newest tap is x[n - floor(d) + 1]); `read` clamps to that.

The swept-delay units (chorus, flanger) share their frame: a state of `stereo_line_size` (the
LFO phase, the write position, then the L and R lines), `reset` (all cleared), `begin` (the
block's set-up: rate, line length, smoothing coefficients, position, phase), `feed` (one
channel's line write and dry/wet output per sample), `step` and `end` (the position and the
phase, per sample and after the block).
"""
import math

from numba import njit

from engine.rt.dsp import JIT, flush
from engine.rt.units.base import clampf, clear, smooth_coef_s

MIN_DELAY = 2.0         # samples: the interpolator's newest tap is then already written
HDR = 2                 # a stereo line's state: LFO phase, write position, then L and R lines
ST_PHASE, ST_POS = 0, 1


def stereo_line_size(max_ms, sample_rate):
    """State size of a unit with an LFO and a stereo delay line of up to `max_ms`."""
    return HDR + 2 * (int(math.ceil(max_ms * 0.001 * sample_rate)) + 8)


@njit(**JIT)
def reset(state, sample_rate):
    """A modulation unit's reset: lines, LFO phase and write position cleared."""
    clear(state)


@njit(inline="always", **JIT)
def begin(state, sample_rate):
    """A swept-delay block's set-up: the clamped sample rate, the line length m, the 20 ms and
    100 ms smoothing coefficients, samples per ms, the write position and the LFO phase."""
    sr = clampf(sample_rate, 1000.0, 1e6)
    m = (state.shape[0] - HDR) // 2
    return (sr, m, smooth_coef_s(0.02, sr), smooth_coef_s(0.1, sr), 0.001 * sr,
            int(state[ST_POS]), state[ST_PHASE])


@njit(inline="always", **JIT)
def feed(state, base, pos, x, wet, feedback, mix):
    """One channel's sample: x + feedback * wet into its line (at base) at pos; returns the
    output x + mix * (wet - x)."""
    state[base + pos] = flush(x + feedback * wet)
    return flush(x + mix * (wet - x))


@njit(inline="always", **JIT)
def step(pos, phase, m, inc):
    """The write position and the LFO phase one sample on."""
    return (pos + 1 if pos + 1 < m else 0), advance(phase, inc)


@njit(inline="always", **JIT)
def end(state, pos, phase):
    """Keep the write position and the LFO phase for the next block."""
    state[ST_POS] = pos
    state[ST_PHASE] = phase


@njit(inline="always", **JIT)
def hermite(xm1, x0, x1, x2, f):
    """The 4-point, 3rd-order Hermite (Catmull-Rom) value at f in [0, 1) between x0 and x1."""
    c1 = 0.5 * (x1 - xm1)
    c2 = xm1 - 2.5 * x0 + 2.0 * x1 - 0.5 * x2
    c3 = 0.5 * (x2 - xm1) + 1.5 * (x0 - x1)
    return ((c3 * f + c2) * f + c1) * f + x0


@njit(inline="always", **JIT)
def read(state, base, m, pos, d):
    """x[n - d] from the line (x[n - k] is at pos - k), d clamped to [MIN_DELAY, m - 4]."""
    hi = m - 4.0
    if not d >= MIN_DELAY:
        d = MIN_DELAY
    elif d > hi:
        d = hi
    i = int(d)
    f = d - i
    j = pos - i + 1                     # x[n - i + 1], then three older samples
    if j < 0:
        j += m
    xm1 = state[base + j]
    j = j - 1 if j > 0 else m - 1
    x0 = state[base + j]
    j = j - 1 if j > 0 else m - 1
    x1 = state[base + j]
    j = j - 1 if j > 0 else m - 1
    x2 = state[base + j]
    return hermite(xm1, x0, x1, x2, f)


@njit(inline="always", **JIT)
def lfo(phase):
    """The sine LFO at a phase in cycles."""
    return math.sin(2.0 * math.pi * phase)


@njit(inline="always", **JIT)
def advance(phase, inc):
    """The phase one sample on (inc in cycles per sample, 0 <= inc < 1), kept in [0, 1)."""
    phase += inc
    if phase >= 1.0:
        phase -= 1.0
    return phase


@njit(inline="always", **JIT)
def wrap1(x):
    """x (>= 0) in [0, 1)."""
    return x - math.floor(x)
