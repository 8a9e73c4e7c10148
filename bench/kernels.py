"""Benchmark of the audio-thread master and drum kernels (units: bench/effects.py).

Prints one JSON line: ms of CPU per second of 48 kHz audio for each kernel (min of RUNS runs),
each kernel driven in isolation the way engine.rt.render drives it (from compiled code, in
blocks of BLOCK samples) with realistic params and a busy input. Run from the project root:

    python bench/kernels.py [--runs 5] [--block 256] [--seconds 1]
"""
import argparse
import json
import os
import sys
import time

import numpy as np
from numba import njit

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from engine.rt import drums, master  # noqa: E402

SR = 48000
TEMPO = 123.0  # a delay of a fractional number of samples (the interpolating path)
DRUM_NOTES_8 = (drums.NOTE_KICK, drums.NOTE_SNARE, drums.NOTE_CLAP, drums.NOTE_CLOSED_HAT,
                drums.NOTE_OPEN_HAT, drums.NOTE_TOM_LOW, drums.NOTE_TOM_MID, drums.NOTE_TOM_HIGH)


def _signal(n, seed=0):
    """Music-like stereo send: a few partials plus a little noise, about -12 dBFS."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SR
    x = np.zeros(n)
    for hz, a in ((110.0, 0.2), (220.0, 0.1), (331.0, 0.05), (1250.0, 0.02)):
        x += a * np.sin(2 * np.pi * hz * t + rng.uniform(0, 2 * np.pi))
    return x + 0.02 * rng.standard_normal(n), x[::-1] + 0.02 * rng.standard_normal(n)


@njit(nogil=True)
def _master_blocks(st, p, l, r, n, block):
    for a in range(0, n, block):
        master.master_process(st, p, l, r, a, min(a + block, n), SR)


@njit(nogil=True)
def _drum_blocks(st, p, out, n, block):
    for a in range(0, n, block):
        drums.drum_render(st, p, out, a, min(a + block, n), SR)


def _cpu(prepare, run):
    """CPU seconds of run() (this thread only), after an untimed prepare()."""
    prepare()
    t0 = time.thread_time()
    run()
    return time.thread_time() - t0


def _nothing():
    pass


def bench_master(n, block):
    x_l, x_r = _signal(n, 2)
    x_l *= 6.0  # loud enough to make the limiter work
    x_r *= 6.0
    l, r = np.empty(n), np.empty(n)
    st, p = master.master_alloc_state(SR), master.master_default_params()

    def prepare():
        l[:] = x_l
        r[:] = x_r

    def run():
        _master_blocks(st, p, l, r, n, block)
    return prepare, run


def bench_drums(n, block):
    """Eight voices sounding for the whole run (decay x8 keeps every one of them ringing)."""
    p = drums.drum_default_params()
    p[drums.DRUM_DECAY_SCALE] = 8.0
    out = np.zeros(n)
    st = drums.drum_alloc_state(SR)

    def prepare():
        st[:] = 0.0
        for note in DRUM_NOTES_8:
            drums.drum_trigger(st, p, note, 0.9, SR)

    def run():
        _drum_blocks(st, p, out, n, block)
        assert drums.drum_active_voices(st) == len(DRUM_NOTES_8)
    return prepare, run


KERNELS = {"master_process": bench_master, "drum_render": bench_drums}
# (the delay and reverb are units on the graph now: bench/effects.py measures every unit)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--block", type=int, default=256)
    ap.add_argument("--seconds", type=float, default=1.0)
    args = ap.parse_args(argv)
    n = int(args.seconds * SR)
    result = {}
    for name, make in KERNELS.items():
        prepare, run = make(n, args.block)
        _cpu(prepare, run)  # compile / load from cache, warm the caches
        best = min(_cpu(prepare, run) for _ in range(args.runs))
        result[name + "_ms_per_s"] = round(1000.0 * best / args.seconds, 3)
    result["block"] = args.block
    print(json.dumps(result))


if __name__ == "__main__":
    main()
