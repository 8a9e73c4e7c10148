"""The analog instrument: the subtractive voice of engine.rt.voice as a unit (AUDIO THREAD
kernels; declarations read on the control side).

Two oscillators (saw, pulse, triangle, sine; osc 2 detuned and transposed) and noise (white,
pink or brown), a
4-pole ladder or a state-variable filter (lowpass, bandpass, highpass) with drive, key tracking,
velocity and its own ADSR, an amp ADSR, an LFO to pitch and cutoff, the mod wheel to vibrato;
voices vectorised across SIMD lanes, steals faded over 2 ms, waveform and filter changes made at
the bottom of a 3 ms dip so nothing clicks. Its parameters are engine.rt.params.PARAMS (the
patch parameters of `patches/*.toml` with `[patch] engine = "analog"`, then the played bend and
mod wheel, then `polyphony`).

The state holds what the voice kernels work on, each a view made here from the state's
address (no copy, no allocation):
    ps   float64[1, PS_SIZE]          runtime values (engine.rt.layout PS_*)
    vm   float64[VM_SIZE, NVMAX]      voice bookkeeping
    vf   float32[VF_ROWS * NVMAX]     voice DSP rows, NVMAX voices per row
and the params' targets and smoothed values are viewed as the kernels' `ptarget`, `pcur` rows.

The kernels smooth parameters themselves (SMOOTH_S; stepped ones apply at once) and skip all
per-sample parameter work while nothing moves; `process` notices a new target (from the graph,
K_UNIT_PARAM) by comparing targets with current values, once per span.

`polyphony` is applied when the graph is built (PREPARE_PARAMS): voices [0, polyphony rounded
up to LANES) are the ones a note-on may take. The noise's seed is the part index the graph puts
in io[IO_AUX], so two parts never play the same noise.
"""
import math

import numpy as np
from numba import njit

from engine.rt import voice
from engine.rt.dsp import JIT
from engine.rt.events import (K_ALL_NOTES_OFF, K_MOD_WHEEL, K_NOTE_OFF, K_NOTE_ON, K_PANIC,
                              K_PITCH_BEND, K_SOURCE_GONE, K_SUSTAIN)
from engine.rt.layout import (MAX_POLYPHONY, NVMAX, PS_COEF_DIRTY, PS_DUCK, PS_NACTIVE, PS_NOW,
                              PS_SEED, PS_SETTLING, PS_SIZE, PS_VHI, PS_VLO, ST_IDLE, VF_ASTAGE,
                              VF_C_OSC, VF_ROWS, VM_PEND_NOTE, VM_SIZE)
from engine.rt.params import NPARAMS, P_BEND_RANGE, P_BEND_ST, P_MOD, P_POLYPHONY
from engine.rt.params import PARAMS as _PARAMS
from engine.rt.ptr import carray, f32_ptr, f64_ptr
from engine.rt.units.base import CTX_SAMPLE_TIME, IO_AUX, IO_CTX, IO_OUT_L, IO_OUT_R, clampf

NAME = "analog"
INSTRUMENT = True
PARAMS = _PARAMS
PREPARE_PARAMS = ("polyphony",)   # a change is a new instrument (its voice range)
N = NPARAMS
assert len(PARAMS) == N
_DEFAULTS = np.array([q.default for q in PARAMS])

X_VM = 32                        # vm rows
X_VF = X_VM + VM_SIZE * NVMAX    # vf, float32 (two per float64 slot)
assert X_VF % 8 == 0             # 64-byte aligned within the state
STATE_SIZE = X_VF + (VF_ROWS * NVMAX + 1) // 2


def state_size(sample_rate):
    return STATE_SIZE


def carry_len(sample_rate):
    """A graph swap carries the runtime values, the voices' bookkeeping and their DSP rows
    below VF_C_OSC; the chunk rows from there on are scratch, written before they are read."""
    return X_VF + VF_C_OSC * NVMAX // 2


@njit(inline="always", **JIT)
def _ps(state):
    return carray(f64_ptr(state.ctypes.data), (1, PS_SIZE))


@njit(inline="always", **JIT)
def _vm(state):
    return carray(f64_ptr(state.ctypes.data + X_VM * 8), (VM_SIZE, NVMAX))


@njit(inline="always", **JIT)
def _vf(state):
    return carray(f32_ptr(state.ctypes.data + X_VF * 8), VF_ROWS * NVMAX)


@njit(inline="always", **JIT)
def _targets(params):
    return carray(f64_ptr(params.ctypes.data), (1, N))


@njit(inline="always", **JIT)
def _current(params):
    return carray(f64_ptr(params.ctypes.data + N * 8), (1, N))


