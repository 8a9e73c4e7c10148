"""The audio thread, proven: read the compiled callbacks and fail on any path to Python.

Every C entry point bandmate hands to PortAudio or JACK (engine.rt.callbacks.all_callbacks)
is checked as compiled: the entry point's own LLVM IR, and the LLVM IR of the kernel it calls
with everything that kernel calls or inlines (the module Numba compiled, also when it came
from the disk cache). Walking the call graph from the kernel, every function reachable must

  * call no external function but LLVM intrinsics and the C maths library: no allocation
    (NRT_*, malloc), no GIL (PyGILState_*, numba_gil_ensure), no Python API (Py*), no Python
    error machinery (PyErr_*, numba_do_raise, numba_unpickle), no I/O (printf, write...);
  * contain no raise site (Numba marks the store of an exception into the caller's excinfo
    slot with !numba_exception_output): the kernels cannot raise, so no error status exists
    for a wrapper to handle;

and the entry point must be nothing but one call to the kernel's address, the status ignored.

The only other calls are through function pointers the drivers put in their tables (libjack's
jack_port_get_buffer, jack_midi_get_event_count, jack_midi_event_get, jack_last_frame_time,
jack_port_by_id, jack_midi_clear_buffer, jack_midi_event_reserve (MIDI out), and clock_gettime):
C functions JACK documents for use in its callbacks.
"""
from __future__ import annotations

import re

import llvmlite.binding as llb
import numpy as np
import pytest
from numba import njit

from engine.rt import callbacks as cb
from engine.rt.cfunc import RtCallback
from engine.rt.dsp import JIT

LIBM = {
    "sin", "cos", "tan", "asin", "acos", "atan", "atan2", "sinh", "cosh", "tanh", "asinh",
    "acosh", "atanh", "exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "pow", "sqrt",
    "cbrt", "hypot", "fmod", "floor", "ceil", "trunc", "round", "rint", "nearbyint", "fabs",
    "copysign", "fmin", "fmax", "erf", "erfc", "ldexp", "frexp",
}
LIBM |= {name + "f" for name in set(LIBM)}


def allowed_external(name: str) -> bool:
    return name.startswith("llvm.") or name in LIBM


_CALLEE = re.compile(r"\bcall\b[^@]*@\"?([^\s\"(]+)\"?\(")
_GLOBAL = re.compile(r"@\"?([\w.$]+)\"?")


def violations(kernel_ir: str, entry: str) -> list[str]:
    """Everything forbidden on the audio thread in the functions reachable from `entry`."""
    mod = llb.parse_assembly(kernel_ir)
    functions = {f.name: f for f in mod.functions}
    if entry not in functions or functions[entry].is_declaration:
        return [f"entry {entry} is not defined in the module"]
    found, seen, todo = [], set(), [entry]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        fn = functions.get(name)
        if fn is None:
            found.append(f"{name}: called but not in the module")
            continue
        if fn.is_declaration:
            if not allowed_external(name):
                found.append(f"calls external {name}")
            continue
        text = str(fn)
        if "!numba_exception_output" in text:
            found.append(f"{name}: raise site (stores an exception)")
        for g in set(_GLOBAL.findall(text)):
            if g.startswith(("PyExc_", ".const.picklebuf", "_Py")):
                found.append(f"{name}: references {g}")
        todo.extend(_CALLEE.findall(text))
    return sorted(set(found))


def wrapper_violations(rt: RtCallback) -> list[str]:
    text = rt.wrapper_ir()
    found = []
    if re.search(r"^declare", text, re.M):
        found.append("the entry point declares external functions")
    calls = re.findall(r"\bcall\b.*", text)
    if len(calls) != 1:
        found.append(f"the entry point makes {len(calls)} calls, not exactly one")
    if f"inttoptr i64 {rt.kernel_address} " not in text:
        found.append("the entry point does not call the kernel's address")
    if re.search(r"\bbr\b|\bswitch\b|\binvoke\b", text):
        found.append("the entry point branches (an error path)")
    return found


@pytest.fixture(scope="module")
def built():
    return cb.all_callbacks()


