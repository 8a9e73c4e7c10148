"""The glide-and-settle smoothing of the delay and reverb kernels (AUDIO THREAD). Not a unit.

Those kernels smooth what they derive from their parameters (a delay in samples, filter
coefficients, line gains, levels) in their own state rather than with `smooth_param`: each value
takes one-pole steps towards its target (`glide`), and a group of them snaps to its targets and
stops smoothing once every one is within its SETTLE_* tolerance, so a steady kernel costs no
smoothing at all. Also their shared input guard (`sane`) and index helpers.
"""
import math

import numpy as np
from numba import njit

from engine.rt.dsp import JIT

SMOOTH_S = 0.02            # levels, feedback, gains and filter coefficients glide this fast
DELAY_TIME_SMOOTH_S = 0.1  # delay times glide (tape-like) on tempo or time changes: no clicks
SETTLE_LEVEL = 1e-9        # a smoothed level / coefficient this close to its target snaps to it
SETTLE_SAMPLES = 1e-6      # a smoothed delay time (samples) this close to its target snaps to it
INPUT_LIMIT = 1e9          # input samples beyond +-1e9 (or not finite) are read as 0


@njit(inline="always", **JIT)
def glide(x, target, k, tol):
    """One one-pole step of x towards target (k: smooth_coef), and whether x is then within
    tol of it (the caller snaps when it, or every value of its group, is)."""
    x += k * (target - x)
    return x, abs(target - x) <= tol


@njit(inline="always", **JIT)
def sane(x):
    """An input sample, or 0 when it is NaN, infinite or absurdly large."""
    return x if abs(x) < INPUT_LIMIT else 0.0


@njit(inline="always", **JIT)
def at(i):
    """An index known to be >= 0: unsigned, so no negative-index wraparound is compiled in."""
    return np.uint64(i)


@njit(inline="always", **JIT)
def onepole_coef(hz, sr):
    """The one-pole lowpass coefficient for a corner at hz (0 Hz: exactly 0)."""
    return 1.0 - math.exp(-2.0 * math.pi * hz / sr)
