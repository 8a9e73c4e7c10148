"""The contract every DSP unit keeps (AUDIO THREAD kernels; declarations read on the control side).

A unit is one file in `engine/rt/units/` and one line in the registry (`engine.rt.units.UNITS`).
Like a SuperCollider UGen (`PluginLoad`) or a pedalboard `Plugin`, it declares:

* `NAME`: its name in patches and addresses (`/bass/eq/low_gain_db`);
* `PARAMS`: a tuple of `Param`s: name with its unit (`cutoff_hz`, `gain_db`, `attack_ms`),
  range, default, curve (how a 0..1 control maps onto the range: "lin", "log" or "choice") and
  smoothing time (0: applied at once);
* `state_size(sample_rate) -> int`: the float64 state it needs (control side, prepare time);
* `reset(state, sample_rate)`: @njit, clears tails, delay lines, envelopes (not parameters);
* `process(state, params, bus, io, i0, i1, sample_rate)`: @njit, the one kernel signature:
    - `state`   float64[state_size]       the unit's own memory
    - `params`  float64[2 * len(PARAMS)]  targets in [0, n) (written by the control side), the
                                          smoothed current values in [n, 2n) (the unit's)
    - `bus`     float64[rows, MAXBLOCK]   the graph's audio rows
    - `io`      int64[IO_WIDTH]           bus rows: in L, in R, out L, out R, side L, side R
                                          (side -1: none), the context row (-1: none) and
                                          a unit-specific row (the strip's first send row;
                                          an instrument's part index, a seed);
                                          out may equal in (in place)
    - [i0, i1)  the span of this block to render (block-size invariant: a unit's output over
                [0, n) never depends on how the span is cut)
  The graph clears the rows a program writes before each span, so a unit may write its out
  rows or (the mixer strip) add into them.
  It never allocates, raises or does I/O, clamps every parameter to its range (so no value can
  make it unsafe), and keeps its output finite.

The context row (`io[IO_CTX]`) carries the graph's shared values for the span being rendered,
one per column: CTX_TEMPO_BPM (tempo-synced delays and LFOs; read it with `tempo_bpm(bus, io)`,
120 when there is no context row), CTX_SAMPLE_TIME (the absolute sample time of column i0) and
CTX_BEAT (the beat position at column i0, for LFOs locked to the bar; it advances at the tempo,
which is constant within a span).

An *instrument* is a unit that makes sound from events: its module also sets
`INSTRUMENT = True` and has
* `event(state, params, kind, a, b, c, sample_rate)`: @njit, applies one event at the current
  sample (the render kernel calls it between spans, at the event's exact sample offset), with
  `kind` one of engine.rt.events K_NOTE_ON (a = note, fractional allowed; b = velocity 0..1;
  c = source id), K_NOTE_OFF (a = note, c = source), K_SUSTAIN (b > 0.5: down), K_PITCH_BEND
  (b = semitones), K_MOD_WHEEL (b = 0..1), K_AFTERTOUCH (b = 0..1), K_ALL_NOTES_OFF,
  K_SOURCE_GONE (c = source: release its notes), K_PANIC (every voice fades within a few ms);
  other kinds are ignored. It returns the number of voices it stole (0 or 1).
* its `process` ignores the in rows and WRITES (not adds) its stereo output to out L/R.
* `active_voices(state) -> int`: @njit, voices sounding (meters, tests for stuck notes).

Data and swaps (all optional, read on the control side):
* `prepare(state, params, sample_rate, **data)`: fills the state with what the unit reads but
  never writes (tables, samples) when the graph is built, after `reset` (which keeps it);
* `PREPARE_PARAMS`: the parameters `prepare` reads (a change is a new instrument: the graph
  rebuilds it rather than setting them);
* `DATA`: {key: "module:function"}, keys of the unit's table that are data, not numbers (the
  sampler's `samples = "kit"`): the graph calls the loader with the key's value and passes what
  it returns to `state_size` and `prepare` as that keyword;
* `carry_len(sample_rate, **data) -> int`: how much of the state is live, as a prefix
  [0, carry_len): voices, envelopes, filter memories, delay lines. At a graph swap an op that
  continues one of the outgoing program (same address, unit, state size, PREPARE_PARAMS and
  data) takes over only that prefix, copied on the audio thread (the program's PR_CARRY_LEN
  column, engine.rt.units.dispatch.carry_program); the rest is data the new program already
  got from `prepare`. Without it the whole state is carried, which is right for delay lines
  and reverbs but a stall for a unit with megabytes of tables behind its voices, so such a
  unit lays its data out last and declares where it starts (wavetable, sampler).

`smooth_params(params, n, coef)` advances the smoothed values one sample; units call it per
sample while any parameter moves (`params_settled` says when none does).
"""
import math

from numba import njit

from engine.rt.dsp import JIT
from engine.rt.param import CURVES, Param, declare, default_params  # noqa: F401 (the contract's)

IO_IN_L, IO_IN_R, IO_OUT_L, IO_OUT_R, IO_SIDE_L, IO_SIDE_R, IO_CTX, IO_AUX = range(8)
IO_WIDTH = 8
CTX_TEMPO_BPM, CTX_SAMPLE_TIME, CTX_BEAT = range(3)
DEFAULT_TEMPO_BPM = 120.0

@njit(**JIT)
def clear(state):
    """Every state value to 0 (most units' reset starts here)."""
    for i in range(state.shape[0]):
        state[i] = 0.0


@njit(inline="always", **JIT)
def clampf(x, lo, hi):
    """x clamped to [lo, hi]; NaN becomes lo."""
    if not x >= lo:
        return lo
    return hi if x > hi else x


@njit(inline="always", **JIT)
def finite_or_zero(x):
    """An input sample, or 0 if it is NaN, infinite or absurd (beyond 1e15)."""
    return x if abs(x) < 1e15 else 0.0


@njit(inline="always", **JIT)
def smooth_coef_s(seconds, sample_rate):
    """One-pole coefficient reaching 63 % in `seconds` (1.0: instant)."""
    if seconds <= 0.0:
        return 1.0
    return 1.0 - math.exp(-1.0 / (seconds * sample_rate))


@njit(inline="always", **JIT)
def params_settled(params, n):
    for k in range(n):
        if params[n + k] != params[k]:
            return False
    return True


@njit(inline="always", **JIT)
def smooth_param(params, n, k, coef):
    """Advance parameter k's smoothed value one sample towards its target; snaps when close."""
    t = params[k]
    c = params[n + k]
    if not abs(t) < 1e300:          # a NaN or infinite target is ignored
        return c
    if c != t:
        c += coef * (t - c)
        if abs(t - c) <= 1e-9 * (abs(t) + 1e-9):
            c = t
        params[n + k] = c
    return c


@njit(inline="always", **JIT)
def tempo_bpm(bus, io):
    """The graph's tempo for this block (20..400 BPM; 120 without a context row)."""
    row = io[IO_CTX]
    if row < 0:
        return DEFAULT_TEMPO_BPM
    return clampf(bus[row, CTX_TEMPO_BPM], 20.0, 400.0)
