"""Memory over a simulated day of installation mode (`bandmate serve`), in accelerated time.

The session's control side (scheduler, band, conductor, tempo map, the recording rolled into
files as serve rolls it) drives the offline renderer at a low sample rate with a small mix, so
an hour of music takes a minute or two. Every `change_every_s` of music the next scene of
scenes.toml is recalled (as serve's schedule does), tempo and swing change, and the player
plays chords all along; after each simulated hour the memory is measured: Python's traced
allocations (tracemalloc) and the process's RSS (psutil).

    python bench/serve_memory.py [--hours 24] [--json]

`simulate(hours)` returns {"hours": [...], "traced_mb": [...], "rss_mb": [...], ...}: a run
that keeps nothing per hour has the same traced memory after hour N as after hour 2N.
"""
from __future__ import annotations

import argparse
import gc
import json
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.config import load_config  # noqa: E402
from engine.control.offline import OfflineDriver  # noqa: E402
from engine.control.serve import MidiRoller, rss_bytes  # noqa: E402
from engine.control.session import TEMPO_ADDRESS, Session  # noqa: E402
from engine.parts import PART_INDEX  # noqa: E402
from engine.rt.events import K_NOTE_OFF, K_NOTE_ON  # noqa: E402

PLAYER_SOURCE = 1
# a cheap band and mix: every agent plays (their caches are what could grow), few effects
CHEAP = {
    "band": {"drums": True, "bass": True, "chords": True, "lead": True, "seed": 3},
    "audio": {"polyphony_keys": 8},
    "mix": {f"{part}_inserts": [] for part in ("keys", "bass", "chords", "lead", "drums")},
}
TEMPOS = (96.0, 112.0, 124.0, 104.5, 131.0, 88.0)
SWINGS = (0.0, 0.2, 0.1, 0.33)
CHORDS = ((48, 52, 55), (45, 48, 52), (41, 45, 48), (43, 47, 50))


def simulate(hours: int = 24, sample_rate: int = 8000, block_size: int = 4096,
             hour_s: float = 3600.0, change_every_s: float = 600.0, chord_every_s: float = 4.0,
             trace: bool = True, midi_dir: str = "", progress=None) -> dict:
    """Run `hours` simulated hours; memory after each. Each change recalls the next scene of
    the repository's scenes.toml (as serve's schedule does) and sets tempo and swing.
    `midi_dir`: roll the recording into files there (empty: dropped, as serve without
    midi_dir)."""
    cfg = load_config(None, CHEAP)
    cfg["render"]["sample_rate"] = sample_rate
    if trace:
        tracemalloc.start()
    session = Session(cfg, sample_rate, root=ROOT)
    roller = MidiRoller(session, midi_dir, keep=3, log=lambda text: None)
    driver = OfflineDriver(session.state, block_size, session.scheduler.advance)
    chunk = int(chord_every_s * sample_rate)
    buf = np.zeros((chunk, 2), np.float32)
    keys = PART_INDEX["keys"]
    scenes = session.scenes()
    chunks_per_change = max(1, round(change_every_s / chord_every_s))
    chunks_per_hour = max(1, round(hour_s / chord_every_s))
    held: tuple[int, ...] = ()
    out = {"hours": [], "traced_mb": [], "rss_mb": [], "wall_s": [], "clock_segments": [],
           "sample_rate": sample_rate, "hour_s": hour_s}
    k = 0
    t_start = time.perf_counter()
    for hour in range(1, hours + 1):
        for _ in range(chunks_per_hour):
            now = session.state.sample_time
            if k % chunks_per_change == 0:
                change = k // chunks_per_change
                session.recall_scene(scenes[change % len(scenes)])
                session.set(TEMPO_ADDRESS, TEMPOS[change % len(TEMPOS)])
                session.set("/band/swing", SWINGS[change % len(SWINGS)])
            for note in held:                      # the player's hand: release, play the next
                session.state.push_midi(now, K_NOTE_OFF, keys, note, 0.0, PLAYER_SOURCE)
                session.player_note(K_NOTE_OFF, note, 0.0, now, PLAYER_SOURCE)
            held = CHORDS[k % len(CHORDS)]
            for note in held:
                session.state.push_midi(now, K_NOTE_ON, keys, note, 0.7, PLAYER_SOURCE)
                session.player_note(K_NOTE_ON, note, 0.7, now, PLAYER_SOURCE)
            driver.render(chunk, out=buf)
            session.trim_history()                 # what the live loop does on its status tick
            k += 1
        roller.roll()                              # serve's hourly roll (midi_roll_s = 3600)
        gc.collect()
        traced = tracemalloc.get_traced_memory()[0] if trace else 0
        out["hours"].append(hour)
        out["traced_mb"].append(round(traced / 2**20, 3))
        out["rss_mb"].append(round(rss_bytes() / 2**20, 1))
        out["wall_s"].append(round(time.perf_counter() - t_start, 1))
        out["clock_segments"].append(len(session.clock.segments))
        if progress is not None:
            progress(hour, out)
    if trace:
        tracemalloc.stop()
    out["counters"] = session.state.counters()
    out["scheduled_notes"] = session.scheduler.scheduled_notes
    out["notes_rolled"] = roller.dropped_notes
    out["scenes"] = scenes
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=int, default=24)
    ap.add_argument("--sample-rate", type=int, default=8000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    def say(hour, out):
        if not args.json:
            print(f"hour {hour:3d}: traced {out['traced_mb'][-1]:8.3f} MB, rss "
                  f"{out['rss_mb'][-1]:7.1f} MB ({out['wall_s'][-1]:.0f} s)", flush=True)

    out = simulate(args.hours, args.sample_rate, progress=say)
    h = len(out["hours"])
    out["traced_growth_mb_second_half"] = round(out["traced_mb"][-1] - out["traced_mb"][h // 2 - 1],
                                                3) if h >= 2 else 0.0
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
