"""A player comping a chord loop into a Session on the live path (notes at their samples, the
scheduler advanced block by block as the live input does), and what the band's bass did at
the changes (engine.listen.progression)."""
from __future__ import annotations

from fractions import Fraction

from engine.control.session import Session
from engine.harmony import Chord
from engine.parts import PART_INDEX
from engine.rt.events import K_NOTE_OFF, K_NOTE_ON
from tests.enginekit import SentRows

SR = 48000
BLOCK = 512      # a driver's block (the look-ahead, 80 ms, is 3840 samples)
NUDGE_S = 0.015          # the agents' humanising (+-12 ms) and a little more

def voicing(name: str) -> list[int]:
    """Close voicing of chord `name` from the C below middle C (48) up (its slash bass
    below it)."""
    c = Chord.parse(name)
    root = 48 + c.root
    notes = sorted(root + ((t - c.root) % 12) for t in c.tones)
    if c.bass is not None:
        notes = [36 + c.bass] + notes
    return notes


def loop_changes(chords: list[str], beats_each: float, rounds: int,
                 start_beat: float = 4) -> list[tuple[Fraction, str]]:
    """(beat, chord name) of `rounds` rounds of `chords`, each lasting `beats_each` beats."""
    out, b = [], Fraction(start_beat)
    for _ in range(rounds):
        for name in chords:
            out.append((b, name))
            b += Fraction(beats_each)
    return out


def song(form: list[tuple[list[str], int]], beats_each: float = 4,
         start_beat: float = 4) -> tuple[list[tuple[Fraction, str]], list[Fraction], Fraction]:
    """A song form: each (chords, rounds) section one after the other. Returns its changes,
    the beat each section starts on, and the beat it ends on."""
    changes, starts, b = [], [], Fraction(start_beat)
    for chords, rounds in form:
        starts.append(b)
        changes += loop_changes(chords, beats_each, rounds, start_beat=b)
        b += Fraction(beats_each) * len(chords) * rounds
    return changes, starts, b


def human(seed: int, count: int = 512, most_s: float = 0.06):
    """A human player's timing: the i-th chord `human(seed)(i)` seconds early (negative:
    late), uniform within +-`most_s`, seeded."""
    import random
    rng = random.Random(seed)
    offsets = [rng.uniform(-most_s, most_s) for _ in range(count)]
    return offsets.__getitem__


def jam(cfg, changes: list[tuple[Fraction, str | None]], end_beat: Fraction | None = None,
        memory: bool = True, seed: int = 1, voice=voicing, early_s=None, spread_s: float = 0.0):
    """A Session (no audio) hearing the player hold each chord of `changes` ((beat, name);
    a None name: keys up) until the next (the last one as long as the one before it, or up to
    `end_beat`), voiced by `voice(name)`; a human player: `early_s(i)` seconds before its beat
    (negative: late) the i-th chord is struck, its notes `spread_s` apart from the lowest up.
    Returns (session, bass onsets as (sample, note))."""
    cfg["band"].update(seed=seed, memory=memory)
    s = Session(cfg, SR)
    rec = SentRows(s)
    at = s.clock.sample_at
    events = []
    beats = [Fraction(b) for b, _ in changes]
    last = beats[-1] - beats[-2] if len(beats) > 1 else Fraction(4)
    bounds = beats + [Fraction(end_beat) if end_beat is not None else beats[-1] + last]
    shift = [0 if early_s is None else round(early_s(i) * SR) for i in range(len(changes) + 1)]
    gap = round(spread_s * SR)
    for i, ((b, name), nxt) in enumerate(zip(changes, bounds[1:])):
        if name is None:
            continue
        notes = voice(name)
        on, off = at(Fraction(b)) - shift[i], at(nxt) - shift[i + 1] - 30
        events += [(on + k * gap, 1, K_NOTE_ON, p) for k, p in enumerate(notes)]
        events += [(off, 0, K_NOTE_OFF, p) for p in notes]
    now = 0
    stop = at(bounds[-1])
    for t, _, kind, p in sorted(events):
        while now + BLOCK <= t:
            now += BLOCK
            s.advance(now)
        s.player_note(kind, p, 0.8 if kind == K_NOTE_ON else 0.0, t, 1)
    while now < stop:
        now += BLOCK
        s.advance(now)
    bass = [(int(r[0]), int(r[3])) for r in rec.onsets(PART_INDEX["bass"])]
    return s, bass


def hits_at_changes(session, bass, changes, first_beat=None, last_beat=None):
    """At each change of `changes` (a beat where the chord differs from the one before) from
    `first_beat` up to `last_beat`: whether the bass's first onset on it (within the
    humanising) is a tone of the chord played there. Returns the list of booleans (changes
    where the bass does not play are left out)."""
    at = session.clock.sample_at
    tol = round(NUDGE_S * SR)
    out = []
    prev = None
    for b, name in changes:
        b = Fraction(b)
        changed = name is not None and name != prev
        prev = name if name is not None else prev
        if not changed or (first_beat is not None and b < first_beat) \
                or (last_beat is not None and b >= last_beat):
            continue
        t = at(b)
        near = sorted((abs(x - t), n) for x, n in bass if abs(x - t) <= tol)
        if not near:
            continue
        tones = set(Chord.parse(name).tones)
        out.append(near[0][1] % 12 in tones)
    return out


def rate(hits: list[bool]) -> float:
    return sum(hits) / len(hits) if hits else 0.0
