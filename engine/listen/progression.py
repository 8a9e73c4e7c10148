"""Progression memory: the band learns the chord loop the player repeats and from then on
anticipates it (control side).

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
* Departure: once locked, each slot heard is checked against the loop; ``miss_slots`` slots in a
  row that disagree (1.5 beats by default: a late change or a missed beat is tolerated) mean
  the player has left the loop. The memory drops it (the band follows again) and relearns from
  the first slot that disagreed.

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
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction

from engine.harmony import Chord

__all__ = ["LOOP_BARS", "SLOTS_PER_BEAT", "Loop", "ProgressionMemory", "chord_class"]

#: the loop lengths the memory tries (bars)
LOOP_BARS = (1, 2, 4, 8, 12, 16)
#: the history's grid: half beats
SLOTS_PER_BEAT = 2

_DIMINISHED = frozenset({"dim", "m7b5", "dim7"})


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
    ``rounds``: how many rounds had been heard."""

    bars: int
    chords: tuple[Chord, ...]
    start: int
    confidence: float
    rounds: float

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


class ProgressionMemory:
    """Learns the player's loop, predicts it, notices departures (see the module docstring).

    ``beats_per_bar``: the meter; ``min_agreement``: the share of slots a loop must repeat;
    ``miss_slots``: disagreeing slots in a row that make a departure."""

    def __init__(self, beats_per_bar: int = 4, min_agreement: float = 0.9,
                 miss_slots: int = 3, loop_bars: tuple[int, ...] = LOOP_BARS):
        if not 0.5 <= min_agreement <= 1.0:
            raise ValueError("min_agreement must be 0.5..1")
        if miss_slots < 1:
            raise ValueError("miss_slots must be >= 1")
        self.beats_per_bar = int(beats_per_bar)
        self.min_agreement = float(min_agreement)
        self.miss_slots = int(miss_slots)
        self.loop_bars = tuple(sorted(loop_bars))
        # the heard history: change points (slot, Chord or None = unknown), slots increasing
        self._slots: list[int] = []
        self._heard: list[Chord | None] = []
        self.since: int | None = None    # first slot learnt from (reset by a departure)
        self._done: int | None = None    # slots before it have been judged
        self.loop: Loop | None = None    # the loop locked now (None: following)
        self._locked_at = 0              # first slot judged against `loop`
        self._miss_run = 0
        self._miss_start = 0
        # the loop in force from each beat (like LiveHarmony's change points)
        self._beats: list[Fraction] = []
        self._loops: list[Loop | None] = []
        self.locks = 0
        self.departures = 0
        self.first_lock: Fraction | None = None   # the beat the first loop was in force from

    # ---- what the band reads ------------------------------------------------------------------
    def loop_at(self, beat: Fraction) -> Loop | None:
        """The loop the band plays at `beat`, or None where it follows the player."""
        i = bisect_right(self._beats, beat) - 1
        return self._loops[i] if i >= 0 else None

    def status(self) -> str:
        """One line: the loop locked and its confidence, or what the memory is doing."""
        if self.loop is not None:
            return f"loop {self.loop.bars}b {round(100 * self.loop.confidence)}%"
        return "learning" if self.since is not None else "listening"

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
        slots now complete (departure), learn, and put a lock or a departure in force from
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
                    self._depart(horizon)
                    break
        if self.loop is None:
            loop = self.learn(done)
            if loop is not None:
                self.loop = loop
                self._locked_at = done
                self._miss_run = 0
                self.locks += 1
                self._put(loop, horizon)
                if self.first_lock is None:
                    self.first_lock = self.effective_beat(horizon)
        self._prune(done)

    # ---- inside ---------------------------------------------------------------------------------
    @staticmethod
    def effective_beat(horizon: Fraction) -> Fraction:
        """The first whole beat at or after `horizon` (nothing queried changes)."""
        return Fraction(math.ceil(Fraction(horizon)))

    def _put(self, loop: Loop | None, horizon: Fraction) -> None:
        at = self.effective_beat(horizon)
        i = bisect_right(self._beats, at)
        if i > 0 and self._beats[i - 1] == at:
            i -= 1
        del self._beats[i:], self._loops[i:]
        if (self._loops[-1] if self._loops else None) is not loop:
            self._beats.append(at)
            self._loops.append(loop)

    def _judge(self, k: int) -> bool:
        """Judge slot k against the loop; True when it makes a departure."""
        heard = self.heard_at(k)
        if heard is None:
            return False           # unknown: the run of misses is neither broken nor extended
        if chord_class(heard) == chord_class(self.loop.chords[k % len(self.loop.chords)]):
            self._miss_run = 0
            return False
        if self._miss_run == 0:
            self._miss_start = k
        self._miss_run += 1
        return self._miss_run >= self.miss_slots

    def _depart(self, horizon: Fraction) -> None:
        self.loop = None
        self.departures += 1
        self.since = self._miss_start
        self._miss_run = 0
        self._put(None, horizon)

    def learn(self, done: int) -> Loop | None:
        """The loop the slots heard from `since` up to `done` (exclusive) repeat, or None."""
        if self.since is None:
            return None
        start = self.since
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
        cut = bisect_right(self._beats, Fraction(keep_from, SLOTS_PER_BEAT)) - 1
        if cut > 0:
            del self._beats[:cut], self._loops[:cut]

