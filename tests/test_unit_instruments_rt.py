"""The instrument entry points (engine.rt.units.dispatch event_unit, voices_unit, run_unit),
proven as tests/test_rt_proof.py proves the driver callbacks: compiled behind a C entry point
and read back, no path to Python, no allocation, no raise site. (run_unit is also reached
from the render callback; event_unit and voices_unit are not yet, so they are proven here.)"""
import ctypes

import llvmlite.binding as llb
import numpy as np
from numba import njit

from engine.rt import callbacks as cb
from engine.rt.cfunc import RtCallback
from engine.rt.dsp import JIT
from engine.rt.events import K_NOTE_OFF, K_NOTE_ON, K_PANIC
from engine.rt.ptr import carray, f64_ptr, i64_ptr, voidptr_to_int
from engine.rt.units import KIND, dispatch, fm, sampler, wavetable
from engine.rt.units.base import default_params
from tests.test_rt_proof import _CALLEE, violations, wrapper_violations


@njit(**JIT)
def _probe(n, arg):
    """arg -> int64[6]: state address and length, params address and length, bus address,
    io address; plays a note on the instrument of kind tab[6] and renders n samples."""
    tab = carray(i64_ptr(voidptr_to_int(arg)), 8)
    state = carray(f64_ptr(tab[0]), tab[1])
    params = carray(f64_ptr(tab[2]), tab[3])
    bus = carray(f64_ptr(tab[4]), (8, 4096))
    io = carray(i64_ptr(tab[5]), 8)
    kind = tab[6]
    stolen = dispatch.event_unit(kind, state, params, K_NOTE_ON, 60.0, 1.0, 1.0, 48000.0)
    dispatch.run_unit(kind, state, params, bus, io, 0, n, 48000.0)
    dispatch.event_unit(kind, state, params, K_NOTE_OFF, 60.0, 0.0, 1.0, 48000.0)
    dispatch.event_unit(kind, state, params, K_PANIC, 0.0, 0.0, 0.0, 48000.0)
    dispatch.run_unit(kind, state, params, bus, io, 0, n, 48000.0)
    return np.int32(stolen + 10 * dispatch.voices_unit(kind, state))


def test_instrument_entry_points_have_no_path_to_python():
    rt = RtCallback("probe_instruments", _probe, cb.JACK_CALLBACK_SIG)
    assert wrapper_violations(rt) == []
    assert violations(rt.kernel_ir(), rt.kernel_symbol) == []
    # the walk reaches both instruments' kernels and poly's
    funcs = {f.name: f for f in llb.parse_assembly(rt.kernel_ir()).functions}
    reach, todo = set(), [rt.kernel_symbol]
    while todo:
        name = todo.pop()
        if name in reach or name not in funcs:
            continue
        reach.add(name)
        todo.extend(_CALLEE.findall(str(funcs[name])))
    text = " ".join(reach)
    for part in ("9wavetable5event", "9wavetable7process", "2fm5event", "2fm7process",
                 "7sampler5event", "7sampler7process", "4poly10poly_event"):
        assert part in text, part
    # and it runs: a note sounds, is panicked, and its voice is still fading after 100 samples
    f = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_uint32, ctypes.c_void_p)(rt.address)
    for unit in (wavetable, fm, sampler):
        state = np.zeros(unit.state_size(48000))
        params = np.array(default_params(unit.PARAMS))
        if hasattr(unit, "prepare"):
            unit.prepare(state, params, 48000)
        else:
            unit.reset(state, 48000)
        bus = np.zeros((8, 4096))
        io = np.array([0, 1, 2, 3, -1, -1, -1, -1], dtype=np.int64)
        tab = np.array([state.ctypes.data, state.size, params.ctypes.data, params.size,
                        bus.ctypes.data, io.ctypes.data, KIND[unit.NAME], 0], dtype=np.int64)
        assert f(64, tab.ctypes.data) == 10
        assert np.abs(bus[2, :64]).max() > 0.0
