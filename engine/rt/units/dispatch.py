"""One dispatch for every unit kind, and the program walker (AUDIO THREAD).

`run_unit` has one branch per registered unit, in the order of `engine.rt.units.UNITS`
(tests/test_units.py checks that each kind reaches its own unit). `run_program` walks a flat,
topologically ordered program compiled off the audio thread: one row per unit instance,
PR_WIDTH int64 columns (kind, state offset and length, params offset and length, io offset) into
one state pool, one params pool and one io table.

`carry_program` runs at a swap, on the audio thread: it copies only each carried op's live
prefix (PR_CARRY_LEN: voices, envelopes, filter memories, delay lines), never the tables or
samples after it, which the new program got from the same data when it was built.
"""
from numba import njit

from engine.rt.dsp import JIT
from engine.rt.units import (analog, bitcrusher, chorus, compressor, delay, eq, flanger, fm,
                             formant, gate, kit, limiter, phaser, plate, reverb, sampler,
                             saturation, strip, wavetable, width)
from engine.rt.units.base import IO_WIDTH

PR_KIND, PR_STATE, PR_STATE_LEN, PR_PARAMS, PR_PARAMS_LEN, PR_IO, PR_CARRY, PR_CARRY_LEN = \
    range(8)
# PR_CARRY: the row of the outgoing program whose state this op continues at a swap (-1: none)
# PR_CARRY_LEN: how much of its state (a prefix, 0..PR_STATE_LEN) is live and carried over:
#   the unit's `carry_len` (engine.rt.units.base), the whole state if it declares none
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
        strip.process(state, params, bus, io, i0, i1, sample_rate)
    elif kind == 8:
        gate.process(state, params, bus, io, i0, i1, sample_rate)
    elif kind == 9:
        bitcrusher.process(state, params, bus, io, i0, i1, sample_rate)
    elif kind == 10:
        delay.process(state, params, bus, io, i0, i1, sample_rate)
    elif kind == 11:
        reverb.process(state, params, bus, io, i0, i1, sample_rate)
    elif kind == 12:
        plate.process(state, params, bus, io, i0, i1, sample_rate)
    elif kind == 13:
        formant.process(state, params, bus, io, i0, i1, sample_rate)
    elif kind == 14:
        wavetable.process(state, params, bus, io, i0, i1, sample_rate)
    elif kind == 15:
        fm.process(state, params, bus, io, i0, i1, sample_rate)
    elif kind == 16:
        kit.process(state, params, bus, io, i0, i1, sample_rate)
    elif kind == 17:
        sampler.process(state, params, bus, io, i0, i1, sample_rate)
    elif kind == 18:
        analog.process(state, params, bus, io, i0, i1, sample_rate)
    elif kind == 19:
        limiter.process(state, params, bus, io, i0, i1, sample_rate)


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
        strip.reset(state, sample_rate)
    elif kind == 8:
        gate.reset(state, sample_rate)
    elif kind == 9:
        bitcrusher.reset(state, sample_rate)
    elif kind == 10:
        delay.reset(state, sample_rate)
    elif kind == 11:
        reverb.reset(state, sample_rate)
    elif kind == 12:
        plate.reset(state, sample_rate)
    elif kind == 13:
        formant.reset(state, sample_rate)
    elif kind == 14:
        wavetable.reset(state, sample_rate)
    elif kind == 15:
        fm.reset(state, sample_rate)
    elif kind == 16:
        kit.reset(state, sample_rate)
    elif kind == 17:
        sampler.reset(state, sample_rate)
    elif kind == 18:
        analog.reset(state, sample_rate)
    elif kind == 19:
        limiter.reset(state, sample_rate)


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


@njit(**JIT)
def carry_program(program, count, states, params, old_program, old_count, old_states,
                  old_params):
    """At a swap: each op of `program` continuing an op of the outgoing program (PR_CARRY)
    takes over the live prefix of its state (PR_CARRY_LEN floats: the rest is data both got
    when they were built) and its smoothed parameter values (its targets stay the new ones, so
    a changed setting glides from the old value)."""
    for r in range(count):
        o = program[r, PR_CARRY]
        if o < 0 or o >= old_count or old_program[o, PR_KIND] != program[r, PR_KIND] \
                or old_program[o, PR_STATE_LEN] != program[r, PR_STATE_LEN] \
                or old_program[o, PR_CARRY_LEN] != program[r, PR_CARRY_LEN] \
                or old_program[o, PR_PARAMS_LEN] != program[r, PR_PARAMS_LEN]:
            continue
        s0, s1 = program[r, PR_STATE], old_program[o, PR_STATE]
        n = min(max(program[r, PR_CARRY_LEN], 0), program[r, PR_STATE_LEN])
        for i in range(n):
            states[s0 + i] = old_states[s1 + i]
        half = program[r, PR_PARAMS_LEN] // 2
        p0, p1 = program[r, PR_PARAMS], old_program[o, PR_PARAMS]
        for i in range(half):
            params[p0 + half + i] = old_params[p1 + half + i]


@njit(**JIT)
def event_unit(kind, state, params, ev_kind, a, b, c, sample_rate):
    """An event for an instrument unit (engine.rt.units.base); returns voices stolen. Kinds
    that are not instruments ignore events."""
    if kind == 14:
        return wavetable.event(state, params, ev_kind, a, b, c, sample_rate)
    elif kind == 15:
        return fm.event(state, params, ev_kind, a, b, c, sample_rate)
    elif kind == 16:
        return kit.event(state, params, ev_kind, a, b, c, sample_rate)
    elif kind == 17:
        return sampler.event(state, params, ev_kind, a, b, c, sample_rate)
    elif kind == 18:
        return analog.event(state, params, ev_kind, a, b, c, sample_rate)
    return 0


@njit(**JIT)
def voices_unit(kind, state):
    """Voices an instrument unit is sounding (0 for effects)."""
    if kind == 14:
        return wavetable.active_voices(state)
    elif kind == 15:
        return fm.active_voices(state)
    elif kind == 16:
        return kit.active_voices(state)
    elif kind == 17:
        return sampler.active_voices(state)
    elif kind == 18:
        return analog.active_voices(state)
    return 0
