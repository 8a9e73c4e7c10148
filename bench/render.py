"""Offline render speed of the demo, and time from `bandmate demo` to first audio.

- render: the whole arranged demo (every part, sends, master) rendered offline at 48 kHz,
  512-frame blocks, min of 3 runs; printed as times faster than real time (target >= 200x).
- first audio: wall time from launching `bandmate demo` (warm kernel cache) until its stream
  is running and has rendered audio, through a JACK dummy server with the PortAudio driver
  (target < 3 s). Median of 3 launches.

    python bench/render.py [--json]
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.config import load_config  # noqa: E402
from engine.control.offline import OfflineDriver  # noqa: E402
from engine.control.session import Session  # noqa: E402
from engine.control.warmup import warm_up  # noqa: E402


def render_speed(repeats: int = 3) -> dict:
    cfg = load_config(ROOT / "config.toml")
    warm_up()
    best = float("inf")
    seconds = 0.0
    for _ in range(repeats):
        session = Session(cfg, 48000, demo=True, root=ROOT)
        seconds = session.length_s
        frames = int(seconds * 48000)
        drv = OfflineDriver(session.state, 512, session.scheduler.advance)
        t0 = time.perf_counter()
        drv.render(frames)
        best = min(best, time.perf_counter() - t0)
    return {"demo_seconds": round(seconds, 2), "render_wall_s": round(best, 3),
            "realtime_factor": round(seconds / best, 1)}


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
    args = ap.parse_args()
    result = render_speed()
    if not args.no_live:
        result.update(first_audio() or {})
    print(json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
