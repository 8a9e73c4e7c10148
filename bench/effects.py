"""Effect units: what each costs per second of stereo audio, beside pyo's equivalents.

Every unit in the registry (engine.rt.units.UNITS) that is not an instrument and not the mixer
`strip` is measured, so a new unit is picked up without touching this file. Each processes
`--seconds` of the test signal (white noise at 0.2 peak plus sines at 110, 440 and 1760 Hz;
the right channel another noise stream and other sine phases) at 48 kHz, in blocks of 64 and
512 frames, through `engine.rt.units.dispatch.run_unit` (the graph's own dispatch), with its
parameters

    default  every parameter at its default;
    busy     every continuous parameter gliding: each block sets new targets (a triangle over
             0.2..0.8 of the control range, period 0.5 s, each parameter at another phase), so
             the smoothing and everything derived from the parameters is recomputed all the
             time; choice parameters stay at their defaults.

Figures: min (and median) of `--repeats` runs, wall clock (and the min in CPU time), in ns per
stereo frame (one sample on each channel) and as times faster than real time; the harness alone
(copying the signal in and out of the bus, no unit) is measured the same way and subtracted
("harness_ns_per_frame", wall).

In the same run, pyo's equivalents (where pyo has one: see PYO) render the same kind of signal
(pyo's Noise and Sine objects) offline, `Server(audio="offline")` as bench/peers.py does, one
worker process per block size (a pyo Server is a process-wide singleton). pyo's figure is the
marginal cost of one instance: (render with PYO_INSTANCES instances of the effect, each sent to
the output - render of the signal alone) / PYO_INSTANCES per frame, min of repeats;
"static" is the pyo objects with constant parameters, "moving" with their main parameters
driven by audio-rate LFOs (pyo recomputes coefficients for an audio-rate parameter each
sample). The ratios are bandmate / pyo (below 1: bandmate is cheaper): default against static,
busy against moving (null when either figure is not above its noise). Every render is checked
(finite, the right length, and from 0.5 s on not silent) before its figure counts; a failure is
reported, never replaced by a figure.

JSON (--json), schema "bandmate.bench.effects/1":
    {"schema", "sample_rate", "seconds", "repeats", "blocks": [64, 512], "input", "settings",
     "harness_ns_per_frame": {block: ns},
     "units": {name: {"kind": int, "params": int,
                      "bandmate": {block: {"default": FIG, "busy": FIG}},
                      "pyo": {"objects": str, "variants": {label: {"objects": str,
                              block: {"static": FIG, "moving": FIG}}}}
                             | {"skipped": str} | {"error": str},
                      "bandmate_over_pyo": {label: {block: {"default_vs_static": r,
                                                            "busy_vs_moving": r}}}}},
     "not_measured": {name: why}, "pyo_version", "load_average": {"start", "end"}}
    FIG = {"ns_per_frame", "ns_per_frame_median", "cpu_ns_per_frame", "x_realtime"}
    ratios: "default_vs_static", "busy_vs_moving" (wall, min of repeats) and the same with
    "_cpu" (CPU time of the rendering thread / pyo's worker: steadier on a loaded machine)

    python bench/effects.py [--json] [--seconds 2] [--repeats 5] [--blocks 64 512] [--no-pyo]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from numba import njit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engine.rt.dsp import JIT  # noqa: E402
from engine.rt.units import UNITS  # noqa: E402
from engine.rt.units.base import (CTX_BEAT, CTX_SAMPLE_TIME, CTX_TEMPO_BPM,  # noqa: E402
                                  IO_CTX, IO_IN_L, IO_IN_R, IO_OUT_L, IO_OUT_R, IO_WIDTH,
                                  default_params)
from engine.rt.units.dispatch import run_unit  # noqa: E402

SR = 48000
SCHEMA = "bandmate.bench.effects/1"
BLOCKS = (64, 512)
TEMPO_BPM = 120.0
NOISE_PEAK = 0.2
SINES = ((110.0, 0.2), (440.0, 0.15), (1760.0, 0.1))    # Hz, peak
BUSY_PERIOD_S = 0.5
_MARK = "EFFECTS_PYO_RESULT "
INPUT = (f"white noise (uniform, peak {NOISE_PEAK}) + sines "
         + ", ".join(f"{f:g} Hz at {a}" for f, a in SINES)
         + "; right channel: another noise stream, sines a quarter cycle later")
SETTINGS = {
    "default": "every parameter at its default",
    "busy": (f"each block sets new targets for every continuous parameter (a triangle over "
             f"0.2..0.8 of its control range, period {BUSY_PERIOD_S} s, phases spread), so "
             f"smoothing and derived coefficients never settle; choices at their defaults"),
}
# bus rows of the harness
R_IN_L, R_IN_R, R_OUT_L, R_OUT_R, R_CTX = range(5)
NO_UNIT = -1


# -------------------------------------------------------------------------- the units measured
def effect_units() -> list[tuple[int, object]]:
    """(kind, module) of every registered unit that is an effect: not an instrument, not the
    mixer strip."""
    return [(kind, u) for kind, u in enumerate(UNITS)
            if not getattr(u, "INSTRUMENT", False) and u.NAME != "strip"]


def not_measured() -> dict[str, str]:
    out = {}
    for u in UNITS:
        if u.NAME == "strip":
            out[u.NAME] = "the mixer strip (level, pan, sends), not an effect"
        elif getattr(u, "INSTRUMENT", False):
            out[u.NAME] = "an instrument (bench/voices.py measures voices)"
    return out


def test_signal(frames: int, sample_rate: int = SR, seed: int = 1) -> np.ndarray:
    """The stereo input, float64[2, frames]."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / sample_rate
    x = NOISE_PEAK * rng.uniform(-1.0, 1.0, (2, frames))
    for ch in range(2):
        for f, a in SINES:
            x[ch] += a * np.sin(2 * np.pi * f * t + ch * np.pi / 2)
    return x


