"""engine.rt.ringbuf: the single-producer / single-consumer event queues.

Order, fullness (push returns False and never overwrites), wraparound, dropping into a full
destination, and a two-thread stress test in which producer and consumer run GIL-free at the
same time on different cores.
"""
import sys
import threading

import numpy as np
import pytest
from numba import njit

from engine.rt.events import EVENT_WIDTH
from engine.rt.ptr import fence
from engine.rt.ringbuf import R, W, pop, push, push_rows


def queue(cap):
    return np.zeros((cap, EVENT_WIDTH)), np.zeros(16, np.int64)


def event(i):
    """Seven distinct, exactly representable values for event number i."""
    return (float(i), float(i % 13), float(i % 5), i * 0.5, -float(i), i + 0.25, i * 3.0)


def expected(ids):
    return np.array([event(i) for i in ids]).reshape(-1, 7)


def test_index_words_are_on_separate_cache_lines():
    assert (R - W) * 8 >= 64


def test_push_pop_keeps_order_and_stamps_arrival_sequence():
    slots, idx = queue(16)
    for i in range(10):
        assert push(slots, idx, *event(i))
    dest = np.zeros((32, EVENT_WIDTH))
    count, seq, dropped = pop(slots, idx, dest, 0, 100)
    assert (count, seq, dropped) == (10, 110, 0)
    assert np.array_equal(dest[:10, :7], expected(range(10)))
    assert np.array_equal(dest[:10, 7], np.arange(100, 110))
    assert idx[W] == 10 and idx[R] == 10
    assert np.all(dest[10:] == 0.0)


def test_pop_appends_after_dest_count():
    slots, idx = queue(8)
    dest = np.zeros((16, EVENT_WIDTH))
    push(slots, idx, *event(1))
    count, seq, _ = pop(slots, idx, dest, 0, 0)
    push(slots, idx, *event(2))
    push(slots, idx, *event(3))
    count, seq, _ = pop(slots, idx, dest, count, seq)
    assert count == 3 and seq == 3
    assert np.array_equal(dest[:3, :7], expected([1, 2, 3]))
    assert list(dest[:3, 7]) == [0, 1, 2]


def test_pop_on_empty_queue_changes_nothing():
    slots, idx = queue(8)
    dest = np.full((4, EVENT_WIDTH), 7.0)
    assert pop(slots, idx, dest, 2, 5) == (2, 5, 0)
    assert np.all(dest == 7.0)


def test_full_queue_returns_false_without_overwriting():
    cap = 8
    slots, idx = queue(cap)
    for i in range(cap):
        assert push(slots, idx, *event(i))
    before = slots.copy()
    assert not push(slots, idx, *event(99))
    assert not push(slots, idx, *event(100))
    assert np.array_equal(slots, before)
    assert idx[W] == cap
    dest = np.zeros((cap, EVENT_WIDTH))
    count, _, dropped = pop(slots, idx, dest, 0, 0)
    assert count == cap and dropped == 0
    assert np.array_equal(dest[:, :7], expected(range(cap)))
    # room again after the pop: exactly one more fits per slot freed
    assert push(slots, idx, *event(200))


def test_pop_into_a_one_row_dest_takes_one_and_drops_the_rest():
    cap = 4
    slots, idx = queue(cap)
    for i in range(cap):
        push(slots, idx, *event(i))
    dest = np.zeros((1, EVENT_WIDTH))
    # a destination of one row takes one event; the rest are dropped (and counted) by pop
    count, seq, dropped = pop(slots, idx, dest, 0, 0)
    assert (count, seq, dropped) == (1, 1, 3)
    assert np.array_equal(dest[0, :7], event(0))
    assert idx[R] == cap          # dropped events are consumed, never left to block


