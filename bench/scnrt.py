"""SuperCollider without sclang: a SynthDef writer, an NRT score writer and an NRT runner.

scsynth (Debian: `apt-get install --no-install-recommends supercollider-server`) renders a
score file offline with `scsynth -N score.osc _ out.wav <rate> WAV float`. It needs compiled
synth definitions, which sclang normally writes; this module writes them itself:

- `SynthDef`: a unit-generator graph and its encoding as a "SCgf" version 2 file (SuperCollider's
  "Synth Definition File Format" reference: big-endian; constants, parameters, parameter names,
  UGens with rate / inputs / outputs / special index, variants).
- `osc_message`, `osc_bundle`, `nrt_score`: OSC 1.0 binary messages and bundles, and the NRT
  command file (each bundle preceded by its int32 size; the time tag is seconds in 32.32 fixed
  point from the start of the render; the render stops after the block holding the last bundle).
- `reference_synthdef`: bench/peers.py's reference voice as a graph.
- `render_nrt`: runs scsynth on a score and times it.
"""
from __future__ import annotations

import os
import resource
import shutil
import struct
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

SCALAR, CONTROL, AUDIO = 0, 1, 2
RATES = {"ir": SCALAR, "kr": CONTROL, "ar": AUDIO}

# BinaryOpUGen's special index (server/plugins/BinaryOpUGens.cpp, enum of operators)
BINARY_OPS = {"+": 0, "-": 1, "*": 2, "/": 4, "min": 12, "max": 13, "pow": 25}
# EnvGen's shapes (server/plugins/LFUGens.cpp, shape_*), Env.shapeNumber in sclang
ENV_SHAPES = {"step": 0, "lin": 1, "exp": 2, "sin": 3, "wel": 4, "curve": 5, "sqr": 6, "cub": 7}
NO_NODE = -99  # Env's "no release / loop node"


@dataclass(frozen=True)
class Ref:
    """Output `output` of UGen number `ugen` in a SynthDef."""
    ugen: int
    output: int = 0


@dataclass
class UGen:
    name: str
    rate: int
    inputs: list            # Ref, or ("const", index) once the SynthDef owns the constants
    output_rates: list[int]
    special: int = 0


@dataclass
class SynthDef:
    """A synth definition built in calculation order: every UGen's inputs are constants or
    outputs of UGens added before it (scsynth computes them in the order they are listed)."""
    name: str
    constants: list[float] = field(default_factory=list)
    params: list[float] = field(default_factory=list)
    param_names: list[tuple[str, int]] = field(default_factory=list)
    ugens: list[UGen] = field(default_factory=list)
    variants: list[tuple[str, list[float]]] = field(default_factory=list)

    def constant(self, value: float) -> tuple[str, int]:
        """The constant table entry for `value` (one entry per distinct float32)."""
        v = struct.unpack(">f", struct.pack(">f", float(value)))[0]
        for i, c in enumerate(self.constants):
            if struct.pack(">f", c) == struct.pack(">f", v):
                return ("const", i)
        self.constants.append(v)
        return ("const", len(self.constants) - 1)

    def add(self, name: str, rate: str | int, inputs, n_outputs: int = 1, special: int = 0,
            output_rate: str | int | None = None) -> Ref | list[Ref]:
        """Append a UGen; `inputs` are Refs or numbers (which become constants). Returns its
        output Ref (or the list of them when n_outputs != 1)."""
        r = RATES[rate] if isinstance(rate, str) else int(rate)
        ins = []
        for x in inputs:
            if isinstance(x, Ref):
                if not (0 <= x.ugen < len(self.ugens)):
                    raise ValueError(f"{name}: input from UGen {x.ugen}, which is not before it")
                if not (0 <= x.output < len(self.ugens[x.ugen].output_rates)):
                    raise ValueError(f"{name}: UGen {x.ugen} has no output {x.output}")
                ins.append(x)
            else:
                ins.append(self.constant(x))
        orate = r if output_rate is None else (RATES[output_rate] if isinstance(output_rate, str)
                                               else int(output_rate))
        self.ugens.append(UGen(name, r, ins, [orate] * n_outputs, special))
        index = len(self.ugens) - 1
        refs = [Ref(index, k) for k in range(n_outputs)]
        return refs[0] if n_outputs == 1 else refs

    def controls(self, **defaults: float) -> dict[str, Ref]:
        """Named control-rate parameters (one `Control` UGen); returns name -> output Ref."""
        offset = len(self.params)
        for i, (name, value) in enumerate(defaults.items()):
            self.params.append(float(value))
            self.param_names.append((name, offset + i))
        refs = self.add("Control", "kr", [], n_outputs=len(defaults), special=offset)
        refs = [refs] if isinstance(refs, Ref) else refs
        return dict(zip(defaults, refs))

    def binop(self, op: str, a, b, rate: str = "kr") -> Ref:
        return self.add("BinaryOpUGen", rate, [a, b], special=BINARY_OPS[op])

    def encode(self) -> bytes:
        """This definition alone as an SCgf version 2 file."""
        return encode_synthdefs([self])

    def _encode(self) -> bytes:
        out = [_pstring(self.name), struct.pack(">i", len(self.constants))]
        out += [struct.pack(">f", c) for c in self.constants]
        out.append(struct.pack(">i", len(self.params)))
        out += [struct.pack(">f", p) for p in self.params]
        out.append(struct.pack(">i", len(self.param_names)))
        for name, index in self.param_names:
            out += [_pstring(name), struct.pack(">i", index)]
        out.append(struct.pack(">i", len(self.ugens)))
        for u in self.ugens:
            out += [_pstring(u.name), struct.pack(">bii", u.rate, len(u.inputs), len(u.output_rates)),
                    struct.pack(">h", u.special)]
            for x in u.inputs:
                out.append(struct.pack(">ii", -1, x[1]) if isinstance(x, tuple)
                           else struct.pack(">ii", x.ugen, x.output))
            out += [struct.pack(">b", r) for r in u.output_rates]
        out.append(struct.pack(">h", len(self.variants)))
        for name, values in self.variants:
            if len(values) != len(self.params):
                raise ValueError(f"variant {name!r} has {len(values)} values, not {len(self.params)}")
            out.append(_pstring(name))
            out += [struct.pack(">f", v) for v in values]
        return b"".join(out)


