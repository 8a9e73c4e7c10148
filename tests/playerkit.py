"""A synthetic humanised player for the tempo-following tests and benchmark: bars of a
left-hand/right-hand pattern over a chord progression, at a tempo that may drift, every note
placed with uniform jitter, some syncopation, some beats left out, chords on the bar starts
(louder, lower, longer: the accents a listener hears the one from)."""
from __future__ import annotations

import bisect
import math
import random

CHORDS = ((48, (60, 64, 67)), (53, (60, 65, 69)), (55, (59, 62, 67)), (45, (60, 64, 69)))


def beat_times(bpm_at, beats: int, t0: float) -> list[float]:
    """The true times (s) of beats 0..beats of a tempo `bpm_at(t)` (BPM at time t), the
    tempo integrated finely within each beat."""
    out, t = [t0], t0
    for _ in range(beats):
        phase = 0.0
        while phase < 1.0:                       # 16 steps a beat
            step = min(1.0 / 16, 1.0 - phase)
            t += step * 60.0 / bpm_at(t)
            phase += step
        out.append(t)
    return out


def time_of(beats: list[float], pos: float) -> float:
    """The time of a fractional beat position (linear within the beat)."""
    k = min(int(math.floor(pos)), len(beats) - 2)
    return beats[k] + (pos - k) * (beats[k + 1] - beats[k])


def player(bpm_at, bars: int, seed: int = 1, t0: float = 0.5, jitter_s: float = 0.010,
           beats_per_bar: int = 4, pickup_beats: int = 0, accent: bool = True,
           offbeats: float = 0.3):
    """(notes, beat times): notes as (on s, off s, pitch, velocity 0..1) sorted by onset, and
    the true time of every beat (beat 0 the first downbeat, after `pickup_beats` of pickup,
    so the first note falls on beat -pickup_beats). `accent`: the bar starts louder, chorded
    and low; False: every beat alike (a single mid-register note each). `offbeats`: the share
    of beats followed by an off-beat eighth (0.9: a player in running eighths)."""
    rng = random.Random(seed)
    total = bars * beats_per_bar + pickup_beats + 2
    beats = beat_times(bpm_at, total, t0)
    notes = []

    def add(pos, dur, pitch, vel):
        on = time_of(beats, pos + pickup_beats) + rng.uniform(-jitter_s, jitter_s)
        off = time_of(beats, pos + pickup_beats + dur)
        notes.append((on, max(off, on + 0.05), pitch, vel))

    for k in range(-pickup_beats, 0):            # the pickup: plain melody notes
        add(k, 0.9, 72 + 2 * k, 0.6)
    for bar in range(bars):
        root, triad = CHORDS[bar % len(CHORDS)]
        b0 = bar * beats_per_bar
        if accent:
            add(b0, 1.8, root, 0.9)              # the one: bass + chord, loud and long
            for p in triad:
                add(b0, 1.8, p, 0.85)
        else:
            add(b0, 0.9, triad[1] + 12, 0.65)
        for beat in range(1, beats_per_bar):
            pos = b0 + beat
            if rng.random() < 0.15:              # a beat left out
                continue
            if accent and beat == 2 and rng.random() < 0.5:
                for p in triad:                  # a softer chord mid-bar
                    add(pos, 0.9, p, 0.6)
            else:
                add(pos, 0.45, triad[rng.randrange(3)] + 12, rng.uniform(0.55, 0.7))
            if rng.random() < offbeats:          # a syncopated off-beat eighth
                add(pos + 0.5, 0.4, triad[rng.randrange(3)] + 12, rng.uniform(0.5, 0.65))
    notes.sort()
    # beat 0 of the list is the first downbeat
    return notes, beats[pickup_beats:]


def chorale(name: str, bpm_at, seed: int = 1, jitter_s: float = 0.010, t0: float = 0.5):
    """A music21 corpus chorale (all its voices) as the player at tempo `bpm_at(t)`, every
    note-on ±jitter_s: (notes as `player`'s, the true time of every quarter from the score's
    start (its pickup included), the pickup in quarters, the bar in quarters)."""
    import numpy as np
    from music21 import corpus
    score = corpus.parse(name)
    ts = score.recurse().getElementsByClass("TimeSignature").first()
    bar = float(ts.barDuration.quarterLength) if ts else 4.0
    pickup = float(score.parts[0].getElementsByClass("Measure")[0].duration.quarterLength) % bar
    rng = np.random.default_rng(seed)
    beats = beat_times(bpm_at, int(score.highestTime) + 4, t0)
    notes = []
    for part in score.parts:
        for n in part.flatten().notes:
            pos, dur = float(n.offset), float(n.quarterLength)
            on = time_of(beats, pos) + rng.uniform(-jitter_s, jitter_s)
            for p in n.pitches:
                notes.append((on, time_of(beats, pos + dur) - 0.02, p.midi, 0.7))
    notes.sort()
    return notes, beats, pickup, bar


