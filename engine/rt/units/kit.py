"""The drum kit as an instrument unit: the synthesised 808-style machine of engine.rt.drums,
each drum placed in the stereo field (AUDIO THREAD kernels).

Notes are General MIDI drum notes (engine.parts.DRUM_NOTES). Each sounding voice renders into
a scratch row, which is added into the out rows with equal-power pan gains its drum had when
it was hit (a pan move applies from the next hit, as on a drum machine: never a click). The
drum machine's own state (voices, levels) and its parameter array live in this unit's state;
its kernels are unchanged.

State: [drum machine rows (DRUM_ROWS x DRUM_W) | machine params | pan gains L,R per voice |
scratch row (MAXBLOCK)].
"""
import math

from numba import njit

from engine.rt import drums as D
from engine.rt.dsp import JIT, smooth_coef
from engine.rt.events import K_NOTE_ON, K_PANIC
from engine.rt.layout import MAXBLOCK
from engine.rt.ptr import carray, f64_ptr
from engine.rt.units.base import IO_OUT_L, IO_OUT_R, Param, clampf, declare

NAME = "kit"
INSTRUMENT = True

# the default stereo image: as seen from the audience, hats right, toms high-to-low across
DEFAULT_PAN = {"kick": 0.0, "rim": -0.2, "snare": 0.05, "clap": -0.1, "closed_hat": 0.35,
               "tom_low": -0.45, "open_hat": 0.35, "tom_mid": -0.1, "tom_high": 0.3}
PARAMS = declare([
    Param("tune_st", -D.TUNE_MAX_ST, D.TUNE_MAX_ST, 0.0, smooth_s=0.0,
          doc="every pitch and filter of the kit, semitones (at the next hit)"),
    Param("decay_scale", D.DECAY_SCALE_MIN, D.DECAY_SCALE_MAX, 1.0, curve="log", smooth_s=0.0,
          doc="multiplies every decay (at the next hit)"),
    Param("level_db", -90.0, D.LEVEL_MAX_DB, 0.0, doc="the whole kit"),
] + [Param(f"{n}_level_db", -90.0, D.LEVEL_MAX_DB, 0.0) for n in D.INSTRUMENT_NAMES]
  + [Param(f"{n}_pan", -1.0, 1.0, DEFAULT_PAN[n], doc="-1 left .. 1 right")
     for n in D.INSTRUMENT_NAMES])
N = len(PARAMS)
NI = D.N_INSTRUMENTS
P_TUNE, P_DECAY, P_LEVEL, P_INST_LEVEL = 0, 1, 2, 3
P_PAN = P_INST_LEVEL + NI

MACHINE = D.DRUM_ROWS * D.DRUM_W
K_PARAMS = MACHINE                       # the machine's params array
K_GAINS = K_PARAMS + D.DRUM_N_PARAMS     # pan gains L, R of each voice (set at its hit)
K_SCRATCH = K_GAINS + 2 * D.DRUM_VOICES
SIZE = K_SCRATCH + MAXBLOCK


def state_size(sample_rate):
    return SIZE


def carry_len(sample_rate):
    """A graph swap carries the machine, its params and the pan gains, not the scratch row
    (written before it is read in every block)."""
    return K_SCRATCH


@njit(inline="always", **JIT)
def _machine(state):
    return carray(f64_ptr(state.ctypes.data), (D.DRUM_ROWS, D.DRUM_W))


@njit(**JIT)
def reset(state, sample_rate):
    for i in range(state.shape[0]):
        state[i] = 0.0
    state[K_PARAMS + D.DRUM_DECAY_SCALE] = 1.0


@njit(inline="always", **JIT)
def _machine_params(state, params):
    """The unit's targets into the machine's params array (the machine clamps and smooths)."""
    mp = state[K_PARAMS:K_PARAMS + D.DRUM_N_PARAMS]
    mp[D.DRUM_TUNE_ST] = clampf(params[P_TUNE], -D.TUNE_MAX_ST, D.TUNE_MAX_ST)
    mp[D.DRUM_DECAY_SCALE] = clampf(params[P_DECAY], D.DECAY_SCALE_MIN, D.DECAY_SCALE_MAX)
    mp[D.DRUM_LEVEL_DB] = clampf(params[P_LEVEL], -90.0, D.LEVEL_MAX_DB)
    for k in range(NI):
        mp[D.DRUM_INST_LEVEL_DB + k] = clampf(params[P_INST_LEVEL + k], -90.0, D.LEVEL_MAX_DB)
    for k in range(N):
        params[N + k] = params[k]
    return mp


@njit(**JIT)
def event(state, params, kind, a, b, c, sample_rate):
    if kind == K_NOTE_ON:
        v = D.drum_trigger(_machine(state), _machine_params(state, params), a, b, sample_rate)
        if v >= 0:
            k = int(_machine(state)[v, D.V_INST])
            angle = (clampf(params[P_PAN + k], -1.0, 1.0) + 1.0) * (math.pi / 4.0)
            state[K_GAINS + 2 * v] = math.cos(angle) * math.sqrt(2.0)
            state[K_GAINS + 2 * v + 1] = math.sin(angle) * math.sqrt(2.0)
    elif kind == K_PANIC:
        D.drum_panic(_machine(state), sample_rate)
    return 0


@njit(**JIT)
def active_voices(state):
    n = 0
    for v in range(D.DRUM_VOICES):
        if state[v * D.DRUM_W + D.V_ACTIVE] != 0.0:
            n += 1
    return n


@njit(**JIT)
def process(state, params, bus, io, i0, i1, sample_rate):
    ol, orr = io[IO_OUT_L], io[IO_OUT_R]
    for s in range(i0, i1):
        bus[ol, s] = 0.0
        bus[orr, s] = 0.0
    if i1 <= i0:
        return
    m = _machine(state)
    mp = _machine_params(state, params)
    sr = max(sample_rate, 1000.0)
    ks = smooth_coef(D.LEVEL_SMOOTH_S, sr)
    D._target_levels(m, mp)
    scratch = state[K_SCRATCH:K_SCRATCH + MAXBLOCK]
    for v in range(D.DRUM_VOICES):
        if m[v, D.V_ACTIVE] == 0.0:
            continue
        for s in range(i0, i1):
            scratch[s] = 0.0
        D.drum_render_voice(m, v, scratch, i0, i1, ks)
        gl, gr = state[K_GAINS + 2 * v], state[K_GAINS + 2 * v + 1]
        for s in range(i0, i1):
            bus[ol, s] += scratch[s] * gl
            bus[orr, s] += scratch[s] * gr