def busy_targets(unit, sample_rate: int, block: int) -> np.ndarray:
    """float64[blocks in one period, len(PARAMS)]: each block's targets for the busy setting
    (the driver cycles through the rows)."""
    params = unit.PARAMS
    rows = max(1, int(round(BUSY_PERIOD_S * sample_rate / block)))
    out = np.empty((rows, len(params)))
    for b in range(rows):
        for p in params:
            if p.curve == "choice":
                out[b, p.index] = p.default
                continue
            phase = (b / rows + p.index / max(len(params), 1)) % 1.0
            tri = 1.0 - abs(2.0 * phase - 1.0)
            out[b, p.index] = p.from_unit(0.2 + 0.6 * tri)
    return out


@njit(**JIT)
def _drive(kind, state, params, n, bus, io, x, y, block, targets, sample_rate):
    """Feed x (float64[2, frames]) through unit `kind` in blocks of `block`, output into y;
    with targets (rows > 0), each block first sets the next row as the parameters' targets."""
    frames = x.shape[1]
    spb = TEMPO_BPM / (60.0 * sample_rate)
    b = 0
    for i0 in range(0, frames, block):
        m = min(block, frames - i0)
        if targets.shape[0] > 0:
            r = b % targets.shape[0]
            for k in range(n):
                params[k] = targets[r, k]
        for s in range(m):
            bus[R_IN_L, s] = x[0, i0 + s]
            bus[R_IN_R, s] = x[1, i0 + s]
        bus[R_CTX, CTX_TEMPO_BPM] = TEMPO_BPM
        bus[R_CTX, CTX_SAMPLE_TIME] = i0
        bus[R_CTX, CTX_BEAT] = i0 * spb
        if kind >= 0:
            run_unit(kind, state, params, bus, io, 0, m, sample_rate)
        else:                           # the harness alone
            for s in range(m):
                bus[R_OUT_L, s] = bus[R_IN_L, s]
                bus[R_OUT_R, s] = bus[R_IN_R, s]
        for s in range(m):
            y[0, i0 + s] = bus[R_OUT_L, s]
            y[1, i0 + s] = bus[R_OUT_R, s]
        b += 1


