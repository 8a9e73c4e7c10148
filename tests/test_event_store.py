"""The kernel's pending store: a binary heap ordered by (time, rank, part, note, arrival).

- the worst case: the store filled to PCAP with valid events all due in one block, arriving
  scrambled with many ties through every way in (add_event from the JACK callback, the
  scheduler queue, the MIDI queue): the heap gives them up in exactly Python's `sorted` order,
  and the engine applies every one of them (final parameter, mixer, tempo and held-note state
  as the sorted order dictates; nothing dropped, nothing left, nothing late);
- a property test: any interleaving of insertions and removals behaves as a priority queue;
- the store's edges: a full store drops and counts, a NaN time is dropped and counted (it could
  never fall due and would block the heap), late events still apply at offset 0.
"""
import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from engine.rt import layout as L
from engine.rt.dsp import JIT
from engine.rt.events import (
    A, ASAP, B, EVENT_WIDTH, K_ALL_NOTES_OFF, K_UNIT_PARAM, K_MOD_WHEEL, K_NOTE_OFF, K_NOTE_ON,
    K_PITCH_BEND, K_SUSTAIN, K_TEMPO, KIND, PART, SEQ, TIME,
)
from engine.control.graph import Program, default_spec
from engine.parts import PARTS
from engine.rt.params import P_BEND_ST, P_MOD
from engine.rt.render import (
    _heap_add, _heap_take, add_event, f64_2d, i64_1d, render_block,
)
from engine.rt.ringbuf import pop
from tests.enginekit import analog_voices, engine

RANK = {K_NOTE_ON: 2, K_NOTE_OFF: 1, K_SUSTAIN: 1, K_ALL_NOTES_OFF: 1}


def key(row):
    """The order the kernel promises, in plain Python."""
    return (row[TIME], RANK.get(int(row[KIND]), 0), row[PART], row[A], row[SEQ])


# ---- a harness that drains and takes exactly as render_block does, recording the order ----------

@njit(**JIT)
def drain_and_take(tab, end, out):
    """render_block's drain (both queues, then into the heap), then every event due before
    `end` taken from the heap in order into `out`. Returns (rows taken, rows dropped)."""
    ctl = i64_1d(tab, L.S_CTL)
    pending = f64_2d(tab, L.S_PENDING)
    count = ctl[L.C_PENDING]
    seq = ctl[L.C_SEQ]
    new, seq, d1 = pop(f64_2d(tab, L.S_QSCHED), i64_1d(tab, L.S_QSCHED_IDX), pending, count, seq)
    new, seq, d2 = pop(f64_2d(tab, L.S_QMIDI), i64_1d(tab, L.S_QMIDI_IDX), pending, new, seq)
    count, d3 = _heap_add(pending, count, new)
    ctl[L.C_SEQ] = seq
    n = 0
    while count > 0 and pending[0, TIME] < end:
        for c in range(pending.shape[1]):
            out[n, c] = pending[0, c]
        n += 1
        count = _heap_take(pending, count)
    ctl[L.C_PENDING] = count
    return n, d1 + d2 + d3


POLY = {"keys": 64, "bass": 8, "chords": 32, "lead": 16}
_GRAPH = Program(default_spec(), 48000)     # the graph every EngineState starts with
MIX = [_GRAPH.resolve(f"/{part}/mix/{name}")[0] for part in PARTS for name in ("pan", "gain_db")]
SYN = [[_GRAPH.resolve(f"/{part}/synth/{name}")[0] for name in ("cutoff_hz", "resonance")]
       for part in PARTS[:4]]
CUT = SYN[0][0]     # /keys/synth/cutoff_hz


def flood(start, seed=5):
    """PCAP valid events due in [start, start + 64), scrambled, with heavy ties: three sample
    times, few parts, notes and parameters, repeated keys that only arrival order separates.
    Note-ons per synth part stay within its polyphony (so every one gets its own voice)."""
    rng = np.random.default_rng(seed)
    times = [start, start + 1, start + 63]
    budget = {p: n for p, n in enumerate(POLY.values())}
    rows = []
    while len(rows) < L.PCAP:
        t = float(rng.choice(times))
        r = rng.integers(0, 10)
        p = int(rng.integers(0, 4))
        note = float(rng.integers(60, 64))
        if r == 0 and budget[p] > 0:
            budget[p] -= 1
            rows.append((t, K_NOTE_ON, p, note, 0.5, 1.0))
        elif r == 0:
            rows.append((t, K_NOTE_ON, 4, 36.0, 0.9, 1.0))   # drums: no voice budget
        elif r == 1:
            rows.append((t, K_NOTE_OFF, p, note, 0.0, 1.0))
        elif r <= 4:
            rows.append((t, K_UNIT_PARAM, -1, float(rng.choice(SYN[p])),
                         float(rng.integers(20, 1000)) if rng.integers(2) else 0.25, 0.0))
        elif r <= 6:
            rows.append((t, K_UNIT_PARAM, -1, float(rng.choice(MIX)), float(rng.uniform(-1, 0)),
                         0.0))
        elif r == 7:
            rows.append((t, K_PITCH_BEND, p, 0.0, float(rng.integers(-4, 5)) / 4.0, 0.0))
        elif r == 8:
            rows.append((t, K_MOD_WHEEL, p, 0.0, float(rng.uniform(0, 1)), 0.0))
        else:
            rows.append((t, K_TEMPO, -1, 0.0, float(rng.integers(60, 200)), 0.0))
    out = np.zeros((len(rows), EVENT_WIDTH))
    out[:, :6] = rows
    return out


