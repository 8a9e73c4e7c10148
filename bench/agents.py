"""How long the band takes to answer the scheduler: one 100 ms query window of the demo band
(funk, 120 BPM), warm (bars prepared ahead as the live loop would), every 25 ms of music.
Also the time the call-and-response agent takes to decide an answer (a phrase's last note-off,
eight phrases of eight notes remembered). With --listen (needs music21): the musicianship
figures of bench/chorales.py as well — key
accuracy over the corpus's chorales per profile, pickups found, and each chorale played as the
player (grid, bass on the player's notes, band in key) — and the time of one key-tracker
update. With --memory: the progression memory (engine.listen.progression) on the live path —
for a 4-bar loop (one and two chords a bar), an 8-bar loop and a 12-bar blues, the rounds the
player plays before the band locks onto the loop, and the share of changes where the bass's
note is a tone of the player's chord, in the first two rounds (following only) and after them,
with the memory on and off; and a song form with returns to loops learned before (bars to lock
again, beats to let go at each section change, the bass at the changes after each return and
after a substituted chord: memory_form_*, memory_substitution_*).

With --follow: the band following the player's own timing (config [sync] source = "player";
tests/playerkit.py's humanised player, ±10 ms jitter): the player beat it comes in on at 96
and 140 BPM (config at 120), the band's beat error from two bars in (median, 90th percentile,
max ms) against the player's intended beats (before their jitter: `err_ms`) and against their
onsets as played (`onset_err_ms`) at steady tempi, under ±5 BPM drifts and on a Bach chorale
played with a drift (needs music21); the tempo octave (players at 170, 200, 60 and in running
eighths at 84 against a config of 120: the tempo heard after eight bars, and the level changes
it took); chorales by ear (needs music21): the share of their bar lines, from the fifth, that
are the tracker's (six chorales at three tempi, and 37 of the corpus at 92 BPM, with the times
the bar moved, each a realignment of the band); and the cost of the tracker per note and of
the follower's once-a-beat decision (µs).

    python bench/agents.py [--json] [--listen] [--follow] [--memory]
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


def memory_figures() -> dict:
    """Rounds to lock and the bass's hit rate at the changes before/after two rounds."""
    from engine.config import load_config
    from tests.progressionkit import hits_at_changes, jam, loop_changes, rate
    root = Path(__file__).resolve().parent.parent
    loops = {"four": (["Am", "F", "C", "G"], 4, 4),
             "two_a_bar": (["C", "Dm", "Em", "F", "G", "Am", "G", "F"], 2, 4),
             "eight": (["Am", "F", "C", "G", "Am", "F", "Dm", "E7"], 4, 8),
             "blues": (["A7", "D7", "A7", "A7", "D7", "D7", "A7", "A7", "E7", "D7", "A7",
                        "E7"], 4, 12)}
    out = {}
    for name, (chords, each, bars) in loops.items():
        changes = loop_changes(chords, each, 4)
        learned = 4 + 2 * bars * 4
        for on in (True, False):
            cfg = load_config(str(root / "config.toml"), environ={})
            s, bass = jam(cfg, changes, memory=on)
            tag = f"memory_{name}_{'on' if on else 'off'}"
            before = hits_at_changes(s, bass, changes, last_beat=learned)
            after = hits_at_changes(s, bass, changes, first_beat=learned)
            out[f"{tag}_hit_before"] = round(rate(before), 3)
            out[f"{tag}_hit_after"] = round(rate(after), 3)
            if on:
                m = s.ctx.memory
                first = m.first_lock
                out[f"memory_{name}_loop_bars"] = m.loop.bars if m.loop else 0
                out[f"memory_{name}_rounds_to_lock"] = None if first is None else \
                    round(float((first - 4) / (bars * 4)), 2)
                out[f"memory_{name}_confidence"] = m.loop.confidence if m.loop else 0.0
    out.update(memory_form_figures())
    return out