def test_dest_full_drops_and_counts():
    slots, idx = queue(16)
    for i in range(10):
        push(slots, idx, *event(i))
    dest = np.zeros((6, EVENT_WIDTH))
    count, seq, dropped = pop(slots, idx, dest, 4, 0)
    assert (count, seq, dropped) == (6, 2, 8)
    assert np.array_equal(dest[4:6, :7], expected([0, 1]))


@pytest.mark.parametrize("cap", [1, 2, 8, 64])
def test_wraparound_over_many_cycles(cap):
    slots, idx = queue(cap)
    rng = np.random.default_rng(cap)
    dest = np.zeros((cap, EVENT_WIDTH))
    sent = got = 0
    seq = 0
    for _ in range(3000):
        n = int(rng.integers(0, cap + 2))
        for _ in range(n):
            if push(slots, idx, *event(sent)):
                sent += 1
            else:
                assert sent - got == cap          # False only when really full
                break
        count, seq, dropped = pop(slots, idx, dest, 0, seq)
        assert dropped == 0
        assert np.array_equal(dest[:count, :7], expected(range(got, got + count)))
        assert np.array_equal(dest[:count, 7], np.arange(got, got + count))
        got += count
        assert got == sent
    assert sent > 10 * cap
    assert idx[W] == sent and idx[R] == got


def test_push_rows_fits_what_there_is_room_for():
    slots, idx = queue(8)
    for i in range(3):
        push(slots, idx, *event(i))
    rows = np.zeros((10, EVENT_WIDTH))
    rows[:, :7] = expected(range(3, 13))
    rows[:, 7] = 12345.0                      # the SEQ column is the consumer's: cleared
    assert push_rows(slots, idx, rows) == 5
    assert push_rows(slots, idx, rows) == 0
    dest = np.zeros((16, EVENT_WIDTH))
    count, _, _ = pop(slots, idx, dest, 0, 0)
    assert count == 8
    assert np.array_equal(dest[:8, :7], expected(range(8)))
    assert np.array_equal(dest[:8, 7], np.arange(8))
    assert push_rows(slots, idx, rows[5:]) == 5
    count, _, _ = pop(slots, idx, dest, 0, 8)
    assert count == 5 and np.array_equal(dest[:5, :7], expected(range(8, 13)))


def test_push_rows_wraps_around():
    slots, idx = queue(8)
    dest = np.zeros((8, EVENT_WIDTH))
    nxt = 0
    for _ in range(50):
        rows = np.zeros((5, EVENT_WIDTH))
        rows[:, :7] = expected(range(nxt, nxt + 5))
        assert push_rows(slots, idx, rows) == 5
        count, _, _ = pop(slots, idx, dest, 0, 0)
        assert count == 5 and np.array_equal(dest[:5, :7], rows[:, :7])
        nxt += 5


# ---- two threads ------------------------------------------------------------------------------

@njit(nogil=True)
def _produce(slots, idx, n):
    """Push events 0..n-1 in order, spinning while the queue is full. Returns the spins."""
    spins = 0
    for i in range(n):
        while not push(slots, idx, float(i), float(i % 13), float(i % 5), i * 0.5, -float(i),
                       i + 0.25, i * 3.0):
            spins += 1
            fence()   # re-read the consumer's index (the compiler may not hoist it)
    return spins


@njit(nogil=True)
def _consume(slots, idx, dest, n, max_polls):
    """Pop until n events have arrived (or max_polls polls). Returns (count, polls, dropped)."""
    count = 0
    seq = 0
    polls = 0
    dropped = 0
    while count < n and polls < max_polls:
        count, seq, d = pop(slots, idx, dest, count, seq)
        dropped += d
        polls += 1
    return count, polls, dropped


@njit(nogil=True)
def _produce_batches(slots, idx, rows, batch):
    """push_rows in batches of `batch`, retrying the unsent remainder. Returns the spins."""
    sent = 0
    spins = 0
    n = rows.shape[0]
    while sent < n:
        k = push_rows(slots, idx, rows[sent:min(sent + batch, n)])
        if k == 0:
            spins += 1
            fence()
        sent += k
    return spins


