"""JACK test clients whose callbacks are compiled (test code; no Python on JACK's threads).

`CClient` is a JACK client (libjack through ctypes) whose process, xrun and shutdown callbacks
are Numba kernels behind `engine.rt.cfunc.RtCallback` entry points, exactly like bandmate's
own JACK driver: they never need the GIL, so nothing the test process does in Python (another
thread spinning, the garbage collector, a DUT's Python MIDI thread) can make them miss a cycle.
Only the host can (then the server reports an xrun, which every client counts).

One kernel, `client_process`, serves every role; the role is which ports and arrays a client
has (all preallocated, reached through an int64 table `T_*`):

  * MIDI out: a schedule of messages (frame, bytes), filled by the test before or while the
    client runs (append-only, published by a count), each written at its exact frame; the
    frame each actually went out at is recorded.
  * audio in: a ring of whole periods, each stamped with its absolute first frame.
  * MIDI in: every note-on's absolute arrival frame is logged.
  * audio out: a 1.0 impulse at the offset of each note-on, in the same period (`instant`), or
    a period later from another client's arrival log (`play_from`: a split instrument).

Frame times are JACK's (jack_last_frame_time), as int64; a schedule is relative to an anchor:
0 (absolute frames, for real-time runs that schedule ahead of `now()`), or set by the callback
itself to its current frame + `lead` when armed (for freewheel runs, where the frame clock
races ahead of any Python thread).
"""
from __future__ import annotations

import ctypes

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from engine.drivers.jack import AUDIO_TYPE, MIDI_TYPE, NO_START_SERVER, PORT_IS_INPUT, \
    PORT_IS_OUTPUT, JackError, _address, _libjack
from engine.rt.cfunc import RtCallback
from engine.rt.dsp import JIT
from engine.rt.ptr import (call_i32_ptr_ptr_u32, call_ptr_u32, call_u32_ptr, call_void_ptr,
                           carray, f32_ptr, fence, i64_ptr, u8_ptr, voidptr_to_int)

_I8P = ir.IntType(8).as_pointer()


@intrinsic
def call_i32_ptr_u32_ptr_u64(typingctx, fn, a, n, b, size):
    """Call `int fn(void *a, uint32_t n, void *b, size_t size)` (jack_midi_event_write)."""
    sig = types.int32(types.int64, types.int64, types.uint32, types.int64, types.int64)

    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.IntType(32), [_I8P, ir.IntType(32), _I8P, ir.IntType(64)])
        return builder.call(builder.inttoptr(args[0], fnty.as_pointer()),
                            [builder.inttoptr(args[1], _I8P), args[2],
                             builder.inttoptr(args[3], _I8P), args[4]])

    return sig, codegen


# ---- the table -------------------------------------------------------------------------------
(T_GET_BUFFER, T_MIDI_CLEAR, T_MIDI_WRITE, T_EVENT_COUNT, T_EVENT_GET, T_LAST_FRAME_TIME,
 T_CLIENT, T_EVENT, T_MIDI_OUT, T_MIDI_IN, T_AUDIO_OUT, T_NIN, T_IN0, T_IN1, T_IN2, T_IN3,
 T_SCHED_FRAMES, T_SCHED_OFF, T_SCHED_LEN, T_SCHED_POOL, T_SCHED_SENT, T_SCHED_COUNT,
 T_SCHED_NEXT, T_LATE, T_DROPPED, T_ANCHOR, T_LEAD, T_REC, T_STAMPS, T_SLOTS, T_PERIOD,
 T_CYCLES, T_ARRIVALS, T_NARRIVALS, T_MAXARRIVALS, T_INSTANT, T_PLAY_FROM, T_PLAYED,
 T_XRUNS, T_SHUTDOWN, T_LAST_FT) = range(41)
T_SIZE = 48
ANCHOR_ARMED = -1     # T_ANCHOR: the next cycle sets the anchor to its frame + T_LEAD
ANCHOR_HOLD = -2      # T_ANCHOR: send nothing yet


@njit(inline="always", **JIT)
def _i64(addr, n):
    return carray(i64_ptr(addr), n)


