"""How long the band takes to answer the scheduler: one 100 ms query window of the demo band
(funk, 120 BPM), warm (bars prepared ahead as the live loop would), every 25 ms of music.

    python bench/agents.py [--json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.agents.arrangement import DemoSong  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    song = DemoSong("funk")
    band, ctx = song.band(seed=1), song.context()
    for bar in range(12):
        band.prepare(bar, ctx)
    times = []
    t = Fraction(0)
    while t < 40:
        t0 = time.perf_counter()
        band.query(t, t + Fraction(1, 5), ctx)       # a 100 ms window at 120 BPM
        times.append(time.perf_counter() - t0)
        t += Fraction(1, 20)
    out = {"query_ms_median": round(statistics.median(times) * 1e3, 4),
           "query_ms_max": round(max(times) * 1e3, 4), "queries": len(times)}
    print(json.dumps(out) if args.json else "\n".join(f"{k}: {v}" for k, v in out.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
