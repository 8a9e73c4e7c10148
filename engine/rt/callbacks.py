"""The live drivers' process callbacks, compiled to C-callable code (AUDIO THREAD ONLY).

Each is an `@njit` kernel behind a C entry point built by `engine.rt.cfunc.RtCallback` (not
Numba's `@cfunc`, whose wrapper keeps a GIL-taking error path): PortAudio or JACK calls it
directly on its own thread and nothing in it can reach Python (tests/test_rt_proof.py reads
the compiled code). They receive one address (PortAudio's `userData`, JACK's `arg`):
- PortAudio: the engine's pointer table (`engine.rt.layout`);
- JACK: a small int64 table (`J_*` below) holding the engine table's address, the port
  handles and libjack's function addresses, so MIDI is read here with each event's frame
  offset and applied at that exact sample of this period, and the MIDI out messages the render
  applied (K_MIDI_OUT, engine.control.midi_out) are written to the midi_out port at their own
  frame offsets; with MIDI thru on (C_THRU) the player's messages are echoed there too, at
  their frame offsets one period later, and the callback keeps which thru notes sound so that
  an unplugged source or a release the control side asks for (C_THRU_REQ) ends them.
A control the MIDI mapping binds (C_CC_MAPPED) is the mapper's alone: the callback reports it
and neither applies its built-in action (mod wheel, sustain, all notes off) nor echoes it.
They are compiled (and cached on disk) by `engine.control.warmup`, never on the audio thread.
JACK's other callbacks (xrun, port connect, shutdown) are compiled the same way: JACK may call
its shutdown callback from the process thread, so none of them is Python; they only set
counters that the control side polls.
"""
import ctypes

import numpy as np
from numba import njit, types

from engine.rt import render
from engine.rt.cfunc import RtCallback
from engine.rt.dsp import JIT
from engine.rt.events import K_SOURCE_GONE
from engine.rt.layout import (
    B_OUT_L, B_OUT_R, C_CC_MAPPED, C_CHAN_PART, C_FRAME_OFFSET, C_MIDI_DROPPED, C_MIDI_SOURCE,
    C_MOUT_COUNT, C_MOUT_DROPPED, C_MOUT_SENT, C_SAMPLE_TIME, C_THRU, C_THRU_COUNT,
    C_THRU_DONE, C_THRU_HELD, C_THRU_PEDAL, C_THRU_PENDING, C_THRU_REQ, C_XRUNS,
    MAXBLOCK, N_SLOTS, S_MOUT, S_THRU, TABLE_WIDTH,
)
from engine.rt.midi import IGNORED, MALFORMED, control_report, message_size, parse
from engine.rt.ptr import (
    carray, call_i32_ptr_ptr_u32, call_ptr_ptr_u32_u64, call_ptr_u32, call_u32_ptr, call_void_ptr,
    f32_ptr, i64_ptr, u8_ptr, voidptr_to_int,
)

# ---- PortAudio -------------------------------------------------------------------------------
PA_OUTPUT_UNDERFLOW = 0x4
PA_OUTPUT_OVERFLOW = 0x8
PA_PRIMING_OUTPUT = 0x10
_ULONG = types.uint64 if ctypes.sizeof(ctypes.c_ulong) == 8 else types.uint32
PA_CALLBACK_SIG = types.int32(types.voidptr, types.voidptr, _ULONG, types.voidptr, _ULONG,
                              types.voidptr)


@njit(inline="always", **JIT)
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


@njit(**JIT)
def pa_entry(inp, output, frames, time_info, status, user_data):
    """PortAudio's stream callback: userData is the engine's pointer table."""
    return pa_process(_table(voidptr_to_int(user_data)), voidptr_to_int(output), frames, status)


_BUILT: dict = {}   # name -> RtCallback: built once per process, kept alive while called


def _built(name, kernel, sig):
    if name not in _BUILT:
        _BUILT[name] = RtCallback(name, kernel, sig)
    return _BUILT[name]


def portaudio_callback():
    """The compiled PortAudio callback (`.address` goes to Pa_OpenStream)."""
    return _built("portaudio", pa_entry, PA_CALLBACK_SIG)


# ---- JACK ------------------------------------------------------------------------------------
# the JACK driver's table: engine table, ports, libjack functions, event scratch
J_ENGINE, J_MIDI_PORT, J_OUT_L, J_OUT_R, J_GET_BUFFER, J_EVENT_COUNT, J_EVENT_GET, J_EVENT, \
    J_CLIENT, J_LAST_FRAME_TIME, J_PORT_BY_ID, J_UNPLUGS, J_UNPLUGS_DONE, J_SHUTDOWN, \
    J_XRUNS, J_MIDI_OUT_PORT, J_CLEAR_BUFFER, J_EVENT_RESERVE = range(18)
