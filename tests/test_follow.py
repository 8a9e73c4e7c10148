"""The band follows the player's own timing (config [sync] source = "player"):
engine.listen.tempo.BeatTracker and engine.control.sync.PlayerFollower.

A synthetic humanised player (tests/playerkit.py: every note ±10 ms of uniform jitter, chords
on the bar starts, syncopated off-beat eighths, beats left out) drives a real Session stepped
as the live loop steps it (notes to Session.player_note at their sample stamps, follower
update, scheduler advance every ~10 ms); the band's beats (its tempo map) are compared with the
player's true beats. The same notes rendered offline through export.render give the same tempo
map. A Bach chorale from music21's corpus, played with a tempo drift, is the real-music case.
"""
from __future__ import annotations

import statistics
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from engine.control.session import Session
from engine.control.sync import PlayerFollower, sync_from_config
from engine.listen.tempo import BeatTracker
from engine.parts import DRUMS
from engine.rt.events import K_NOTE_OFF, K_NOTE_ON
from tests.playerkit import (SR, LiveSim, beat_errors_ms, chorale, follow_config,
                             heard_beats, note_events, player, ramp, sine, time_of)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def at_root(monkeypatch):
    monkeypatch.chdir(ROOT)


def follow(notes, tempo_bpm: float = 120.0, **sim):
    """A LiveSim of the player's notes, run until a beat after the last note ends."""
    s = LiveSim(follow_config(ROOT, tempo_bpm), note_events(notes), **sim)
    s.run(max(off for _, off, _, _ in notes) + 1.0)
    return s


def after(errors, first_beat: int, last_s: float, beats) -> list[tuple[int, int, float]]:
    """The errors of the player's beats from `first_beat` up to the last note."""
    return [(k, b, e) for k, b, e in errors if first_beat <= k and beats[k] <= last_s]


def stats(errors) -> tuple[float, float, float]:
    """(median, 90th percentile, max) of |error| ms."""
    a = sorted(abs(e) for _, _, e in errors)
    return statistics.median(a), a[int(0.9 * (len(a) - 1))], a[-1]


def drum_onsets(sim) -> np.ndarray:
    rows = np.concatenate(sim.rows) if sim.rows else np.zeros((0, 6))
    return np.sort(rows[(rows[:, 1] == K_NOTE_ON) & (rows[:, 2] == DRUMS)][:, 0])


# ---- the tracker alone --------------------------------------------------------------------------

def feed(tracker: BeatTracker, notes, until_s: float | None = None) -> None:
    for sample, kind, pitch, vel in note_events(notes):
        if until_s is not None and sample >= until_s * SR:
            break
        if kind == K_NOTE_ON:
            tracker.note_on(sample, pitch, vel)
        else:
            tracker.note_off(sample, pitch)
    tracker.advance(((until_s or notes[-1][1]) + 0.1) * SR)


@pytest.mark.parametrize("bpm", [84.0, 96.0, 140.0, 160.0])
def test_tracker_hears_tempo_phase_chords_once_and_the_one(bpm):
    notes, beats = player(lambda t: bpm, 8, seed=3)
    t = BeatTracker(SR, prior_bpm=120.0)
    feed(t, notes, until_s=beats[-3])
    assert t.locked and abs(t.bpm - bpm) < 0.01 * bpm
    # chords count once: as many onsets as distinct note times 40 ms apart
    starts = sorted(on for on, _, _, _ in notes if on < beats[-3])
    groups = 1 + sum(1 for a, b in zip(starts, starts[1:]) if b - a > 0.04)
    assert t.counters["onsets"] == groups and t.counters["chords"] >= 8
    assert t.counters["inductions"] == 1 and t.counters["misses"] <= 1
    # the beat it predicts (beat numbers: multiples of 4 are downbeats) lands on the player's
    for k in (len(beats) - 3, len(beats) - 2):
        x = t.beat_at(beats[k] * SR)
        assert abs(x - round(x)) * 60.0 / bpm < 0.012            # 12 ms
        assert round(x) % 4 == k % 4                               # and on the one
    assert t.downbeat_confidence > 0.3