def _run_two_threads(producer, consumer):
    results = {}

    def wrap(name, fn):
        def run():
            results[name] = fn()
        return run

    threads = [threading.Thread(target=wrap("p", producer), daemon=True),
               threading.Thread(target=wrap("c", consumer), daemon=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
        assert not t.is_alive(), "a queue thread hung"
    return results["p"], results["c"]


def _check_stream(dest, n):
    ids = np.arange(n, dtype=np.float64)
    assert np.array_equal(dest[:, 0], ids)
    assert np.array_equal(dest[:, 1], ids % 13)
    assert np.array_equal(dest[:, 2], ids % 5)
    assert np.array_equal(dest[:, 3], ids * 0.5)
    assert np.array_equal(dest[:, 4], -ids)
    assert np.array_equal(dest[:, 5], ids + 0.25)
    assert np.array_equal(dest[:, 6], ids * 3.0)
    assert np.array_equal(dest[:, 7], ids)


@pytest.mark.parametrize("cap", [4096, 16])
def test_two_thread_stress_every_event_once_in_order(cap):
    """A producer thread pushes 200k sequenced events while a consumer thread pops them into a
    destination array, both in GIL-free compiled loops, concurrently. Every event arrives
    exactly once, in order, with all seven columns intact; the queue fills up (the producer
    had to wait) and drains many times over."""
    n = 200_000
    slots, idx = queue(cap)
    dest = np.full((n, EVENT_WIDTH), np.nan)
    _produce(*queue(4), 1)                 # compile before the threads start
    _consume(*queue(4), np.zeros((1, EVENT_WIDTH)), 0, 1)
    spins, (count, polls, dropped) = _run_two_threads(
        lambda: _produce(slots, idx, n), lambda: _consume(slots, idx, dest, n, 10 ** 12))
    assert count == n and dropped == 0
    _check_stream(dest, n)
    assert idx[W] == n and idx[R] == n
    assert polls > n // cap                # the consumer saw the ring wrap many times


def test_two_thread_stress_push_rows():
    n, cap = 200_000, 64
    slots, idx = queue(cap)
    rows = np.zeros((n, EVENT_WIDTH))
    rows[:, :7] = np.column_stack([np.arange(n, dtype=float), np.arange(n) % 13,
                                   np.arange(n) % 5, np.arange(n) * 0.5, -np.arange(n, dtype=float),
                                   np.arange(n) + 0.25, np.arange(n) * 3.0])
    rows[:, 7] = -1.0
    dest = np.full((n, EVENT_WIDTH), np.nan)
    _produce_batches(*queue(4), np.zeros((1, EVENT_WIDTH)), 1)
    _consume(*queue(4), np.zeros((1, EVENT_WIDTH)), 0, 1)
    _, (count, _, dropped) = _run_two_threads(
        lambda: _produce_batches(slots, idx, rows, 37),
        lambda: _consume(slots, idx, dest, n, 10 ** 12))
    assert count == n and dropped == 0
    _check_stream(dest, n)


def test_two_python_threads_one_push_per_call():
    """The way the control side really uses it: one `push` call per event from a Python thread
    (GIL released inside each call), a consumer popping from another thread."""
    n, cap = 200_000, 1024
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)            # interleave the two threads finely
    slots, idx = queue(cap)
    dest = np.full((n, EVENT_WIDTH), np.nan)
    state = {"count": 0, "seq": 0}

    def producer():
        full = 0
        for i in range(n):
            ev = event(i)
            while not push(slots, idx, *ev):
                full += 1
        return full

    def consumer():
        c = state
        while c["count"] < n:
            c["count"], c["seq"], d = pop(slots, idx, dest, c["count"], c["seq"])
            assert d == 0
        return c["count"]

    try:
        _, count = _run_two_threads(producer, consumer)
    finally:
        sys.setswitchinterval(old)
    assert count == n
    _check_stream(dest, n)
