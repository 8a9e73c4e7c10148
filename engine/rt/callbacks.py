"""The live drivers' process callbacks, compiled to C-callable code (AUDIO THREAD ONLY).

Both are Numba `@cfunc`s: PortAudio or JACK calls them directly on its real-time thread, and
they never touch the GIL. They receive one address (PortAudio's `userData`, JACK's `arg`):
- PortAudio: the engine's pointer table (`engine.rt.layout`);
- JACK: a small int64 table (`J_*` below) holding the engine table's address, the port
  handles and libjack's function addresses, so MIDI is read here with each event's frame
  offset and applied at that exact sample of this period.
They are compiled (and cached on disk) by `engine.control.warmup`, never on the audio thread.
"""
import ctypes

import numpy as np
from numba import carray, cfunc, njit, types

from engine.rt import render
from engine.rt.dsp import JIT
from engine.rt.events import K_PITCH_BEND
from engine.rt.layout import (
    B_OUT_L, B_OUT_R, C_CHAN_PART, C_FRAME_OFFSET, C_MIDI_DROPPED, C_MIDI_SOURCE, C_SAMPLE_TIME,
    C_XRUNS,
    MAXBLOCK, N_SLOTS, S_PTARGET, TABLE_WIDTH,
)
from engine.rt.midi import IGNORED, MALFORMED, parse
from engine.rt.params import P_BEND_RANGE
from engine.rt.ptr import (
    call_i32_ptr_ptr_u32, call_ptr_u32, call_u32_ptr, f32_ptr, i64_ptr, u8_ptr, voidptr_to_int,
)

# ---- PortAudio -------------------------------------------------------------------------------
PA_OUTPUT_UNDERFLOW = 0x4
PA_OUTPUT_OVERFLOW = 0x8
PA_PRIMING_OUTPUT = 0x10
_ULONG = types.uint64 if ctypes.sizeof(ctypes.c_ulong) == 8 else types.uint32
PA_CALLBACK_SIG = types.int32(types.voidptr, types.voidptr, _ULONG, types.voidptr, _ULONG,
                              types.voidptr)


@njit(**JIT)
def _table(addr):
    return carray(i64_ptr(addr), N_SLOTS * TABLE_WIDTH)


@njit(**JIT)
def render_into(tab, left, right, frames):
    """Render `frames` frames into two float32 channel buffers (strided views of one
    interleaved buffer work too), in blocks of at most MAXBLOCK."""
    bus = render.bus_of(tab)
    done = 0
    while done < frames:
        n = min(frames - done, MAXBLOCK)
        render.run_block(tab, n)
        for i in range(n):
            left[done + i] = bus[B_OUT_L, i]
            right[done + i] = bus[B_OUT_R, i]
        done += n


@njit(**JIT)
def pa_process(tab, out_addr, frames, status):
    """Render `frames` stereo frames into PortAudio's interleaved float32 buffer."""
    if status & (PA_OUTPUT_UNDERFLOW | PA_OUTPUT_OVERFLOW):
        render.ctl_of(tab)[C_XRUNS] += 1
    out = carray(f32_ptr(out_addr), frames * 2)
    render_into(tab, out[0::2], out[1::2], frames)
    return 0


def _pa_callback(inp, output, frames, time_info, status, user_data):
    return pa_process(_table(voidptr_to_int(user_data)), voidptr_to_int(output), frames, status)


def portaudio_callback():
    """The compiled PortAudio callback (`.address` goes to Pa_OpenStream)."""
    return cfunc(PA_CALLBACK_SIG, cache=True, nopython=True, error_model="numpy")(_pa_callback)


# ---- JACK ------------------------------------------------------------------------------------
# the JACK driver's table: engine table, ports, libjack functions, event scratch
J_ENGINE, J_MIDI_PORT, J_OUT_L, J_OUT_R, J_GET_BUFFER, J_EVENT_COUNT, J_EVENT_GET, J_EVENT, \
    J_CLIENT, J_LAST_FRAME_TIME = range(10)
