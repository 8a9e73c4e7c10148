"""One dispatch for every unit kind, and the program walker (AUDIO THREAD).

`run_unit` has one branch per registered unit, in the order of `engine.rt.units.UNITS`
(tests/test_units.py checks that each kind reaches its own unit); `event_unit` and
`voices_unit` have one per instrument unit (INSTRUMENT = True) and do nothing for the others. `run_program` walks a flat,
topologically ordered program compiled off the audio thread: one row per unit instance,
PR_WIDTH int64 columns (kind, state offset and length, params offset and length, io offset) into
one state pool, one params pool and one io table.
"""
from numba import njit

from engine.rt.dsp import JIT
from engine.rt.units import (chorus, compressor, eq, flanger, fm, phaser, saturation, wavetable,
                             width)
from engine.rt.units.base import IO_WIDTH

PR_KIND, PR_STATE, PR_STATE_LEN, PR_PARAMS, PR_PARAMS_LEN, PR_IO = range(6)
PR_WIDTH = 8


@njit(**JIT)
def run_unit(kind, state, params, bus, io, i0, i1, sample_rate):
    if kind == 0:
        width.process(state, params, bus, io, i0, i1, sample_rate)
    elif kind == 1:
        saturation.process(state, params, bus, io, i0, i1, sample_rate)
    elif kind == 2:
        compressor.process(state, params, bus, io, i0, i1, sample_rate)
    elif kind == 3:
        chorus.process(state, params, bus, io, i0, i1, sample_rate)
    elif kind == 4:
        flanger.process(state, params, bus, io, i0, i1, sample_rate)
    elif kind == 5:
        phaser.process(state, params, bus, io, i0, i1, sample_rate)
    elif kind == 6:
        eq.process(state, params, bus, io, i0, i1, sample_rate)
    elif kind == 7:
        wavetable.process(state, params, bus, io, i0, i1, sample_rate)
    elif kind == 8:
        fm.process(state, params, bus, io, i0, i1, sample_rate)


@njit(**JIT)
def reset_unit(kind, state, sample_rate):
    if kind == 0:
        width.reset(state, sample_rate)
    elif kind == 1:
        saturation.reset(state, sample_rate)
    elif kind == 2:
        compressor.reset(state, sample_rate)
    elif kind == 3:
        chorus.reset(state, sample_rate)
    elif kind == 4:
        flanger.reset(state, sample_rate)
    elif kind == 5:
        phaser.reset(state, sample_rate)
    elif kind == 6:
        eq.reset(state, sample_rate)
    elif kind == 7:
        wavetable.reset(state, sample_rate)
    elif kind == 8:
        fm.reset(state, sample_rate)


@njit(**JIT)
def event_unit(kind, state, params, ev_kind, a, b, c, sample_rate):
    """An event for an instrument unit (the kind's `event`); other kinds ignore it. Returns
    the number of voices stolen."""
    if kind == 7:
        return wavetable.event(state, params, ev_kind, a, b, c, sample_rate)
    if kind == 8:
        return fm.event(state, params, ev_kind, a, b, c, sample_rate)
    return 0


@njit(**JIT)
def voices_unit(kind, state):
    """Voices an instrument unit has sounding (0 for other kinds)."""
    if kind == 7:
        return wavetable.active_voices(state)
    if kind == 8:
        return fm.active_voices(state)
    return 0


@njit(**JIT)
def run_program(program, count, states, params, ios, bus, i0, i1, sample_rate):
    """Run the first `count` rows of `program` over [i0, i1), in order."""
    for r in range(count):
        s0 = program[r, PR_STATE]
        p0 = program[r, PR_PARAMS]
        io0 = program[r, PR_IO]
        run_unit(program[r, PR_KIND], states[s0:s0 + program[r, PR_STATE_LEN]],
                 params[p0:p0 + program[r, PR_PARAMS_LEN]], bus, ios[io0:io0 + IO_WIDTH],
                 i0, i1, sample_rate)