def _io() -> np.ndarray:
    io = np.full(IO_WIDTH, -1, np.int64)
    io[IO_IN_L], io[IO_IN_R], io[IO_OUT_L], io[IO_OUT_R] = R_IN_L, R_IN_R, R_OUT_L, R_OUT_R
    io[IO_CTX] = R_CTX
    return io


def bandmate_times(kind: int, unit, x: np.ndarray, block: int, setting: str, repeats: int,
                   sample_rate: int = SR) -> tuple[list[float], list[float], np.ndarray]:
    """Wall and CPU seconds of each repeat (state reset, parameters at their defaults first),
    and the output of the last."""
    y = np.zeros_like(x)
    bus = np.zeros((5, max(block, 8)))
    io = _io()
    if unit is None:
        state, n = np.zeros(1), 0
        params = np.zeros(1)
        targets = np.zeros((0, 1))
    else:
        n = len(unit.PARAMS)
        state = np.zeros(max(int(unit.state_size(sample_rate)), 1))
        params = np.array(default_params(unit.PARAMS), dtype=np.float64)
        targets = busy_targets(unit, sample_rate, block) if setting == "busy" \
            else np.zeros((0, n))
    start = params.copy()
    walls, cpus = [], []
    for r in range(repeats + 1):        # the first run compiles / warms up, untimed
        if unit is not None:
            unit.reset(state, float(sample_rate))
        params[:] = start
        t0, c0 = time.perf_counter(), time.thread_time()
        _drive(kind, state, params, n, bus, io, x, y, block, targets, float(sample_rate))
        if r:
            walls.append(time.perf_counter() - t0)
            cpus.append(time.thread_time() - c0)
    return walls, cpus, y


def _figure(walls: list[float], cpus: list[float], frames: int, seconds: float,
            minus: tuple[float, float] = (0.0, 0.0)) -> dict:
    """FIG from seconds per repeat, less `minus` (wall, cpu) ns per frame."""
    best = min(walls) / frames * 1e9 - minus[0]
    med = statistics.median(walls) / frames * 1e9 - minus[0]
    cpu = min(cpus) / frames * 1e9 - minus[1]
    return {"ns_per_frame": round(best, 3), "ns_per_frame_median": round(med, 3),
            "cpu_ns_per_frame": round(cpu, 3),
            "x_realtime": round(1e9 / (best * frames / seconds), 1) if best > 0 else None}


def _check(y: np.ndarray, what: str, seconds: float) -> None:
    """Finite, and (for renders long enough to outlast any effect's delay) not silent."""
    if not np.all(np.isfinite(y)) or (float(np.sqrt(np.mean(y ** 2))) < 1e-4 and seconds >= 0.5):
        raise RuntimeError(f"{what}: the output is not finite or is silent")


# -------------------------------------------------------------------------------- pyo
def _lfo(pyo, hz, lo, hi):
    """An audio-rate sine between lo and hi."""
    return pyo.Sine(freq=hz, mul=(hi - lo) / 2.0, add=(hi + lo) / 2.0)


def _pyo_eq(pyo, src, moving):
    f = (lambda hz, lo, hi: _lfo(pyo, hz, lo, hi)) if moving else (lambda hz, lo, hi: (lo + hi) / 2)
    a = pyo.Biquad(src, freq=f(0.3, 40, 120), q=0.707, type=1)
    a = pyo.EQ(a, freq=f(0.4, 80, 150), q=0.707, boost=3.0, type=1)
    a = pyo.EQ(a, freq=f(0.5, 200, 400), q=1.0, boost=3.0, type=0)
    a = pyo.EQ(a, freq=f(0.6, 2000, 3000), q=1.0, boost=-3.0, type=0)
    a = pyo.EQ(a, freq=f(0.7, 6000, 9000), q=0.707, boost=3.0, type=2)
    return pyo.Biquad(a, freq=f(0.8, 12000, 16000), q=0.707, type=0)


