"""Progression memory: the band learns the chord loops the player repeats, from then on
anticipates them, and recognises a return to one it knows (control side).

Following alone (`engine.harmony.LiveHarmony`) is late by design: a chord heard at a change
takes effect at the first beat the scheduler has not yet queried, so the bass and the comping
reach a change a beat or so after the player. A player jamming over a loop repeats it, though,
and a band that has heard the loop twice plays the next change *with* the player.

How it listens (`ProgressionMemory`):

* ``hear(chord, beat)``: every time the player's chord hand changes, the chord detected (None:
  nothing recognisable held, e.g. keys up or a single-note line) at the beat it was played. The
  history is kept on a half-beat grid (`SLOTS_PER_BEAT`); a chord is put on the nearest grid
  point, so one played a little early or late lands on its beat, and the last chord heard in a
  slot wins (the chord as it stands once all its notes are down). Slots where nothing is held
  are unknown: they neither agree nor disagree with anything.
* Chords are compared by `chord_class` (root and family: major, minor, diminished, augmented),
  so extensions and inversions (C, Cmaj7, C6, C/E) are the same chord to the memory.
* Learning (``tick``, before each scheduler query): for each loop length of `LOOP_BARS` whose
  second round is (all but half a bar) complete, the agreement of each heard slot with the slot
  one loop earlier. The shortest length whose agreement is at least ``min_agreement`` (0.9) and
  within 0.05 of the best is the loop (a loop of 4 also repeats every 8 and 16 bars; a loop
  whose only difference is its turnaround needs its full length), provided it has a change in
  it (a chord held throughout is simply followed) and the latest slots do not already leave
  it. Its chord at each slot: the class heard most often there over the rounds, as last
  voiced. Its confidence: that agreement.
* The library: each loop learned is kept under a letter (A, B, ...: a verse loop, a chorus
  loop, a bridge played twice; `LIBRARY_SIZE` of them, the least recently played forgotten
  first); one learned again (the same chords, even heard from another point of its round) keeps
  its letter.
* Departure: once locked, each slot heard is checked against the loop; ``miss_slots`` slots in a
  row that disagree (1.5 beats by default: a late change or a missed beat is tolerated) mean
  the player has left the loop. The band follows again, and expects the loop back at its next
  change: a substituted chord costs nothing more (the player is back on the loop there, and the
  lock holds: ``substitutions``). If the player is not back there either (1.5 beats of other
  chords again), the loop is let go and the memory learns from the first slot that left it.
* Return (``recognise``): while following, the chords heard since the player left a loop are
  matched against every loop of the library at every whole-beat place in its round. A part that
  begins where the loop changes chord, holds two of its changes with a beat of the chord after
  the last (one change where the part begins on a downbeat at the top of the loop's round: the
  player going back to a section), agrees at every slot, and fits one loop at one place only,
  locks that loop there at once: a return to the top of a verse is recognised a bar and a beat
  after it, and the band lands on its next change. Until a loop recognised (or come back to
  after a departure) has been played a whole round, what was heard since the player strayed
  may still be another loop: another return is recognised over it, a new loop heard twice is
  learned over it, and letting it go the memory learns from where the player first strayed. So
  a new section that begins like an old one, or is made of its chords, is still learned.

What the band reads (``loop_at(beat)``): the loop in force at a beat, or None where the band
follows. A lock or a departure is put in force from ``effective_beat`` (the first whole beat the
scheduler has not queried when it is decided), never earlier, so an answer once queried never
changes, and everything a prediction for beat b depends on was heard before the scheduler
queried b: at least the look-ahead (config [band] lookahead_ms) before b sounds. A live run and
an offline render fed the same notes at the same samples predict the same chords.
"""
from __future__ import annotations

import math
from bisect import bisect_right
from collections import Counter, deque
from dataclasses import dataclass
from fractions import Fraction

from engine.harmony import Chord

__all__ = ["LIBRARY_SIZE", "LOOP_BARS", "SLOTS_PER_BEAT", "Loop", "ProgressionMemory",
           "chord_class"]

