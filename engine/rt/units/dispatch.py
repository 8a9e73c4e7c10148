"""One dispatch for every unit kind, and the program walker (AUDIO THREAD).

`run_unit` has one branch per registered unit, in the order of `engine.rt.units.UNITS`
(tests/test_units.py checks that each kind reaches its own unit). `run_program` walks a flat,
topologically ordered program compiled off the audio thread: one row per unit instance,
PR_WIDTH int64 columns (kind, state offset and length, params offset and length, io offset) into
one state pool, one params pool and one io table.
"""
from numba import njit

from engine.rt.dsp import JIT
from engine.rt.units import eq, width
from engine.rt.units.base import IO_WIDTH

PR_KIND, PR_STATE, PR_STATE_LEN, PR_PARAMS, PR_PARAMS_LEN, PR_IO = range(6)
PR_WIDTH = 8


@njit(**JIT)
def run_unit(kind, state, params, bus, io, i0, i1, sample_rate):
    if kind == 0:
        width.process(state, params, bus, io, i0, i1, sample_rate)
    elif kind == 1:
        eq.process(state, params, bus, io, i0, i1, sample_rate)


@njit(**JIT)
def reset_unit(kind, state, sample_rate):
    if kind == 0:
        width.reset(state, sample_rate)
    elif kind == 1:
        eq.reset(state, sample_rate)


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