PYO = {
    # unit name: {label: (objects, build(pyo, src, moving) -> PyoObject)}
    "eq": {"EQ": ("Biquad highpass, EQ low shelf, 2 EQ peaks, EQ high shelf, Biquad lowpass "
                  "(six biquads: bandmate's EQ with every band on)", _pyo_eq)},
    "compressor": {"Compress": (
        "Compress(thresh=-18, ratio=4, risetime=0.01, falltime=0.1, lookahead=0, knee=0.5)",
        lambda pyo, src, mv: pyo.Compress(
            src, thresh=_lfo(pyo, 0.5, -30, -10) if mv else -18.0, ratio=4.0, risetime=0.01,
            falltime=0.1, lookahead=0.0, knee=0.5))},
    "chorus": {"Chorus": (
        "Chorus(depth=1, feedback=0, bal=0.5) (8 modulated delay lines)",
        lambda pyo, src, mv: pyo.Chorus(src, depth=_lfo(pyo, 0.5, 0.5, 2.0) if mv else 1.0,
                                        feedback=0.0, bal=0.5))},
    "flanger": {"Delay": (
        "Delay(delay 2 ms swept by a 0.25 Hz sine, feedback=0.5) (pyo has no flanger)",
        lambda pyo, src, mv: pyo.Delay(
            src, delay=_lfo(pyo, 0.25, 0.001, 0.003) if mv else 0.002, feedback=0.5,
            maxdelay=0.02, mul=0.5, add=src * 0.5))},
    "phaser": {"Phaser": (
        "Phaser(freq=1000, spread=1.1, q=1, feedback=0, num=4)",
        lambda pyo, src, mv: pyo.Phaser(src, freq=_lfo(pyo, 0.4, 300, 3000) if mv else 1000.0,
                                        spread=1.1, q=1.0, feedback=0.0, num=4))},
    "saturation": {"Disto": (
        "Disto(drive=0.75, slope=0.5) (no oversampling)",
        lambda pyo, src, mv: pyo.Disto(src, drive=_lfo(pyo, 0.5, 0.2, 0.9) if mv else 0.75,
                                       slope=0.5))},
    "gate": {"Gate": (
        "Gate(thresh=-40, risetime=0.0005, falltime=0.1, lookahead=0)",
        lambda pyo, src, mv: pyo.Gate(src, thresh=_lfo(pyo, 0.5, -60, -20) if mv else -40.0,
                                      risetime=0.0005, falltime=0.1, lookahead=0.0))},
    "bitcrusher": {"Degrade": (
        "Degrade(bitdepth=8, srscale=1)",
        lambda pyo, src, mv: pyo.Degrade(src, bitdepth=_lfo(pyo, 0.5, 4, 12) if mv else 8.0,
                                         srscale=_lfo(pyo, 0.3, 0.2, 1.0) if mv else 1.0))},
    "delay": {
        "Delay": ("Delay(delay=0.375, feedback=0.35, maxdelay=4) (no tone filter, no ping-pong)",
                  lambda pyo, src, mv: pyo.Delay(
                      src, delay=_lfo(pyo, 0.5, 0.3, 0.45) if mv else 0.375, feedback=0.35,
                      maxdelay=4.0)),
        "SmoothDelay": ("SmoothDelay(delay=0.375, feedback=0.35, crossfade=0.05, maxdelay=4)",
                        lambda pyo, src, mv: pyo.SmoothDelay(
                            src, delay=_lfo(pyo, 0.5, 0.3, 0.45) if mv else 0.375,
                            feedback=0.35, crossfade=0.05, maxdelay=4.0))},
    "reverb": {
        "Freeverb": ("Freeverb(size=0.5, damp=0.5, bal=1)",
                     lambda pyo, src, mv: pyo.Freeverb(
                         src, size=_lfo(pyo, 0.5, 0.3, 0.8) if mv else 0.5, damp=0.5, bal=1.0)),
        "WGVerb": ("WGVerb(feedback=0.7, cutoff=5000, bal=1)",
                   lambda pyo, src, mv: pyo.WGVerb(
                       src, feedback=_lfo(pyo, 0.5, 0.5, 0.8) if mv else 0.7, cutoff=5000.0,
                       bal=1.0)),
        "STRev": ("STRev(revtime=1.5, cutoff=5000, bal=1, roomSize=1)",
                  lambda pyo, src, mv: pyo.STRev(
                      src, revtime=_lfo(pyo, 0.5, 1.0, 2.0) if mv else 1.5, cutoff=5000.0,
                      bal=1.0, roomSize=1.0))},
    "harmonizer": {"Harmonizer": (
        "Harmonizer(transpo=-7, feedback=0, winsize=0.1)",
        lambda pyo, src, mv: pyo.Harmonizer(src, transpo=_lfo(pyo, 0.5, -9, -5) if mv else -7.0,
                                            feedback=0.0, winsize=0.1))},
}
PYO_NONE = {"width": "pyo has no mid/side width object"}
PYO_INSTANCES = 8
"""pyo renders this many instances of an effect on the signal, each to the output, and the
figure is per instance: an offline render's fixed cost (the signal, the file written) is
several times one effect's, so one instance would drown in its noise."""