def test_every_driver_callback_is_checked(built):
    assert {c.name for c in built} == {"portaudio", "jack_process", "jack_xrun",
                                       "jack_port_connect", "jack_shutdown"}


@pytest.mark.parametrize("name", ["portaudio", "jack_process", "jack_xrun",
                                  "jack_port_connect", "jack_shutdown"])
def test_callback_has_no_path_to_python(built, name):
    rt = next(c for c in built if c.name == name)
    assert wrapper_violations(rt) == []
    assert violations(rt.kernel_ir(), rt.kernel_symbol) == []


def test_the_render_path_is_really_walked(built):
    """The walk reaches the whole band (not just an empty entry function)."""
    rt = next(c for c in built if c.name == "jack_process")
    mod = llb.parse_assembly(rt.kernel_ir())
    reach, todo = set(), [rt.kernel_symbol]
    funcs = {f.name: f for f in mod.functions}
    while todo:
        n = todo.pop()
        if n in reach or n not in funcs:
            continue
        reach.add(n)
        todo.extend(_CALLEE.findall(str(funcs[n])))
    text = " ".join(reach)
    for part in ("render_block", "render_part", "drum_render", "run_program", "run_unit",
                 "5delay7process", "6reverb7process", "5strip7process", "event_unit",
                 "voices_unit", "9wavetable5event", "9wavetable7process", "2fm5event",
                 "2fm7process", "3kit5event", "3kit7process", "7sampler5event",
                 "7sampler7process", "4poly10poly_event",
                 "master_process", "jack_read_midi", "note_on", "parse",
                 "jack_write_midi"):
        assert part in text, part


# ---- the checker catches what it should ----------------------------------------------------

LOOSE = {k: v for k, v in JIT.items() if k != "_nrt"}


@njit(**LOOSE)
def _raises(n, arg):
    if n > 4096:
        raise ValueError("block too large")
    return np.int32(0)


@njit(**LOOSE)
def _allocates(n, arg):
    scratch = np.zeros(n)
    return np.int32(scratch.size > 1)


@njit(**LOOSE)
def _prints(n, arg):
    print("frames", n)
    return np.int32(0)


@njit(**JIT)
def _clean(n, arg):
    acc = 0.0
    for i in range(n):
        acc += np.tanh(i * 0.001)
    return np.int32(acc > 1000.0)


@pytest.mark.parametrize("kernel, expect", [
    (_raises, "raise site"), (_allocates, "NRT_"), (_prints, "Py"),
], ids=["raise", "allocate", "print"])
def test_the_checker_catches_python_paths(kernel, expect):
    rt = RtCallback(f"probe_{kernel.__name__}", kernel, cb.JACK_CALLBACK_SIG)
    found = violations(rt.kernel_ir(), rt.kernel_symbol)
    assert any(expect in v for v in found), found


def test_the_checker_passes_clean_maths():
    rt = RtCallback("probe_clean", _clean, cb.JACK_CALLBACK_SIG)
    assert violations(rt.kernel_ir(), rt.kernel_symbol) == []
    assert wrapper_violations(rt) == []


def test_numbas_own_cfunc_wrapper_would_fail():
    """Why engine.rt.cfunc exists: Numba's @cfunc answers an error status by taking the GIL
    (LLVM removes that branch only where it can prove the status is always 0, which it could
    not for the whole engine)."""
    from numba import cfunc
    c = cfunc(cb.JACK_CALLBACK_SIG, error_model="numpy")(_raises.py_func)
    text = c.inspect_llvm()
    wrapper = next(f for f in llb.parse_assembly(text).functions
                   if f.name.startswith("cfunc.") and not f.is_declaration)
    assert "numba_gil_ensure" in str(wrapper)


def test_kernel_really_runs_through_the_entry_point():
    """The C entry point returns the kernel's value (called here through ctypes)."""
    import ctypes
    rt = RtCallback("probe_value", _clean, cb.JACK_CALLBACK_SIG)
    f = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_uint32, ctypes.c_void_p)(rt.address)
    assert f(10, None) == 0
    assert f(4_000_000, None) == 1
