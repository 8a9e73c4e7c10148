"""DSP units: one file each, one line each in the registry below (AUDIO THREAD kernels).

The contract is in `engine.rt.units.base`. A unit's kind is its position in UNITS; the graph's
program names units by kind, and `engine.rt.units.dispatch.run_unit` calls the kind's
`process` (its branches are checked against this tuple by tests/test_units.py).
"""
from engine.rt.units import (analog, bitcrusher, chorus, compressor, delay, eq, flanger, fm,
                             formant, gate, kit, limiter, phaser, plate, reverb, sampler,
                             saturation, strip, wavetable, width)

UNITS = (
    width,
    saturation,
    compressor,
    chorus,
    flanger,
    phaser,
    eq,
    strip,
    gate,
    bitcrusher,
    delay,
    reverb,
    plate,
    formant,
    wavetable,
    fm,
    kit,
    sampler,
    analog,
    limiter,
)
KIND = {u.NAME: k for k, u in enumerate(UNITS)}
