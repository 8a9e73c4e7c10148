"""Band-limited oscillators and fast math for the voice loops (AUDIO THREAD ONLY).

All functions are inlined into the voice loops and work in float32 with float32 constants
(a float64 literal would promote the whole loop and halve its vector width); they are
branch-free (conditional expressions become vector selects) so LLVM vectorizes across voices.
Phases are in cycles, 0 <= phase < 1; `dt` is the phase increment per sample.
"""
import math

import numpy as np
from numba import njit

from engine.rt.dsp import JIT

f32 = np.float32
ZERO, HALF, ONE, TWO, THREE, FOUR, EIGHT = (f32(v) for v in (0, 0.5, 1, 2, 3, 4, 8))
QUARTER, THIRD = f32(0.25), f32(1.0 / 3.0)
TWO_PI = f32(2.0 * math.pi)
_S3, _S5, _S7, _S9 = f32(-1 / 6), f32(1 / 120), f32(-1 / 5040), f32(1 / 362880)
_LN2_16 = f32(math.log(2.0) / 16.0)
_E = [f32(1.0 / math.factorial(k)) for k in range(8)]
_E2, _E3, _E4, _E5, _E6, _E7 = _E[2:8]
_T0, _T1, _T2 = f32(135135.0), f32(17325.0), f32(378.0)
_U1, _U2, _U3 = f32(62370.0), f32(3150.0), f32(28.0)
_C27, _C9 = f32(27.0), f32(9.0)


@njit(inline="always", **JIT)
def poly_blep(t, dt):
    """PolyBLEP residual for a unit downward step at phase 0 (Välimäki & Huovilainen)."""
    a = t / dt                      # just after the wrap: 0 <= a < 1
    b = (t - ONE) / dt              # just before the wrap: -1 < b <= 0
    after = a + a - a * a - ONE
    before = b * b + b + b + ONE
    return after if t < dt else (before if t > ONE - dt else ZERO)


@njit(inline="always", **JIT)
def poly_blamp(t, dt):
    """PolyBLAMP residual for a unit slope change at phase 0 (integrated PolyBLEP)."""
    a = t / dt - ONE
    b = (t - ONE) / dt + ONE
    after = -a * a * a * THIRD
    before = b * b * b * THIRD
    return after if t < dt else (before if t > ONE - dt else ZERO)


@njit(inline="always", **JIT)
def wrap(t):
    """t modulo 1 for t >= 0 (truncation: one vectorizable conversion each way)."""
    return t - f32(np.int32(t))


@njit(inline="always", **JIT)
def saw(t, dt):
    """Band-limited sawtooth, -1..1 rising."""
    return TWO * t - ONE - poly_blep(t, dt)


@njit(inline="always", **JIT)
def pulse(t, dt, width):
    """Band-limited pulse: -1 for t < width, +1 after (difference of two offset saws)."""
    return saw(t, dt) - saw(wrap(t - width + ONE), dt) - (TWO * width - ONE)


@njit(inline="always", **JIT)
def triangle(t, dt):
    """Band-limited triangle: 1 at phase 0, -1 at 0.5 (PolyBLAMP at both corners)."""
    naive = FOUR * abs(t - HALF) - ONE
    # the slope changes by -8/cycle at phase 0 and by +8/cycle at 0.5: 8*dt per sample
    return naive + EIGHT * dt * (poly_blamp(wrap(t + HALF), dt) - poly_blamp(t, dt))


@njit(inline="always", **JIT)
def sine(t):
    """sin(2*pi*t) by a folded odd polynomial (max error 4e-6, -108 dB)."""
    x = t - HALF                             # -0.5 .. 0.5, sin(2 pi t) = -sin(2 pi x)
    ax = abs(x)
    u = (HALF - ax) if ax > QUARTER else ax  # fold into 0 .. 0.25
    u = -u if x < ZERO else u
    z = TWO_PI * u
    z2 = z * z
    return -z * (ONE + z2 * (_S3 + z2 * (_S5 + z2 * (_S7 + z2 * _S9))))


@njit(inline="always", **JIT)
def exp2_fast(x):
    """2**x for |x| <= 16 by (2**(x/16))**16: relative error < 5e-5 in float32."""
    y = x * _LN2_16
    p = ONE + y * (ONE + y * (_E2 + y * (_E3 + y * (_E4 + y * (_E5 + y * (_E6 + y * _E7))))))
    p = p * p
    p = p * p
    p = p * p
    return p * p


@njit(inline="always", **JIT)
def tan_fraction(x):
    """tan(x) = num / den for 0 <= x <= 1.45 by a Padé approximant (relative error < 1e-6
    in float32). Returned as a fraction so callers can fold it into their own division."""
    x2 = x * x
    return x * (_T0 - x2 * (_T1 - x2 * (_T2 - x2))), _T0 - x2 * (_U1 - x2 * (_U2 - _U3 * x2))


@njit(inline="always", **JIT)
def tan_fast(x):
    num, den = tan_fraction(x)
    return num / den


@njit(inline="always", **JIT)
def tanh_fast(x):
    """Soft clipper: tanh-like rational, unit slope at 0, exactly ±1 beyond |x| = 3."""
    c = min(max(x, -THREE), THREE)
    c2 = c * c
    return c * (_C27 + c2) / (_C27 + _C9 * c2)
