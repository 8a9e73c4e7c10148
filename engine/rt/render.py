"""The render kernel: one block of the whole band (AUDIO THREAD ONLY).

`render_block(tab, nframes)` is the single entry point for every driver: the PortAudio and
JACK callbacks (`engine.rt.callbacks`) and the offline driver call exactly this function, so an
offline render and a live run of the same events are bit-identical.

Per block: drain both input queues into the pending store, then walk the block from event to
event. Each due event is applied at its exact sample offset; between events every part, the
mixer, the send effects and the master render the segment. A late event (its time already
past) applies at offset 0 and is counted.
"""
import math

import numpy as np
from numba import njit

from engine.rt import master
from engine.rt.dsp import JIT
from engine.rt.events import (
    A, ASAP, B, C, D, FX_MASTER, K_ALL_NOTES_OFF, K_FX, K_GRAPH, K_AFTERTOUCH, K_MOD_WHEEL,
    K_MIDI_IN, K_MIDI_OUT, K_MIDI_OUT_CUT, K_NOTE_OFF, K_NOTE_ON, K_PANIC, K_PITCH_BEND,
    K_SOURCE_GONE, K_SUSTAIN, K_TEMPO, K_UNIT_PARAM, KIND, PART, SEQ, TIME,
)
from engine.rt.layout import (
    B_CTX, B_PART0, B_GRAPH_END, B_GRAPH_FIRST, B_OUT_L, B_OUT_R, B_XFADE_L, B_XFADE_R,
    BANK_STRIDE, C_BANK, C_BANK_OPS, C_BLOCKS, C_PART_OP, C_DROPPED, C_GRAPH_ACK, C_GRAPH_BAD,
    C_GRAPH_GEN, C_LAST_NOTE_ON, C_LATE, C_NONFINITE, C_PENDING, C_SAMPLE_RATE, C_SAMPLE_TIME,
    C_SEQ, C_STEALS, C_VOICES_ACTIVE, C_XFADE_LEFT, C_XFADE_LEN, G_PROG, G_UIO, G_UPARAMS,
    G_USTATE, GL_ANCHOR_BEAT, GL_ANCHOR_SAMPLE, GL_TEMPO_BPM, M_PART_PEAK, M_PEAK_L, M_PEAK_R,
    MAX_OPS, NPARTS, S_BANK0, S_BUS, S_CTL, S_GLOBAL, S_MASTER_PARAMS, S_MASTER_STATE, S_METER,
    S_PENDING, S_QMIDI, S_QMIDI_IDX, S_QOUT, S_QOUT_IDX, S_QSCHED, S_QSCHED_IDX, TABLE_WIDTH,
    C_CLOCK_FN, C_TIMESPEC, C_CBTIME_W, S_CBTIME, CBTIME_CAP, C_CLOCK_SEQ, C_BLOCK_NS,
    C_BLOCK_SAMPLE, C_MOUT_COUNT, C_MOUT_DROPPED, C_MOUT_GEN, C_MOUT_LATE, C_MOUT_ON, S_MOUT,
)
from engine.rt.ptr import carray, call_i32_i32_ptr, f32_ptr, f64_ptr, fence, i64_ptr
from engine.rt.ringbuf import pop, push
from engine.rt.units.base import CTX_BEAT, CTX_SAMPLE_TIME, CTX_TEMPO_BPM
from engine.rt.units.dispatch import (PR_KIND, PR_PARAMS, PR_PARAMS_LEN, PR_STATE,
                                      PR_STATE_LEN, carry_program, event_unit, run_program,
                                      voices_unit)


# ---- the pointer table ---------------------------------------------------------------------

@njit(inline="always", **JIT)
def f64_2d(tab, slot):
    i = slot * TABLE_WIDTH
    if tab[i + 2] == 0:
        return carray(f64_ptr(tab[i]), (tab[i + 1], 1))
    return carray(f64_ptr(tab[i]), (tab[i + 1], tab[i + 2]))


@njit(inline="always", **JIT)
def f64_1d(tab, slot):
    i = slot * TABLE_WIDTH
    return carray(f64_ptr(tab[i]), tab[i + 1])