def _pyo_worker(cfg: dict) -> dict:
    import pyo
    import soundfile as sf

    sr, bs, seconds, repeats = cfg["sample_rate"], cfg["block"], cfg["seconds"], cfg["repeats"]
    frames = int(round(seconds * sr))
    tmp = tempfile.mkdtemp(prefix="bandmate_fx_pyo_")
    path = os.path.join(tmp, "render.wav")
    try:
        s = pyo.Server(sr=sr, nchnls=2, buffersize=bs, duplex=0, audio="offline", verbosity=1)
        s.boot()
        s.recordOptions(dur=seconds, filename=path, fileformat=0, sampletype=3)

        def render(what):
            times = []
            for _ in range(repeats + 1):            # the first is a warm-up
                t0, c0 = time.perf_counter(), time.process_time()
                s.start()                           # offline: the whole duration, then returns
                times.append((time.perf_counter() - t0, time.process_time() - c0))
            y, _ = sf.read(path, dtype="float32")
            silent = float(np.sqrt(np.mean(y.astype(np.float64) ** 2))) < 1e-4
            if len(y) < frames or not np.all(np.isfinite(y)) or (silent and seconds >= 0.5):
                raise RuntimeError(f"{what}: pyo's render is short, not finite or silent")
            return times[1:]

        noise = pyo.Noise(mul=[NOISE_PEAK, NOISE_PEAK])
        sines = [pyo.Sine(freq=f, phase=[0.0, 0.25], mul=a) for f, a in SINES]
        src = noise + sines[0] + sines[1] + sines[2]
        src.out()
        base = render("the signal alone")
        src.stop()
        out = {"version": ".".join(map(str, pyo.getVersion())), "baseline_s": base, "units": {}}
        for name, variants in cfg["units"].items():
            res = {}
            for label in variants:
                objects, build = PYO[name][label]
                entry = {"objects": objects}
                for mode in ("static", "moving"):
                    try:
                        src.play()
                        fx = [build(pyo, src, mode == "moving").out()
                              for _ in range(cfg["instances"])]
                        entry[mode] = render(f"{label} ({mode})")
                        for f in fx:
                            f.stop()
                        del fx
                    except Exception as exc:  # noqa: BLE001 - reported, never a figure
                        entry[mode] = {"error": f"{type(exc).__name__}: {exc}"}
                    src.stop()
                res[label] = entry
            out["units"][name] = res
        s.shutdown()
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def pyo_times(names: list[str], seconds: float, block: int, repeats: int,
              sample_rate: int = SR) -> dict:
    """pyo's renders for the units in `names` (those with an entry in PYO), in a worker
    process; raises RuntimeError when pyo is missing or the worker fails."""
    cfg = {"sample_rate": sample_rate, "block": block, "seconds": seconds, "repeats": repeats,
           "instances": PYO_INSTANCES, "units": {n: list(PYO[n]) for n in names if n in PYO}}
    timeout = 120.0 + 40.0 * (repeats + 1) * seconds * (1 + sum(map(len, cfg["units"].values())))
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--pyo-worker",
                           json.dumps(cfg)], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(_MARK)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"pyo worker failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
    raw = json.loads(lines[-1][len(_MARK):])
    if "error" in raw:
        raise RuntimeError(f"pyo worker: {raw['error']}")
    return raw