J_SIZE = 20
# J_UNPLUGS: MIDI sources disconnected from the input port (counted by the port-connect
#   callback, JACK's notification thread); J_UNPLUGS_DONE: how many of those the process
#   callback has answered (it releases every note read from JACK MIDI);
# J_MIDI_OUT_PORT: the midi_out port (0: none); J_CLEAR_BUFFER, J_EVENT_RESERVE:
#   jack_midi_clear_buffer, jack_midi_event_reserve
# J_SHUTDOWN: 1 once the server has shut the client down; J_XRUNS: xruns JACK reported
EVENT_STRUCT_WORDS = 3   # jack_midi_event_t: uint32 time (+pad), size_t size, uint8 *buffer


@njit(inline="always", **JIT)
def _bit(ctl, base, ch, number):
    """Bit `number` (0..127) of MIDI channel `ch` (0..15) in the 32-entry mask at ctl[base]."""
    return (ctl[base + 2 * ch + (number >> 6)] >> (number & 63)) & 1


@njit(inline="always", **JIT)
def _set_bit(ctl, base, ch, number, on):
    k = base + 2 * ch + (number >> 6)
    bit = np.int64(1) << np.int64(number & 63)
    ctl[k] = (ctl[k] | bit) if on else (ctl[k] & ~bit)


@njit(**JIT)
def _thru_row(tab, ctl, offset, status, data1, data2):
    """Queue one thru message at frame `offset` (False: no room, counted as dropped)."""
    rows = render.i64_2d(tab, S_THRU)
    n = ctl[C_THRU_COUNT]
    if n >= rows.shape[0]:
        ctl[C_MOUT_DROPPED] += 1
        return False
    rows[n, 0] = offset
    rows[n, 1] = status | (data1 & 0x7F) << 8 | (data2 & 0x7F) << 16
    ctl[C_THRU_COUNT] = n + 1
    return True


@njit(**JIT)
def _thru(tab, ctl, offset, data, size):
    """Echo a player's channel message (notes, aftertouch, controls, pitch bend; not program
    change, bandmate's own patch control) to MIDI thru, on the channel C_THRU says; the notes
    and pedal it leaves sounding are kept for `_thru_release`."""
    hi = int(data[0]) & 0xF0
    if hi < 0x80 or hi == 0xC0 or hi >= 0xF0 or size < 2:
        return
    mode = ctl[C_THRU]
    if mode < 1 or mode > 17:
        return
    ch = (int(data[0]) & 0x0F) if mode == 17 else int(mode - 1)
    d1 = int(data[1])
    d2 = int(data[2]) if size > 2 else 0
    if not _thru_row(tab, ctl, offset, hi | ch, d1, d2):
        return
    if hi == 0x90 or hi == 0x80:
        _set_bit(ctl, C_THRU_HELD, ch, d1, hi == 0x90 and d2 > 0)
    elif hi == 0xB0 and d1 == 64:
        bit = np.int64(1) << np.int64(ch)
        ctl[C_THRU_PEDAL] = (ctl[C_THRU_PEDAL] | bit) if d2 >= 64 else \
            (ctl[C_THRU_PEDAL] & ~bit)
    elif hi == 0xB0 and (d1 == 120 or d1 == 123):
        ctl[C_THRU_HELD + 2 * ch] = 0
        ctl[C_THRU_HELD + 2 * ch + 1] = 0


@njit(**JIT)
def _thru_release(tab, ctl):
    """End everything thru left sounding, at offset 0: sustain up, then a note-off for each
    held note. True when all went out (else the rest follows next period)."""
    for ch in range(16):
        bit = np.int64(1) << np.int64(ch)
        if ctl[C_THRU_PEDAL] & bit:
            if not _thru_row(tab, ctl, 0, 0xB0 | ch, 64, 0):
                return False
            ctl[C_THRU_PEDAL] &= ~bit
        for note in range(128):
            if ctl[C_THRU_HELD + 2 * ch + (note >> 6)] == 0:
                continue
            if _bit(ctl, C_THRU_HELD, ch, note):
                if not _thru_row(tab, ctl, 0, 0x80 | ch, note, 0):
                    return False
                _set_bit(ctl, C_THRU_HELD, ch, note, False)
    return True