@njit(inline="always", **JIT)
def i64_1d(tab, slot):
    i = slot * TABLE_WIDTH
    return carray(i64_ptr(tab[i]), tab[i + 1])


@njit(inline="always", **JIT)
def i64_2d(tab, slot):
    i = slot * TABLE_WIDTH
    return carray(i64_ptr(tab[i]), (tab[i + 1], tab[i + 2]))


@njit(inline="always", **JIT)
def f32_1d(tab, slot):
    i = slot * TABLE_WIDTH
    return carray(f32_ptr(tab[i]), tab[i + 1])


@njit(inline="always", **JIT)
def ctl_of(tab):
    return i64_1d(tab, S_CTL)


@njit(inline="always", **JIT)
def bus_of(tab):
    return f64_2d(tab, S_BUS)


# ---- events ------------------------------------------------------------------------------------

@njit(inline="always", **JIT)
def _rank(kind):
    """Order of kinds at one sample: controls first (a note starts with its new settings),
    then note-offs and pedal/all-off, then note-ons."""
    if kind == K_NOTE_ON:
        return 2.0
    if kind == K_NOTE_OFF or kind == K_SUSTAIN or kind == K_ALL_NOTES_OFF or \
            kind == K_SOURCE_GONE or kind == K_PANIC:
        return 1.0
    return 0.0


@njit(inline="always", **JIT)
def _before(pending, i, j):
    """Event i comes before event j: by time, rank, part, note, then arrival. Only the last
    depends on arrival order, so events pushed in different batches still apply in one order."""
    x, y = pending[i, TIME], pending[j, TIME]
    if x != y:
        return x < y
    x, y = _rank(pending[i, KIND]), _rank(pending[j, KIND])
    if x != y:
        return x < y
    x, y = pending[i, PART], pending[j, PART]
    if x != y:
        return x < y
    x, y = pending[i, A], pending[j, A]
    if x != y:
        return x < y
    return pending[i, SEQ] < pending[j, SEQ]


# The pending store is a binary min-heap in place: rows [0, count) of S_PENDING, ordered by
# `_before`; row 0 is the next event to apply and the children of row i are rows 2i+1 and 2i+2.
# Adding an event sifts its row up; taking row 0 sinks the hole to a leaf and fills it with the
# last row: O(log n) row moves each, so a block with n events due costs O(n log n), not O(n^2).

@njit(inline="always", **JIT)
def _swap(pending, i, j):
    for c in range(pending.shape[1]):
        x = pending[i, c]
        pending[i, c] = pending[j, c]
        pending[j, c] = x


@njit(**JIT)
def _sift_up(pending, i):
    while i > 0:
        parent = (i - 1) >> 1
        if not _before(pending, i, parent):
            return
        _swap(pending, i, parent)
        i = parent


@njit(**JIT)
def _heap_add(pending, count, new_count):
    """Take rows [count, new_count), just appended to the heap's rows (by `pop`), into the heap.
    A row whose time is NaN could never fall due and would block the heap: it is dropped.
    Returns (the heap's new count, rows dropped)."""
    n = count
    dropped = 0
    for r in range(count, new_count):
        if math.isnan(pending[r, TIME]):
            dropped += 1
            continue
        if r != n:
            for c in range(pending.shape[1]):
                pending[n, c] = pending[r, c]
        _sift_up(pending, n)
        n += 1
    return n, dropped


@njit(**JIT)
def _heap_take(pending, count):
    """Remove row 0 (the first event) from the heap of `count` rows; returns the new count.
    Bottom-up: the hole at the root sinks to a leaf through the earlier child of each pair (one
    comparison and one row move per level), then the last row fills it and sifts up (rarely
    more than a level or two: it is a leaf's row, late in the order)."""
    count -= 1
    if count == 0:
        return 0
    width = pending.shape[1]
    i = 0
    child = 1
    while child < count:
        if child + 1 < count and _before(pending, child + 1, child):
            child += 1
        for c in range(width):
            pending[i, c] = pending[child, c]
        i = child
        child = 2 * i + 1
    if i != count:
        for c in range(width):
            pending[i, c] = pending[count, c]
        _sift_up(pending, i)
    return count


