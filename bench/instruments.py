"""Voices per core of the instrument units, through the graph, beside pyo in the same run.

Each instrument unit (wavetable, fm) plays N sustained notes on one part of a real engine (an
EngineState whose graph gives the part that instrument; rendered by `run_block`, the kernel the
live callbacks run), filter or index envelope moving, unison 1. The figure is the time above the
same engine with no notes per voice-sample, min and median of `--repeats`. In the same run,
pyo's cheapest band-limited reference voice (bench/peers.py: two table saws, a resonant
lowpass with an envelope) at the same voice count, and the ratio peer / bandmate.

    python bench/instruments.py [--json] [--seconds 5] [--voices 64 256] [--repeats 3]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import peers  # noqa: E402
from engine.control.graph import Graph, default_spec  # noqa: E402
from engine.control.state import EngineState  # noqa: E402
from engine.parts import PART_INDEX  # noqa: E402
from engine.rt import layout as L  # noqa: E402
from engine.rt.events import K_NOTE_ON  # noqa: E402
from engine.rt.render import run_block  # noqa: E402

SR = 48000
BLOCK = 256
INSTRUMENTS = {
    # a moving filter envelope, as the analog reference voice has
    "wavetable": {"unit": "wavetable", "table": "saw", "polyphony": 128, "filter": "lowpass",
                  "cutoff_hz": 800.0, "resonance": 0.3, "filter_env_oct": 2.0,
                  "mod_attack_ms": 2000.0, "mod_sustain": 1.0, "gain_db": -36.0},
    # the default electric piano: four operators, every envelope moving
    "fm": {"unit": "fm", "polyphony": 128, "gain_db": -36.0},
}


MAX_PER_PART = 128   # an instrument unit's voice slots (engine.rt.units.poly.NV)


def _engine(spec: dict, n_voices: int) -> EngineState:
    """n_voices notes on as many parts as they need (128 voices each), each part the unit."""
    st = EngineState(SR)
    g = default_spec()
    parts = ("keys", "chords", "lead", "bass")
    for k, part in enumerate(parts):
        share = min(max(n_voices - k * MAX_PER_PART, 0), MAX_PER_PART)
        if share:
            g["parts"][part] = {"instrument": dict(spec, polyphony=float(share))}
            for i in range(share):
                st.push_sched(0, K_NOTE_ON, PART_INDEX[part],
                              peers.note(k * MAX_PER_PART + i), peers.VELOCITY, 1)
    st.graph = Graph(st, g, SR)
    return st


def times(spec: dict, n_voices: int, seconds: float, repeats: int) -> list[float]:
    blocks = int(seconds * SR) // BLOCK
    walls = []
    for _ in range(repeats):
        st = _engine(spec, n_voices)
        run_block(st.table, BLOCK)
        assert st.counters()["voices"] == n_voices, st.counters()["voices"]
        out = np.empty(2)
        t0 = time.perf_counter()
        for _ in range(blocks):
            run_block(st.table, BLOCK)
        walls.append(time.perf_counter() - t0)
        out[:] = st.arrays[L.S_BUS][L.B_OUT_L:L.B_OUT_R + 1, 0]
        assert np.all(np.isfinite(out))
        assert st.counters()["voices"] == n_voices     # nothing stole or dropped a voice
    return walls


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--voices", type=int, nargs="+", default=[64, 256])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-peers", action="store_true")
    args = ap.parse_args()
    samples = int(args.seconds * SR) // BLOCK * BLOCK
    for spec in INSTRUMENTS.values():
        times(spec, 4, 0.05, 1)                                  # compile / warm
    idle = times(INSTRUMENTS["fm"], 0, args.seconds, args.repeats)
    result: dict = {"sample_rate": SR, "block": BLOCK, "seconds": args.seconds,
                    "repeats": args.repeats, "idle_engine_s": min(idle), "by_voices": {}}
    for n in args.voices:
        entry: dict = {}
        per = 1e9 / (n * samples)
        for name, spec in INSTRUMENTS.items():
            walls = times(spec, n, args.seconds, args.repeats)
            ns = (min(walls) - min(idle)) * per
            entry[name] = {"ns_per_voice_sample": round(ns, 3),
                           "ns_per_voice_sample_median":
                               round((statistics.median(walls) - statistics.median(idle)) * per, 3),
                           "voices_per_core": int(1e9 / (ns * SR)) if ns > 0 else None}
        if not args.no_peers:
            try:
                pyo = peers.pyo_ns_per_voice_sample(n, args.seconds, SR, args.repeats,
                                                    buffersize=BLOCK, saw="table")
                entry["pyo_table"] = {"ns_per_voice_sample": round(pyo["ns_per_voice_sample"], 3)}
                for name in INSTRUMENTS:
                    entry[name]["ratio_pyo"] = round(pyo["ns_per_voice_sample"]
                                                     / entry[name]["ns_per_voice_sample"], 2)
            except Exception as exc:  # noqa: BLE001 - reported, never replaced by a figure
                entry["pyo_table"] = {"error": f"{type(exc).__name__}: {exc}"}
        result["by_voices"][str(n)] = entry
    if args.json:
        print(json.dumps(result))
    else:
        for n, e in result["by_voices"].items():
            for name in INSTRUMENTS:
                x = e[name]
                print(f"{n:>4} voices {name:9s} {x['ns_per_voice_sample']:7.2f} ns/voice-sample"
                      f"  ({x['voices_per_core']} per core)  x pyo {x.get('ratio_pyo')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
