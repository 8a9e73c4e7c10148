"""Noise colours shared by the instruments (AUDIO THREAD kernels; constants read anywhere).

A colour is a filter over white noise, its memories kept by the caller: `pink` (Paul Kellet's
refined filter: -3 dB per octave within 0.05 dB from 10 Hz; seven memories) and `brown` (a leaky
integrator, pole BROWN_A: -6 dB per octave above ~15 Hz at 48 kHz; one memory, unit variance in,
unit variance out). Memories are mem[at + k * stride], so a row of per-voice values (stride: the
row length) and a few scalars in a row (stride 1) both serve. PINK_GAIN is the pink filter's RMS
gain (from its impulse response): divide by it for pink at white's level.
"""
import math

import numpy as np
from numba import njit

from engine.rt.dsp import JIT

KELLET_A = (0.99886, 0.99332, 0.96900, 0.86650, 0.55000, -0.7616)
KELLET_G = (0.0555179, 0.0750759, 0.1538520, 0.3104856, 0.5329522, -0.0168980)
KELLET_D0, KELLET_D1 = 0.5362, 0.115926      # direct tap, and the tap one sample late
BROWN_A = 0.998
BROWN_G = math.sqrt(1.0 - BROWN_A ** 2)       # unit variance in, unit variance out


def pink_response(n: int = 200000) -> np.ndarray:
    """The pink filter's impulse response, n samples (control side)."""
    k = np.arange(n, dtype=float)
    h = sum(g * a ** k for a, g in zip(KELLET_A, KELLET_G))
    h[0] += KELLET_D0
    h[1] += KELLET_D1
    return h


PINK_GAIN = math.sqrt(float((pink_response() ** 2).sum()))


@njit(inline="always", **JIT)
def pink(mem, at, stride, w):
    """One sample of pink from white w (unscaled: RMS gain PINK_GAIN). (The memories' indices
    are sums, not products, so unsigned offsets stay unsigned.)"""
    i1 = at + stride
    i2 = i1 + stride
    i3 = i2 + stride
    i4 = i3 + stride
    i5 = i4 + stride
    i6 = i5 + stride
    b0 = KELLET_A[0] * mem[at] + KELLET_G[0] * w
    b1 = KELLET_A[1] * mem[i1] + KELLET_G[1] * w
    b2 = KELLET_A[2] * mem[i2] + KELLET_G[2] * w
    b3 = KELLET_A[3] * mem[i3] + KELLET_G[3] * w
    b4 = KELLET_A[4] * mem[i4] + KELLET_G[4] * w
    b5 = KELLET_A[5] * mem[i5] + KELLET_G[5] * w
    y = b0 + b1 + b2 + b3 + b4 + b5 + mem[i6] + KELLET_D0 * w
    mem[at] = b0
    mem[i1] = b1
    mem[i2] = b2
    mem[i3] = b3
    mem[i4] = b4
    mem[i5] = b5
    mem[i6] = KELLET_D1 * w
    return y


@njit(inline="always", **JIT)
def brown(mem, at, w):
    """One sample of brown from white w (unit variance in, unit variance out)."""
    b = BROWN_A * mem[at] + BROWN_G * w
    mem[at] = b
    return b