@njit(inline="always", **JIT)
def _beat_at(glob, t, sample_rate):
    """The beat position at sample time t (from the last tempo anchor; exact for any way a
    block is cut into spans)."""
    return glob[GL_ANCHOR_BEAT] + (t - glob[GL_ANCHOR_SAMPLE]) * glob[GL_TEMPO_BPM] / (
        60.0 * sample_rate)


@njit(**JIT)
def _set_fx(tab, module, index, value):
    """A parameter of the master bus (it clamps and smooths its own parameters)."""
    if module == FX_MASTER:
        params = f64_1d(tab, S_MASTER_PARAMS)
    else:
        return
    if 0 <= index < params.shape[0] and math.isfinite(value):
        params[index] = value


@njit(inline="always", **JIT)
def _voice_event(kind):
    return kind == K_NOTE_ON or kind == K_NOTE_OFF or kind == K_SUSTAIN or \
        kind == K_PITCH_BEND or kind == K_MOD_WHEEL or kind == K_AFTERTOUCH or \
        kind == K_ALL_NOTES_OFF or kind == K_SOURCE_GONE or kind == K_PANIC


@njit(**JIT)
def _instrument_event(tab, ctl, p, kind, a, b, c, sample_rate):
    """An event for part p's instrument unit in the playing graph: returns the voices it stole
    (0 when the part has no instrument)."""
    bank = ctl[C_BANK]
    r = ctl[C_PART_OP + bank * NPARTS + p]
    if r < 0 or r >= min(ctl[C_BANK_OPS + bank], MAX_OPS):
        return 0
    g = S_BANK0 + bank * BANK_STRIDE
    prog = i64_2d(tab, g + G_PROG)
    s0, p0 = prog[r, PR_STATE], prog[r, PR_PARAMS]
    return event_unit(prog[r, PR_KIND], f64_1d(tab, g + G_USTATE)[s0:s0 + prog[r, PR_STATE_LEN]],
                      f64_1d(tab, g + G_UPARAMS)[p0:p0 + prog[r, PR_PARAMS_LEN]], kind, a, b, c,
                      sample_rate)


@njit(**JIT)
def _apply(tab, ev, ctl, glob, now, sample_rate):
    kind = int(ev[KIND])
    p = int(ev[PART])
    if _voice_event(kind):      # to the part's instrument unit (part -1: every part's)
        if 0 <= p < NPARTS:
            ctl[C_STEALS] += _instrument_event(tab, ctl, p, kind, ev[A], ev[B], ev[C],
                                               sample_rate)
        elif p < 0:
            for q in range(NPARTS):
                ctl[C_STEALS] += _instrument_event(tab, ctl, q, kind, ev[A], ev[B], ev[C],
                                                   sample_rate)
        if kind == K_NOTE_ON:
            ctl[C_LAST_NOTE_ON] = now
    elif kind == K_TEMPO:
        if math.isfinite(ev[B]):
            glob[GL_ANCHOR_BEAT] = _beat_at(glob, now, sample_rate)
            glob[GL_ANCHOR_SAMPLE] = now
            glob[GL_TEMPO_BPM] = min(max(ev[B], 20.0), 400.0)
    elif kind == K_FX:
        _set_fx(tab, p, int(ev[A]), ev[B])
    elif kind == K_UNIT_PARAM:
        bank = ev[C]
        if bank == 0.0 or bank == 1.0:
            uparams = f64_1d(tab, S_BANK0 + int(bank) * BANK_STRIDE + G_UPARAMS)
            k = ev[A]
            if 0.0 <= k < uparams.shape[0] and math.isfinite(ev[B]):
                uparams[int(k)] = ev[B]
    elif kind == K_GRAPH:
        _graph_swap(tab, ctl, ev[B], ev[A], ev[D])
    elif kind == K_MIDI_OUT:
        _midi_out(tab, ev, ctl, now)
    elif kind == K_MIDI_OUT_CUT:
        g = _midi_out_gen(ev[PART])
        if g >= 0 and math.isfinite(ev[C]) and ev[C] > ctl[C_MOUT_GEN + g]:
            ctl[C_MOUT_GEN + g] = int(min(ev[C], 1e15))