def memory_form_figures() -> dict:
    """A song form played by a human player (each chord up to 60 ms early or late, its notes
    rolled 12 ms apart): verse x2, chorus x2, verse, chorus, verse, then the verse with a
    substituted chord in one round. The bars the band takes to lock again on each return to
    a loop it knows, the beats from a section change to the band letting go of the loop, and
    the share of changes where the bass plays a tone of the player's chord from the second bar
    after each return (and after the substitution), memory on and off."""
    from engine.config import load_config
    from tests.progressionkit import hits_at_changes, human, jam, loop_changes, rate, song
    root = Path(__file__).resolve().parent.parent
    verse, chorus = ["Am", "F", "C", "G"], ["Dm", "G", "C", "E7"]
    changes, starts, _ = song([(verse, 2), (chorus, 2), (verse, 1), (chorus, 1), (verse, 1)])
    sub = loop_changes(verse, 4, 4)
    sub[9] = (sub[9][0], "Dm")
    out = {}
    for on in (True, False):
        tag = "on" if on else "off"
        cfg = load_config(str(root / "config.toml"), environ={})
        s, bass = jam(cfg, changes, memory=on, early_s=human(11), spread_s=0.012)
        hits = []
        for i, start in enumerate(starts[2:], 2):
            end = starts[i + 1] if i + 1 < len(starts) else None
            hits += hits_at_changes(s, bass, changes, first_beat=start + 8, last_beat=end)
        out[f"memory_form_{tag}_hit_after_return"] = round(rate(hits), 3)
        m = s.ctx.memory
        if on:
            first = m.first_lock
            out["memory_form_rounds_to_first_lock"] = round(float((first - 4) / 16), 2)
            back = [b for b, kind, _ in m.events if kind == "return"]
            out["memory_form_bars_to_relock"] = [float((b - a) / 4)
                                                 for a, b in zip(starts[2:], back)]
            gone = [b for b, kind, _ in m.events if kind == "depart"]
            out["memory_form_beats_to_let_go"] = [float(b - a)
                                                  for a, b in zip(starts[1:], gone)]
            out["memory_form_locks_returns_departures"] = [m.locks, m.returns, m.departures]
        cfg = load_config(str(root / "config.toml"), environ={})
        s, bass = jam(cfg, sub, memory=on, early_s=human(3), spread_s=0.012)
        after = hits_at_changes(s, bass, sub, first_beat=sub[9][0] + 4)
        out[f"memory_substitution_{tag}_hit_after"] = round(rate(after), 3)
        if on:
            out["memory_substitution_kept_lock"] = s.ctx.memory.substitutions == 1 and \
                s.ctx.memory.locks == 1
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
    from tests.playerkit import (SR, LiveSim, beat_errors_ms, follow_config, heard_beats,
                                 note_events, player, ramp, sine)
    from engine.listen.tempo import BeatTracker
    from engine.rt.events import K_NOTE_ON
    root = Path(__file__).resolve().parent.parent
    out: dict = {}

    def run(notes, beats, pickup=0):
        """(entry beat, errors from two bars in, bars aligned, decision times, errors against
        the onsets as played) of one player; `beats[k]` the player's beat k counted from
        their first note (a pickup included)."""
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
        played = heard_beats(notes, beats)
        heard = [abs(clock.sample_at(b) - played[k] * SR) * 1000.0 / SR for k, b, _ in errs
                 if played[k] is not None]
        return k_in - pickup, [abs(e) for _, _, e in errs], aligned, times, heard

    def figures(tag, runs):
        errs = sorted(e for r in runs for e in r[1])
        out[f"follow_{tag}_entry_beat_max"] = max(r[0] for r in runs)
        out[f"follow_{tag}_err_ms_median"] = round(statistics.median(errs), 2)
        out[f"follow_{tag}_err_ms_p90"] = round(errs[int(0.9 * (len(errs) - 1))], 2)
        out[f"follow_{tag}_err_ms_max"] = round(errs[-1], 2)
        heard = sorted(e for r in runs for e in r[4])
        out[f"follow_{tag}_onset_err_ms_median"] = round(statistics.median(heard), 2)
        out[f"follow_{tag}_onset_err_ms_p90"] = round(heard[int(0.9 * (len(heard) - 1))], 2)
        out[f"follow_{tag}_onset_err_ms_max"] = round(heard[-1], 2)
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
    # the tempo octave: the tempo heard after eight bars (three players each)
    for tag, bpm, offbeats in (("170", 170.0, 0.3), ("200", 200.0, 0.3), ("60", 60.0, 0.3),
                               ("84_eighths", 84.0, 0.9)):
        heard_bpm, changes = [], 0
        for seed in (1, 2, 3):
            notes, beats = player(lambda t: bpm, 12, seed=seed, offbeats=offbeats)
            t = BeatTracker(SR, prior_bpm=120.0)
            for sample, kind, pitch, vel in note_events(notes):
                if sample >= beats[32] * SR:
                    break
                t.note_on(sample, pitch, vel) if kind == K_NOTE_ON else t.note_off(sample, pitch)
            heard_bpm.append(round(t.bpm, 1))
            changes += t.counters["level_changes"]
        out[f"follow_octave_{tag}_config120_bpm_heard"] = heard_bpm
        out[f"follow_octave_{tag}_level_changes"] = changes
    try:
        from tests.test_follow import CHORALES, chorale_bars
        made: list = []                          # the trackers chorale_bars makes
        init = BeatTracker.__init__

        def kept(self, *args, **kwargs):
            init(self, *args, **kwargs)
            made.append(self)
        BeatTracker.__init__ = kept
        bars = [ok for name in CHORALES for bpm in (66.0, 92.0, 120.0)
                for ok in chorale_bars(name, bpm)]
        out["follow_chorale_bars_share"] = round(sum(bars) / len(bars), 3)
        out["follow_chorale_bars_n"] = len(bars)
        # a wider set: every third of the corpus's first 120 chorales, in 4/4, at 92 BPM
        from music21 import corpus
        names = sorted({str(p).split("/bach/")[-1].rsplit(".", 1)[0]
                        for p in corpus.getComposer("bach") if "bwv" in str(p)})
        bars, n, changes = [], 0, 0
        for name in names[:120:3]:
            made.clear()
            try:
                got = chorale_bars("bach/" + name, 92.0)
            except Exception:  # noqa: BLE001 - not in 4/4, or not heard at its tempo
                continue
            bars += got
            n += bool(got)
            changes += made[-1].counters["downbeat_changes"] if got else 0
        BeatTracker.__init__ = init
        out["follow_chorale_wide_chorales"] = n
        out["follow_chorale_wide_bars_share"] = round(sum(bars) / max(len(bars), 1), 3)
        out["follow_chorale_wide_downbeat_changes_per_chorale"] = round(changes / max(n, 1), 2)
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
    ap.add_argument("--memory", action="store_true", help="progression memory figures")
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
    if args.memory:
        out.update(memory_figures())
    print(json.dumps(out) if args.json else "\n".join(f"{k}: {v}" for k, v in out.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