J_SIZE = 10
EVENT_STRUCT_WORDS = 3   # jack_midi_event_t: uint32 time (+pad), size_t size, uint8 *buffer
JACK_CALLBACK_SIG = types.int32(types.uint32, types.voidptr)


@njit(**JIT)
def jack_read_midi(tab, jt, nframes):
    """Turn this period's JACK MIDI events into pending events at their frame offsets (and
    report them to the control side through the out queue)."""
    if jt[J_MIDI_PORT] == 0:
        return
    ctl = render.ctl_of(tab)
    buf = call_ptr_u32(jt[J_GET_BUFFER], jt[J_MIDI_PORT], np.uint32(nframes))
    if buf == 0:
        return
    count = call_u32_ptr(jt[J_EVENT_COUNT], buf)
    ev = carray(i64_ptr(jt[J_EVENT]), EVENT_STRUCT_WORDS)
    ptarget = render.f64_2d(tab, S_PTARGET)
    start = ctl[C_SAMPLE_TIME]
    src = float(ctl[C_MIDI_SOURCE])
    for i in range(count):
        if call_i32_ptr_ptr_u32(jt[J_EVENT_GET], jt[J_EVENT], buf, np.uint32(i)) != 0:
            ctl[C_MIDI_DROPPED] += 1
            continue
        offset = ev[0] & 0xFFFFFFFF
        size = min(max(ev[1], 0), 3)     # channel messages are <= 3 bytes; sysex is ignored
        kind, ch, a, b = parse(carray(u8_ptr(ev[2]), size), size)
        if kind == MALFORMED:
            ctl[C_MIDI_DROPPED] += 1
            continue
        if kind == IGNORED:
            continue
        part = ctl[C_CHAN_PART + ch]
        if kind == K_PITCH_BEND:
            b = b * ptarget[part, P_BEND_RANGE]
        t = float(start + min(offset, nframes - 1))
        render.add_event(tab, t, kind, part, a, b, src)
        render.report_event(tab, t, kind, part, a, b, src)


@njit(**JIT)
def jack_process(jt, nframes):
    tab = _table(jt[J_ENGINE])
    ctl = render.ctl_of(tab)
    frame = call_u32_ptr(jt[J_LAST_FRAME_TIME], jt[J_CLIENT])
    ctl[C_FRAME_OFFSET] = np.int64(frame) - ctl[C_SAMPLE_TIME]
    jack_read_midi(tab, jt, nframes)
    out_l = carray(f32_ptr(call_ptr_u32(jt[J_GET_BUFFER], jt[J_OUT_L], np.uint32(nframes))),
                   nframes)
    out_r = carray(f32_ptr(call_ptr_u32(jt[J_GET_BUFFER], jt[J_OUT_R], np.uint32(nframes))),
                   nframes)
    render_into(tab, out_l, out_r, nframes)
    return 0


def _jack_callback(nframes, arg):
    return jack_process(carray(i64_ptr(voidptr_to_int(arg)), J_SIZE), nframes)


def jack_callback():
    """The compiled JACK process callback (`.address` goes to jack_set_process_callback)."""
    return cfunc(JACK_CALLBACK_SIG, cache=True, nopython=True, error_model="numpy")(_jack_callback)


JACK_XRUN_SIG = types.int32(types.voidptr)


def _jack_xrun(arg):
    jt = carray(i64_ptr(voidptr_to_int(arg)), J_SIZE)
    render.ctl_of(_table(jt[J_ENGINE]))[C_XRUNS] += 1
    return 0


def jack_xrun_callback():
    """The compiled JACK xrun callback: counts xruns in the engine's counters."""
    return cfunc(JACK_XRUN_SIG, cache=True, nopython=True, error_model="numpy")(_jack_xrun)