@njit(inline="always", **JIT)
def _midi_out_gen(part):
    """The C_MOUT_GEN entry of a MIDI out row's PART (-1, the clock: the last), or -1."""
    if part == -1.0:
        return NPARTS
    if 0.0 <= part < NPARTS:
        return int(part)
    return -1


@njit(**JIT)
def _midi_out(tab, ev, ctl, now):
    """K_MIDI_OUT: note the message in S_MOUT at sample `now` for the driver's MIDI out port
    (late ones, now past their time, are counted; a cut generation's are dropped)."""
    p = _midi_out_gen(ev[PART])
    if ctl[C_MOUT_ON] == 0 or p < 0 or not ev[C] >= ctl[C_MOUT_GEN + p]:
        return
    msg = ev[B]
    if not 128.0 <= msg < 16777216.0:
        ctl[C_MOUT_DROPPED] += 1
        return
    out = f64_2d(tab, S_MOUT)
    n = ctl[C_MOUT_COUNT]
    if n >= out.shape[0]:
        ctl[C_MOUT_DROPPED] += 1
        return
    if ev[TIME] != ASAP and ev[TIME] < now:
        ctl[C_MOUT_LATE] += 1
    out[n, 0] = now
    out[n, 1] = msg
    ctl[C_MOUT_COUNT] = n + 1


# ---- segments ----------------------------------------------------------------------------------

@njit(**JIT)
def _bank(tab, ctl, bank, bus, i0, i1, sample_rate):
    """Run graph bank `bank`'s program over [i0, i1) on rows it first clears."""
    for r in range(B_GRAPH_FIRST, B_GRAPH_END):
        if r != B_CTX and r != B_XFADE_L and r != B_XFADE_R:
            for s in range(i0, i1):
                bus[r, s] = 0.0
    n = min(ctl[C_BANK_OPS + bank], MAX_OPS)
    if n > 0:
        b = S_BANK0 + bank * BANK_STRIDE
        run_program(i64_2d(tab, b + G_PROG), n, f64_1d(tab, b + G_USTATE),
                    f64_1d(tab, b + G_UPARAMS), i64_1d(tab, b + G_UIO), bus, i0, i1,
                    sample_rate)


@njit(**JIT)
def _instrument_voices(tab, ctl):
    """Voices sounding in the playing graph's instrument units."""
    bank = ctl[C_BANK]
    n = min(ctl[C_BANK_OPS + bank], MAX_OPS)
    g = S_BANK0 + bank * BANK_STRIDE
    prog = i64_2d(tab, g + G_PROG)
    ustate = f64_1d(tab, g + G_USTATE)
    total = 0
    for p in range(NPARTS):
        r = ctl[C_PART_OP + bank * NPARTS + p]
        if 0 <= r < n:
            s0 = prog[r, PR_STATE]
            total += voices_unit(prog[r, PR_KIND], ustate[s0:s0 + prog[r, PR_STATE_LEN]])
    return total


@njit(**JIT)
def _graph_swap(tab, ctl, bank_f, length_f, gen_f):
    """K_GRAPH: start playing bank `bank`, crossfading from the one playing over `length`
    samples; ops that continue an op of the old program take over its state first."""
    if not (bank_f == 0.0 or bank_f == 1.0) or ctl[C_BANK_OPS + int(bank_f)] < 0:
        ctl[C_GRAPH_BAD] += 1
        return
    new = int(bank_f)
    old = ctl[C_BANK]
    if new != old:
        bn = S_BANK0 + new * BANK_STRIDE
        bo = S_BANK0 + old * BANK_STRIDE
        carry_program(i64_2d(tab, bn + G_PROG), min(ctl[C_BANK_OPS + new], MAX_OPS),
                      f64_1d(tab, bn + G_USTATE), f64_1d(tab, bn + G_UPARAMS),
                      i64_2d(tab, bo + G_PROG), min(ctl[C_BANK_OPS + old], MAX_OPS),
                      f64_1d(tab, bo + G_USTATE), f64_1d(tab, bo + G_UPARAMS))
    length = 1
    if length_f >= 1.0:
        length = int(min(length_f, 1e6))
    if ctl[C_XFADE_LEFT] > 0:
        ctl[C_GRAPH_ACK] = ctl[C_GRAPH_GEN]   # a swap during a fade: the older one is done
    ctl[C_BANK] = new
    ctl[C_XFADE_LEN] = length
    ctl[C_XFADE_LEFT] = length if new != old else 0
    ctl[C_GRAPH_GEN] = int(gen_f) if math.isfinite(gen_f) else ctl[C_GRAPH_GEN]
    if new == old:
        ctl[C_GRAPH_ACK] = ctl[C_GRAPH_GEN]


