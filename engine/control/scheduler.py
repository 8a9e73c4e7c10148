"""The look-ahead scheduler: musical notes → sample-stamped events (control side).

Strudel's cyclist, with exact time: every tick the scheduler asks the band for the notes whose
onsets lie in the next window of beats, [cursor, beat_at(now + lookahead)), turns each into a
note-on and a note-off at absolute sample times (swing and the note's humanised nudge applied),
and pushes them to the audio thread's queue ahead of time. Because agents are pure functions
of the time span and the clock is exact, the events do not depend on when or how often the
scheduler wakes: an offline render and a live run produce the same events.
"""
from __future__ import annotations

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
                 lookahead_s: float = 0.08, on_played: Callable[[Played], None] | None = None):
        self.clock = clock
        self.band = band
        self.ctx = ctx
        self.send = send
        self.lookahead = max(1, round(lookahead_s * clock.sample_rate))
        self.cursor = Fraction(0)
        self.on_played = on_played
        self.scheduled_notes = 0

    def horizon(self, now_sample: int) -> Fraction:
        return self.clock.beat_at(now_sample + self.lookahead)

    def advance(self, now_sample: int) -> int:
        """Schedule every note with an onset before the horizon; returns how many."""
        horizon = self.horizon(now_sample)
        if horizon <= self.cursor:
            return 0
        notes = self.band.query(self.cursor, horizon, self.ctx)
        self.cursor = horizon
        if notes:
            self.send(self.rows(notes))
            self.scheduled_notes += len(notes)
        return len(notes)

    def rows(self, notes: list[Note]) -> np.ndarray:
        """Event rows for `notes`, sorted by time (note-offs before note-ons at equal times)."""
        sr = self.clock.sample_rate
        rows = np.zeros((2 * len(notes), EVENT_WIDTH))
        n = 0
        for note in notes:
            part = PART_INDEX[note.part]
            nudge = round(note.nudge_s * sr)
            onset = self.clock.swung(note.begin)
            t_on = max(self.clock.sample_at(onset) + nudge, 0)
            t_off = self.clock.sample_at(onset + note.dur) + nudge
            src = AGENT_SOURCE + part
            rows[n, :6] = (t_on, K_NOTE_ON, part, note.note, note.velocity, src)
            n += 1
            if part != DRUMS:
                rows[n, :6] = (max(t_off, t_on + 1), K_NOTE_OFF, part, note.note, 0.0, src)
                n += 1
            if self.on_played is not None:
                self.on_played(Played(t_on / sr, max(t_off - t_on, 1) / sr, note.part,
                                      note.note, note.velocity))
        rows = rows[:n]
        order = np.lexsort((rows[:, 1] == K_NOTE_ON, rows[:, 0]))
        return rows[order]