@njit(**JIT)
def _voices(polyphony):
    """The voice range's length for a polyphony: whole lanes, at most MAX_POLYPHONY."""
    n = int(math.ceil(clampf(polyphony, 1.0, float(MAX_POLYPHONY))))
    return ((n + voice.LANES - 1) // voice.LANES) * voice.LANES


@njit(**JIT)
def reset(state, sample_rate):
    """Every voice idle, the LFO and the clock at 0; the voice range and seed are kept."""
    ps = _ps(state)
    vhi, seed = ps[0, PS_VHI], ps[0, PS_SEED]
    for i in range(STATE_SIZE):
        state[i] = 0.0
    vm = _vm(state)
    for v in range(NVMAX):
        vm[VM_PEND_NOTE, v] = -1.0
    ps[0, PS_VLO] = 0.0
    ps[0, PS_VHI] = vhi
    ps[0, PS_SEED] = seed
    ps[0, PS_COEF_DIRTY] = 1.0
    ps[0, PS_SETTLING] = 1.0
    ps[0, PS_DUCK] = 1.0


def prepare(state, params, sample_rate):
    """Control side, when the graph is built: the voice range from `polyphony`."""
    state[PS_VLO] = 0.0
    state[PS_VHI] = float(_voices(float(params[P_POLYPHONY])))


@njit(inline="always", **JIT)
def _range(ps, params):
    if ps[0, PS_VHI] <= 0.0:     # never prepared (a unit used on its own): from the params
        ps[0, PS_VHI] = float(_voices(params[P_POLYPHONY]))


@njit(**JIT)
def active_voices(state):
    """Voices sounding (fading steals and voices waiting for one included)."""
    ps = _ps(state)
    vf = _vf(state)
    vm = _vm(state)
    n = 0
    for v in range(min(int(ps[0, PS_NACTIVE]), NVMAX)):
        if vf[VF_ASTAGE * NVMAX + v] != ST_IDLE or vm[VM_PEND_NOTE, v] >= 0.0:
            n += 1
    return n


@njit(**JIT)
def event(state, params, kind, a, b, c, sample_rate):
    """One event at the current sample; returns the voices stolen (0 or 1)."""
    ps = _ps(state)
    vf = _vf(state)
    vm = _vm(state)
    _range(ps, params)
    src = c if abs(c) < 1e15 else 0.0
    if kind == K_NOTE_ON:
        if not abs(a) < 1e6 or not abs(b) < 1e6:
            return 0
        return voice.note_on(vf, vm, ps, _current(params), 0, clampf(a, 0.0, 127.0),
                             clampf(b, 0.0, 1.0), src, ps[0, PS_NOW], sample_rate)
    if kind == K_NOTE_OFF:
        if abs(a) < 1e6:
            voice.note_off(vf, vm, ps, 0, clampf(a, 0.0, 127.0), src)
    elif kind == K_PITCH_BEND:
        if abs(b) < 1e6:
            t = _targets(params)
            t[0, P_BEND_ST] = clampf(b, -1.0, 1.0) * clampf(t[0, P_BEND_RANGE], 0.0, 24.0)
            ps[0, PS_SETTLING] = 1.0
    elif kind == K_MOD_WHEEL:
        if abs(b) < 1e6:
            _targets(params)[0, P_MOD] = clampf(b, 0.0, 1.0)
            ps[0, PS_SETTLING] = 1.0
    elif kind == K_SUSTAIN:
        voice.sustain(vf, vm, ps, 0, b > 0.5)
    elif kind == K_ALL_NOTES_OFF:
        voice.release_all(vf, vm, ps, 0, -1.0)
    elif kind == K_SOURCE_GONE:
        voice.release_all(vf, vm, ps, 0, src)
    elif kind == K_PANIC:
        voice.fade_all(vf, vm, ps, 0)
        t = _targets(params)
        t[0, P_BEND_ST] = 0.0
        t[0, P_MOD] = 0.0
        ps[0, PS_SETTLING] = 1.0
    return 0


@njit(**JIT)
def process(state, params, bus, io, i0, i1, sample_rate):
    if i1 <= i0:
        return
    ps = _ps(state)
    _range(ps, params)
    seed = io[IO_AUX]
    ps[0, PS_SEED] = float(seed) if seed >= 0 else 0.0
    for k in range(N):           # a new target (K_UNIT_PARAM): the kernels smooth towards it
        if params[k] != params[N + k]:
            ps[0, PS_SETTLING] = 1.0
            ps[0, PS_COEF_DIRTY] = 1.0
            if not abs(params[N + k]) < 1e300:      # a value that is no number: the default
                params[N + k] = _DEFAULTS[k]
            if not abs(params[k]) < 1e300:
                params[k] = params[N + k]
    ctx = io[IO_CTX]
    now0 = int(ps[0, PS_NOW]) - i0   # the absolute sample time of column 0 (the noise's clock)
    if ctx >= 0:
        now0 = int(bus[ctx, CTX_SAMPLE_TIME]) - i0
    out = bus[io[IO_OUT_L]]
    voice.render_part(_vf(state), _vm(state), _targets(params), _current(params), ps, 0, out,
                      i0, i1, now0, sample_rate)
    right = io[IO_OUT_R]
    if right != io[IO_OUT_L]:
        for s in range(i0, i1):
            bus[right, s] = out[s]
    ps[0, PS_NOW] += i1 - i0
