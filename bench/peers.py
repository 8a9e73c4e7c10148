"""Peers measured beside bandmate in bench/voices.py: the same reference voice in other engines.

The reference voice is bench/reference-voice.toml, read through engine.patch (so the figures use
exactly the values bandmate plays, defaults included): two detuned saws -> resonant 4-pole
ladder low-pass whose cutoff follows a filter envelope (filter_env_octaves, exponential in
octaves, as in every shipped patch) -> amp ADSR. N voices at different pitches (`note`), all
at velocity 0.8, all sustained, rendered offline as fast as the engine can. The figure is the
*marginal* cost of a voice: (render time with N voices - render time of the same empty
server) / (N * samples rendered), so fixed costs (start-up, file writing) are not charged to
the voices. Min (and median) of repeats.

What each side computes, per voice:

bandmate (engine/rt/voice.py, float32, vectorised across voices), every sample:
    amp ADSR and filter ADSR (one-pole exponential segments, branch-free), two PolyBLEP saws,
    the cutoff  base * 2**(filter_env_octaves * fenv)  (exp2 polynomial) with key tracking and
    velocity, the prewarped coefficient tan(pi fc / fs) (Padé fraction, one division), a
    zero-delay-feedback ladder (Zavalishin TPT, 4 one-poles, two tanh-like saturators, one
    division), the amp gain, and the sum. All of it runs every sample whether or not the
    envelope moves.

pyo (pip package `pyo`, the project's `bench` extra), per voice these objects, float32:
    saws    headline "pyo_table": `Osc(SawTable(order=h), freq, interp=2, mul=0.5 * 2/pi)` for
            each saw, h = the most harmonics below Nyquist for the voice's higher saw (one table
            per distinct h, shared): additive, so truly band-limited for a sustained note, and
            the cheapest band-limited saw pyo has (a table read with linear interpolation a
            sample). "pyo_lfo": `LFO(type=0, sharp=1, mul=0.5)`, pyo's "band-limited" saw,
            which is a tanh waveshaper p - tanh(h p)/tanh(h) (a tanh a sample; the edge is
            smoothed, not band-limited). Not measured: `Blit` (band-limited impulse train: two
            sines and a division a sample, dearer than a table read even before the integrator
            a saw needs), `SuperSaw` (7 saws), `RCOsc` (not a saw). The saws play at half level
            (SAW_LEVEL), then `a + b` (an add a sample).
    filter  `MoogLP(a + b, freq, res=resonance)` (Stilson/Smith-style 4-pole ladder with a cubic
            soft clip); with an audio-rate freq it recomputes its coefficients (a sine) on every
            sample whose freq differs from the previous one, i.e. while the envelope moves.
    cutoff  `Pow(2, Adsr(filter ADSR, dur=0, mul=filter_env_octaves), mul=base cutoff)`: a pow
            a sample; base cutoff = cutoff_hz * 2**(key_tracking*(note-60)/12 +
            velocity_to_cutoff_octaves*(velocity-1)) per voice, as bandmate computes it.
    amp     `Adsr(amp ADSR, dur=0, mul=voice gain)` (linear segments) as MoogLP's `mul`.
    Offline: `Server(audio="offline")` + `recordOptions(dur=...)`, buffersize 256 =
    bench/voices.py's BLOCK; each `server.start()` renders the whole duration and returns. A
    pyo Server is a process-wide singleton that does not reboot cleanly, so every measurement
    runs in a fresh subprocess (this file run as a script in worker mode).

scsynth (SuperCollider's server, non-real-time mode; Debian 12:
    `apt-get install --no-install-recommends supercollider-server`), no sclang: bench/scnrt.py
    writes the SynthDef (SCgf v2) and the OSC score itself and runs
    `scsynth -N score.osc _ out.wav 48000 WAV float` (64-sample control blocks, the default),
    one process per render:
    saws    `Saw.ar(freq)` twice (band-limited: a DSF impulse train from sine/cosecant table
            reads, leaky-integrated), summed.
    filter  `MoogFF.ar(in, freq, gain = 3.9 * resonance)` (Fontana's 4-pole ladder, linear, in
            double precision). MoogFF reads its cutoff once per 64-sample block and recomputes
            its coefficients (a tan) only when it changed, so the filter envelope and its
            exponential run at control rate: `min(cutoff * 2 ** (filter_env_octaves *
            EnvGen.kr(filter ADSR)), 18000)`.
    amp     `EnvGen.ar(amp ADSR, levelScale = voice gain)` (Env.adsr with curve -4) times the
            filter output, `Out.ar(0)`.
    If scsynth is not installed the figure is null with the reason, never estimated.

Where the sides still differ, and whom it favours:
    - the peers' filters recompute their coefficients only when the cutoff changes (pyo each
      sample while the envelope moves, scsynth each block while it moves) and not at all once
      the envelope holds its sustain, i.e. for most of a 10 s render; bandmate recomputes every
      voice's cutoff every sample (exp2 + tan): in the peers' favour.
    - bandmate's ladder saturates its input and its feedback (two rational tanh); MoogLP has one
      cubic soft clip, MoogFF none: in the peers' favour. MoogFF runs in double precision: in
      bandmate's favour.
    - envelope shapes differ (bandmate one-pole exponential, pyo linear, scsynth curve -4);
      each costs a few flops a sample.
    - bandmate renders its voices as one vectorised loop per stage; the peers run one object /
      UGen per stage per voice. That is the design being compared.

Sanity, before any timing is returned: every render is read back and must be as long as asked,
finite and clearly non-silent, the empty render must be silent, and the filter envelope must be
heard (`filter_env_check`: short untimed renders of the same voices with the envelope and
without it; the share of energy above 8 kHz just after the attack, relative to the end, must
be at least MIN_OPENING_RATIO times larger with it). bench/voices.py checks bandmate the same
way.

Run as a script to print figures:  python bench/peers.py --voices 64 256 [--saw lfo]
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

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

_MARK = "PEERS_RESULT "
REFERENCE_PATCH = ROOT / "bench" / "reference-voice.toml"
VELOCITY = 0.8
SAWS = ("table", "lfo")
SCSYNTH_INSTALL = "apt-get install --no-install-recommends supercollider-server"
OPENING_HZ = 8000.0
MIN_OPENING_RATIO = 3.0
CHECK_SECONDS = 1.5
SAW_LEVEL = 0.5
"""pyo's saws play at half level: its MoogLP diverges (inf, then NaN) for an input much above
+-1 at high cutoffs, where bandmate's ladder saturates its input (tanh) instead."""


