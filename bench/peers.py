"""Peers measured beside bandmate in bench/voices.py: the same reference voice in other engines.

The reference voice: two detuned band-limited saws -> resonant 4-pole ladder low-pass -> ADSR,
N voices at different pitches, all notes sustained, rendered offline as fast as the engine can.
The figure is the *marginal* cost of a voice: (render time with N voices - render time of the
same empty server) / (N * samples), so the server's fixed costs (file writing, the output mix)
are not charged to the voices.

pyo (pip package `pyo`, in the project's `bench` extra)
    saws:   `LFO(type=0, sharp=1.0)`, pyo's own "band-limited" oscillator. It computes
            p - tanh(h*p)/tanh(h) over the phase p in [-1, 1), with the harmonic factor h capped
            at (sr/4)/freq, so the discontinuity is smoothed according to the pitch: the
            same idea (and about the same cost: one tanh a sample) as a PolyBLEP saw. pyo's
            alternatives are worse matches: `SuperSaw` is a 7-saw JP-8000 model, `RCOsc` is not
            a saw, `Blit` is an impulse train that needs a separate integrator, and `Osc` over a
            `SawTable` is band-limited only for one fixed harmonic count (it is offered as
            saw="table", with the harmonic count chosen per voice below Nyquist, for reference).
            The second saw is detuned by the patch's detune_cents.
    filter: `MoogLP(freq=cutoff_hz, res=resonance)` (pyo's 4-pole Moog ladder).
    env:    `Adsr(attack, decay, sustain, release, dur=0)` (dur=0: holds the sustain until
            stopped), applied as MoogLP's `mul`.
    The parameters and the notes are bandmate's: patches/reference.toml (reference_patch) and
    bench/voices.py's pitches. Default buffersize 256 = bench/voices.py's BLOCK.
    Offline: `Server(audio="offline")` + `recordOptions(dur=...)`; each `server.start()` renders
            the whole duration and returns. A pyo Server is a process-wide singleton that does
            not reboot cleanly, so every measurement runs in a fresh subprocess (this file run as
            a script in worker mode). pyo computes in float32 unless double=True (pyo64).
    Sanity: the last render is read back and must be finite and clearly non-silent, and the
            empty server's render must be silent, before a timing is returned.

scsynth (SuperCollider): skipped. It is not installed on the project's machines (and not
installed for this), and an NRT benchmark needs a compiled SynthDef (sclang); the function
`scsynth_ns_per_voice_sample` exists so callers can treat it like any peer, and returns None.

Run as a script to print figures:  python bench/peers.py --voices 1 8 32
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

_MARK = "PEERS_RESULT "


REFERENCE_PATCH = Path(__file__).resolve().parent.parent / "patches" / "reference.toml"
_DEFAULTS = {"detune_cents": 7.0, "cutoff_hz": 2000.0, "resonance": 0.5, "amp_attack_s": 0.01,
             "amp_decay_s": 0.2, "amp_sustain": 0.8, "amp_release_s": 0.3}


def reference_patch(path: Path = REFERENCE_PATCH) -> dict:
    """The reference voice's parameters, from patches/reference.toml (the patch bench/voices.py
    renders in bandmate) when it exists, else the defaults above."""
    params = dict(_DEFAULTS)
    if path.exists():
        with open(path, "rb") as f:
            doc = tomllib.load(f)
        for table in doc.values():
            if isinstance(table, dict):
                params.update({k: float(v) for k, v in table.items() if k in _DEFAULTS})
    return params


def _pitch(i: int) -> float:
    """Voice i's pitch in Hz: the same notes bench/voices.py plays (fifths over five octaves
    from C2, nudged by 0.1 semitone per lap)."""
    midi = 36 + (i * 7) % 60 + (i // 60) * 0.1
    return 440.0 * 2.0 ** ((midi - 69.0) / 12.0)


def pyo_ns_per_voice_sample(n_voices: int, seconds: float = 10.0, sample_rate: int = 48000,
                            repeats: int = 3, *, buffersize: int = 256, saw: str = "lfo",
                            double: bool = False, timeout: float | None = None) -> dict:
    """Marginal wall-clock cost of one reference voice in pyo, in ns per voice-sample.

    Renders `seconds` of audio offline `repeats` times with `n_voices` sustained voices and
    `repeats` times with none (same server), takes the minimum wall time of each, and returns

        {"ns_per_voice_sample", "voices_per_core",            # from wall time (min of repeats)
         "cpu_ns_per_voice_sample", "cpu_voices_per_core",    # same from process CPU time
         "wall_s", "empty_wall_s", "rms", "peak", "engine", "n_voices", "seconds",
         "sample_rate", "buffersize", "saw", "double"}

    voices_per_core = 1e9 / (ns_per_voice_sample * sample_rate): how many such voices one core
    could render in real time with nothing else to do. Raises RuntimeError if pyo is missing,
    the worker fails, or the render is silent.
    """
    if n_voices < 1:
        raise ValueError("n_voices must be >= 1")
    if saw not in ("lfo", "table"):
        raise ValueError("saw must be 'lfo' or 'table'")
    cfg = dict(n_voices=int(n_voices), seconds=float(seconds), sample_rate=int(sample_rate),
               repeats=int(repeats), buffersize=int(buffersize), saw=saw, double=bool(double),
               patch=reference_patch())
    if timeout is None:
        timeout = 60.0 + 4.0 * repeats * seconds * max(1.0, n_voices / 8.0)
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", json.dumps(cfg)],
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(_MARK)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"pyo worker failed (exit {proc.returncode}):\n"
                           f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    raw = json.loads(lines[-1][len(_MARK):])
    if "error" in raw:
        raise RuntimeError(f"pyo worker: {raw['error']}")
    samples = seconds * sample_rate
    net_wall = raw["wall_s"] - raw["empty_wall_s"]
    net_cpu = raw["cpu_s"] - raw["empty_cpu_s"]
    if net_wall <= 0 or net_cpu <= 0:
        raise RuntimeError(f"voices cost nothing measurable: {raw}")
    ns = net_wall * 1e9 / (n_voices * samples)
    cpu_ns = net_cpu * 1e9 / (n_voices * samples)
    return {
        "ns_per_voice_sample": ns,
        "voices_per_core": 1e9 / (ns * sample_rate),
        "cpu_ns_per_voice_sample": cpu_ns,
        "cpu_voices_per_core": 1e9 / (cpu_ns * sample_rate),
        "engine": f"pyo {raw['version']}",
        **{k: raw[k] for k in ("wall_s", "empty_wall_s", "rms", "peak")},
        **cfg,
    }


def scsynth_ns_per_voice_sample(n_voices: int, seconds: float = 10.0, sample_rate: int = 48000,
                                repeats: int = 3) -> dict | None:
    """SuperCollider's peer figure: not measured (see the module doc). Always None; when
    scsynth is not installed (as on the project's machines) that is simply why."""
    if shutil.which("scsynth") is None:
        return None
    return None  # scsynth present, but the NRT benchmark (needs sclang-compiled SynthDefs) is not written


# ------------------------------------------------------------------------------- worker side
def _worker(cfg: dict) -> dict:
    import builtins

    if cfg["double"]:
        builtins.pyo_use_double = True
    import numpy as np
    import pyo
    import soundfile as sf

    n, sr, bs, seconds = cfg["n_voices"], cfg["sample_rate"], cfg["buffersize"], cfg["seconds"]
    p = cfg["patch"]
    detune = 2.0 ** (p["detune_cents"] / 1200.0)
    tmpdir = tempfile.mkdtemp(prefix="bandmate_pyo_")
    path = os.path.join(tmpdir, "render.wav")
    try:
        s = pyo.Server(sr=sr, nchnls=1, buffersize=bs, duplex=0, audio="offline", verbosity=1)
        s.boot()
        s.recordOptions(dur=seconds, filename=path, fileformat=0, sampletype=3)  # wav, float32

        def render() -> tuple[float, float]:
            t0, c0 = time.perf_counter(), time.process_time()
            s.start()  # offline: renders the whole duration, then returns
            return time.perf_counter() - t0, time.process_time() - c0

        silence = pyo.Sig(0.0).out()
        empty = [render() for _ in range(cfg["repeats"])]
        x, _ = sf.read(path, dtype="float32")
        if len(x) < seconds * sr * 0.99 or np.any(x != 0):
            return {"error": f"empty render: {len(x)} samples, peak {float(np.abs(x).max())}"}
        silence.stop()

        voices = []
        for i in range(n):
            f = _pitch(i)
            env = pyo.Adsr(attack=p["amp_attack_s"], decay=p["amp_decay_s"],
                           sustain=p["amp_sustain"], release=p["amp_release_s"], dur=0,
                           mul=0.5 / n)
            if cfg["saw"] == "lfo":
                a = pyo.LFO(freq=f, sharp=1.0, type=0)
                b = pyo.LFO(freq=f * detune, sharp=1.0, type=0)
                tables = ()
            else:  # additive saw table, harmonics kept below Nyquist for this voice's pitch
                order = max(1, int((sr / 2) / (f * detune)))
                tables = (pyo.SawTable(order=order, size=8192),)
                a = pyo.Osc(tables[0], freq=f, interp=2)
                b = pyo.Osc(tables[0], freq=f * detune, interp=2)
            flt = pyo.MoogLP(a + b, freq=p["cutoff_hz"], res=p["resonance"], mul=env)
            env.play()
            voices.append((env, a, b, flt, tables))
        mix = pyo.Mix([v[3] for v in voices], voices=1).out()
        full = [render() for _ in range(cfg["repeats"])]
        x, _ = sf.read(path, dtype="float32")
        rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
        peak = float(np.abs(x).max())
        if len(x) < seconds * sr * 0.99 or not np.all(np.isfinite(x)) or rms < 1e-3:
            return {"error": f"render is silent or broken: {len(x)} samples, rms {rms}, peak {peak}"}
        del mix, voices
        s.shutdown()
        return {
            "version": ".".join(map(str, pyo.getVersion())),
            "wall_s": min(w for w, _ in full), "cpu_s": min(c for _, c in full),
            "empty_wall_s": min(w for w, _ in empty), "empty_cpu_s": min(c for _, c in empty),
            "rms": rms, "peak": peak,
        }
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--voices", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--buffersize", type=int, default=256)
    ap.add_argument("--saw", choices=("lfo", "table"), default="lfo")
    ap.add_argument("--double", action="store_true")
    args = ap.parse_args(argv)
    if args.worker is not None:
        try:
            result = _worker(json.loads(args.worker))
        except Exception as exc:  # reported to the parent, which raises
            result = {"error": f"{type(exc).__name__}: {exc}"}
        print(_MARK + json.dumps(result), flush=True)
        return 0
    for n in args.voices:
        r = pyo_ns_per_voice_sample(n, args.seconds, repeats=args.repeats,
                                    buffersize=args.buffersize, saw=args.saw, double=args.double)
        print(f"{r['engine']}  saw={r['saw']} bs={r['buffersize']} {'f64' if r['double'] else 'f32'}  "
              f"voices={n:3d}  {r['ns_per_voice_sample']:7.1f} ns/voice-sample "
              f"({r['voices_per_core']:6.0f} voices/core)  cpu {r['cpu_ns_per_voice_sample']:7.1f} ns  "
              f"rms {r['rms']:.3f}")
    sc = scsynth_ns_per_voice_sample(1)
    print("scsynth: not measured (skipped)" if sc is None else f"scsynth: {sc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
