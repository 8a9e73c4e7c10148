"""Voices per core: the reference voice through bandmate's real render path, beside its peers.

Reference voice: 2 detuned band-limited saws -> resonant 4-pole ladder whose cutoff follows a
filter envelope (2 octaves, as every shipped patch has one) -> amp ADSR (bench/reference-voice.toml),
N sustained notes, `--seconds` at 48 kHz, rendered offline by `engine.rt.render.run_block` (the
same kernel the live callbacks run). The figure is the time above an idle engine (mixer, sends
and master running with no voice) per voice-sample; the raw figure (everything included) is
given too. In the same run, the same voices in pyo (two saws: `Osc` over a `SawTable`, its
cheapest band-limited saw, and `LFO`, its tanh-shaped one) and in SuperCollider's scsynth
(non-real-time mode, when `supercollider-server` is installed): bench/peers.py says exactly what
each computes. Min and median of `--repeats`, wall clock and process CPU time; single thread.
ratio = peer ns / bandmate ns (how many times slower the peer is).

Before a figure counts, every engine's output is checked: finite, non-silent, the right length,
and its filter envelope heard (peers.filter_env_check: renders with and without the envelope).
For bandmate the voice state is checked too: while the envelope moves, every voice's filter
coefficient changes from one sample to the next.

    python bench/voices.py [--json] [--seconds 10] [--voices 64 256] [--repeats 3]
                           [--peers pyo_table pyo_lfo scsynth]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import peers  # noqa: E402
from engine.control.state import EngineState  # noqa: E402
from engine.patch import load_params  # noqa: E402
from engine.rt import layout as L  # noqa: E402
from engine.rt.events import K_NOTE_ON  # noqa: E402
from engine.rt.params import SYNTH_SPECS  # noqa: E402
from engine.rt.units import analog  # noqa: E402
from engine.control.graph import default_spec  # noqa: E402
from engine.rt.render import run_block  # noqa: E402

SR = 48000
BLOCK = 256
PATCH = peers.REFERENCE_PATCH
PEERS = ("pyo_table", "pyo_lfo", "scsynth")
_FENV = SYNTH_SPECS["filter_env_octaves"].index


def _engine(n_voices: int, filter_env: bool = True) -> EngineState:
    params = load_params(PATCH)
    if not filter_env:
        params[_FENV] = 0.0
    spec = default_spec()
    spec["parts"]["keys"]["instrument"] = {"unit": "analog", "polyphony": float(max(n_voices, 8))} \
        | {q.name: params[q.index] for q in SYNTH_SPECS.values() if q.index in params}
    st = EngineState(SR, spec)
    for i in range(n_voices):
        st.push_sched(0, K_NOTE_ON, 0, peers.note(i), peers.VELOCITY, 1)
    return st


def bandmate_times(n_voices: int, seconds: float, repeats: int = 3,
                   filter_env: bool = True) -> tuple[list[float], list[float]]:
    """(wall, cpu) seconds of each repeat rendering `seconds` with `n_voices` sustained
    reference voices."""
    blocks = int(seconds * SR) // BLOCK
    walls, cpus = [], []
    for _ in range(repeats):
        st = _engine(n_voices, filter_env)
        run_block(st.table, BLOCK)        # the notes start; compiled code is warm
        assert st.counters()["voices"] == n_voices
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(blocks):
            run_block(st.table, BLOCK)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
        assert st.counters()["voices"] == n_voices   # nothing stole or dropped a voice
    return walls, cpus


def _voice_rows(st: EngineState, row: int, n: int) -> np.ndarray:
    op = st.graph.program.ops[st.graph.program.part_op[0]]
    pool = st.arrays[L.bank_slot(st.graph.bank, L.G_USTATE)]
    vf = pool[op.state + analog.X_VF:op.state + op.state_len].view(np.float32)
    return vf[row * L.NVMAX: row * L.NVMAX + n].copy()


def bandmate_check(n_voices: int, seconds: float = peers.CHECK_SECONDS) -> dict:
    """Untimed: bandmate's output with and without the filter envelope (peers.filter_env_check),
    finite and non-silent, and the per-voice filter path really running: 0.1 s in (the filter
    envelope decaying), every voice's filter coefficient (VF_G) changes between two consecutive
    samples with the envelope and stays put without it."""
    renders, moving = [], []
    for filter_env in (True, False):
        st = _engine(n_voices, filter_env)
        out = []
        for b in range(int(seconds * SR) // BLOCK):
            run_block(st.table, BLOCK)
            out.append(st.out(BLOCK)[0].copy())
            if b == int(0.1 * SR) // BLOCK:
                g0 = _voice_rows(st, L.VF_G, n_voices)
                run_block(st.table, 1)
                out.append(st.out(1)[0].copy())
                g1 = _voice_rows(st, L.VF_G, n_voices)
                moving.append(int(np.count_nonzero(g1 != g0)))
        renders.append(np.concatenate(out))
        if not np.all(np.isfinite(renders[-1])) or np.sqrt(np.mean(renders[-1] ** 2)) < 1e-3:
            raise RuntimeError(f"bandmate's render is silent or broken (filter_env={filter_env})")
    check = peers.filter_env_check(renders[0], renders[1], SR)
    check["voices_whose_cutoff_moves_per_sample"] = moving[0]
    check["same_without_env"] = moving[1]
    check["heard"] = check["heard"] and moving[0] == n_voices and moving[1] == 0
    return check


def _peer(name: str, n: int, seconds: float, repeats: int) -> dict:
    if name == "scsynth":
        return peers.scsynth_ns_per_voice_sample(n, seconds, SR, repeats)
    return peers.pyo_ns_per_voice_sample(n, seconds, SR, repeats, buffersize=BLOCK,
                                         saw=name.removeprefix("pyo_"))


def _ratios(peer: dict, mine: dict) -> dict:
    return {"ratio": round(peer["ns_per_voice_sample"] / mine["ns_per_voice_sample"], 2),
            "ratio_median": round(peer["ns_per_voice_sample_median"]
                                  / mine["ns_per_voice_sample_median"], 2),
            "ratio_cpu": round(peer["cpu_ns_per_voice_sample"] / mine["cpu_ns_per_voice_sample"], 2)}


def _round(x):
    if isinstance(x, float):
        return round(x, 3)
    if isinstance(x, dict):
        return {k: _round(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_round(v) for v in x]
    return x


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--voices", type=int, nargs="+", default=[64, 256])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--peers", nargs="*", choices=PEERS, default=list(PEERS),
                    help="peers to measure (none: --peers with no name)")
    args = ap.parse_args()
    load_start = os.getloadavg()
    bandmate_times(8, 0.1, 1)                     # compile / load the cache
    samples = int(args.seconds * SR) // BLOCK * BLOCK
    idle_wall, idle_cpu = bandmate_times(0, args.seconds, args.repeats)
    voice = peers.reference_voice(PATCH, SR)
    result: dict = {
        "sample_rate": SR, "seconds": args.seconds, "block": BLOCK, "repeats": args.repeats,
        "patch": str(PATCH.relative_to(PATCH.parent.parent)), "voice": voice,
        "idle_engine_s": {"min": min(idle_wall), "median": statistics.median(idle_wall)},
        "by_voices": {}}
    failed = False
    for n in args.voices:
        entry: dict = {}
        for label, fenv in (("bandmate", True), ("bandmate_without_filter_env", False)):
            walls, cpus = bandmate_times(n, args.seconds, args.repeats, fenv)
            per = 1e9 / (n * samples)
            ns = (min(walls) - min(idle_wall)) * per
            entry[label] = {
                "ns_per_voice_sample": ns,
                "ns_per_voice_sample_median":
                    (statistics.median(walls) - statistics.median(idle_wall)) * per,
                "cpu_ns_per_voice_sample": (min(cpus) - min(idle_cpu)) * per,
                "raw_ns_per_voice_sample": min(walls) * per,
                "voices_per_core": int(1e9 / (ns * SR)),
                "realtime_factor": args.seconds / min(walls)}
        check = bandmate_check(n)
        entry["bandmate"]["filter_env_check"] = check
        if not check["heard"]:
            failed = True
            entry["bandmate"]["error"] = "the filter envelope is not running per voice"
        for name in args.peers:
            try:
                peer = _peer(name, n, args.seconds, args.repeats)
            except Exception as exc:  # noqa: BLE001 - reported, never replaced by a figure
                failed = True
                peer = {"ns_per_voice_sample": None, "error": f"{type(exc).__name__}: {exc}"}
                print(f"{name} at {n} voices failed: {peer['error']}", file=sys.stderr)
            if peer["ns_per_voice_sample"] is not None:
                peer.update(_ratios(peer, entry["bandmate"]))
                peer["voices_per_core"] = int(peer["voices_per_core"])
                for k in ("n_voices", "seconds", "sample_rate", "buffersize", "double"):
                    peer.pop(k, None)
            entry[name] = peer
        result["by_voices"][str(n)] = _round(entry)
    result["load_average"] = {"start": [round(x, 2) for x in load_start],
                              "end": [round(x, 2) for x in os.getloadavg()]}
    if args.json:
        print(json.dumps(result))
    else:
        for n, e in result["by_voices"].items():
            b = e["bandmate"]
            print(f"{n:>4} voices: bandmate {b['ns_per_voice_sample']:.2f} ns/voice-sample "
                  f"(median {b['ns_per_voice_sample_median']:.2f}, cpu "
                  f"{b['cpu_ns_per_voice_sample']:.2f}; {b['voices_per_core']} voices/core), "
                  f"without the filter envelope "
                  f"{e['bandmate_without_filter_env']['ns_per_voice_sample']:.2f}")
            for name in args.peers:
                p = e[name]
                if p["ns_per_voice_sample"] is None:
                    print(f"      {name:10s} not measured: {p.get('skipped') or p.get('error')}")
                else:
                    print(f"      {name:10s} {p['ns_per_voice_sample']:7.1f} ns (median "
                          f"{p['ns_per_voice_sample_median']:.1f}, cpu "
                          f"{p['cpu_ns_per_voice_sample']:.1f})  x{p['ratio']} "
                          f"(median x{p['ratio_median']}, cpu x{p['ratio_cpu']})  {p['engine']}")
        print(f"load average {result['load_average']}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
