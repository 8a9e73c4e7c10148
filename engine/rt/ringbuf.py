"""Single-producer / single-consumer event queues over preallocated arrays.

A queue is a float64[QCAP, EVENT_WIDTH] slot array plus an int64[16] index array whose
element 0 is the write count (owned by the producer) and element 8 the read count (owned by
the consumer), on separate cache lines. The producer writes the slot, fences, then publishes
the new write count; the consumer reads the write count, fences, copies slots, fences, then
publishes the read count (as scsynth's MsgFifo does with release/acquire). A full queue makes
`push` return False: it never blocks and never overwrites unread events.

`push` runs on the producer's thread (asyncio scheduler, or the MIDI callback thread: one
queue each); `pop` runs on the audio thread.
"""
from numba import njit

from engine.rt.dsp import JIT
from engine.rt.ptr import fence

W, R = 0, 8


@njit(**JIT)
def push(slots, idx, time, kind, part, a, b, c, d):
    """PRODUCER THREAD. Append one event; False when the queue is full."""
    cap = slots.shape[0]
    w = idx[W]
    if w - idx[R] >= cap:
        return False
    k = w & (cap - 1)
    slots[k, 0] = time
    slots[k, 1] = kind
    slots[k, 2] = part
    slots[k, 3] = a
    slots[k, 4] = b
    slots[k, 5] = c
    slots[k, 6] = d
    slots[k, 7] = 0.0
    fence()
    idx[W] = w + 1
    return True


@njit(**JIT)
def push_rows(slots, idx, rows):
    """PRODUCER THREAD. Append rows (n, EVENT_WIDTH) in order; returns how many fitted."""
    cap = slots.shape[0]
    w = idx[W]
    room = cap - (w - idx[R])
    n = min(rows.shape[0], room)
    for i in range(n):
        k = (w + i) & (cap - 1)
        for j in range(7):
            slots[k, j] = rows[i, j]
        slots[k, 7] = 0.0
    fence()
    idx[W] = w + n
    return n


@njit(**JIT)
def pop(slots, idx, dest, dest_count, seq):
    """AUDIO THREAD. Move every published event into dest[dest_count:], stamping column 7 with
    an increasing arrival sequence. Returns (new dest_count, new seq, events that did not fit);
    events that do not fit are dropped (and counted by the caller), never left to block."""
    cap = slots.shape[0]
    w = idx[W]
    fence()
    r = idx[R]
    dropped = 0
    while r < w:
        k = r & (cap - 1)
        if dest_count < dest.shape[0]:
            for j in range(7):
                dest[dest_count, j] = slots[k, j]
            dest[dest_count, 7] = seq
            dest_count += 1
            seq += 1
        else:
            dropped += 1
        r += 1
    fence()
    idx[R] = r
    return dest_count, seq, dropped