@njit(**JIT)
def jack_read_midi(tab, jt, nframes):
    """Turn this period's JACK MIDI events into pending events at their frame offsets (and
    report them to the control side through the out queue; echo them to MIDI thru)."""
    if jt[J_MIDI_PORT] == 0:
        return
    ctl = render.ctl_of(tab)
    buf = call_ptr_u32(jt[J_GET_BUFFER], jt[J_MIDI_PORT], np.uint32(nframes))
    if buf == 0:
        return
    count = call_u32_ptr(jt[J_EVENT_COUNT], buf)
    ev = carray(i64_ptr(jt[J_EVENT]), EVENT_STRUCT_WORDS)
    start = ctl[C_SAMPLE_TIME]
    src = float(ctl[C_MIDI_SOURCE])
    thru = ctl[C_THRU] != 0 and jt[J_MIDI_OUT_PORT] != 0
    for i in range(count):
        if call_i32_ptr_ptr_u32(jt[J_EVENT_GET], jt[J_EVENT], buf, np.uint32(i)) != 0:
            ctl[C_MIDI_DROPPED] += 1
            continue
        offset = ev[0] & 0xFFFFFFFF
        size = min(max(ev[1], 0), 3)     # channel messages are <= 3 bytes; sysex is ignored
        data = carray(u8_ptr(ev[2]), size)
        kind, ch, a, b = parse(data, size)
        raw = control_report(data, size) if kind != MALFORMED else 0
        if kind == MALFORMED or raw == MALFORMED:
            ctl[C_MIDI_DROPPED] += 1
            continue
        offset = min(offset, nframes - 1)
        t = float(start + offset)
        if raw == 1:        # controls for the mapper, realtime for the clock follower
            render.report_midi(tab, t, data[0], data[1] if size > 1 else 0,
                               data[2] if size > 2 else 0, src)
        mapped = (int(data[0]) & 0xF0) == 0xB0 and _bit(ctl, C_CC_MAPPED, ch, int(data[1])) != 0
        if thru and not mapped:
            _thru(tab, ctl, offset, data, size)
        if kind == IGNORED or mapped:
            continue
        part = ctl[C_CHAN_PART + ch]
        render.add_event(tab, t, kind, part, a, b, src)
        render.report_event(tab, t, kind, part, a, b, src)


@njit(inline="always", **JIT)
def _write_message(jt, ctl, buf, offset, msg):
    """Reserve room for one packed message at frame `offset` of port buffer `buf`, fill it."""
    status = msg & 0xFF
    size = message_size(status)
    dest = call_ptr_ptr_u32_u64(jt[J_EVENT_RESERVE], buf, np.uint32(offset), np.uint64(size))
    if dest == 0:
        ctl[C_MOUT_DROPPED] += 1
        return
    out = carray(u8_ptr(dest), size)
    out[0] = np.uint8(status)
    if size > 1:
        out[1] = np.uint8((msg >> 8) & 0x7F)
    if size > 2:
        out[2] = np.uint8((msg >> 16) & 0x7F)
    ctl[C_MOUT_SENT] += 1


@njit(**JIT)
def jack_write_midi(tab, jt, start, nframes):
    """Write the MIDI out messages this period's render applied (S_MOUT) and the MIDI thru
    ones (S_THRU) to the midi_out port, merged in time order (JACK wants them so), each at its
    frame offset (sample time - `start`; earlier: offset 0; at equal offsets the band's
    first). The port buffer is cleared every period, as JACK requires, whether or not there is
    anything to send."""
    ctl = render.ctl_of(tab)
    n = ctl[C_MOUT_COUNT]
    ctl[C_MOUT_COUNT] = 0
    nt = ctl[C_THRU_COUNT]
    ctl[C_THRU_COUNT] = 0
    if jt[J_MIDI_OUT_PORT] == 0:
        return
    buf = call_ptr_u32(jt[J_GET_BUFFER], jt[J_MIDI_OUT_PORT], np.uint32(nframes))
    if buf == 0:
        return
    call_void_ptr(jt[J_CLEAR_BUFFER], buf)
    rows = render.f64_2d(tab, S_MOUT)
    thru = render.i64_2d(tab, S_THRU)
    n = min(n, rows.shape[0])
    nt = min(nt, thru.shape[0])
    i = 0
    j = 0
    while i < n or j < nt:
        offset = nframes
        if i < n:
            offset = min(max(int(rows[i, 0]) - start, 0), nframes - 1)
        if j < nt and thru[j, 0] < offset:
            _write_message(jt, ctl, buf, thru[j, 0], thru[j, 1])
            j += 1
        else:
            _write_message(jt, ctl, buf, offset, int(rows[i, 1]))
            i += 1


