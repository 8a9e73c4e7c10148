"""An event flood on the audio thread: one render_block with the pending store full.

PCAP (4096) valid events, all due inside one 64-frame block, reach the kernel in a scrambled
order with many ties (a MIDI file, an MQTT flood or dense agents at one instant): note-ons and
note-offs on every part, parameter, mixer, bend and mod-wheel changes. The figure is the time of
that one `render_block` call (min and median of repeats, each on a fresh engine), the same
block with an empty store, and the cost per event of the difference.

For comparison the same flood also goes through `render_block_linear`, a copy kept here (never
in engine/rt) of the kernel's event loop before the pending store became a heap: it rescanned
the whole store for every event it applied (quadratic in the events due in one block).

    python bench/flood.py [--json] [--repeats 15]
(bench/latency.py reports the same figures as its "event_flood" section.)
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from numba import njit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.control.state import EngineState  # noqa: E402
from engine.rt import layout as L  # noqa: E402
from engine.rt import master, render  # noqa: E402
from engine.rt.dsp import JIT  # noqa: E402
from engine.rt.events import (  # noqa: E402
    A, ASAP, EVENT_WIDTH, K_UNIT_PARAM, K_MOD_WHEEL, K_NOTE_OFF, K_NOTE_ON, K_PARAM, K_PITCH_BEND,
    KIND, PART, SEQ, TIME,
)
from engine.control.graph import Program, default_spec  # noqa: E402
from engine.rt.params import SYNTH_SPECS  # noqa: E402
from engine.rt.ringbuf import pop  # noqa: E402

BLOCK = 64


def flood_rows(start: int, n: int = L.PCAP, block: int = BLOCK, seed: int = 11) -> np.ndarray:
    """n valid events due in [start, start + block): few distinct times, parts and notes, so
    most keys tie on time and many on (time, rank, part, note) too; scrambled order."""
    rng = np.random.default_rng(seed)
    rows = np.zeros((n, EVENT_WIDTH))
    cut = SYNTH_SPECS["cutoff_hz"].index
    pan = Program(default_spec(), 48000).resolve("/keys/mix/pan")[0]
    for i in range(n):
        t = start + int(rng.choice([0, 1, 17, 32, block - 1]))
        part = int(rng.integers(0, 5))
        kind = int(rng.choice([K_NOTE_ON, K_NOTE_ON, K_NOTE_OFF, K_NOTE_OFF, K_PARAM, K_UNIT_PARAM,
                               K_PITCH_BEND, K_MOD_WHEEL]))
        note = float(rng.integers(48, 56))
        if kind in (K_NOTE_ON, K_NOTE_OFF):
            if part == 4 and kind == K_NOTE_OFF:
                part = 0
            rows[i, :6] = (t, kind, part, 36.0 if part == 4 else note, 0.7, 1.0)
        elif kind == K_PARAM:
            rows[i, :6] = (t, kind, part % 4, cut, float(rng.uniform(200, 8000)), 0.0)
        elif kind == K_UNIT_PARAM:
            rows[i, :6] = (t, kind, -1, pan, float(rng.uniform(-1, 1)), 0.0)
        else:
            rows[i, :6] = (t, kind, part % 4, 0.0, float(rng.uniform(0, 1)), 0.0)
    return rows


# ---- the event loop as it was before the heap (reference for the comparison only) -------------

@njit(inline="always", **JIT)
def _before_linear(pending, i, j):
    for key in (pending[i, TIME] - pending[j, TIME],
                render._rank(pending[i, KIND]) - render._rank(pending[j, KIND]),
                pending[i, PART] - pending[j, PART], pending[i, A] - pending[j, A]):
        if key != 0.0:
            return key < 0.0
    return pending[i, SEQ] < pending[j, SEQ]


@njit(**JIT)
def _next_due_linear(pending, count, end_time):
    best = -1
    for i in range(count):
        if pending[i, TIME] < end_time and (best < 0 or _before_linear(pending, i, best)):
            best = i
    return best


@njit(**JIT)
def render_block_linear(tab, nframes):
    """The old `render_block`: an unordered pending store, rescanned for every event."""
    ctl = render.i64_1d(tab, L.S_CTL)
    pending = render.f64_2d(tab, L.S_PENDING)
    vf = render.f32_1d(tab, L.S_VF)
    vm = render.f64_2d(tab, L.S_VMETA)
    ptarget = render.f64_2d(tab, L.S_PTARGET)
    pcur = render.f64_2d(tab, L.S_PCUR)
    ps = render.f64_2d(tab, L.S_PART)
    sample_rate = float(ctl[L.C_SAMPLE_RATE])
    count = ctl[L.C_PENDING]
    seq = ctl[L.C_SEQ]
    count, seq, d1 = pop(render.f64_2d(tab, L.S_QSCHED), render.i64_1d(tab, L.S_QSCHED_IDX),
                         pending, count, seq)
    count, seq, d2 = pop(render.f64_2d(tab, L.S_QMIDI), render.i64_1d(tab, L.S_QMIDI_IDX),
                         pending, count, seq)
    ctl[L.C_DROPPED] += d1 + d2
    ctl[L.C_SEQ] = seq
    start = ctl[L.C_SAMPLE_TIME]
    end = start + nframes
    i = 0
    while True:
        k = _next_due_linear(pending, count, float(end))
        if k < 0:
            break
        t = pending[k, TIME]
        off = int(t - start)
        if t < start:
            off = 0
            if t != ASAP:
                ctl[L.C_LATE] += 1
        if off > i:
            render._segment(tab, i, off, start, sample_rate)
            i = off
        render._apply(tab, pending[k], ctl, vf, vm, ptarget, pcur, ps,
                      start + i, sample_rate)
        count -= 1
        if k != count:
            for j in range(pending.shape[1]):
                pending[k, j] = pending[count, j]
    render._segment(tab, i, nframes, start, sample_rate)
    ctl[L.C_PENDING] = count
    ctl[L.C_SAMPLE_TIME] = end
    ctl[L.C_BLOCKS] += 1
    meter = render.f64_1d(tab, L.S_METER)
    bus = render.f64_2d(tab, L.S_BUS)
    for s in range(nframes):
        meter[L.M_PEAK_L] = max(meter[L.M_PEAK_L], abs(bus[L.B_OUT_L, s]))
        meter[L.M_PEAK_R] = max(meter[L.M_PEAK_R], abs(bus[L.B_OUT_R, s]))
    for p in range(L.NPARTS):
        for s in range(nframes):
            meter[L.M_PART_PEAK + p] = max(meter[L.M_PART_PEAK + p], abs(bus[p, s]))
    active = 0
    for p in range(L.N_SYNTH_PARTS):
        active += int(ps[p, L.PS_NACTIVE])
    ctl[L.C_VOICES_ACTIVE] = active
    ctl[L.C_NONFINITE] = int(render.f64_1d(tab, L.S_MASTER_STATE)[master.M_NONFINITE])


# ---- the measurement ---------------------------------------------------------------------------

def _one(kernel, n_events: int) -> tuple[float, dict]:
    """Seconds for one block holding n_events due events, on a fresh engine that has already
    rendered a few blocks (so only the flood differs)."""
    st = EngineState(48000)
    for _ in range(4):
        kernel(st.table, BLOCK)
    if n_events:
        rows = flood_rows(st.sample_time, n_events)
        assert st.push_sched_rows(rows) == n_events
    t0 = time.perf_counter_ns()
    kernel(st.table, BLOCK)
    dt = (time.perf_counter_ns() - t0) * 1e-9
    c = st.counters()
    c["pending_left"] = int(st.ctl[L.C_PENDING])
    return dt, c


def measure(repeats: int = 15, n_events: int = L.PCAP, linear: bool = True) -> dict:
    """The flood figures (µs), for the kernel and, if `linear`, the old linear-scan loop."""
    out: dict = {"events": n_events, "block_frames": BLOCK, "repeats": repeats}
    kernels = [("heap", render.render_block)] + ([("linear_scan", render_block_linear)]
                                                  if linear else [])
    for name, kernel in kernels:
        _one(kernel, n_events)            # compile / load, warm caches
        full = [_one(kernel, n_events) for _ in range(repeats)]
        empty = [_one(kernel, 0)[0] for _ in range(repeats)]
        counters = full[-1][1]
        if counters["pending_left"] or counters["dropped_events"] or counters["late_events"]:
            raise RuntimeError(f"{name}: the flood was not applied cleanly: {counters}")
        us = [t * 1e6 for t, _ in full]
        base = statistics.median(empty) * 1e6
        out[name] = {"block_us_min": round(min(us), 1), "block_us_median": round(statistics.median(us), 1),
                     "empty_block_us_median": round(base, 1),
                     "per_event_us": round((statistics.median(us) - base) / n_events, 3),
                     "block_periods_at_64_frames": round(statistics.median(us) / (BLOCK / 48000 * 1e6), 2)}
    if linear:
        out["speedup"] = round(out["linear_scan"]["block_us_median"] / out["heap"]["block_us_median"], 1)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()
    out = measure(args.repeats)
    print(json.dumps(out) if args.json else json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