def _pyo_figure(times, baseline, frames, seconds) -> dict:
    """FIG of one instance from the (wall, cpu) seconds of each repeat."""
    if isinstance(times, dict):          # an error
        return times
    walls, cpus = [w for w, _ in times], [c for _, c in times]
    bw, bc = [w for w, _ in baseline], [c for _, c in baseline]
    best = (min(walls) - min(bw)) / PYO_INSTANCES
    med = (statistics.median(walls) - statistics.median(bw)) / PYO_INSTANCES
    cpu = (min(cpus) - min(bc)) / PYO_INSTANCES
    if best <= 0 or cpu <= 0:
        return {"error": f"no measurable cost above the signal alone: {times} vs {baseline}"}
    return {"ns_per_frame": round(best / frames * 1e9, 3),
            "ns_per_frame_median": round(med / frames * 1e9, 3),
            "cpu_ns_per_frame": round(cpu / frames * 1e9, 3),
            "x_realtime": round(seconds / best, 1)}


# ----------------------------------------------------------------------------- the run
def run(seconds: float = 2.0, repeats: int = 5, blocks=BLOCKS, with_pyo: bool = True,
        sample_rate: int = SR) -> dict:
    load_start = os.getloadavg()
    frames = int(round(seconds * sample_rate))
    x = test_signal(frames, sample_rate)
    units = effect_units()
    result: dict = {"schema": SCHEMA, "sample_rate": sample_rate, "seconds": seconds,
                    "repeats": repeats, "blocks": list(blocks), "input": INPUT,
                    "settings": SETTINGS, "harness_ns_per_frame": {}, "units": {},
                    "not_measured": not_measured(), "pyo_version": None}
    harness = {}
    for block in blocks:
        walls, cpus, _ = bandmate_times(NO_UNIT, None, x, block, "default", repeats, sample_rate)
        harness[block] = (min(walls) / frames * 1e9, min(cpus) / frames * 1e9)
        result["harness_ns_per_frame"][str(block)] = round(harness[block][0], 3)
    for kind, unit in units:
        entry = {"kind": kind, "params": len(unit.PARAMS), "bandmate": {}}
        for block in blocks:
            entry["bandmate"][str(block)] = {}
            for setting in SETTINGS:
                walls, cpus, y = bandmate_times(kind, unit, x, block, setting, repeats,
                                                sample_rate)
                _check(y, f"{unit.NAME} ({setting}, block {block})", seconds)
                entry["bandmate"][str(block)][setting] = _figure(walls, cpus, frames, seconds,
                                                                 harness[block])
        result["units"][unit.NAME] = entry
    names = [u.NAME for _, u in units]
    pyo_raw: dict = {}
    pyo_error = None
    if with_pyo:
        for block in blocks:
            try:
                pyo_raw[block] = pyo_times(names, seconds, block, repeats, sample_rate)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                pyo_error = str(exc)
                print(f"pyo at block {block}: {pyo_error}", file=sys.stderr)
                break
    for name in names:
        entry = result["units"][name]
        if not with_pyo:
            entry["pyo"] = {"skipped": "--no-pyo"}
            continue
        if name not in PYO:
            entry["pyo"] = {"skipped": PYO_NONE.get(name, "no pyo equivalent listed in "
                                                          "bench/effects.py PYO")}
            continue
        if pyo_error is not None:
            entry["pyo"] = {"error": pyo_error}
            continue
        variants, ratios = {}, {}
        for label, (objects, _) in PYO[name].items():
            v = {"objects": objects}
            ratios[label] = {}
            for block in blocks:
                raw = pyo_raw[block]
                got = raw["units"][name][label]
                fig = {mode: _pyo_figure(got[mode], raw["baseline_s"], frames, seconds)
                       for mode in ("static", "moving")}
                v[str(block)] = fig
                mine = entry["bandmate"][str(block)]
                r = {}
                for key, (a, b) in {"default_vs_static": ("default", "static"),
                                    "busy_vs_moving": ("busy", "moving")}.items():
                    for suffix, fkey in (("", "ns_per_frame"), ("_cpu", "cpu_ns_per_frame")):
                        p, m = fig[b].get(fkey), mine[a][fkey]
                        r[key + suffix] = round(m / p, 3) if p and p > 0 and m > 0 else None
                ratios[label][str(block)] = r
            variants[label] = v
        entry["pyo"] = {"objects": "; ".join(o for o, _ in PYO[name].values()),
                        "variants": variants}
        entry["bandmate_over_pyo"] = ratios
    if pyo_raw:
        result["pyo_version"] = next(iter(pyo_raw.values()))["version"]
    result["load_average"] = {"start": [round(v, 2) for v in load_start],
                              "end": [round(v, 2) for v in os.getloadavg()]}
    return result