#: the loop lengths the memory tries (bars)
LOOP_BARS = (1, 2, 4, 8, 12, 16)
#: the history's grid: half beats
SLOTS_PER_BEAT = 2
#: loops remembered (a song's verse, chorus, bridge, ...)
LIBRARY_SIZE = 8
#: events kept for display (`ProgressionMemory.events`)
EVENTS_KEPT = 64

_DIMINISHED = frozenset({"dim", "m7b5", "dim7"})


def _letters(i: int) -> str:
    """A library loop's name: A..Z, then A2..Z2, ..."""
    return chr(ord("A") + i % 26) + (str(i // 26 + 1) if i >= 26 else "")


def _same(a: "Loop", b: "Loop") -> bool:
    """The same loop, maybe heard from another point of its round."""
    x, y = a.classes(), b.classes()
    return len(x) == len(y) and any(y[d:] + y[:d] == x for d in range(len(x)))


def chord_class(chord: Chord) -> tuple[int, str]:
    """What the memory compares: the root and the family ('M' major, dominant, sus and power
    chords; 'm' minor; 'o' diminished; '+' augmented). Extensions and the bass are ignored."""
    if chord.quality in _DIMINISHED:
        return chord.root, "o"
    if chord.quality == "aug":
        return chord.root, "+"
    return chord.root, "m" if chord.is_minor else "M"


@dataclass(frozen=True, slots=True)
class Loop:
    """A learned loop: ``chords[k % len(chords)]`` is its chord at half-beat slot k (absolute
    slots: slot k is beat k / SLOTS_PER_BEAT). ``bars``: its length; ``start``: the slot its
    first round began on (for display); ``confidence``: 0..1, the agreement it was found with;
    ``rounds``: how many rounds had been heard; ``name``: its letter in the library (A, B, ...:
    a verse loop, a chorus loop), "" before it is in one."""

    bars: int
    chords: tuple[Chord, ...]
    start: int
    confidence: float
    rounds: float
    name: str = ""

    def chord_at(self, beat: Fraction) -> Chord:
        """The loop's chord at `beat` (any beat, past or future)."""
        return self.chords[math.floor(beat * SLOTS_PER_BEAT) % len(self.chords)]

    def changes(self) -> list[tuple[Fraction, Chord]]:
        """(beat from the loop's start, chord) at each change, from the start of a round."""
        n = len(self.chords)
        out: list[tuple[Fraction, Chord]] = []
        for i in range(n):
            c = self.chords[(self.start + i) % n]
            if not out or c != out[-1][1] or c.bass != out[-1][1].bass:
                out.append((Fraction(i, SLOTS_PER_BEAT), c))
        return out

    def describe(self) -> str:
        """'4 bars: Am@0 F@4 C@8 G@12' (beats from the loop's start)."""
        parts = " ".join(f"{c.name}@{float(b):g}"
                         for b, c in self.changes())
        return f"{self.bars} bar{'s' if self.bars != 1 else ''}: {parts}"

    def shifted(self, d: int) -> "Loop":
        """The same loop heard `d` slots later in its round: its chord at slot k is this one's
        at slot k + d (a return to it at another point of the song)."""
        n = len(self.chords)
        return Loop(self.bars, tuple(self.chords[(k + d) % n] for k in range(n)),
                    (self.start - d) % n, self.confidence, self.rounds, self.name)

    def classes(self) -> tuple:
        """`chord_class` at each slot of the round (what comparisons use)."""
        return tuple(chord_class(c) for c in self.chords)


class ProgressionMemory:
    """Learns the player's loops, predicts them, notices departures, recognises a return (see
    the module docstring).

    ``beats_per_bar``: the meter; ``min_agreement``: the share of slots a loop must repeat;
    ``miss_slots``: disagreeing slots in a row that make a departure; ``library_size``: how many
    loops are remembered (the least recently played is forgotten first)."""

    def __init__(self, beats_per_bar: int = 4, min_agreement: float = 0.9,
                 miss_slots: int = 3, loop_bars: tuple[int, ...] = LOOP_BARS,
                 library_size: int = LIBRARY_SIZE):
        if not 0.5 <= min_agreement <= 1.0:
            raise ValueError("min_agreement must be 0.5..1")
        if miss_slots < 1:
            raise ValueError("miss_slots must be >= 1")
        if library_size < 1:
            raise ValueError("library_size must be >= 1")
        self.beats_per_bar = int(beats_per_bar)
        self.min_agreement = float(min_agreement)
        self.miss_slots = int(miss_slots)
        self.loop_bars = tuple(sorted(loop_bars))
        self.library_size = int(library_size)
        # the heard history: change points (slot, Chord or None = unknown), slots increasing
        self._slots: list[int] = []
        self._heard: list[Chord | None] = []
        self.since: int | None = None    # first slot learnt from (reset by a departure)
        self._done: int | None = None    # slots before it have been judged
        self.loop: Loop | None = None    # the loop locked now (None: following)
        self._locked_at = 0              # first slot judged against `loop`
        self._miss_run = 0
        self._miss_start = 0
        # a departure not yet confirmed: the loop is expected back at slot `_resume` (its next
        # change); `_left`: the first slot that left it (or, for a loop recognised, the first
        # slot heard before it: until it has been played a whole round, letting it go learns
        # from there); `_clean_from`: the slot from which it has been played without a departure
        self._resume: int | None = None
        self._left: int | None = None
        self._clean_from = 0
        # the loop in force from each beat (like LiveHarmony's change points)
        self._beats: list[Fraction] = []
        self._loops: list[Loop | None] = []
        self.library: list[Loop] = []   # the loops learned, least recently played first
        self._names = 0
        self.locks = 0                   # loops learned (heard twice)
        self.returns = 0                 # returns to a loop of the library recognised
        self.departures = 0              # times the player left the loop locked
        self.substitutions = 0           # ... of which were back on it at its next change
        self.first_lock: Fraction | None = None   # the beat the first loop was in force from
        #: what happened, latest last: (beat in force from, "lock" | "return" | "depart" |
        #: "back" | "let go", the loop's name)
        self.events: deque[tuple[Fraction, str, str]] = deque(maxlen=EVENTS_KEPT)

    # ---- what the band reads ------------------------------------------------------------------
    def loop_at(self, beat: Fraction) -> Loop | None:
        """The loop the band plays at `beat`, or None where it follows the player."""
        i = bisect_right(self._beats, beat) - 1
        return self._loops[i] if i >= 0 else None

    def status(self) -> str:
        """One line: the loop locked and its confidence, or what the memory is doing."""
        if self.loop is not None:
            held = f"loop {self.loop.name} {self.loop.bars}b {round(100 * self.loop.confidence)}%"
            return held + (" (departed)" if self._resume is not None else "")
        return "learning" if self.since is not None else "listening"

    def state(self) -> dict:
        """What a performer's screen shows (MQTT, OSC, the console): the status; ``locked`` (a
        loop is played ahead now); the loop's ``name``, length in ``bars``, ``changes``
        ([beat from its start, chord name], ...) and ``loop`` text; the ``library`` (each loop
        learned, as [name, bars, text]); the counts of locks, returns, departures and
        substitutions."""
        loop = self.loop
        return {
            "status": self.status(),
            "locked": loop is not None and self._resume is None,
            "name": loop.name if loop is not None else "",
            "bars": loop.bars if loop is not None else 0,
            "changes": [[float(b), c.name] for b, c in loop.changes()] if loop else [],
            "loop": loop.describe() if loop is not None else "",
            "library": [[x.name, x.bars, x.describe()]
                        for x in sorted(self.library, key=lambda x: x.name)],
            "locks": self.locks, "returns": self.returns, "departures": self.departures,
            "substitutions": self.substitutions,
        }

    # ---- what the conductor feeds -------------------------------------------------------------
    def hear(self, chord: Chord | None, beat: Fraction) -> None:
        """The player's chord hand now spells `chord` (None: nothing recognisable held), played
        at `beat` (a key pressed; a key let go only when no chord is left). Calls come in time
        order."""
        slot = round(Fraction(beat) * SLOTS_PER_BEAT)
        if self._done is not None:
            slot = max(slot, self._done)   # a judged slot stays as it was judged
        if self.since is None:
            if chord is None:
                return
            self.since = slot
        if chord is None and self._slots and self._slots[-1] >= slot \
                and self._heard[-1] is not None:
            slot = self._slots[-1] + 1     # keys up: a chord heard in this slot still counts
        if self._slots and self._slots[-1] >= slot:
            i = bisect_right(self._slots, slot)
            if self._slots[i - 1] == slot:
                i -= 1
            del self._slots[i:], self._heard[i:]
        last = self._heard[-1] if self._heard else None
        if not self._heard or last != chord or (chord is not None and last.bass != chord.bass):
            self._slots.append(slot)
            self._heard.append(chord)

    def heard_at(self, slot: int) -> Chord | None:
        """The chord heard at half-beat `slot` (None: unknown)."""
        i = bisect_right(self._slots, slot) - 1
        return self._heard[i] if i >= 0 else None

    def tick(self, now: Fraction, horizon: Fraction) -> None:
        """Time has reached beat `now`; the scheduler has queried up to beat `horizon`. Judge the
        slots now complete (departure, or the loop back after one), recognise a return to a loop
        of the library, learn, and put a lock or a departure in force from
        `effective_beat(horizon)`."""
        # slot k holds chords played within a quarter beat of it: final once now >= k/2 + 1/4
        done = math.floor(SLOTS_PER_BEAT * Fraction(now) - Fraction(1, 2)) + 1
        if self._done is None:
            self._done = done
            return
        if done <= self._done or self.since is None:
            self._done = max(done, self._done)
            return
        start, self._done = self._done, done
        if self.loop is not None:
            for k in range(max(start, self._locked_at), done):
                if self._judge(k):
                    self._depart(done, horizon)
                    break
        if self.loop is None or self._resume is not None or self._trial(done):
            known = self.recognise(done)
            if known is not None and (self.loop is None or
                                      known.classes() != self.loop.classes()):
                self.returns += 1
                self._lock(known, done, horizon, "return")
        if self.loop is None or self._trial(done):
            # (a loop recognised on a fragment of a new section: the section, once heard
            # twice, is learned all the same)
            loop = self.learn(done, None if self.loop is None else self._left)
            if loop is not None and (self.loop is None or not _same(loop, self.loop)):
                self.locks += 1
                self._lock(self._remember(loop), done, horizon, "lock")
        self._prune(done)

    def _trial(self, done: int) -> bool:
        """The loop locked has not yet been played a whole round since it was recognised or
        the player came back to it after a departure: what was heard since `_left` may still
        turn out to be another loop (recognised, or learned once heard twice)."""
        if self.loop is None or self._left is None:
            return False
        return done - self._clean_from < len(self.loop.chords)

    def recognise(self, done: int) -> Loop | None:
        """A loop of the library the latest slots (since the player left the loop, or since
        learning began) are a part of, shifted to where the player is in it; None while no
        single loop and place fits. The part heard must begin where the loop changes chord, hold
        two of its changes with a beat of the chord after the last, and agree at every slot
        heard; one change is enough where the part begins on a downbeat at the top of the
        loop's round (the player going back to a section). A longer part is tried while several
        loops or places fit it, or the one that fits has too few changes."""
        lo = self._left if self.loop is not None else self.since
        if not self.library or lo is None or done - lo < 2 * SLOTS_PER_BEAT:
            return None
        classes = [None if (c := self.heard_at(k)) is None else chord_class(c)
                   for k in range(lo, done)]
        runs: list[int] = []            # the slot each run of one chord class begins at
        last = None
        for i, c in enumerate(classes):
            if c is not None and c != last:
                runs.append(lo + i)
                last = c
        if len(runs) < 2 or sum(c is not None for c in classes[runs[-1] - lo:]) < \
                SLOTS_PER_BEAT:
            return None
        tables = [(x, x.classes()) for x in self.library]
        downbeat = self.beats_per_bar * SLOTS_PER_BEAT
        for changes, w0 in enumerate(reversed(runs[:-1]), 1):
            window = [(k, classes[k - lo]) for k in range(w0, done)
                      if classes[k - lo] is not None]
            fits: dict[tuple, tuple[Loop, bool]] = {}
            for loop, table in tables:
                n = len(table)
                for d in range(0, n, SLOTS_PER_BEAT):
                    p = (w0 + d) % n
                    if table[p] == table[p - 1]:
                        continue                     # the loop does not change chord there
                    if all(table[(k + d) % n] == c for k, c in window):
                        top = p == loop.start % n and w0 % downbeat == 0
                        shifted = loop.shifted(d)
                        fits.setdefault(shifted.classes(), (shifted, changes >= 2 or top))
            if not fits:
                return None                          # a longer part will not fit either
            if len(fits) == 1:
                loop, enough = next(iter(fits.values()))
                if enough:
                    return loop
        return None

    # ---- inside ---------------------------------------------------------------------------------
    @staticmethod
    def effective_beat(horizon: Fraction) -> Fraction:
        """The first whole beat at or after `horizon` (nothing queried changes)."""
        return Fraction(math.ceil(Fraction(horizon)))

    def _put(self, loop: Loop | None, at: Fraction) -> None:
        """`loop` (None: following) in force from beat `at` on (what was put later is gone)."""
        i = bisect_right(self._beats, at)
        if i > 0 and self._beats[i - 1] == at:
            i -= 1
        del self._beats[i:], self._loops[i:]
        if (self._loops[-1] if self._loops else None) is not loop:
            self._beats.append(at)
            self._loops.append(loop)

    def _lock(self, loop: Loop, done: int, horizon: Fraction, how: str) -> None:
        if how == "return":
            self._left = self._left if self.loop is not None else self.since
        else:
            self._left = None
        self.loop = loop
        self._locked_at = self._clean_from = done
        self._miss_run = 0
        self._resume = None
        at = self.effective_beat(horizon)
        self._put(loop, at)
        self.events.append((at, how, loop.name))
        self._played(loop.name)
        if self.first_lock is None:
            self.first_lock = at

    def _remember(self, loop: Loop) -> Loop:
        """Put a loop just learned in the library: under the name of the one it is (the same
        chords, heard from another place in the round), else under a new letter, forgetting the
        least recently played loop when the library is full. Returns it named."""
        for i, known in enumerate(self.library):
            if _same(loop, known):
                named = Loop(loop.bars, loop.chords, loop.start, loop.confidence, loop.rounds,
                             known.name)
                self.library[i] = named
                return named
        name = _letters(self._names)
        self._names += 1
        named = Loop(loop.bars, loop.chords, loop.start, loop.confidence, loop.rounds, name)
        self.library.append(named)
        if len(self.library) > self.library_size:
            del self.library[0]
        return named

    def _played(self, name: str) -> None:
        """The library's loop `name` is played now: it is the last to be forgotten."""
        for i, known in enumerate(self.library):
            if known.name == name:
                self.library.append(self.library.pop(i))
                return

    def _judge(self, k: int) -> bool:
        """Judge slot k against the loop; True when it makes a departure."""
        heard = self.heard_at(k)
        if heard is None:
            return False           # unknown: the run of misses is neither broken nor extended
        if chord_class(heard) == chord_class(self.loop.chords[k % len(self.loop.chords)]):
            self._miss_run = 0
            if self._resume is not None:          # back on the loop at its next change
                self.substitutions += 1
                self.events.append((Fraction(k, SLOTS_PER_BEAT), "back", self.loop.name))
                self._resume = None
                self._clean_from = k
            return False
        if self._miss_run == 0:
            self._miss_start = k
        self._miss_run += 1
        return self._miss_run >= self.miss_slots

    def _depart(self, done: int, horizon: Fraction) -> None:
        """The player has left the loop. The first time: the band follows, and expects the loop
        back at its next change (a substituted chord); if the player is not back there either,
        the loop is let go and the memory learns again from where the player left it."""
        at = self.effective_beat(horizon)
        self._miss_run = 0
        if self._resume is None:
            self.departures += 1
            if self._left is None or \
                    self._miss_start - self._clean_from >= len(self.loop.chords):
                self._left = self._miss_start    # (else: still straying since `_left`)
            resume = self._next_change(max(done, math.ceil(at * SLOTS_PER_BEAT)))
            self._resume = self._locked_at = resume
            self._put(None, at)
            self._put(self.loop, Fraction(resume, SLOTS_PER_BEAT))
            self.events.append((at, "depart", self.loop.name))
            return
        self.events.append((at, "let go", self.loop.name))
        self.loop = None
        self.since = self._left
        self._resume = self._left = None
        self._put(None, at)

    def _next_change(self, slot: int) -> int:
        """The first slot at or after `slot` where the loop changes chord."""
        table = self.loop.classes()
        n = len(table)
        for k in range(slot, slot + n):
            if table[k % n] != table[(k - 1) % n]:
                return k
        return slot

    def learn(self, done: int, start: int | None = None) -> Loop | None:
        """The loop the slots heard from `start` (default `since`) up to `done` (exclusive)
        repeat, or None."""
        start = self.since if start is None else start
        if start is None:
            return None
        n = done - start
        bar = self.beats_per_bar * SLOTS_PER_BEAT
        classes = [None if (c := self.heard_at(k)) is None else chord_class(c)
                   for k in range(start, done)]
        scored = []
        for bars in self.loop_bars:
            period = bars * bar
            if n < 2 * period - bar // 2:
                break
            same = compared = run = 0
            for i in range(period, n):
                a, b = classes[i], classes[i - period]
                if a is not None and b is not None:
                    compared += 1
                    same += a == b
                    run = 0 if a == b else run + 1
            # a loop the latest slots already leave would be a departure at once
            if compared >= 4 and run < self.miss_slots:
                scored.append((bars, period, same / compared))
        if not scored:
            return None
        best = max(s for _, _, s in scored)
        for bars, period, agreement in scored:
            if agreement < self.min_agreement or agreement < best - 0.05:
                continue
            chords = self._table(start, done, period, classes)
            if chords is None or len({chord_class(c) for c in chords}) < 2:
                continue           # no change in it: following plays the same
            return Loop(bars, chords, start % period, round(agreement, 4),
                        round(n / period, 2))
        return None

    def _table(self, start: int, done: int, period: int,
               classes: list) -> tuple[Chord, ...] | None:
        """The loop's chord at each slot (k mod period): the class heard most often there (ties:
        the latest), as last voiced; slots never heard carry the chord before them."""
        votes: list[Counter] = [Counter() for _ in range(period)]
        latest: list[dict] = [{} for _ in range(period)]
        for k in range(start, done):
            cls = classes[k - start]
            if cls is None:
                continue
            p = k % period
            votes[p][cls] += 1
            latest[p][cls] = (k, self.heard_at(k))
        table: list[Chord | None] = []
        for p in range(period):
            if not votes[p]:
                table.append(None)
                continue
            top = max(votes[p].values())
            cls = max((c for c, v in votes[p].items() if v == top),
                      key=lambda c, p=p: latest[p][c][0])
            table.append(latest[p][cls][1])
        known = [i for i, c in enumerate(table) if c is not None]
        if not known:
            return None
        for i in range(period):                 # carry forward, cyclically
            if table[i] is None:
                j = i
                while table[j] is None:
                    j -= 1
                table[i] = table[j]
        return tuple(table)

    def _prune(self, done: int) -> None:
        # keep two rounds of the longest loop (and a bar) of history, and the regimes since
        keep_from = done - (2 * self.loop_bars[-1] + 1) * self.beats_per_bar * SLOTS_PER_BEAT
        cut = bisect_right(self._slots, keep_from) - 1
        if cut > 0:
            del self._slots[:cut], self._heard[:cut]
        if self.since is not None and self.since < keep_from:
            self.since = keep_from
        if self._left is not None and self._left < keep_from:
            self._left = keep_from
        cut = bisect_right(self._beats, Fraction(keep_from, SLOTS_PER_BEAT)) - 1
        if cut > 0:
            del self._beats[:cut], self._loops[:cut]