def feed(st_, rows):
    """Every way in: the first quarter through add_event (the JACK callback's MIDI, straight into
    the store), then the scheduler queue, then the MIDI queue. Returns the rows as the kernel will
    number them (SEQ = arrival order)."""
    n1, n2 = len(rows) // 4, len(rows) // 4 + 2000
    arrived = rows.copy()
    seq0 = int(st_.ctl[L.C_SEQ])
    for i in range(n1):
        add_event(st_.table, *rows[i, :6])
    assert st_.push_sched_rows(rows[n1:n2]) == n2 - n1
    for row in rows[n2:]:
        assert st_.push_midi(*row[:6])
    arrived[:, SEQ] = seq0 + np.arange(len(rows))
    return arrived


def test_a_full_store_due_in_one_block_comes_out_in_sorted_order():
    st_ = engine(polyphony=POLY)
    render_block(st_.table, 64)
    start = st_.sample_time
    arrived = feed(st_, flood(start))
    assert int(st_.ctl[L.C_PENDING]) == L.PCAP // 4
    out = np.zeros((L.PCAP, EVENT_WIDTH))
    n, dropped = drain_and_take(st_.table, float(start + 64), out)
    assert (n, dropped) == (L.PCAP, 0)
    expected = np.array(sorted(arrived, key=key))
    assert np.array_equal(out, expected)
    # the ties were real: many rows share (time, rank, part, note) and only arrival splits them
    ties = len(arrived) - len({k[:4] for k in map(key, arrived)})
    assert ties > L.PCAP // 2


def test_a_full_store_due_in_one_block_is_applied_completely_and_in_order():
    st_ = engine(polyphony=POLY)
    render_block(st_.table, 64)
    start = st_.sample_time
    arrived = feed(st_, flood(start))
    render_block(st_.table, 64)
    c = st_.counters()
    assert c["dropped_events"] == 0 and c["late_events"] == 0 and c["steals"] == 0
    assert int(st_.ctl[L.C_PENDING]) == 0
    # the state the sorted order leaves behind (later events of one target overwrite earlier)
    a = st_.arrays
    want = a[L.S_UPARAMS].copy()
    synth = [_GRAPH.ops[_GRAPH.part_op[p]].params for p in range(4)]
    held = {p: [] for p in range(4)}
    tempo = None
    for row in sorted(arrived, key=key):
        kind, p, x, v = int(row[KIND]), int(row[PART]), row[A], row[B]
        if kind == K_UNIT_PARAM:
            want[int(x)] = v
        elif kind == K_PITCH_BEND:      # -1..1 times the bend range (2 semitones)
            want[synth[p] + P_BEND_ST] = 2.0 * v
        elif kind == K_MOD_WHEEL:
            want[synth[p] + P_MOD] = v
        elif kind == K_TEMPO:
            tempo = v
        elif kind == K_NOTE_ON and p < 4:
            held[p].append(x)
        elif kind == K_NOTE_OFF:
            held[p] = [n for n in held[p] if n != x]
    targets = np.concatenate([np.arange(op.params, op.params + len(op.unit.PARAMS))
                              for op in _GRAPH.ops])
    assert np.array_equal(a[L.S_UPARAMS][targets], want[targets])
    assert a[L.S_GLOBAL][L.GL_TEMPO_BPM] == tempo
    for p, name in enumerate(POLY):
        vm = analog_voices(st_, name)
        got = sorted(vm[L.VM_NOTE, v] for v in range(L.NVMAX) if vm[L.VM_HELD, v] == 1.0)
        assert got == sorted(held[p]), p
    assert sum(map(len, held.values())) > 20       # the check had notes to hold


# ---- any interleaving behaves as a priority queue ------------------------------------------------