@njit(**JIT)
def jack_process(jt, nframes):
    tab = _table(jt[J_ENGINE])
    ctl = render.ctl_of(tab)
    frame = call_u32_ptr(jt[J_LAST_FRAME_TIME], jt[J_CLIENT])
    ctl[C_FRAME_OFFSET] = np.int64(frame) - ctl[C_SAMPLE_TIME]
    ctl[C_THRU_COUNT] = 0
    unplugs = jt[J_UNPLUGS]
    if unplugs != jt[J_UNPLUGS_DONE]:     # a MIDI source left midi_in: nothing may stick
        render.add_event(tab, float(ctl[C_SAMPLE_TIME]), K_SOURCE_GONE, -1, 0.0, 0.0,
                         float(ctl[C_MIDI_SOURCE]))
        jt[J_UNPLUGS_DONE] = unplugs
        ctl[C_THRU_PENDING] = 1            # its thru notes too
    req = ctl[C_THRU_REQ]
    if req != ctl[C_THRU_DONE]:           # the control side's release (a panic, a stop)
        ctl[C_THRU_DONE] = req
        ctl[C_THRU_PENDING] = 1
    if ctl[C_THRU_PENDING] != 0 and _thru_release(tab, ctl):
        ctl[C_THRU_PENDING] = 0
    start = ctl[C_SAMPLE_TIME]
    jack_read_midi(tab, jt, nframes)
    ctl[C_MOUT_COUNT] = 0
    out_l = carray(f32_ptr(call_ptr_u32(jt[J_GET_BUFFER], jt[J_OUT_L], np.uint32(nframes))),
                   nframes)
    out_r = carray(f32_ptr(call_ptr_u32(jt[J_GET_BUFFER], jt[J_OUT_R], np.uint32(nframes))),
                   nframes)
    render_into(tab, out_l, out_r, nframes)
    jack_write_midi(tab, jt, start, nframes)
    return 0


@njit(inline="always", **JIT)
def _jack_table(arg):
    return carray(i64_ptr(voidptr_to_int(arg)), J_SIZE)


@njit(**JIT)
def jack_entry(nframes, arg):
    """JACK's process callback: arg is the driver's J_* table."""
    return jack_process(_jack_table(arg), nframes)


@njit(**JIT)
def jack_xrun_entry(arg):
    """JACK's xrun callback: counted in the engine's counters and the driver's table."""
    jt = _jack_table(arg)
    jt[J_XRUNS] += 1
    render.ctl_of(_table(jt[J_ENGINE]))[C_XRUNS] += 1
    return 0


@njit(**JIT)
def jack_port_connect_entry(a, b, connect, arg):
    """JACK's port-connect callback (its notification thread): a source leaving midi_in is
    counted; the process callback then releases the notes (a device unplugged mid-note)."""
    jt = _jack_table(arg)
    if connect == 0 and jt[J_MIDI_PORT] != 0 and \
            call_ptr_u32(jt[J_PORT_BY_ID], jt[J_CLIENT], b) == jt[J_MIDI_PORT]:
        jt[J_UNPLUGS] += 1


@njit(**JIT)
def jack_shutdown_entry(arg):
    """JACK's shutdown callback (possibly on the process thread): only a flag."""
    _jack_table(arg)[J_SHUTDOWN] = 1


JACK_CALLBACK_SIG = types.int32(types.uint32, types.voidptr)
JACK_XRUN_SIG = types.int32(types.voidptr)
JACK_PORT_CONNECT_SIG = types.void(types.uint32, types.uint32, types.int32, types.voidptr)
JACK_SHUTDOWN_SIG = types.void(types.voidptr)


def jack_callback():
    """The compiled JACK process callback (`.address` goes to jack_set_process_callback)."""
    return _built("jack_process", jack_entry, JACK_CALLBACK_SIG)


def jack_xrun_callback():
    """The compiled JACK xrun callback."""
    return _built("jack_xrun", jack_xrun_entry, JACK_XRUN_SIG)


def jack_port_connect_callback():
    """The compiled JACK port-connect callback."""
    return _built("jack_port_connect", jack_port_connect_entry, JACK_PORT_CONNECT_SIG)


def jack_shutdown_callback():
    """The compiled JACK shutdown callback."""
    return _built("jack_shutdown", jack_shutdown_entry, JACK_SHUTDOWN_SIG)


def all_callbacks():
    """Every C entry point the drivers hand to PortAudio or JACK (for warm-up and proofs)."""
    return [portaudio_callback(), jack_callback(), jack_xrun_callback(),
            jack_port_connect_callback(), jack_shutdown_callback()]