def test_tracker_bad_and_late_input_changes_nothing():
    notes, beats = player(lambda t: 100.0, 4, seed=1)
    t = BeatTracker(SR)
    feed(t, notes)
    before = (t.bpm, t.beat_at(beats[-1] * SR), t.generation)
    t.note_on(float("nan"), 60, 0.5)
    t.note_on(beats[-1] * SR, 200, 0.5)
    t.note_on(beats[-1] * SR, 60, 1.5)
    t.note_on(beats[1] * SR, 60, 0.5)               # long past: late
    t.note_off(beats[-1] * SR, 999)
    assert t.counters["bad"] == 3 and t.counters["late"] == 1
    assert (t.bpm, t.beat_at(beats[-1] * SR), t.generation) == before


def test_eighths_at_96_are_heard_at_96_not_192():
    rng = np.random.default_rng(4)
    notes = []
    for k in range(40):                              # running eighths, beats a little louder
        on = 0.5 + k * 60.0 / 96.0 / 2 + rng.uniform(-0.01, 0.01)
        notes.append((on, on + 0.2, 60 + (k * 5) % 12, 0.75 if k % 2 == 0 else 0.6))
    t = BeatTracker(SR, prior_bpm=120.0)
    feed(t, notes)
    assert t.locked and abs(t.bpm - 96.0) < 1.0


def test_ornaments_and_a_triplet_fill_do_not_flap_it():
    """Grace notes 60 ms before beats and a bar of triplets now and then: they miss the
    grid and move nothing (no re-induction, the bar's phase kept)."""
    notes, beats = player(lambda t: 100.0, 12, seed=4)
    extra = []
    for k in range(6, 44, 5):                        # grace notes
        extra.append((beats[k] - 0.06, beats[k] - 0.03, 74, 0.4))
    for bar in (5, 9):                               # a triplet bar
        for j in range(12):
            on = beats[4 * bar] + j * (beats[1] - beats[0]) / 3 + 0.003
            extra.append((on, on + 0.1, 76 + j % 3, 0.55))
    t = BeatTracker(SR, prior_bpm=120.0)
    feed(t, sorted(notes + extra))
    assert t.generation == 1 and t.counters["switches"] == 0
    assert t.counters["downbeat_changes"] == 0 and t.counters["misses"] >= 8
    assert abs(t.bpm - 100.0) < 1.0 and t.locked


def test_a_new_tempo_is_taken_up_with_hysteresis():
    """Eight bars at 90, then straight on at 120: most onsets miss the old grid, the tempo
    is induced again and replaces the old one once (and no more)."""
    a, beats_a = player(lambda t: 90.0, 8, seed=2)
    t1 = beats_a[32]
    b, beats_b = player(lambda t: 120.0, 8, seed=3, t0=t1)
    t = BeatTracker(SR, prior_bpm=110.0)
    feed(t, sorted([n for n in a if n[0] < t1 - 0.05] + b))
    assert t.counters["switches"] == 1 and abs(t.bpm - 120.0) < 1.0 and t.locked
    x = t.beat_at(beats_b[-3] * SR)
    assert abs(x - round(x)) * 0.5 < 0.012


# ---- the band follows ---------------------------------------------------------------------------

@pytest.mark.parametrize("bpm", [96.0, 140.0])
def test_the_band_locks_to_a_steady_player_within_two_bars(at_root, bpm):
    """Config at 120 BPM, the player at 96 or 140: the band listens (silent), comes in on the
    player's third bar line (within two bars of their first note) on the one, and from then
    on its beats are the player's."""
    notes, beats = player(lambda t: bpm, 12, seed=2)
    sim = follow(notes)
    f = sim.follower
    assert isinstance(f, PlayerFollower) and f.tracker.locked
    errors = beat_errors_ms(sim.session.clock, beats)
    entry = Fraction(f.lock.entry)
    k_in = min(range(len(beats)), key=lambda k: abs(beats[k] * SR
                                                 - sim.session.clock.sample_at(entry)))
    assert k_in <= 8 and k_in % 4 == 0, k_in          # within two bars, on a bar line
    med, p90, worst = stats(after(errors, k_in, notes[-1][0], beats))
    assert med <= 5.0 and p90 <= 10.0 and worst <= 20.0, (med, p90, worst)
    assert all((b - k) % 4 == 0 for k, b, _ in after(errors, k_in, notes[-1][0], beats))
    # silent until then (what was queued before the follower started aside), then playing
    drums = drum_onsets(sim)
    lookahead = sim.session.scheduler.lookahead
    quiet = drums[(drums > lookahead) & (drums < sim.session.clock.sample_at(entry) - 0.013 * SR)]
    assert len(quiet) == 0
    assert len(drums[drums > beats[k_in + 4] * SR]) >= 8
    assert abs(sim.session.clock.bpm - bpm) < 0.04 * bpm
    assert f.lock.tempo_changes <= float(sim.session.clock.beat_at(sim.now)) + 1


