"""Offline render speed of the demo, where its time goes, and time from `bandmate demo` to first
audio.

- render: the whole arranged demo (every part, sends, master) rendered offline at 48 kHz,
  512-frame blocks, min of 3 runs; printed as times faster than real time (target >= 200x).
  The same runs split it: the scheduler (agents and patterns, Python, before each block) and
  the render kernel (`run_block`, compiled) with the copy of each block out.
- profile (--profile): the demo's events are recorded once, then replayed into a fresh session
  with every op of the graph's program timed by the CPU's cycle counter, by its address (each
  part's instrument `/keys/synth`, its inserts and strip, the send chains and returns), then the
  master and the event handling: ns per sample of the demo, largest first. Min of 3 replays.
- first audio: wall time from launching `bandmate demo` (warm kernel cache) until its stream
  is running and has rendered audio, through a JACK dummy server with the PortAudio driver
  (target < 3 s). Median of 3 launches.

    python bench/render.py [--json] [--no-live] [--profile]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.config import load_config  # noqa: E402
from engine.control.export import query_by_bar  # noqa: E402
from engine.control.offline import OfflineDriver  # noqa: E402
from engine.control.session import Session  # noqa: E402
from engine.control.warmup import warm_up  # noqa: E402

SR = 48000
BLOCK = 512


def render_speed(repeats: int = 3) -> dict:
    cfg = load_config(ROOT / "config.toml")
    warm_up()
    best = (float("inf"), 0.0)
    seconds = 0.0
    for _ in range(repeats):
        session = Session(cfg, SR, demo=True, root=ROOT)
        query_by_bar(session)             # as `bandmate render --demo` does
        seconds = session.length_s
        frames = int(seconds * SR)
        sched = [0.0]

        def before_block(end, advance=session.scheduler.advance, acc=sched):
            t0 = time.perf_counter()
            advance(end)
            acc[0] += time.perf_counter() - t0

        drv = OfflineDriver(session.state, BLOCK, before_block)
        t0 = time.perf_counter()
        drv.render(frames)
        wall = time.perf_counter() - t0
        if wall < best[0]:
            best = (wall, sched[0])
    wall, sched = best
    kernel = wall - sched
    return {"demo_seconds": round(seconds, 2), "render_wall_s": round(wall, 3),
            "realtime_factor": round(seconds / wall, 1),
            "scheduler_s": round(sched, 3), "kernel_s": round(kernel, 3),
            "kernel_realtime_factor": round(seconds / kernel, 1)}


# ---- the profile --------------------------------------------------------------------------------
# `block` below is engine.rt.render.render_block with a cycle count around each op of the graph's
# program, the master and the events (the demo makes no graph swap, so no crossfade runs); keep
# the two in step.

def _profile_kernels():
    """Compile the profiled block (imported late: only --profile pays for it)."""
    from llvmlite import ir
    from numba import njit, types
    from numba.extending import intrinsic

    from engine.rt import master
    from engine.rt import render as R
    from engine.rt.events import TIME
    from engine.rt.layout import (B_CTX, B_GRAPH_END, B_GRAPH_FIRST, B_OUT_L, B_OUT_R,
                                  B_XFADE_L, B_XFADE_R, BANK_STRIDE, C_BANK, C_BANK_OPS,
                                  C_PENDING, C_SAMPLE_RATE, C_SAMPLE_TIME, C_SEQ, G_PROG, G_UIO,
                                  G_UPARAMS, G_USTATE, GL_TEMPO_BPM, MAX_OPS, S_BANK0, S_BUS,
                                  S_CTL, S_GLOBAL, S_MASTER_PARAMS, S_MASTER_STATE, S_PENDING,
                                  S_QMIDI, S_QMIDI_IDX, S_QSCHED, S_QSCHED_IDX)
    from engine.rt.ringbuf import pop
    from engine.rt.units.base import CTX_BEAT, CTX_SAMPLE_TIME, CTX_TEMPO_BPM, IO_WIDTH
    from engine.rt.units.dispatch import (PR_IO, PR_KIND, PR_PARAMS, PR_PARAMS_LEN, PR_STATE,
                                          PR_STATE_LEN, run_unit)

    @intrinsic
    def cycles(typingctx):
        def codegen(context, builder, signature, args):
            fn = builder.module.declare_intrinsic("llvm.readcyclecounter",
                                                  fnty=ir.FunctionType(ir.IntType(64), []))
            return builder.call(fn, [])
        return types.int64(), codegen

    # acc: one entry per program row (MAX_OPS), then the master, then the events
    MASTER, EVENTS = MAX_OPS, MAX_OPS + 1

    @njit(nogil=True)
    def segment(tab, i0, i1, now0, sample_rate, acc):
        if i1 <= i0:
            return
        glob = R.f64_1d(tab, S_GLOBAL)
        bus = R.f64_2d(tab, S_BUS)
        ctl = R.i64_1d(tab, S_CTL)
        bus[B_CTX, CTX_TEMPO_BPM] = glob[GL_TEMPO_BPM]
        bus[B_CTX, CTX_SAMPLE_TIME] = now0 + i0
        bus[B_CTX, CTX_BEAT] = R._beat_at(glob, now0 + i0, sample_rate)
        for r in range(B_GRAPH_FIRST, B_GRAPH_END):
            if r != B_CTX and r != B_XFADE_L and r != B_XFADE_R:
                for s in range(i0, i1):
                    bus[r, s] = 0.0
        bank = ctl[C_BANK]
        g = S_BANK0 + bank * BANK_STRIDE
        prog = R.i64_2d(tab, g + G_PROG)
        states = R.f64_1d(tab, g + G_USTATE)
        params = R.f64_1d(tab, g + G_UPARAMS)
        ios = R.i64_1d(tab, g + G_UIO)
        for r in range(min(ctl[C_BANK_OPS + bank], MAX_OPS)):
            t0 = cycles()
            s0, p0, io0 = prog[r, PR_STATE], prog[r, PR_PARAMS], prog[r, PR_IO]
            run_unit(prog[r, PR_KIND], states[s0:s0 + prog[r, PR_STATE_LEN]],
                     params[p0:p0 + prog[r, PR_PARAMS_LEN]], bus, ios[io0:io0 + IO_WIDTH],
                     i0, i1, sample_rate)
            acc[r] += cycles() - t0
        t0 = cycles()
        master.master_process(R.f64_1d(tab, S_MASTER_STATE), R.f64_1d(tab, S_MASTER_PARAMS),
                              bus[B_OUT_L], bus[B_OUT_R], i0, i1, sample_rate)
        acc[MASTER] += cycles() - t0

    @njit(nogil=True)
    def block(tab, nframes, acc):
        ctl = R.i64_1d(tab, S_CTL)
        pending = R.f64_2d(tab, S_PENDING)
        glob = R.f64_1d(tab, S_GLOBAL)
        sample_rate = float(ctl[C_SAMPLE_RATE])
        t0 = cycles()
        count = ctl[C_PENDING]
        seq = ctl[C_SEQ]
        new, seq, d1 = pop(R.f64_2d(tab, S_QSCHED), R.i64_1d(tab, S_QSCHED_IDX), pending,
                           count, seq)
        new, seq, d2 = pop(R.f64_2d(tab, S_QMIDI), R.i64_1d(tab, S_QMIDI_IDX), pending, new,
                           seq)
        count, d3 = R._heap_add(pending, count, new)
        ctl[C_SEQ] = seq
        acc[EVENTS] += cycles() - t0
        start = ctl[C_SAMPLE_TIME]
        end = start + nframes
        i = 0
        while count > 0 and pending[0, TIME] < end:
            t = pending[0, TIME]
            off = max(int(t - start), 0)
            if off > i:
                segment(tab, i, off, start, sample_rate, acc)
                i = off
            t0 = cycles()
            R._apply(tab, pending[0], ctl, glob, start + i, sample_rate)
            count = R._heap_take(pending, count)
            acc[EVENTS] += cycles() - t0
        segment(tab, i, nframes, start, sample_rate, acc)
        ctl[C_PENDING] = count
        ctl[C_SAMPLE_TIME] = end

    @njit(nogil=True)
    def now():
        return cycles()

    return block, now, MAX_OPS + 2


def profile(repeats: int = 3) -> dict:
    """ns per sample of the demo in each op of the graph (by address), the master and the
    event handling."""
    from engine.control.state import EngineState
    from engine.rt.render import run_block

    cfg = load_config(ROOT / "config.toml")
    warm_up()
    log = []
    push = EngineState.push_sched_rows

    def record(self, rows):
        log.append((self.sample_time, np.array(rows, copy=True)))
        return push(self, rows)

    EngineState.push_sched_rows = record
    try:
        session = Session(cfg, SR, demo=True, root=ROOT)
        frames = int(session.length_s * SR)
        OfflineDriver(session.state, BLOCK, session.scheduler.advance).render(frames)
    finally:
        EngineState.push_sched_rows = push
    by_time: dict[int, list] = {}
    for t, rows in log:
        by_time.setdefault(t, []).append(rows)
    block, now, size = _profile_kernels()
    paths = [op.path for op in session.graph.program.ops]

    def replay(fn):
        st = Session(cfg, SR, demo=True, root=ROOT).state
        done = 0
        while done < frames:
            n = min(BLOCK, frames - done)
            for rows in by_time.get(st.sample_time, ()):
                st.push_sched_rows(rows)
            fn(st.table, n)
            done += n

    replay(lambda tab, n: run_block(tab, n))             # compiled and warm
    acc = np.zeros(size, np.int64)
    replay(lambda tab, n: block(tab, n, acc))
    best = None
    for _ in range(repeats):
        acc[:] = 0
        replay(lambda tab, n: block(tab, n, acc))
        if best is None or acc.sum() < best.sum():
            best = acc.copy()
    c0, t0 = now(), time.perf_counter()
    time.sleep(0.2)
    per_ns = (now() - c0) / ((time.perf_counter() - t0) * 1e9)     # cycles per ns
    ns = best / per_ns / frames
    parts = {p: round(float(v), 1) for p, v in zip(paths, ns)}
    out = {"ns_per_sample": dict(sorted(parts.items(), key=lambda kv: -kv[1]))}
    out["ns_per_sample"]["master"] = round(float(ns[-2]), 1)
    out["ns_per_sample"]["events"] = round(float(ns[-1]), 1)
    out["ns_per_sample"]["total"] = round(float(ns.sum()), 1)
    out["kernel_realtime_factor"] = round(1e9 / SR / float(ns.sum()), 1)
    return out


def first_audio(launches: int = 3) -> dict | None:
    from tests.jackserver import JackServer
    times = []
    try:
        server = JackServer(name="bandmate_bench").start()
    except RuntimeError as exc:
        return {"error": str(exc)}
    try:
        env = dict(os.environ, JACK_DEFAULT_SERVER=server.name)
        for _ in range(launches):
            t0 = time.perf_counter()
            proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "demo"], cwd=ROOT,
                                    env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True)
            for line in proc.stdout:
                if line.startswith("playing the demo"):
                    times.append(time.perf_counter() - t0)
                    break
            proc.terminate()
            proc.wait(timeout=30)
    finally:
        server.stop()
    if not times:
        return {"error": "the demo never reported playing"}
    return {"first_audio_s_median": round(statistics.median(times), 3),
            "first_audio_s_min": round(min(times), 3)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--no-live", action="store_true", help="skip the JACK first-audio launch")
    ap.add_argument("--profile", action="store_true", help="time each component of the kernel")
    args = ap.parse_args()
    result = render_speed()
    if args.profile:
        result["profile"] = profile()
    if not args.no_live:
        result.update(first_audio() or {})
    print(json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
