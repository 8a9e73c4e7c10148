"""Live-coded patterns as band parts (control side): `PatternParts` plays a `Pattern` on a part
in place of that part's agent, in the band's time, swapped from a bar the scheduler has not
queried yet.

Like the steering map (`engine.agents.steer.Steering`), each part keeps change points
``(beat, pattern or None)``: from a change on, the part plays that pattern (its notes put on
the part) or, after None, its agent again. The scheduler only ever queries forward, and a
change is only put at or after its cursor, so nothing scheduled is rewritten: a note already
scheduled keeps its note-off (no stuck note when a pattern is replaced or stopped), and an
offline render and a live run with the same changes at the same bars play the same notes.

Each pattern is rendered a whole bar at a time into a small cache (a `BarPattern`), so the
scheduler's many short queries cost a look-up each. A bar's render is keyed by the meter and
the chord on each of its beats (``ctx.chord_at``): what `Pattern.scale` without a key reads. A
chord change for beats not yet scheduled re-renders the bar, as the agents do; a pattern
should read nothing else from its context.

A pattern that fails when queried (e.g. a pitched note on the drums part, or a `scale()` with
no chords to follow) is counted in ``errors``, reported once through ``log``, and taken off
from the start of the span it failed on: the part falls back to its agent, and nothing else
changes.
"""
from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable
from fractions import Fraction
from heapq import merge
from typing import Any

from engine.meter import meter_of
from engine.parts import PARTS

from .event import Note, note_sort_key
from .pattern import BarPattern, Pattern, cycle_beats

__all__ = ["PatternParts"]


class PatternParts:
    """``band`` (anything with ``query(begin, end, ctx)``) with live-coded patterns on some of
    its parts (see the module's docstring). Runs on the scheduler's thread."""

    def __init__(self, band: Any, log: Callable[[str], None] | None = None,
                 keep_beats: int = 256):
        self.band = band
        self.log = log or (lambda text: None)
        self.keep_beats = keep_beats
        self._beats: dict[str, list[Fraction]] = {}
        self._pats: dict[str, list[Pattern | None]] = {}
        self.errors = 0
        self.last_error = ""

    def set(self, part: str, pattern: Pattern | None, at: Fraction) -> None:
        """``pattern`` plays ``part`` from beat ``at`` on (None: the part's agent again);
        changes planned after ``at`` are dropped (the newest request wins)."""
        if part not in PARTS:
            raise ValueError(f"no part {part!r}; parts: {', '.join(PARTS)}")
        if pattern is not None and not isinstance(pattern, Pattern):
            raise TypeError(f"play takes a Pattern (or None), got {type(pattern).__name__}")
        at = Fraction(at)
        beats = self._beats.setdefault(part, [])
        pats = self._pats.setdefault(part, [])
        i = bisect_right(beats, at)
        if i > 0 and beats[i - 1] == at:
            i -= 1
        del beats[i:], pats[i:]
        beats.append(at)
        pats.append(None if pattern is None else _by_bar(pattern.on(part)))
        cut = bisect_right(beats, at - self.keep_beats) - 1
        if cut > 0:
            del beats[:cut], pats[:cut]

    def at(self, part: str, beat: Fraction) -> Pattern | None:
        """The pattern playing ``part`` at ``beat`` (None: its agent)."""
        beats = self._beats.get(part)
        if beats:
            i = bisect_right(beats, beat) - 1
            if i >= 0:
                return self._pats[part][i]
        return None

    def latest(self, part: str) -> Pattern | None:
        """The last pattern asked for on ``part`` (in force now or from a coming bar)."""
        pats = self._pats.get(part)
        return pats[-1] if pats else None

    def segments(self, part: str, begin: Fraction, end: Fraction
                 ) -> list[tuple[Fraction, Fraction, Pattern | None]]:
        """``[begin, end)`` cut where ``part`` changes: (lo, hi, pattern in force)."""
        beats = self._beats.get(part, [])
        cuts = [b for b in beats if begin < b < end]
        edges = [begin, *cuts, end]
        return [(lo, hi, self.at(part, lo)) for lo, hi in zip(edges, edges[1:])]

    def check(self, part: str, pattern: Pattern, at: Fraction, ctx: Any, cycles: int = 2
              ) -> None:
        """Query ``pattern`` on ``part`` for ``cycles`` cycles from ``at`` so that a pattern
        that cannot play there fails now, with its reason, before anything changes."""
        length = cycle_beats(ctx)
        pattern.on(part).query(at, at + cycles * length, ctx)

    def query(self, begin: Fraction, end: Fraction, ctx: Any) -> list[Note]:
        """The band's notes, with each patterned part's notes from its pattern instead."""
        notes = self.band.query(begin, end, ctx)
        if not self._beats:
            return notes
        lists: list[list[Note]] = []
        taken: list[tuple[str, Fraction, Fraction]] = []
        for part in list(self._beats):
            for lo, hi, pat in self.segments(part, begin, end):
                if pat is None:
                    continue
                taken.append((part, lo, hi))
                try:
                    lists.append(pat.query(lo, hi, ctx))
                except Exception as exc:  # noqa: BLE001 - a live coder's pattern: any error
                    taken.pop()         # the agent plays the span the pattern failed on
                    self._failed(part, lo, exc)
                    break
        if taken:
            notes = [n for n in notes
                     if not any(p == n.part and lo <= n.begin < hi for p, lo, hi in taken)]
        return list(merge(notes, *lists, key=note_sort_key)) if lists else notes

    def _failed(self, part: str, at: Fraction, exc: Exception) -> None:
        self.errors += 1
        self.last_error = f"pattern on {part} stopped at beat {at}: {exc}"
        self.log(self.last_error)
        self.set(part, None, at)


def _harmony_key(bar: int, ctx: Any) -> tuple:
    """What a pattern's bar may depend on beside the bar: the chord on each of its beats."""
    chord_at = getattr(ctx, "chord_at", None)
    if chord_at is None:
        return ()
    meter = meter_of(ctx)
    start = meter.bar_start(bar)
    return tuple(chord_at(start + i) for i in range(math.ceil(meter.bar_length(bar))))


def _by_bar(pattern: Pattern) -> BarPattern:
    """``pattern`` rendered a bar at a time, cached (see the module's docstring)."""

    def render(bar: int, ctx: Any) -> list[Note]:
        meter = meter_of(ctx)
        start = meter.bar_start(bar)
        return pattern.query(start, start + meter.bar_length(bar), ctx)

    return BarPattern(render, _harmony_key, cache_size=16)