DRIFTS = {"ramp up": ramp(100.0, 105.0, 6.0, 26.0), "ramp down": ramp(100.0, 95.0, 6.0, 26.0),
          "slow sine": sine(100.0, 5.0, 64.0)}


@pytest.mark.parametrize("drift", list(DRIFTS))
def test_the_band_follows_a_player_who_drifts(at_root, drift):
    """±5 BPM (a ramp over 20 s either way after two bars steady, a sine of 64 s from the
    first note), three players each: two bars in, the band's beats are the player's intended
    beats (before their ±10 ms jitter): half within 5 ms, nine in ten within 12 ms, none off
    by 25 ms (the limit: each beat is decided 1.4 beats ahead from jittered onsets); against
    the onsets as played (the jitter included) a little further; its bars on theirs, never
    lost."""
    pooled, heard = [], []
    for seed in (5, 6, 7):
        notes, beats = player(DRIFTS[drift], 16, seed=seed)
        sim = follow(notes)
        errors = after(beat_errors_ms(sim.session.clock, beats), 8, notes[-1][0], beats)
        assert all((b - k) % 4 == 0 for k, b, _ in errors)
        assert sim.follower.tracker.counters["switches"] == 0
        assert sim.follower.tracker.counters["level_changes"] == 0
        pooled += errors
        played = heard_beats(notes, beats)
        heard += [(k, b, (sim.session.clock.sample_at(b) - played[k] * SR) * 1000.0 / SR)
                  for k, b, _ in errors if played[k] is not None]
    med, p90, worst = stats(pooled)
    assert med <= 5.0 and p90 <= 12.0 and worst <= 25.0, (med, p90, worst)
    med, p90, worst = stats(heard)
    assert med <= 7.0 and p90 <= 16.0 and worst <= 30.0, (med, p90, worst)


@pytest.mark.parametrize("bpm, mostly_eighths", [(170.0, False), (60.0, False), (84.0, True),
                                                 (200.0, False)])
def test_the_tempo_octave_comes_from_the_playing(bpm, mostly_eighths):
    """Config at 120: a player at 170 or 200 (heard at first, maybe, at half speed), at 60
    (at first maybe at 120) or at 84 in running eighths with the bar's chords (not 168): the
    bars' accents settle the level (a half bar that sounds like a bar: twice too slow; every
    other bar without its accent: twice too fast) within eight bars (three bars heard at
    the level, two votes in a row), and the bar is right."""
    for seed in (1, 2, 3):
        notes, beats = player(lambda t: bpm, 16, seed=seed,
                              offbeats=0.9 if mostly_eighths else 0.3)
        t = BeatTracker(SR, prior_bpm=120.0)
        feed(t, notes, until_s=beats[32])
        assert abs(t.bpm - bpm) < 0.02 * bpm, (seed, t.bpm)
        feed(t, [n for n in notes if n[0] >= beats[32] - 0.02])
        assert abs(t.bpm - bpm) < 0.02 * bpm and t.counters["level_changes"] <= 1
        x = t.beat_at(beats[-3] * SR)
        assert abs(x - round(x)) * 60.0 / bpm < 0.012 and round(x) % 4 == (len(beats) - 3) % 4


def test_the_band_plays_at_170_when_the_config_says_120(at_root):
    """A player the tracker first hears at 85 (this seed): the band follows at 85 (on every
    other beat of theirs, on their bars), then the level moves and the band realigns once
    onto their beats at 170, on their bars."""
    notes, beats = player(lambda t: 170.0, 16, seed=3)
    sim = follow(notes)
    f = sim.follower
    assert f.tracker.counters["level_changes"] == 1 and f.counters["realigns"] == 1
    assert abs(sim.session.clock.bpm - 170.0) < 0.03 * 170.0
    errors = after(beat_errors_ms(sim.session.clock, beats), 40, notes[-1][0], beats)
    assert all((b - k) % 4 == 0 for k, b, _ in errors)
    assert stats(errors)[1] <= 12.0