@njit(**JIT)
def client_process(t, nframes):
    ft = np.int64(call_u32_ptr(t[T_LAST_FRAME_TIME], t[T_CLIENT]))
    n = np.int64(nframes)
    # MIDI out: every scheduled message due in this period, at its frame
    if t[T_MIDI_OUT] != 0:
        buf = call_ptr_u32(t[T_GET_BUFFER], t[T_MIDI_OUT], nframes)
        call_void_ptr(t[T_MIDI_CLEAR], buf)
        anchor = t[T_ANCHOR]
        if anchor == ANCHOR_ARMED:
            anchor = ft + t[T_LEAD]
            t[T_ANCHOR] = anchor
        count = t[T_SCHED_COUNT]
        fence()
        if anchor >= 0:
            frames = _i64(t[T_SCHED_FRAMES], count)
            offs = _i64(t[T_SCHED_OFF], count)
            lens = _i64(t[T_SCHED_LEN], count)
            sent = _i64(t[T_SCHED_SENT], count)
            k = t[T_SCHED_NEXT]
            while k < count and anchor + frames[k] < ft + n:
                off = anchor + frames[k] - ft
                if off < 0:
                    off = np.int64(0)
                    t[T_LATE] += 1
                if call_i32_ptr_u32_ptr_u64(t[T_MIDI_WRITE], buf, np.uint32(off),
                                            t[T_SCHED_POOL] + offs[k], lens[k]) == 0:
                    sent[k] = ft + off
                else:
                    t[T_DROPPED] += 1
                k += 1
            t[T_SCHED_NEXT] = k
    # MIDI in: log note-on arrivals; an instant instrument answers in this period
    out = carray(f32_ptr(0), 0)
    if t[T_AUDIO_OUT] != 0:
        out = carray(f32_ptr(call_ptr_u32(t[T_GET_BUFFER], t[T_AUDIO_OUT], nframes)), n)
        for i in range(n):
            out[i] = 0.0
    if t[T_MIDI_IN] != 0:
        buf = call_ptr_u32(t[T_GET_BUFFER], t[T_MIDI_IN], nframes)
        count = call_u32_ptr(t[T_EVENT_COUNT], buf)
        ev = _i64(t[T_EVENT], 3)
        log = _i64(t[T_ARRIVALS], t[T_MAXARRIVALS])
        for j in range(count):
            if call_i32_ptr_ptr_u32(t[T_EVENT_GET], t[T_EVENT], buf, np.uint32(j)) != 0:
                continue
            off = ev[0] & 0xFFFFFFFF
            if ev[1] != 3:
                continue
            data = carray(u8_ptr(ev[2]), 3)
            if (data[0] & 0xF0) != 0x90 or data[2] == 0:
                continue
            if t[T_NARRIVALS] < t[T_MAXARRIVALS]:
                log[t[T_NARRIVALS]] = ft + off
                fence()
                t[T_NARRIVALS] += 1
            if t[T_INSTANT] != 0 and t[T_AUDIO_OUT] != 0 and off < n:
                out[off] = 1.0
    # a split instrument's audio half: play another client's arrivals, each at its offset
    if t[T_PLAY_FROM] != 0 and t[T_AUDIO_OUT] != 0:
        other = _i64(t[T_PLAY_FROM], T_SIZE)
        avail = other[T_NARRIVALS]
        fence()
        log = _i64(other[T_ARRIVALS], other[T_MAXARRIVALS])
        while t[T_PLAYED] < avail:
            out[log[t[T_PLAYED]] % n] = 1.0
            t[T_PLAYED] += 1
    # audio in: one ring slot per period, stamped, then published
    nin = t[T_NIN]
    if nin > 0:
        slots = t[T_SLOTS]
        period = t[T_PERIOD]
        slot = t[T_CYCLES] % slots
        rec = carray(f32_ptr(t[T_REC]), slots * nin * period)
        m = min(n, period)
        for c in range(nin):
            src = carray(f32_ptr(call_ptr_u32(t[T_GET_BUFFER], t[T_IN0 + c], nframes)), n)
            base = (slot * nin + c) * period
            for i in range(m):
                rec[base + i] = src[i]
        _i64(t[T_STAMPS], slots)[slot] = ft
    t[T_LAST_FT] = ft
    fence()
    t[T_CYCLES] += 1
    return np.int32(0)