def encode_synthdefs(defs: list[SynthDef]) -> bytes:
    return b"SCgf" + struct.pack(">ih", 2, len(defs)) + b"".join(d._encode() for d in defs)


def _pstring(s: str) -> bytes:
    b = s.encode("ascii")
    if len(b) > 255:
        raise ValueError(f"name too long for a pstring: {s!r}")
    return struct.pack(">B", len(b)) + b


def env_adsr(attack: float, decay: float, sustain: float, release: float,
             curve: float = -4.0) -> list[float]:
    """EnvGen's envelope inputs for sclang's Env.adsr(attack, decay, sustain, release, 1, curve):
    levels 0 -> 1 -> sustain -> 0, the release node at the sustain level, curved segments."""
    shape = ENV_SHAPES["curve"]
    return [0.0, 3, 2, NO_NODE,
            1.0, attack, shape, curve,
            sustain, decay, shape, curve,
            0.0, release, shape, curve]


def env_gen(sd: SynthDef, rate: str, gate, env: list[float], level_scale=1.0,
            done_action: int = 0) -> Ref:
    """EnvGen: gate, levelScale, levelBias, timeScale, doneAction, then the envelope."""
    return sd.add("EnvGen", rate, [gate, level_scale, 0.0, 1.0, done_action, *env])


# ------------------------------------------------------------------------------- the voice
def reference_synthdef(voice: dict, name: str = "bandmate_reference") -> SynthDef:
    """bench/peers.py's reference voice (`voice` = peers.reference_voice()):

        Saw.ar(freq) + osc2_level * Saw.ar(freq2)                 two band-limited saws
        -> MoogFF.ar(cutoff_hz, gain = 3.9 * resonance)           Fontana's 4-pole ladder
        cutoff_hz = min(cutoff * 2 ** (filter_env_octaves * EnvGen.kr(filter ADSR)), 18000)
        * EnvGen.ar(amp ADSR, levelScale = amp, doneAction 2) -> Out.ar(0)

    Per-voice controls: freq, freq2, cutoff (the voice's base cutoff: key tracking and velocity
    already applied), amp, gate. MoogFF reads its cutoff once per control block, so the filter
    envelope and its exponential run at control rate (computing them per sample would be
    thrown away); the amp envelope runs per sample."""
    sd = SynthDef(name)
    c = sd.controls(freq=440.0, freq2=440.0 * voice["osc2_ratio"], cutoff=voice["cutoff_hz"],
                    amp=0.1, gate=1.0)
    s1 = sd.add("Saw", "ar", [c["freq"]])
    s2 = sd.add("Saw", "ar", [c["freq2"]])
    if voice["osc2_level"] != 1.0:
        s2 = sd.binop("*", s2, voice["osc2_level"], "ar")
    mix = sd.binop("+", s1, s2, "ar")
    fenv = env_gen(sd, "kr", c["gate"], env_adsr(voice["filter_attack_s"], voice["filter_decay_s"],
                                                  voice["filter_sustain"], voice["filter_release_s"]))
    octs = sd.binop("*", fenv, voice["filter_env_octaves"])
    ratio = sd.binop("pow", 2.0, octs)
    hz = sd.binop("min", sd.binop("*", ratio, c["cutoff"]), voice["cutoff_max_hz"])
    flt = sd.add("MoogFF", "ar", [mix, hz, 3.9 * voice["resonance"], 0.0])
    aenv = env_gen(sd, "ar", c["gate"], env_adsr(voice["amp_attack_s"], voice["amp_decay_s"],
                                                  voice["amp_sustain"], voice["amp_release_s"]),
                   level_scale=c["amp"], done_action=2)
    sd.add("Out", "ar", [0.0, sd.binop("*", flt, aenv, "ar")], n_outputs=0)
    return sd