@njit(**JIT)
def _graph(tab, ctl, bus, i0, i1, now0, sample_rate):
    """The graph's program over [i0, i1): the playing bank, and while a swap crossfades, the
    outgoing one too (its output faded out as the new one fades in, raised-cosine)."""
    active = ctl[C_BANK]
    left = ctl[C_XFADE_LEFT]
    if left > 0:
        _bank(tab, ctl, 1 - active, bus, i0, i1, sample_rate)
        for s in range(i0, i1):
            bus[B_XFADE_L, s] = bus[B_OUT_L, s]
            bus[B_XFADE_R, s] = bus[B_OUT_R, s]
    _bank(tab, ctl, active, bus, i0, i1, sample_rate)
    if left > 0:
        n = ctl[C_XFADE_LEN]
        for s in range(i0, i1):
            if left > 0:
                w = 0.5 - 0.5 * math.cos(math.pi * (n - left + 1) / n)   # new program's weight
                bus[B_OUT_L, s] = w * bus[B_OUT_L, s] + (1.0 - w) * bus[B_XFADE_L, s]
                bus[B_OUT_R, s] = w * bus[B_OUT_R, s] + (1.0 - w) * bus[B_XFADE_R, s]
                left -= 1
        ctl[C_XFADE_LEFT] = left
        if left == 0:
            ctl[C_GRAPH_ACK] = ctl[C_GRAPH_GEN]


@njit(**JIT)
def _segment(tab, i0, i1, now0, sample_rate):
    """Render [i0, i1) of the block: the graph (instruments, inserts, mixer, sends, master
    inserts), then the master bus."""
    if i1 <= i0:
        return
    glob = f64_1d(tab, S_GLOBAL)
    bus = f64_2d(tab, S_BUS)
    bus[B_CTX, CTX_TEMPO_BPM] = glob[GL_TEMPO_BPM]
    bus[B_CTX, CTX_SAMPLE_TIME] = now0 + i0
    bus[B_CTX, CTX_BEAT] = _beat_at(glob, now0 + i0, sample_rate)
    _graph(tab, i64_1d(tab, S_CTL), bus, i0, i1, now0, sample_rate)
    master.master_process(f64_1d(tab, S_MASTER_STATE), f64_1d(tab, S_MASTER_PARAMS),
                          bus[B_OUT_L], bus[B_OUT_R], i0, i1, sample_rate)


@njit(**JIT)
def render_block(tab, nframes):
    """AUDIO THREAD. Render `nframes` samples of the band into the S_BUS out rows
    (B_OUT_L, B_OUT_R) starting at column 0, and advance the sample clock."""
    ctl = i64_1d(tab, S_CTL)
    pending = f64_2d(tab, S_PENDING)
    glob = f64_1d(tab, S_GLOBAL)
    sample_rate = float(ctl[C_SAMPLE_RATE])
    count = ctl[C_PENDING]
    seq = ctl[C_SEQ]
    new, seq, d1 = pop(f64_2d(tab, S_QSCHED), i64_1d(tab, S_QSCHED_IDX), pending, count, seq)
    new, seq, d2 = pop(f64_2d(tab, S_QMIDI), i64_1d(tab, S_QMIDI_IDX), pending, new, seq)
    count, d3 = _heap_add(pending, count, new)
    ctl[C_DROPPED] += d1 + d2 + d3
    ctl[C_SEQ] = seq
    start = ctl[C_SAMPLE_TIME]
    end = start + nframes
    i = 0
    while count > 0 and pending[0, TIME] < end:
        t = pending[0, TIME]
        off = int(t - start)
        if t < start:
            off = 0
            if t != ASAP:
                ctl[C_LATE] += 1
        if off > i:
            _segment(tab, i, off, start, sample_rate)
            i = off
        _apply(tab, pending[0], ctl, glob, start + i, sample_rate)
        count = _heap_take(pending, count)
    _segment(tab, i, nframes, start, sample_rate)
    ctl[C_PENDING] = count
    ctl[C_SAMPLE_TIME] = end
    ctl[C_BLOCKS] += 1
    # meters for the control side
    meter = f64_1d(tab, S_METER)
    bus = f64_2d(tab, S_BUS)
    for s in range(nframes):
        meter[M_PEAK_L] = max(meter[M_PEAK_L], abs(bus[B_OUT_L, s]))
        meter[M_PEAK_R] = max(meter[M_PEAK_R], abs(bus[B_OUT_R, s]))
    for p in range(NPARTS):     # the part's pair after its inserts
        for s in range(nframes):
            meter[M_PART_PEAK + p] = max(meter[M_PART_PEAK + p], abs(bus[B_PART0 + 2 * p, s]),
                                         abs(bus[B_PART0 + 2 * p + 1, s]))
    ctl[C_VOICES_ACTIVE] = _instrument_voices(tab, ctl)
    ctl[C_NONFINITE] = int(f64_1d(tab, S_MASTER_STATE)[master.M_NONFINITE])