def test_the_downbeat_comes_from_the_accents_after_a_pickup(at_root):
    """Two beats of pickup: the first note heard is not the one. The accents (loud low chords
    on the bar starts, held long) move the band's bars onto the player's."""
    notes, beats = player(lambda t: 104.0, 12, seed=7, pickup_beats=2)
    sim = follow(notes)
    t = sim.follower.tracker
    assert t.counters["downbeat_changes"] >= 1 and t.downbeat_confidence > 0.3
    errors = after(beat_errors_ms(sim.session.clock, beats), 16, notes[-1][0], beats)
    assert all((b - k) % 4 == 0 for k, b, _ in errors)        # band bars on the player's
    assert stats(errors)[1] <= 10.0


def test_a_player_who_stops_leaves_the_band_at_their_tempo(at_root):
    notes, beats = player(lambda t: 96.0, 8, seed=3)
    stop_s = notes[-1][0]
    s = LiveSim(follow_config(ROOT, 120.0), note_events(notes))
    s.run(stop_s + 4.0)
    f, clock = s.follower, s.session.clock
    assert f.counters["holds"] == 1 and f.tracker.holding and not f.following
    held_at = len(clock.segments)
    bpm = clock.bpm
    s.run(stop_s + 20.0)                          # a long silence: nothing changes
    assert len(clock.segments) == held_at and clock.bpm == bpm
    assert abs(bpm - 96.0) < 0.5
    drums = drum_onsets(s)
    assert len(drums[drums > (stop_s + 10.0) * SR]) >= 10      # the band plays on
    assert "holding" in f.status()


def test_live_equals_offline(at_root, tmp_path):
    """The player's notes from a MIDI file: rendered offline (export.render, blocks of 512)
    and stepped as a live loop (~10 ms ticks, notes arriving 5 ms before their stamps), the
    band's tempo map is the same, tempo change for tempo change."""
    from controllers.midifile import write_performance
    from engine.control import export
    notes, beats = player(ramp(92.0, 97.0, 4.0, 16.0), 8, seed=9)
    mid = tmp_path / "player.mid"
    write_performance(mid, [(on, off - on, "keys", p, v) for on, off, p, v in notes], 120.0)
    cfg = follow_config(ROOT, 120.0, drums=False)
    offline = Session(cfg, SR)
    seconds = notes[-1][1] + 1.0
    export.render(offline, seconds, tmp_path / "out.wav", 512, mid, progress=False)
    assert offline.follower is not None and offline.score is None
    events = [(t, kind, int(a), b) for t, kind, _, a, b, _ in
              export.file_events(mid, offline) if kind in (K_NOTE_ON, K_NOTE_OFF)]
    live = LiveSim(cfg, sorted(events), seed=3)
    live.run(seconds)
    segs = lambda s: [(x.beat, x.sample, x.bpm) for x in s.clock.segments]  # noqa: E731
    assert len(segs(offline)) > 20
    assert segs(offline) == segs(live.session)
    assert offline.follower.tracker.counters == live.follower.tracker.counters


def test_a_bach_chorale_played_with_a_tempo_drift(at_root):
    """bwv66.6, all four voices as the player (their pickup too), 92 -> 97 BPM over its first
    half, every note ±10 ms: the band follows the beat."""
    pytest.importorskip("music21")
    notes, beats, pickup, _ = chorale("bach/bwv66.6", ramp(92.0, 97.0, 6.0, 18.0), seed=66)
    sim = follow(notes)
    errors = after(beat_errors_ms(sim.session.clock, beats), 8 + round(pickup),
                   notes[-1][0], beats)              # beat 0: the score's start (the pickup)
    med, p90, worst = stats(errors)
    assert med <= 6.0 and p90 <= 12.0, (med, p90, worst)
    assert sim.follower.tracker.counters["switches"] == 0


#: four-four chorales, three with a pickup of a beat (bwv1.6, bwv2.6, bwv66.6)
CHORALES = ("bach/bwv1.6", "bach/bwv2.6", "bach/bwv66.6", "bach/bwv10.7", "bach/bwv40.8",
            "bach/bwv26.6")