# ------------------------------------------------------------------------------- OSC / score
def _osc_string(s: str) -> bytes:
    b = s.encode("ascii") + b"\0"
    return b + b"\0" * (-len(b) % 4)


def osc_message(address: str, *args) -> bytes:
    """An OSC 1.0 message: int -> 'i', float -> 'f', str -> 's', bytes -> 'b' (blob)."""
    tags, data = ",", []
    for a in args:
        if isinstance(a, bool) or not isinstance(a, (int, float, str, bytes)):
            raise TypeError(f"OSC argument of type {type(a).__name__}")
        if isinstance(a, int):
            tags += "i"
            data.append(struct.pack(">i", a))
        elif isinstance(a, float):
            tags += "f"
            data.append(struct.pack(">f", a))
        elif isinstance(a, str):
            tags += "s"
            data.append(_osc_string(a))
        else:
            tags += "b"
            data.append(struct.pack(">i", len(a)) + a + b"\0" * (-len(a) % 4))
    return _osc_string(address) + _osc_string(tags) + b"".join(data)


def osc_bundle(time_s: float, *messages: bytes) -> bytes:
    """An OSC bundle at `time_s` seconds (NRT: from the start of the render), 32.32 fixed point."""
    tag = int(round(time_s * 2 ** 32))
    return b"#bundle\0" + struct.pack(">Q", tag) + b"".join(
        struct.pack(">i", len(m)) + m for m in messages)


def nrt_score(bundles: list[tuple[float, list[bytes]]]) -> bytes:
    """An NRT command file: the bundles in time order, each preceded by its int32 size."""
    times = [t for t, _ in bundles]
    if times != sorted(times):
        raise ValueError("NRT bundles must be in time order")
    out = []
    for t, msgs in bundles:
        b = osc_bundle(t, *msgs)
        out.append(struct.pack(">i", len(b)) + b)
    return b"".join(out)


def voices_score(synthdef: bytes, def_name: str, voices: list[dict], seconds: float) -> bytes:
    """Load the definition, start one synth per entry of `voices` (control name -> value) at
    time 0, and end the render at `seconds` (an empty score when `voices` is empty)."""
    bundles = [(0.0, [osc_message("/d_recv", synthdef)])]
    for i, controls in enumerate(voices):
        args: list = [def_name, 1000 + i, 0, 0]   # node id, add to head of the root group
        for k, v in controls.items():
            args += [k, float(v)]
        bundles.append((0.0, [osc_message("/s_new", *args)]))
    bundles.append((float(seconds), [osc_message("/c_set", 0, 0.0)]))
    return nrt_score(bundles)


# ------------------------------------------------------------------------------- running it
def scsynth_path() -> str | None:
    return shutil.which("scsynth")


def scsynth_version(exe: str | None = None) -> str:
    exe = exe or scsynth_path()
    if exe is None:
        return ""
    p = subprocess.run([exe, "-v"], capture_output=True, text=True, timeout=30,
                       stdin=subprocess.DEVNULL)
    text = (p.stdout + p.stderr).strip()
    return text.splitlines()[0].split(" (")[0] if text else ""


def render_nrt(score: bytes, out_path: str | os.PathLike, sample_rate: int, *,
               channels: int = 1, block: int = 64, exe: str | None = None,
               timeout: float = 600.0) -> dict:
    """Render `score` with scsynth in NRT mode into a float WAV at `out_path`.
    Returns {"wall_s", "cpu_s", "log"} (cpu_s: the child's user + system time). Raises
    RuntimeError when scsynth is missing or fails."""
    exe = exe or scsynth_path()
    if exe is None:
        raise RuntimeError("scsynth is not installed")
    out_path = Path(out_path)
    score_path = out_path.with_suffix(".osc")
    score_path.write_bytes(score)
    cmd = [exe, "-N", str(score_path), "_", str(out_path), str(int(sample_rate)), "WAV", "float",
           "-o", str(channels), "-i", "0", "-z", str(block), "-D", "0", "-R", "0", "-V", "-1"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    log = p.stdout + p.stderr
    if p.returncode != 0:
        raise RuntimeError(f"scsynth exited {p.returncode}: {' '.join(cmd)}\n{log[-3000:]}")
    if any(word in log for word in ("FAILURE", "ERROR", "exception")):
        raise RuntimeError(f"scsynth reported a failure:\n{log[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu, "log": log}
