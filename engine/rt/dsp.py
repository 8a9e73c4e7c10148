"""Small shared DSP helpers (AUDIO THREAD ONLY): inlined into every kernel that uses them."""
import math

from numba import njit

JIT = dict(cache=True, nogil=True, error_model="numpy", boundscheck=False, _nrt=False)
"""Options for every kernel in engine.rt: cached, GIL-free, numpy error model so LLVM vectorizes."""

DENORMAL = 1e-18


@njit(inline="always", **JIT)
def flush(x):
    """Flush denormals / tiny values in recursive state to exactly 0."""
    return x if abs(x) > DENORMAL else 0.0


@njit(inline="always", **JIT)
def smooth_coef(time_s, sample_rate):
    """One-pole smoothing coefficient reaching ~63% of a step in `time_s` seconds."""
    return 1.0 - math.exp(-1.0 / (max(time_s, 1e-6) * sample_rate))


@njit(inline="always", **JIT)
def db_to_gain(db):
    return 10.0 ** (db * 0.05)


@njit(inline="always", **JIT)
def clamp(x, lo, hi):
    """Clamp to [lo, hi]; NaN gives lo."""
    if x >= lo:
        return x if x <= hi else hi
    return lo