@njit(inline="always", **JIT)
def _table(arg):
    return carray(i64_ptr(voidptr_to_int(arg)), T_SIZE)


@njit(**JIT)
def client_entry(nframes, arg):
    return client_process(_table(arg), nframes)


@njit(**JIT)
def client_xrun(arg):
    _table(arg)[T_XRUNS] += 1
    return np.int32(0)


@njit(**JIT)
def client_shutdown(arg):
    _table(arg)[T_SHUTDOWN] = 1


_CALLBACKS: dict = {}


def callbacks():
    """(process, xrun, shutdown) C entry points, built once per process."""
    if not _CALLBACKS:
        _CALLBACKS["process"] = RtCallback("test_client", client_entry,
                                           types.int32(types.uint32, types.voidptr))
        _CALLBACKS["xrun"] = RtCallback("test_client_xrun", client_xrun,
                                        types.int32(types.voidptr))
        _CALLBACKS["shutdown"] = RtCallback("test_client_shutdown", client_shutdown,
                                            types.void(types.voidptr))
    return _CALLBACKS["process"], _CALLBACKS["xrun"], _CALLBACKS["shutdown"]


def _libjack_more():
    lib = _libjack()
    vp = ctypes.c_void_p
    lib.jack_midi_clear_buffer.argtypes = [vp]
    lib.jack_frame_time.argtypes = [vp]
    lib.jack_frame_time.restype = ctypes.c_uint32
    lib.jack_disconnect.argtypes = [vp, ctypes.c_char_p, ctypes.c_char_p]
    lib.jack_set_freewheel.argtypes = [vp, ctypes.c_int]
    lib.jack_port_connected_to.argtypes = [vp, ctypes.c_char_p]
    lib.jack_port_get_all_connections.argtypes = [vp, vp]
    lib.jack_port_get_all_connections.restype = ctypes.POINTER(ctypes.c_char_p)
    lib.jack_port_by_name.argtypes = [vp, ctypes.c_char_p]
    lib.jack_port_by_name.restype = vp
    return lib