# ---- entry points for the drivers ----------------------------------------------------------

@njit(**JIT)
def add_event(tab, time, kind, part, a, b, c):
    """AUDIO THREAD. Add an event straight to the pending store (MIDI read in the callback)."""
    ctl = ctl_of(tab)
    pending = f64_2d(tab, S_PENDING)
    n = ctl[C_PENDING]
    if n >= pending.shape[0] or math.isnan(time):
        ctl[C_DROPPED] += 1
        return
    pending[n, TIME] = time
    pending[n, KIND] = kind
    pending[n, PART] = part
    pending[n, A] = a
    pending[n, B] = b
    pending[n, C] = c
    pending[n, SEQ] = ctl[C_SEQ]
    ctl[C_SEQ] += 1
    _sift_up(pending, n)
    ctl[C_PENDING] = n + 1


@njit(**JIT)
def report_event(tab, time, kind, part, a, b, c):
    """AUDIO THREAD. Tell the control side about an input event (held notes, recording)."""
    if not push(f64_2d(tab, S_QOUT), i64_1d(tab, S_QOUT_IDX), time, kind, part, a, b, c, 0.0):
        ctl_of(tab)[C_DROPPED] += 1


@njit(**JIT)
def report_midi(tab, time, status, data1, data2, source):
    """AUDIO THREAD. Hand the control side a raw MIDI message read in the callback (K_MIDI_IN)."""
    if not push(f64_2d(tab, S_QOUT), i64_1d(tab, S_QOUT_IDX), time, float(K_MIDI_IN), -1.0,
                float(status), float(data1), float(data2), source):
        ctl_of(tab)[C_DROPPED] += 1


CLOCK_MONOTONIC = 1


@njit(inline="always", **JIT)
def _now_ns(tab, ctl):
    addr = tab[S_CTL * TABLE_WIDTH] + C_TIMESPEC * 8
    call_i32_i32_ptr(ctl[C_CLOCK_FN], np.int32(CLOCK_MONOTONIC), addr)
    return ctl[C_TIMESPEC] * 1000000000 + ctl[C_TIMESPEC + 1]


@njit(**JIT)
def run_block(tab, nframes):
    """AUDIO THREAD. `render_block`, timed into the S_CBTIME ring when a clock is set."""
    ctl = ctl_of(tab)
    if ctl[C_CLOCK_FN] == 0:
        render_block(tab, nframes)
        return
    t0 = _now_ns(tab, ctl)
    ctl[C_CLOCK_SEQ] += 1
    fence()
    ctl[C_BLOCK_NS] = t0
    ctl[C_BLOCK_SAMPLE] = ctl[C_SAMPLE_TIME]
    fence()
    ctl[C_CLOCK_SEQ] += 1
    render_block(tab, nframes)
    ring = i64_1d(tab, S_CBTIME)
    ring[ctl[C_CBTIME_W] % CBTIME_CAP] = _now_ns(tab, ctl) - t0
    ctl[C_CBTIME_W] += 1
