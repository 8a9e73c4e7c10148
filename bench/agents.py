"""How long the band takes to answer the scheduler: one 100 ms query window of the demo band
(funk, 120 BPM), warm (bars prepared ahead as the live loop would), every 25 ms of music.
Also the time the call-and-response agent takes to decide an answer (a phrase's last note-off,
eight phrases of eight notes remembered). With --listen (needs music21): the musicianship figures of bench/chorales.py as well — key
accuracy over the corpus's chorales per profile, pickups found, and each chorale played as the
player (grid, bass on the player's notes, band in key) — and the time of one key-tracker
update.

With --follow: the band following the player's own timing (config [sync] source = "player";
tests/playerkit.py's humanised player, ±10 ms jitter): the player beat it comes in on at 96
and 140 BPM (config at 120), the band's beat error against the player's true beats from two
bars in (median, 90th percentile, max ms) at steady tempi, under ±5 BPM drifts and on a Bach
chorale played with a drift (needs music21), and the cost of the tracker per note and of the
follower's once-a-beat decision (µs).

    python bench/agents.py [--json] [--listen] [--follow]
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


def listen_figures() -> dict:
    """Key-tracker update time, corpus key/pickup accuracy and the chorale figures."""
    from bench.chorales import FOLLOW_SET, follow, key_accuracy, pickup_accuracy
    from engine.listen.key import KeyTracker
    tracker = KeyTracker()
    t0 = time.perf_counter()
    for i in range(2000):
        tracker.add(60 + (i * 7) % 12, 0.5, i * 0.5)
    out = {"key_update_ms": round((time.perf_counter() - t0) / 2000 * 1e3, 4)}
    out.update(key_accuracy())
    out.update(pickup_accuracy())
    for name, bpm in FOLLOW_SET:
        f = follow(name, bpm)
        tag = f"{name.split('/')[-1]}@{bpm}"
        for k in ("player_on_grid", "bass_on_player", "band_in_key", "band_in_key_or_player",
                  "player_in_key"):
            out[f"chorale_{tag}_{k}"] = f[k]
    return out


def answer_ms() -> float:
    """Median time of the note-off that ends a phrase and decides the answer (ms)."""
    from engine.agents.answer import CallResponse
    from engine.agents.base import StaticContext
    calls, ctx, times = CallResponse(), StaticContext(seed=1), []
    for phrase in range(24):
        start = Fraction(8 * phrase)
        for i in range(8):
            b = start + Fraction(i, 2)
            p = 60 + (i * 5 + phrase) % 12
            calls.note(True, p, 0.7, b, b, ctx)
            t0 = time.perf_counter()
            calls.note(False, p, 0.0, b + Fraction(1, 4), b, ctx)
            if i == 7:
                times.append(time.perf_counter() - t0)
    return round(statistics.median(times[8:]) * 1e3, 4)


def follow_figures() -> dict:
    """The --follow figures (module docstring)."""
    from tests.playerkit import (SR, LiveSim, beat_errors_ms, follow_config, note_events,
                                 player, ramp, sine)
    from engine.listen.tempo import BeatTracker
    from engine.rt.events import K_NOTE_ON
    root = Path(__file__).resolve().parent.parent
    out: dict = {}

    def run(notes, beats, pickup=0):
        """(entry beat, errors from two bars in, bars aligned, decision times) of one player;
        `beats[k]` the player's beat k counted from their first note (a pickup included)."""
        sim = LiveSim(follow_config(root, 120.0), note_events(notes))
        times = []
        update = sim.follower.update

        def timed():
            decided = sim.follower._decided
            t0 = time.perf_counter()
            update()
            if sim.follower._decided != decided:
                times.append(time.perf_counter() - t0)
        sim.follower.update = timed
        sim.run(notes[-1][1] + 1.0)
        clock = sim.session.clock
        entry = clock.sample_at(Fraction(sim.follower.lock.entry))
        k_in = min(range(len(beats)), key=lambda k: abs(beats[k] * SR - entry))
        errs = [(k, b, e) for k, b, e in beat_errors_ms(clock, beats)
                if k >= 8 + pickup and beats[k] <= notes[-1][0]]
        aligned = all((b - (k - pickup)) % 4 == 0 for k, b, _ in errs)
        return k_in - pickup, [abs(e) for _, _, e in errs], aligned, times

    def figures(tag, runs):
        errs = sorted(e for r in runs for e in r[1])
        out[f"follow_{tag}_entry_beat_max"] = max(r[0] for r in runs)
        out[f"follow_{tag}_err_ms_median"] = round(statistics.median(errs), 2)
        out[f"follow_{tag}_err_ms_p90"] = round(errs[int(0.9 * (len(errs) - 1))], 2)
        out[f"follow_{tag}_err_ms_max"] = round(errs[-1], 2)
        out[f"follow_{tag}_bars_aligned"] = all(r[2] for r in runs)
        decide.extend(t for r in runs for t in r[3])

    decide: list[float] = []
    for tag, bpm_at, pickup in (("steady96", lambda t: 96.0, 0),
                                ("steady140", lambda t: 140.0, 0),
                                ("ramp_up_5bpm", ramp(100.0, 105.0, 6.0, 26.0), 0),
                                ("ramp_down_5bpm", ramp(100.0, 95.0, 6.0, 26.0), 0),
                                ("sine_5bpm_64s", sine(100.0, 5.0, 64.0), 0),
                                ("pickup2_104", lambda t: 104.0, 2)):
        runs = []
        for seed in (5, 6, 7, 8):
            notes, beats = player(bpm_at, 16, seed, pickup_beats=pickup)
            # player() numbers beats from the first downbeat: count from the first note here
            beats = [beats[0] - (beats[1] - beats[0]) * (pickup - j) for j in range(pickup)] \
                + beats
            runs.append(run(notes, beats, pickup))
        figures(tag, runs)
    try:
        from music21 import corpus
        from tests.playerkit import beat_times, time_of
        import random
        rng = random.Random(66)
        score = corpus.parse("bach/bwv66.6")
        pickup = round(float(score.parts[0].getElementsByClass("Measure")[0]
                             .duration.quarterLength)) % 4
        beats = beat_times(ramp(92.0, 97.0, 6.0, 18.0), int(score.highestTime) + 4, 0.5)
        notes = []
        for part in score.parts:
            for n in part.flatten().notes:
                pos, dur = float(n.offset), float(n.quarterLength)
                on = time_of(beats, pos) + rng.uniform(-0.01, 0.01)
                notes += [(on, time_of(beats, pos + dur) - 0.02, p.midi, 0.7)
                          for p in n.pitches]
        notes.sort()
        figures("chorale_bwv66.6_92to97bpm", [run(notes, beats, pickup)])
    except ImportError:
        pass
    # the tracker's cost per note (note-on and note-off), over a long humanised performance
    notes, _ = player(ramp(100.0, 105.0, 6.0, 26.0), 64, seed=1)
    events = note_events(notes)
    t = BeatTracker(SR, prior_bpm=120.0)
    t0 = time.perf_counter()
    for sample, kind, pitch, vel in events:
        if kind == K_NOTE_ON:
            t.note_on(sample, pitch, vel)
        else:
            t.note_off(sample, pitch)
        t.advance(sample)
    out["follow_tracker_us_per_note"] = round((time.perf_counter() - t0) / len(events) * 1e6, 2)
    out["follow_decision_us_median"] = round(statistics.median(decide) * 1e6, 1)
    out["follow_decision_us_max"] = round(max(decide) * 1e6, 1)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--listen", action="store_true", help="musicianship figures (music21)")
    ap.add_argument("--follow", action="store_true",
                    help="following the player's timing ([sync] source = player)")
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
           "query_ms_max": round(max(times) * 1e3, 4), "queries": len(times),
           "answer_decide_ms_median": answer_ms()}
    if args.listen:
        out.update(listen_figures())
    if args.follow:
        out.update(follow_figures())
    print(json.dumps(out) if args.json else "\n".join(f"{k}: {v}" for k, v in out.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
