"""Voices per core: the reference voice through bandmate's real render path, beside pyo.

Reference voice: 2 detuned band-limited saws -> resonant 4-pole ladder -> ADSR
(patches/reference.toml), N sustained notes, 10 s at 48 kHz, rendered offline by
`engine.rt.render.run_block` (the same kernel the live callbacks run). The figure is the
time above an idle engine (mixer, sends and master running with no voice) per voice-sample;
the raw figure (everything included) is printed too. pyo renders the same patch offline in
the same run (bench/peers.py). Min of 3 repeats; single thread.

    python bench/voices.py [--json] [--seconds 10] [--voices 64 256]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.control.state import EngineState  # noqa: E402
from engine.patch import load_params  # noqa: E402
from engine.rt import layout as L  # noqa: E402
from engine.rt.events import K_NOTE_ON  # noqa: E402
from engine.rt.render import run_block  # noqa: E402

SR = 48000
BLOCK = 256
PATCH = Path(__file__).resolve().parent.parent / "patches" / "reference.toml"


def _engine(n_voices: int) -> EngineState:
    st = EngineState(SR, polyphony={"keys": max(n_voices, 8)})
    for index, value in load_params(PATCH).items():
        st.arrays[L.S_PTARGET][0, index] = value
        st.arrays[L.S_PCUR][0, index] = value
    for i in range(n_voices):
        st.push_sched(0, K_NOTE_ON, 0, 36 + (i * 7) % 60 + (i // 60) * 0.1, 0.8, 1)
    return st


def bandmate_seconds(n_voices: int, seconds: float, repeats: int = 3) -> float:
    """Min wall time to render `seconds` with `n_voices` sustained reference voices."""
    blocks = int(seconds * SR) // BLOCK
    best = float("inf")
    for _ in range(repeats):
        st = _engine(n_voices)
        run_block(st.table, BLOCK)        # the notes start; compiled code is warm
        assert st.counters()["voices"] == n_voices
        t0 = time.perf_counter()
        for _ in range(blocks):
            run_block(st.table, BLOCK)
        best = min(best, time.perf_counter() - t0)
        assert st.counters()["voices"] == n_voices   # nothing stole or dropped a voice
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--voices", type=int, nargs="+", default=[64, 256])
    ap.add_argument("--no-pyo", action="store_true")
    args = ap.parse_args()
    bandmate_seconds(8, 0.1, 1)                     # compile / load the cache
    samples = int(args.seconds * SR) // BLOCK * BLOCK
    idle = bandmate_seconds(0, args.seconds)
    result: dict = {"sample_rate": SR, "seconds": args.seconds, "idle_engine_s": idle,
                    "by_voices": {}}
    for n in args.voices:
        t = bandmate_seconds(n, args.seconds)
        ns = (t - idle) / (n * samples) * 1e9
        raw = t / (n * samples) * 1e9
        entry = {"ns_per_voice_sample": round(ns, 3), "raw_ns_per_voice_sample": round(raw, 3),
                 "voices_per_core": int(1e9 / (ns * SR)), "realtime_factor": args.seconds / t}
        if not args.no_pyo:
            from bench.peers import pyo_ns_per_voice_sample
            peer = pyo_ns_per_voice_sample(n, args.seconds, SR)
            if peer:
                entry["pyo_ns_per_voice_sample"] = round(peer["ns_per_voice_sample"], 3)
                entry["pyo_voices_per_core"] = int(peer["voices_per_core"])
                entry["ratio_vs_pyo"] = round(peer["ns_per_voice_sample"] / ns, 2)
        result["by_voices"][str(n)] = entry
    top = result["by_voices"][str(max(args.voices))]
    result.update({k: top[k] for k in ("ns_per_voice_sample", "voices_per_core") if k in top})
    for k in ("pyo_voices_per_core", "ratio_vs_pyo"):
        if k in top:
            result[k] = top[k]
    if args.json:
        print(json.dumps(result))
    else:
        for n, e in result["by_voices"].items():
            print(f"{n:>4} voices: {e['ns_per_voice_sample']:.2f} ns/voice-sample "
                  f"({e['voices_per_core']} voices/core)"
                  + (f", pyo {e['pyo_ns_per_voice_sample']:.1f} ns, x{e['ratio_vs_pyo']}"
                     if "ratio_vs_pyo" in e else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