def _print(result: dict) -> None:
    print(f"effect units, {result['seconds']} s stereo at {result['sample_rate']} Hz, min of "
          f"{result['repeats']} (harness subtracted: {result['harness_ns_per_frame']} ns/frame)")
    for name, e in result["units"].items():
        for block in map(str, result["blocks"]):
            b = e["bandmate"][block]
            line = (f"{name:11s} block {block:>3}: default {b['default']['ns_per_frame']:7.2f} "
                    f"ns/frame (x{b['default']['x_realtime']}), busy "
                    f"{b['busy']['ns_per_frame']:7.2f} (x{b['busy']['x_realtime']})")
            for label, r in e.get("bandmate_over_pyo", {}).items():
                v = e["pyo"]["variants"][label][block]
                st, mv = v["static"].get("ns_per_frame"), v["moving"].get("ns_per_frame")
                line += (f" | pyo {label} {st} / {mv} ns: bandmate/pyo "
                         f"{r[block]['default_vs_static']} / {r[block]['busy_vs_moving']} (cpu "
                         f"{r[block]['default_vs_static_cpu']} / {r[block]['busy_vs_moving_cpu']})")
            if "skipped" in e["pyo"] or "error" in e["pyo"]:
                line += f" | pyo: {e['pyo'].get('skipped') or e['pyo'].get('error')}"
            print(line)
    print(f"not measured: {result['not_measured']}; load average {result['load_average']}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--blocks", type=int, nargs="+", default=list(BLOCKS))
    ap.add_argument("--no-pyo", action="store_true", help="bandmate only")
    ap.add_argument("--pyo-worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.pyo_worker is not None:
        try:
            out = _pyo_worker(json.loads(args.pyo_worker))
        except Exception as exc:  # reported to the parent, which raises
            out = {"error": f"{type(exc).__name__}: {exc}"}
        print(_MARK + json.dumps(out), flush=True)
        return 0
    if args.seconds <= 0 or args.repeats < 1 or any(not 1 <= b <= 4096 for b in args.blocks):
        ap.error("--seconds > 0, --repeats >= 1, blocks 1..4096")
    result = run(args.seconds, args.repeats, tuple(args.blocks), not args.no_pyo)
    if args.json:
        print(json.dumps(result))
    else:
        _print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