class CClient:
    """A JACK client with compiled callbacks (see the module doc). Ports are chosen at
    construction; `activate()` starts it, `close()` ends it."""

    def __init__(self, name: str, *, midi_out: bool = False, midi_in: bool = False,
                 audio_in: int = 0, audio_out: bool = False, instant: bool = False,
                 play_from: "CClient | None" = None, seconds: float = 20.0,
                 max_messages: int = 1 << 14, pool_bytes: int = 1 << 20,
                 max_arrivals: int = 1 << 14):
        if audio_in > 4:
            raise ValueError("at most 4 audio inputs")
        self.lib = _libjack_more()
        status = ctypes.c_int(0)
        self.client = self.lib.jack_client_open(name.encode(), NO_START_SERVER,
                                                ctypes.byref(status))
        if not self.client:
            raise JackError(f"{name}: no JACK server (status 0x{status.value:x})")
        self.name = self.lib.jack_get_client_name(self.client).decode()
        self.rate = int(self.lib.jack_get_sample_rate(self.client))
        self.period = int(self.lib.jack_get_buffer_size(self.client))
        self.active = False
        t = self.t = np.zeros(T_SIZE, np.int64)
        reg = self.lib.jack_port_register
        self.ports: dict[str, int] = {}

        def port(pname, kind, flags):
            p = reg(self.client, pname.encode(), kind, flags, 0)
            if not p:
                self.close()
                raise JackError(f"{name}: JACK refused port {pname}")
            self.ports[pname] = p
            return p

        t[T_GET_BUFFER] = _address(self.lib.jack_port_get_buffer)
        t[T_MIDI_CLEAR] = _address(self.lib.jack_midi_clear_buffer)
        t[T_MIDI_WRITE] = _address(self.lib.jack_midi_event_write)
        t[T_EVENT_COUNT] = _address(self.lib.jack_midi_get_event_count)
        t[T_EVENT_GET] = _address(self.lib.jack_midi_event_get)
        t[T_LAST_FRAME_TIME] = _address(self.lib.jack_last_frame_time)
        t[T_CLIENT] = self.client
        self._event = np.zeros(3, np.int64)
        t[T_EVENT] = self._event.ctypes.data
        if midi_out:
            t[T_MIDI_OUT] = port("midi_out", MIDI_TYPE, PORT_IS_OUTPUT)
        if midi_in:
            t[T_MIDI_IN] = port("midi_in", MIDI_TYPE, PORT_IS_INPUT)
        if audio_out:
            t[T_AUDIO_OUT] = port("out", AUDIO_TYPE, PORT_IS_OUTPUT)
        for c in range(audio_in):
            t[T_IN0 + c] = port(f"in_{c + 1}", AUDIO_TYPE, PORT_IS_INPUT)
        t[T_NIN] = audio_in
        self.channels = audio_in
        # schedule
        self._frames = np.zeros(max_messages, np.int64)
        self._offs = np.zeros(max_messages, np.int64)
        self._lens = np.zeros(max_messages, np.int64)
        self._pool = np.zeros(pool_bytes, np.uint8)
        self._sent = np.full(max_messages, -1, np.int64)
        self._pool_used = 0
        t[T_SCHED_FRAMES] = self._frames.ctypes.data
        t[T_SCHED_OFF] = self._offs.ctypes.data
        t[T_SCHED_LEN] = self._lens.ctypes.data
        t[T_SCHED_POOL] = self._pool.ctypes.data
        t[T_SCHED_SENT] = self._sent.ctypes.data
        # recording
        self.slots = max(4, int(np.ceil(seconds * self.rate / self.period)))
        self._rec = np.zeros(self.slots * max(audio_in, 1) * self.period, np.float32)
        self._stamps = np.full(self.slots, -1, np.int64)
        t[T_REC] = self._rec.ctypes.data
        t[T_STAMPS] = self._stamps.ctypes.data
        t[T_SLOTS] = self.slots
        t[T_PERIOD] = self.period
        # arrivals
        self._arrivals = np.full(max_arrivals, -1, np.int64)
        t[T_ARRIVALS] = self._arrivals.ctypes.data
        t[T_MAXARRIVALS] = max_arrivals
        t[T_INSTANT] = int(instant)
        self._play_from = play_from
        if play_from is not None:
            t[T_PLAY_FROM] = play_from.t.ctypes.data
        self._arg = ctypes.c_void_p(t.ctypes.data)
        process, xrun, shutdown = callbacks()
        if self.lib.jack_set_process_callback(self.client, process.address, self._arg) != 0:
            self.close()
            raise JackError(f"{name}: JACK refused the process callback")
        self.lib.jack_set_xrun_callback(self.client, xrun.address, self._arg)
        self.lib.jack_on_shutdown(self.client, shutdown.address, self._arg)

    # ---------------------------------------------------------------- lifecycle
    def activate(self) -> "CClient":
        if not self.active:
            if self.lib.jack_activate(self.client) != 0:
                raise JackError(f"{self.name}: JACK refused to activate")
            self.active = True
        return self

    def close(self) -> None:
        if self.client:
            if self.active:
                self.lib.jack_deactivate(self.client)
                self.active = False
            self.lib.jack_client_close(self.client)
            self.client = None

    def __enter__(self) -> "CClient":
        return self.activate()

    def __exit__(self, *exc) -> None:
        self.close()

    # ---------------------------------------------------------------- state
    @property
    def xruns(self) -> int:
        return int(self.t[T_XRUNS])

    @property
    def cycles(self) -> int:
        return int(self.t[T_CYCLES])

    @property
    def alive(self) -> bool:
        return self.t[T_SHUTDOWN] == 0

    def port_name(self, short: str) -> str:
        return self.lib.jack_port_name(self.ports[short]).decode()

    def now(self) -> int:
        """The estimated current JACK frame (jack_frame_time)."""
        return int(self.lib.jack_frame_time(self.client))

    def arrivals(self) -> list[int]:
        n = int(self.t[T_NARRIVALS])
        return self._arrivals[:n].tolist()