def chorale_bars(name: str, bpm: float) -> list[bool]:
    """From the score's fifth bar line on: is each one a bar line of the tracker's, as known
    0.4 s before it (the tracker fed the chorale's notes up to then)?"""
    notes, beats, pickup, bar = chorale(name, lambda t: bpm)
    assert bar == 4.0
    t = BeatTracker(SR, prior_bpm=1.1 * bpm)      # the band set near the chorale's tempo
    events, i, out = note_events(notes), 0, []
    q = pickup
    while q < len(beats) - 6 and time_of(beats, q) < notes[-1][0]:
        cut = (time_of(beats, q) - 0.4) * SR
        while i < len(events) and events[i][0] < cut:
            sample, kind, pitch, vel = events[i]
            i += 1
            t.note_on(sample, pitch, vel) if kind == K_NOTE_ON else t.note_off(sample, pitch)
        t.advance(cut)
        if q >= pickup + 16:
            out.append(round(t.beat_at(time_of(beats, q) * SR)) % 4 == 0)
        q += 4
    assert abs(t.bpm - bpm) < 0.02 * bpm
    return out


def test_chorale_bars_by_ear_from_their_harmonic_rhythm():
    """No accents to hear the one by (every note at one velocity, a chord on every beat): the
    bass seldom sounds again across a bar line and long notes mostly start on the one, so a
    pickup is corrected once enough of that has been heard. Six chorales at 66, 92 and 120
    BPM (the band's tempo set near theirs: with nothing but even chords, 66 against a config
    of 120 is heard at 132): the share of their bar lines (from the fifth) that are the
    tracker's (measured 0.88; before, 0.50: the three with a pickup a beat off)."""
    pytest.importorskip("music21")
    pooled = []
    for name in CHORALES:
        for bpm in (66.0, 92.0, 120.0):
            pooled += chorale_bars(name, bpm)
    assert len(pooled) >= 150 and sum(pooled) / len(pooled) >= 0.8, sum(pooled) / len(pooled)
    assert all(chorale_bars("bach/bwv1.6", 92.0)[-6:])          # its pickup corrected


# ---- config, CLI ---------------------------------------------------------------------------------

def test_player_sync_config_cli_and_factory(at_root):
    from engine.cli import _overrides, _parser
    from engine.config import load_config
    from engine.tomldata import DataError
    assert _overrides(_parser().parse_args(["jam", "--sync", "player"]))["sync"] == \
        {"source": "player"}
    assert _overrides(_parser().parse_args(["render", "--sync", "player"]))["sync"] == \
        {"source": "player"}
    with pytest.raises(DataError, match="player_hold_beats"):
        load_config(ROOT / "config.toml", environ={"BANDMATE_SYNC_PLAYER_HOLD_BEATS": "0"})
    cfg = follow_config(ROOT)
    s = Session(cfg, SR)
    f = sync_from_config(s, cfg, log=lambda text: None)
    assert isinstance(f, PlayerFollower) and s.follower is f
    assert f.status() == "player: listening"
    s.player_note(K_NOTE_ON, 60, 0.8, 1000, 1)      # every input path reaches it
    assert f.counters["notes"] == 1
    f.close()
    assert s.follower is None


def test_the_live_run_starts_the_player_follower(at_root):
    """`jam --sync player`: the live run's follower is the session's, hears the notes that
    reach the session (any input path) and shows in the status line."""
    import asyncio
    import time

    from engine.control import live
    from tests.enginekit import NullStream

    async def main():
        s = Session(follow_config(ROOT), SR)
        lr = live.LiveRun(s, NullStream(), log=lambda text: None)
        task = asyncio.create_task(lr.run(30.0))
        end = time.monotonic() + 10.0
        while lr.sync is None:
            assert time.monotonic() < end, "timed out waiting for the follower"
            await asyncio.sleep(0.005)
        assert isinstance(lr.sync, PlayerFollower) and s.follower is lr.sync
        s.player_note(K_NOTE_ON, 60, 0.8, 4800, 1)
        s.player_note(K_NOTE_OFF, 60, 0.0, 9600, 1)
        assert lr.sync.counters["notes"] == 2 and lr.sync.status() == "player: listening"
        lr.stop()
        await asyncio.wait_for(task, 10.0)
    asyncio.run(asyncio.wait_for(main(), 60.0))