event_rows = st.lists(
    st.tuples(st.sampled_from([0.0, 1.0, 2.0, 5.0, -1.0, 1e12, math.inf, -math.inf]),
              st.sampled_from([K_NOTE_ON, K_NOTE_OFF, K_UNIT_PARAM, K_SUSTAIN, K_TEMPO]),
              st.integers(-1, 2).map(float), st.sampled_from([60.0, 61.0, 60.5])),
    min_size=0, max_size=200)


@settings(max_examples=300, deadline=None)
@given(event_rows, st.lists(st.integers(1, 40), min_size=1, max_size=12),
       st.lists(st.integers(0, 30), min_size=1, max_size=12))
def test_heap_is_a_priority_queue_under_any_interleaving(rows, batches, takes):
    pending = np.zeros((256, EVENT_WIDTH))
    model = []
    count = 0
    seq = 0
    i = 0
    step = 0
    while i < len(rows) or model:
        # a batch arrives (appended behind the heap, as `pop` does, then taken in) ...
        b = batches[step % len(batches)]
        new = count
        for row in rows[i:i + b]:
            pending[new, :4] = row
            pending[new, SEQ] = seq
            model.append((*row, 0.0, 0.0, 0.0, float(seq)))
            seq += 1
            new += 1
        i += b
        count, dropped = _heap_add(pending, count, new)
        assert dropped == 0 and count == len(model)
        # ... then some events are taken: always the least by the kernel's order
        k = takes[step % len(takes)] if i < len(rows) else len(model)
        for _ in range(min(k, count)):
            want = min(model, key=key)
            model.remove(want)
            assert tuple(pending[0]) == want
            count = _heap_take(pending, count)
        step += 1
    assert count == 0


# ---- edges of the store --------------------------------------------------------------------------

def test_a_full_store_drops_and_counts_what_does_not_fit():
    st_ = engine()
    render_block(st_.table, 64)
    far = st_.sample_time + 48000
    rows = np.zeros((L.PCAP, EVENT_WIDTH))
    rows[:, TIME] = far + np.arange(L.PCAP) % 7
    rows[:, KIND] = K_UNIT_PARAM
    rows[:, A] = CUT
    rows[:, B] = 500.0
    assert st_.push_sched_rows(rows) == L.PCAP
    render_block(st_.table, 64)
    assert int(st_.ctl[L.C_PENDING]) == L.PCAP
    st_.push_midi(st_.sample_time, K_NOTE_ON, 0, 60, 1.0, 1)    # the store is full
    add_event(st_.table, float(st_.sample_time), K_NOTE_ON, 0, 62, 1.0, 1)
    render_block(st_.table, 64)
    c = st_.counters()
    assert c["dropped_events"] == 2 and c["voices"] == 0
    while st_.sample_time < far + 64:
        render_block(st_.table, 64)
    assert int(st_.ctl[L.C_PENDING]) == 0 and st_.counters()["late_events"] == 0
    assert st_.arrays[L.S_UPARAMS][CUT] == 500.0


def test_a_nan_time_is_dropped_and_counted_and_blocks_nothing():
    st_ = engine()
    render_block(st_.table, 64)
    t = st_.sample_time
    st_.push_midi(math.nan, K_NOTE_ON, 0, 60, 1.0, 1)
    add_event(st_.table, math.nan, K_NOTE_ON, 0, 61, 1.0, 1)
    st_.push_sched(t + 10, K_NOTE_ON, 0, 64, 1.0, 1)
    st_.push_midi(ASAP, K_NOTE_ON, 0, 67, 1.0, 1)
    render_block(st_.table, 64)
    c = st_.counters()
    assert c["dropped_events"] == 2 and c["voices"] == 2 and c["late_events"] == 0
    assert int(st_.ctl[L.C_PENDING]) == 0


def test_events_of_later_blocks_wait_and_late_ones_still_apply_first():
    st_ = engine()
    render_block(st_.table, 64)
    t = st_.sample_time
    st_.push_sched(t + 200, K_UNIT_PARAM, -1, CUT, 300.0)     # two blocks later
    st_.push_sched(t + 5, K_UNIT_PARAM, -1, CUT, 200.0)
    st_.push_midi(t - 30, K_UNIT_PARAM, -1, CUT, 100.0)       # late: applies at once, first
    render_block(st_.table, 64)
    assert st_.arrays[L.S_UPARAMS][CUT] == 200.0 and int(st_.ctl[L.C_PENDING]) == 1
    assert st_.counters()["late_events"] == 1
    render_block(st_.table, 64)
    assert st_.arrays[L.S_UPARAMS][CUT] == 200.0
    render_block(st_.table, 64)
    render_block(st_.table, 64)
    assert st_.arrays[L.S_UPARAMS][CUT] == 300.0 and int(st_.ctl[L.C_PENDING]) == 0