def note(i: int) -> float:
    """Voice i's MIDI pitch (the notes bench/voices.py plays): fifths over five octaves from
    C2, nudged by 0.1 semitone per lap."""
    return 36 + (i * 7) % 60 + (i // 60) * 0.1


def reference_voice(path: Path = REFERENCE_PATCH, sample_rate: int = 48000) -> dict:
    """The reference voice's parameters as bandmate plays them (engine.patch fills defaults).
    Raises ValueError for a patch the peers cannot model (only saws, ladder, no LFO/noise)."""
    from engine.patch import load_patch

    doc = load_patch(path)
    p = {k: v for group, table in doc.items() if group != "patch" for k, v in table.items()}
    if (p["osc1_wave"], p["osc2_wave"], p["filter_type"]) != ("saw", "saw", "ladder"):
        raise ValueError(f"{path}: the peers model 2 saws into the ladder only")
    if p["noise_level"] or p["lfo_to_pitch_semitones"] or p["lfo_to_cutoff_octaves"]:
        raise ValueError(f"{path}: the peers model no noise and no LFO")
    keys = ("cutoff_hz", "resonance", "drive", "key_tracking", "filter_env_octaves",
            "velocity_to_cutoff_octaves", "osc2_level", "detune_cents", "osc2_semitones",
            "amp_attack_s", "amp_decay_s", "amp_sustain", "amp_release_s", "filter_attack_s",
            "filter_decay_s", "filter_sustain", "filter_release_s", "velocity_sensitivity",
            "gain_db")
    v = {k: float(p[k]) for k in keys}
    v["osc2_ratio"] = 2.0 ** ((v["osc2_semitones"] + v["detune_cents"] * 0.01) / 12.0)
    v["cutoff_max_hz"] = min(18000.0, 0.45 * sample_rate)   # bandmate's clamp (voice.py wmax)
    v["gain"] = 10.0 ** (v["gain_db"] * 0.05)
    return v


def voice_controls(voice: dict, n_voices: int) -> list[dict]:
    """Per-voice values, as bandmate computes them at note-on: freq / freq2 (Hz), the base
    cutoff (key tracking and velocity applied; the filter envelope multiplies it by
    2**(filter_env_octaves * env)) and the amplitude (patch gain * velocity gain)."""
    sens = min(max(voice["velocity_sensitivity"], 0.0), 1.0)
    vgain = (1.0 - sens) + sens * VELOCITY * VELOCITY
    out = []
    for i in range(n_voices):
        m = note(i)
        f = 440.0 * 2.0 ** ((m - 69.0) / 12.0)
        octs = voice["key_tracking"] * (m - 60.0) / 12.0 \
            + voice["velocity_to_cutoff_octaves"] * (VELOCITY - 1.0)
        out.append({"freq": f, "freq2": f * voice["osc2_ratio"],
                    "cutoff": voice["cutoff_hz"] * 2.0 ** octs, "amp": voice["gain"] * vgain})
    return out


def filter_env_opening(x, sample_rate: int, attack_s: float = 0.015,
                       f_hi: float = OPENING_HZ) -> float | None:
    """How much more of the sound lies above `f_hi` just after the attack than at the end:
    (energy fraction above f_hi in the 50 ms from attack_s) / (the same, averaged over 50 ms
    windows of the last 0.4 s). A filter envelope that opens the ladder at the attack and
    closes it to its sustain raises it many times over; what it is without one depends on the
    start transient (see filter_env_check). None when the render is too short (< 1 s)."""
    import numpy as np

    x = np.asarray(x, dtype=np.float64)
    if x.ndim > 1:
        x = x[:, 0]
    if len(x) < sample_rate:
        return None
    n = int(0.05 * sample_rate)
    window = np.hanning(n)
    high = np.fft.rfftfreq(n, 1.0 / sample_rate) >= f_hi

    def fraction(starts):
        power = np.mean([np.abs(np.fft.rfft(x[i:i + n] * window)) ** 2 for i in starts], axis=0)
        return float(power[high].sum() / max(power.sum(), 1e-300))

    early = fraction([int(attack_s * sample_rate)])
    late = fraction(range(len(x) - int(0.4 * sample_rate), len(x) - n + 1, n // 2))
    return early / late if late > 0 else math.inf


def filter_env_check(with_env, without_env, sample_rate: int) -> dict:
    """Is the filter envelope heard? `with_env` and `without_env` are the same voices rendered
    with the patch's filter_env_octaves and with 0; their `filter_env_opening` must differ by
    MIN_OPENING_RATIO or more (it is about 10-50 for the reference voice). Rendering both
    cancels what the ratio owes to anything but the envelope (all the voices start in phase, so
    the first 50 ms carry a strong low-frequency transient in every engine)."""
    on = filter_env_opening(with_env, sample_rate)
    off = filter_env_opening(without_env, sample_rate)
    if on is None or off is None:
        raise ValueError("filter_env_check needs renders of at least 1 s")
    ratio = on / off if off > 0 else math.inf
    return {"opening": on, "opening_without_env": off, "ratio": ratio,
            "heard": bool(ratio >= MIN_OPENING_RATIO)}


def _figures(full_wall, empty_wall, full_cpu, empty_cpu, n_voices, samples, sample_rate) -> dict:
    net_min = min(full_wall) - min(empty_wall)
    net_med = statistics.median(full_wall) - statistics.median(empty_wall)
    net_cpu = min(full_cpu) - min(empty_cpu)
    if net_min <= 0 or net_cpu <= 0:
        raise RuntimeError(f"voices cost nothing measurable: wall {full_wall} vs empty "
                           f"{empty_wall}, cpu {full_cpu} vs {empty_cpu}")
    per = 1e9 / (n_voices * samples)
    ns = net_min * per
    return {"ns_per_voice_sample": ns, "ns_per_voice_sample_median": net_med * per,
            "cpu_ns_per_voice_sample": net_cpu * per,
            "voices_per_core": 1e9 / (ns * sample_rate),
            "wall_s": sorted(full_wall), "empty_wall_s": sorted(empty_wall)}


# ------------------------------------------------------------------------------------- pyo
def pyo_ns_per_voice_sample(n_voices: int, seconds: float = 10.0, sample_rate: int = 48000,
                            repeats: int = 3, *, buffersize: int = 256, saw: str = "table",
                            double: bool = False, timeout: float | None = None,
                            patch: Path = REFERENCE_PATCH) -> dict:
    """Marginal wall-clock cost of one reference voice in pyo, in ns per voice-sample.

    Renders `seconds` offline `repeats` times with no voice (same server), then `repeats` times
    with `n_voices` sustained voices, and returns

        {"ns_per_voice_sample" (min of repeats), "ns_per_voice_sample_median",
         "cpu_ns_per_voice_sample", "voices_per_core", "wall_s", "empty_wall_s", "samples",
         "rms", "peak", "filter_env_check", "engine", "saw", "oscillator", ...}

    voices_per_core = 1e9 / (ns_per_voice_sample * sample_rate). Raises RuntimeError if pyo is
    missing, the worker fails, or a sanity check fails (module doc)."""
    if n_voices < 1:
        raise ValueError("n_voices must be >= 1")
    if saw not in SAWS:
        raise ValueError(f"saw must be one of {SAWS}")
    voice = reference_voice(patch, sample_rate)
    cfg = dict(n_voices=int(n_voices), seconds=float(seconds), sample_rate=int(sample_rate),
               repeats=int(repeats), buffersize=int(buffersize), saw=saw, double=bool(double),
               voice=voice, controls=voice_controls(voice, n_voices))
    if timeout is None:
        timeout = 120.0 + 8.0 * repeats * seconds * max(1.0, n_voices / 8.0)
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", json.dumps(cfg)],
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(_MARK)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"pyo worker failed (exit {proc.returncode}):\n"
                           f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    raw = json.loads(lines[-1][len(_MARK):])
    if "error" in raw:
        raise RuntimeError(f"pyo worker: {raw['error']}")
    fig = _figures(raw["wall_s"], raw["empty_wall_s"], raw["cpu_s"], raw["empty_cpu_s"],
                   n_voices, raw["samples"], sample_rate)
    return {**fig, "engine": f"pyo {raw['version']}", "oscillator": raw["oscillator"],
            **{k: raw[k] for k in ("samples", "rms", "peak", "filter_env_check")},
            **{k: cfg[k] for k in ("n_voices", "seconds", "sample_rate", "buffersize", "saw",
                                   "double")}}


def _pyo_worker(cfg: dict) -> dict:
    import builtins

    if cfg["double"]:
        builtins.pyo_use_double = True
    import numpy as np
    import pyo
    import soundfile as sf

    sr, bs, seconds = cfg["sample_rate"], cfg["buffersize"], cfg["seconds"]
    v = cfg["voice"]
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
        if len(x) < seconds * sr or np.any(x != 0):
            return {"error": f"empty render: {len(x)} samples, peak {float(np.abs(x).max())}"}
        silence.stop()

        tables: dict[int, object] = {}
        voices, envs, fenvs, oscs = [], [], [], []
        for c in cfg["controls"]:
            fenv = pyo.Adsr(attack=v["filter_attack_s"], decay=v["filter_decay_s"],
                            sustain=v["filter_sustain"], release=v["filter_release_s"], dur=0,
                            mul=v["filter_env_octaves"])
            cutoff = pyo.Pow(2.0, fenv, mul=c["cutoff"])
            aenv = pyo.Adsr(attack=v["amp_attack_s"], decay=v["amp_decay_s"],
                            sustain=v["amp_sustain"], release=v["amp_release_s"], dur=0,
                            mul=c["amp"])
            if cfg["saw"] == "lfo":   # +-1 saws
                a = pyo.LFO(freq=c["freq"], sharp=1.0, type=0, mul=SAW_LEVEL)
                b = pyo.LFO(freq=c["freq2"], sharp=1.0, type=0, mul=SAW_LEVEL * v["osc2_level"])
            else:  # additive saw, the most harmonics below Nyquist for the higher saw
                order = max(1, int((sr / 2) / max(c["freq"], c["freq2"])))
                if order not in tables:
                    tables[order] = pyo.SawTable(order=order, size=8192)
                # SawTable holds sum(sin(k x) / k): 2/pi of it is a +-1 saw
                level = SAW_LEVEL * 2.0 / math.pi
                a = pyo.Osc(tables[order], freq=c["freq"], interp=2, mul=level)
                b = pyo.Osc(tables[order], freq=c["freq2"], interp=2, mul=level * v["osc2_level"])
            src = a + b
            flt = pyo.MoogLP(src, freq=cutoff, res=v["resonance"], mul=aenv)
            envs += [fenv, aenv]
            fenvs.append(fenv)
            oscs += [a, b]
            voices.append((fenv, cutoff, aenv, a, b, src, flt))
        mix = pyo.Mix([vc[-1] for vc in voices], voices=1).out()
        full = []
        for _ in range(cfg["repeats"]):
            for e in envs:        # every render starts the notes again: attack, decay, sustain
                e.play()
            full.append(render())
        x, _ = sf.read(path, dtype="float32")
        rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
        peak = float(np.abs(x).max())
        if len(x) < seconds * sr or not np.all(np.isfinite(x)) or rms < 1e-3:
            return {"error": f"render is silent or broken: {len(x)} samples, rms {rms}, peak {peak}"}
        # untimed: the filter envelope is heard (a short render with it, one without, both
        # starting the notes afresh: envelopes retriggered, saws at phase 0)
        s.recordOptions(dur=CHECK_SECONDS, filename=path, fileformat=0, sampletype=3)
        heard = []
        for octaves in (v["filter_env_octaves"], 0.0):
            for e in fenvs:
                e.mul = octaves
            for e in envs:
                e.play()
            for osc in oscs:
                osc.reset()
            s.start()
            y, _ = sf.read(path, dtype="float32")
            heard.append(y)
        check = filter_env_check(*heard, sr)
        if not check["heard"]:
            return {"error": f"the filter envelope is not heard: {check}"}
        osc = ("LFO(type=0, sharp=1)" if cfg["saw"] == "lfo" else
               f"Osc(SawTable(order below Nyquist, size 8192), interp=2), {len(tables)} tables")
        del mix, voices, envs, fenvs, oscs
        s.shutdown()
        return {
            "version": ".".join(map(str, pyo.getVersion())), "oscillator": osc,
            "wall_s": [w for w, _ in full], "cpu_s": [c for _, c in full],
            "empty_wall_s": [w for w, _ in empty], "empty_cpu_s": [c for _, c in empty],
            "samples": len(x), "rms": rms, "peak": peak, "filter_env_check": check,
        }
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


# --------------------------------------------------------------------------------- scsynth
def scsynth_ns_per_voice_sample(n_voices: int, seconds: float = 10.0, sample_rate: int = 48000,
                                repeats: int = 3, *, block: int = 64,
                                patch: Path = REFERENCE_PATCH) -> dict:
    """Marginal wall-clock cost of one reference voice in scsynth (NRT), in ns per voice-sample.

    Each repeat renders an empty score (the SynthDef loaded, no synth) and the score with
    `n_voices` synths, in separate scsynth processes, alternately; returns the same keys as
    `pyo_ns_per_voice_sample`. When scsynth is not installed returns
    {"ns_per_voice_sample": None, "skipped": <why>}. Raises RuntimeError if a render fails or a
    sanity check fails."""
    from bench import scnrt

    exe = scnrt.scsynth_path()
    if exe is None:
        return {"ns_per_voice_sample": None,
                "skipped": f"scsynth is not installed (Debian: {SCSYNTH_INSTALL})"}
    if n_voices < 1:
        raise ValueError("n_voices must be >= 1")
    import numpy as np
    import soundfile as sf

    voice = reference_voice(patch, sample_rate)
    sd = scnrt.reference_synthdef(voice)
    sdef = sd.encode()
    controls = voice_controls(voice, n_voices)
    full_score = scnrt.voices_score(sdef, sd.name, controls, seconds)
    empty_score = scnrt.voices_score(sdef, sd.name, [], seconds)
    full_wall, full_cpu, empty_wall, empty_cpu = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="bandmate_sc_") as tmp:
        timeout = 120.0 + 2.0 * seconds * max(1.0, n_voices / 8.0)
        for _ in range(repeats):
            r = scnrt.render_nrt(empty_score, Path(tmp) / "empty.wav", sample_rate, block=block,
                                 exe=exe, timeout=timeout)
            empty_wall.append(r["wall_s"])
            empty_cpu.append(r["cpu_s"])
            r = scnrt.render_nrt(full_score, Path(tmp) / "full.wav", sample_rate, block=block,
                                 exe=exe, timeout=timeout)
            full_wall.append(r["wall_s"])
            full_cpu.append(r["cpu_s"])
        e, _ = sf.read(Path(tmp) / "empty.wav", dtype="float32")
        x, file_sr = sf.read(Path(tmp) / "full.wav", dtype="float32")
    if file_sr != sample_rate or len(x) < seconds * sample_rate or len(e) != len(x):
        raise RuntimeError(f"scsynth rendered {len(x)} samples at {file_sr} Hz (empty: {len(e)}),"
                           f" asked for {seconds} s at {sample_rate} Hz")
    if np.any(e != 0):
        raise RuntimeError(f"scsynth's empty render is not silent (peak {np.abs(e).max()})")
    rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
    peak = float(np.abs(x).max())
    if not np.all(np.isfinite(x)) or rms < 1e-3:
        raise RuntimeError(f"scsynth's render is silent or broken: rms {rms}, peak {peak}")
    check = scsynth_filter_env_check(voice, controls, sample_rate, block=block, exe=exe)
    if not check["heard"]:
        raise RuntimeError(f"the filter envelope is not heard in scsynth: {check}")
    fig = _figures(full_wall, empty_wall, full_cpu, empty_cpu, n_voices, len(x), sample_rate)
    return {**fig, "engine": scnrt.scsynth_version(exe), "samples": len(x), "rms": rms,
            "peak": peak, "filter_env_check": check, "block": block, "n_voices": n_voices,
            "seconds": seconds, "sample_rate": sample_rate,
            "oscillator": "Saw.ar", "filter": "MoogFF.ar (cutoff per 64-sample block)"}


def scsynth_filter_env_check(voice: dict, controls: list[dict], sample_rate: int, *,
                             block: int = 64, exe: str | None = None,
                             seconds: float = CHECK_SECONDS) -> dict:
    """`filter_env_check` for scsynth: short renders of `controls` with the voice's filter
    envelope and without it (filter_env_octaves = 0)."""
    import soundfile as sf

    from bench import scnrt

    renders = []
    with tempfile.TemporaryDirectory(prefix="bandmate_sc_") as tmp:
        for octaves in (voice["filter_env_octaves"], 0.0):
            sd = scnrt.reference_synthdef(dict(voice, filter_env_octaves=octaves))
            score = scnrt.voices_score(sd.encode(), sd.name, controls, seconds)
            scnrt.render_nrt(score, Path(tmp) / "check.wav", sample_rate, block=block, exe=exe)
            renders.append(sf.read(Path(tmp) / "check.wav", dtype="float32")[0])
    return filter_env_check(*renders, sample_rate)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--voices", type=int, nargs="+", default=[64, 256])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--buffersize", type=int, default=256)
    ap.add_argument("--saw", choices=SAWS, default="table")
    ap.add_argument("--double", action="store_true")
    args = ap.parse_args(argv)
    if args.worker is not None:
        try:
            result = _pyo_worker(json.loads(args.worker))
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
        try:
            sc = scsynth_ns_per_voice_sample(n, args.seconds, repeats=args.repeats)
        except RuntimeError as exc:
            print(f"scsynth: voices={n:3d}  failed: {exc}")
            continue
        if sc["ns_per_voice_sample"] is None:
            print(f"scsynth: not measured: {sc['skipped']}")
        else:
            print(f"{sc['engine']}  voices={n:3d}  {sc['ns_per_voice_sample']:7.1f} ns/voice-sample "
                  f"({sc['voices_per_core']:6.0f} voices/core)  cpu "
                  f"{sc['cpu_ns_per_voice_sample']:7.1f} ns  rms {sc['rms']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
