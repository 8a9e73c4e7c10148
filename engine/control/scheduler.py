"""The look-ahead scheduler: musical notes → sample-stamped events (control side).

Strudel's cyclist, with exact time: every tick the scheduler asks the band for the notes whose
onsets lie in the next window of beats, [cursor, beat_at(now + lookahead)), turns each into a
note-on and a note-off at absolute sample times (swing and the note's humanised nudge applied),
and pushes them to the audio thread's queue ahead of time. Because agents are pure functions
of the time span and the clock is exact, the events do not depend on when or how often the
scheduler wakes: an offline render and a live run produce the same events.

Offline, when nothing can change what the band plays any more (no player feeding a conductor,
no tempo change to come), `reach_bars` lets each query run on to the end of the bar past the
horizon: the same events at the same samples, pushed earlier, from a query per bar instead of
one per block. The kernel applies events by (time, kind, part, note), then arrival, and a
bigger query's rows keep the order the smaller queries' rows arrived in, so the audio is
bit-identical. Live it stays 0: a stop must not leave a bar of notes queued.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Protocol

import numpy as np

from engine.control.clock import Clock
from engine.parts import DRUMS, PART_INDEX
from engine.patterns.event import Note
from engine.rt.events import EVENT_WIDTH, K_NOTE_OFF, K_NOTE_ON

AGENT_SOURCE = 2000
"""Source id of an agent's notes is AGENT_SOURCE + part index, so the band's note-offs never
release a note the player holds on the same part."""


class NoteSource(Protocol):
    def query(self, begin: Fraction, end: Fraction, ctx) -> list[Note]: ...


@dataclass(frozen=True, slots=True)
class Played:
    """A note as it was scheduled, for the session's MIDI file (seconds from the start)."""
    start_s: float
    dur_s: float
    part: str
    note: int
    velocity: float


class Scheduler:
    """Queries `band` ahead of the audio clock and sends event rows to `send` (control side:
    the asyncio thread live, the block loop offline)."""

    def __init__(self, clock: Clock, band: NoteSource, ctx, send: Callable[[np.ndarray], None],
                 lookahead_s: float = 0.08, on_played: Callable[[Played], None] | None = None,
                 reach_bars: int = 0):
        self.clock = clock
        self.band = band
        self.ctx = ctx
        self.send = send
        self.lookahead = max(1, round(lookahead_s * clock.sample_rate))
        self.cursor = Fraction(0)
        self.on_played = on_played
        self.scheduled_notes = 0
        self.reach_bars = reach_bars
        self.before_query: Callable[[int], None] | None = None   # called with each advance's
        # look-ahead end sample first (the session's glides push their steps up to it)
        self._due = None      # (sample, tempo map) before which the horizon stays at the cursor
        self._held: deque[tuple[int, Played]] = deque()   # (onset's sample, note) not yet
        # reported to on_played: queried ahead by `reach_bars`, not yet inside the look-ahead

    def horizon(self, now_sample: int) -> Fraction:
        return self.clock.beat_at(now_sample + self.lookahead)

    def advance(self, now_sample: int) -> int:
        """Schedule every note with an onset before the horizon (with `reach_bars`, up to the
        end of the bar past it, and the bars after); returns how many."""
        end = now_sample + self.lookahead
        if self.before_query is not None:
            self.before_query(end)
        if self._held:
            self._report(end)
        due = self._due
        if due is not None and end <= due[0]:
            segs = self.clock.segments
            if len(segs) == due[1] and segs[-1] is due[2]:
                return 0         # the horizon has not passed the cursor (checked without Fractions)
        horizon = self.clock.beat_at(end)
        if horizon <= self.cursor:
            return 0
        if self.reach_bars > 0:
            meter = self.clock.meter
            horizon = meter.bar_start(meter.bar_at(self.clock.next_bar(horizon))
                                      + self.reach_bars - 1)
            # integer s: beat_at(s) > cursor exactly when s > floor(sample of the cursor)
            segs = self.clock.segments       # (a tempo change makes a new last segment)
            self._due = (self.clock.sample_at(horizon), len(segs), segs[-1])
        notes = self.band.query(self.cursor, horizon, self.ctx)
        self.cursor = horizon
        if notes:
            self.send(self.rows(notes, self._held if self.reach_bars > 0 else None))
            self.scheduled_notes += len(notes)
            if self._held:
                self._report(end)
        return len(notes)

    def _report(self, end: int) -> None:
        """Tell `on_played` of the held notes the plain look-ahead ending at sample `end` has
        reached (so a render records the notes it would have scheduled without `reach_bars`)."""
        held = self._held
        while held and held[0][0] < end:
            self.on_played(held.popleft()[1])

    def rows(self, notes: list[Note], held: deque | None = None) -> np.ndarray:
        """Event rows for `notes`, sorted by time (note-offs before note-ons at equal times).
        Each note goes to `on_played`, or with `held` given, onto it with its straight onset's
        sample (for `_report`)."""
        sr = self.clock.sample_rate
        rows = np.zeros((2 * len(notes), EVENT_WIDTH))
        n = 0
        for note in notes:
            part = PART_INDEX[note.part]
            nudge = round(note.nudge_s * sr)
            onset = self.clock.swung(note.begin)
            onset_sample = self.clock.sample_at(onset)
            t_on = max(onset_sample + nudge, 0)
            t_off = self.clock.sample_at(onset + note.dur) + nudge
            src = AGENT_SOURCE + part
            rows[n, :6] = (t_on, K_NOTE_ON, part, note.note, note.velocity, src)
            n += 1
            if part != DRUMS:
                rows[n, :6] = (max(t_off, t_on + 1), K_NOTE_OFF, part, note.note, 0.0, src)
                n += 1
            if self.on_played is not None:
                played = Played(t_on / sr, max(t_off - t_on, 1) / sr, note.part, note.note,
                                note.velocity)
                if held is None:
                    self.on_played(played)
                else:
                    straight = onset_sample if onset is note.begin else \
                        self.clock.sample_at(note.begin)
                    held.append((straight, played))
        rows = rows[:n]
        order = np.lexsort((rows[:, 1] == K_NOTE_ON, rows[:, 0]))
        return rows[order]