def ramp(bpm0: float, bpm1: float, t_start: float, t_end: float):
    """A tempo holding bpm0, then a straight ramp to bpm1 over [t_start, t_end], then bpm1."""
    def bpm_at(t):
        if t <= t_start:
            return bpm0
        if t >= t_end:
            return bpm1
        return bpm0 + (bpm1 - bpm0) * (t - t_start) / (t_end - t_start)
    return bpm_at


def sine(bpm0: float, depth_bpm: float, period_s: float, t_start: float = 0.0):
    """bpm0 ± depth_bpm, a slow sine of `period_s` from t_start."""
    return lambda t: bpm0 + (depth_bpm * math.sin(2 * math.pi * (t - t_start) / period_s)
                             if t > t_start else 0.0)


def nearest(beats: list[float], t: float) -> int:
    """The index of the beat nearest to t."""
    i = bisect.bisect_left(beats, t)
    if i == 0:
        return 0
    if i >= len(beats):
        return len(beats) - 1
    return i if beats[i] - t < t - beats[i - 1] else i - 1


# ---- a Session stepped as the live loop steps it, the player's notes fed at their stamps -------

SR = 48000
STEP = 480                       # the live loop's 10 ms


def follow_config(root, tempo_bpm: float = 120.0, drums: bool = True) -> dict:
    """The repository's config.toml with [sync] source = "player", only the drums on."""
    from engine.config import load_config
    cfg = load_config(root / "config.toml", environ={})
    for part in ("bass", "chords", "lead"):
        cfg["band"][part] = False
    cfg["band"]["drums"] = drums
    cfg["band"]["answer"] = False
    cfg["band"]["tempo_bpm"] = tempo_bpm
    cfg["sync"]["source"] = "player"
    return cfg


def note_events(notes, sr: int = SR) -> list[tuple[int, int, int, float]]:
    """(sample, kind, pitch, velocity) of `player`'s notes, in time order (offs first)."""
    from engine.rt.events import K_NOTE_OFF, K_NOTE_ON
    out = []
    for on, off, pitch, vel in notes:
        out.append((round(on * sr), K_NOTE_ON, pitch, vel))
        out.append((round(off * sr), K_NOTE_OFF, pitch, 0.0))
    out.sort(key=lambda e: (e[0], e[1] != K_NOTE_OFF))
    return out


class LiveSim:
    """A Session (config [sync] source = "player") stepped like the live loop: every `step`
    samples the notes that have arrived (`early` samples before their stamp, as the fixed
    latency mode stamps them ahead of their arrival) go to Session.player_note, then the
    follower updates and the scheduler advances."""

    def __init__(self, cfg: dict, events, step: int = STEP, early: int = 240,
                 seed: int = 0):
        import random
        from engine.control.session import Session
        from engine.control.sync import sync_from_config
        self.session = Session(cfg, SR)
        self.follower = sync_from_config(self.session, cfg, log=lambda text: None)
        self.events = list(events)
        self.step, self.early = step, early
        self.rng = random.Random(seed)
        self.now = 0
        self.i = 0
        self.rows: list = []
        send = self.session.scheduler.send

        def keep(rows):
            self.rows.append(rows.copy())
            send(rows)
        self.session.scheduler.send = keep

    def run(self, until_s: float) -> None:
        s, ev = self.session, self.events
        while self.now < until_s * SR:
            while self.i < len(ev) and ev[self.i][0] - self.early <= self.now:
                t, kind, pitch, vel = ev[self.i]
                s.player_note(kind, pitch, vel, t, 1)
                self.i += 1
            self.follower.update()
            s.advance(self.now)
            self.now += self.step + (self.rng.randrange(-self.step // 4, self.step // 4)
                                     if self.step > 8 else 0)


def beat_errors_ms(clock, beats: list[float], sr: int = SR) -> list[tuple[int, int, float]]:
    """(player beat k, band beat B, band beat's time - player beat's time in ms) for every
    player beat (true times `beats`, s): B is the band beat nearest to it."""
    out = []
    for k, t in enumerate(beats):
        s = round(t * sr)
        B = round(clock.beat_at(s))
        out.append((k, B, (clock.sample_at(B) - s) * 1000.0 / sr))
    return out


def heard_beats(notes, beats: list[float], window_s: float = 0.03) -> list[float | None]:
    """The player's beats as heard: the mean time of the note-ons within `window_s` of each
    intended beat (`beats`, s), None where the beat was left out."""
    ons = sorted(n[0] for n in notes)
    out = []
    for t in beats:
        i = bisect.bisect_left(ons, t - window_s)
        near = []
        while i < len(ons) and ons[i] <= t + window_s:
            near.append(ons[i])
            i += 1
        out.append(sum(near) / len(near) if near else None)
    return out


def lock_beat(errors, tol_ms: float = 10.0) -> int | None:
    """The first player beat from which every band beat is within tol_ms of the player's."""
    k_lock = None
    for k, _, e in errors:
        if abs(e) > tol_ms:
            k_lock = None
        elif k_lock is None:
            k_lock = k
    return k_lock
