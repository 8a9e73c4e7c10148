"""Compile (or load from Numba's on-disk cache) every audio-thread kernel before a stream
starts, so nothing is ever compiled on the audio thread (control side)."""
from __future__ import annotations

import time
from pathlib import Path

from engine.control.state import EngineState
from engine.rt.events import (
    ASAP, FX_MASTER, K_ALL_NOTES_OFF, K_FX, K_GRAPH, K_MIDI_OUT, K_MIDI_OUT_CUT, K_MOD_WHEEL,
    K_NOTE_OFF, K_NOTE_ON, K_PANIC, K_PITCH_BEND, K_SOURCE_GONE, K_SUSTAIN, K_TEMPO,
)
from engine.rt.layout import C_MOUT_COUNT, C_MOUT_ON
from engine.rt.render import run_block


def kernel_cache_is_cold() -> bool:
    """True when no compiled kernel of this engine version is cached yet (the first run after
    installing or changing the audio code compiles for a few minutes)."""
    import numba
    cache = Path(numba.config.CACHE_DIR or "")
    return not numba.config.CACHE_DIR or not any(cache.rglob("*.nbi"))


def warm_up(drivers: tuple[str, ...] = (), say=None) -> float:
    """Run every event kind and every part through the kernel on a throwaway engine, then
    build the compiled callbacks of `drivers` ("portaudio", "jack", or "python" for the
    Python-callback fallback). Returns seconds taken.
    `say` (if given) is told when a cold cache means a long first compile."""
    t0 = time.perf_counter()
    if say is not None and kernel_cache_is_cold():
        say("compiling the audio engine (first run only: a few minutes)...")
    state = EngineState(48000)
    for part in range(5):
        state.push_sched(0, K_NOTE_ON, part, 60 if part < 4 else 36, 0.8, 1)
    for ftype in range(4):
        state.graph.set("/keys/synth/filter_type", ftype, time=10 + ftype)
    for t, kind in enumerate((K_PITCH_BEND, K_MOD_WHEEL, K_SUSTAIN, K_NOTE_OFF, K_TEMPO,
                              K_FX, K_SOURCE_GONE, K_ALL_NOTES_OFF, K_PANIC)):
        state.push_sched(100 + t, kind, 0 if kind != K_FX else FX_MASTER, 60.0, 0.5, 1)
    state.graph.swap(state.graph.spec, time=120)     # K_GRAPH, the crossfade, carried state
    state.graph.set("/keys/mix/pan", 0.1, time=130)  # K_UNIT_PARAM
    state.push_midi(ASAP, K_NOTE_ON, 0, 64, 0.5, 2)
    state.ctl[C_MOUT_ON] = 1                          # MIDI out: a message, a cut
    state.push_sched(140, K_MIDI_OUT, 1, 0.0, 0x90 | 60 << 8 | 100 << 16, 0.0)
    state.push_sched(150, K_MIDI_OUT_CUT, 1, -1.0, 0.0, 1.0)
    for _ in range(4):
        run_block(state.table, 64)
    state.ctl[C_MOUT_ON] = 0
    state.ctl[C_MOUT_COUNT] = 0
    from engine.declared import units
    units()             # the units' declarations cached: `patch from-text` then needs no Numba
    if "portaudio" in drivers:
        from engine.rt.callbacks import portaudio_callback
        portaudio_callback()
    if "python" in drivers:      # the Python-callback fallback calls pa_process itself
        import numpy as np

        from engine.rt.callbacks import pa_process
        scratch = np.zeros(2 * 64, np.float32)
        pa_process(state.table, scratch.ctypes.data, 64, 0)
    if "jack" in drivers:
        from engine.rt import callbacks as cb
        cb.jack_callback()
        cb.jack_xrun_callback()
        cb.jack_port_connect_callback()
        cb.jack_shutdown_callback()
    return time.perf_counter() - t0


if __name__ == "__main__":      # `python -m engine.control.warmup`: fill the kernel cache
    import sys
    seconds = warm_up(("portaudio", "jack", "python"), say=print)
    print(f"audio kernels compiled and cached in {seconds:.1f} s", file=sys.stderr)
