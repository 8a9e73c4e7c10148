"""How well the band plays with a player, measured on a session's notes (control side): the
figures tests/test_score_follow.py holds and bench/chorales.py prints.

Notes are records with ``start_s``, ``dur_s``, ``part`` and ``note`` (the session recorder's
`Played`, or controllers.midifile's NoteRecord); the player's part is "keys".
"""
from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from fractions import Fraction

__all__ = ["on_grid", "bass_on_player", "in_key", "GRID_TOLERANCE_S"]

GRID_TOLERANCE_S = 0.002   # an onset this close to a grid line is on it (the sample grid and
#                            MIDI ticks round by far less)


def on_grid(onsets_s: Iterable[float], clock, steps_per_beat: int = 4,
            tolerance_s: float = GRID_TOLERANCE_S) -> float:
    """The share of onsets (seconds) on the clock's grid of ``steps_per_beat`` steps a beat
    (sixteenths by default), within ``tolerance_s``."""
    onsets = list(onsets_s)
    if not onsets:
        return 0.0
    sr = clock.sample_rate
    hits = 0
    for t in onsets:
        beat = clock.beat_at(round(t * sr))
        step = round(beat * steps_per_beat)
        nearest = clock.sample_at(Fraction(step, steps_per_beat)) / sr
        hits += abs(nearest - t) <= tolerance_s
    return hits / len(onsets)


def _sounding(player: Sequence, t: float, tolerance_s: float) -> set[int]:
    """Pitch classes the player sounds at time t (a note starting within tolerance counts)."""
    return {n.note % 12 for n in player
            if n.start_s - tolerance_s <= t < n.start_s + n.dur_s}


def bass_on_player(notes: Sequence, tolerance_s: float = 0.03) -> float:
    """The share of the bass's onsets on a pitch class the player sounds at that moment (a
    player's note starting within ``tolerance_s`` after the bass counts: the band's humanising
    nudge). Bass notes while the player is silent are not counted."""
    player = sorted((n for n in notes if n.part == "keys"), key=lambda n: n.start_s)
    starts = [n.start_s for n in player]
    hits = total = 0
    for n in notes:
        if n.part != "bass":
            continue
        near = player[:bisect_right(starts, n.start_s + tolerance_s)]
        pcs = _sounding(near[-64:], n.start_s, tolerance_s)
        if not pcs:
            continue
        total += 1
        hits += n.note % 12 in pcs
    return hits / total if total else 0.0


def in_key(notes: Sequence, scale, parts: Iterable[str] = ("bass", "chords",
                                                                          "lead"),
           or_player: bool = False, tolerance_s: float = 0.03) -> float:
    """The share of the band's notes (``parts``; drums aside) whose pitch class is in ``scale``
    (pitch classes, or a function of the note's start in seconds giving them: a key that
    modulates); with ``or_player``, a note the player sounds at that moment counts as well (the player's
    own chromatic harmony, doubled)."""
    scale_at = scale if callable(scale) else (lambda _t, s=frozenset(scale): s)
    parts = set(parts)
    player = sorted((n for n in notes if n.part == "keys"), key=lambda n: n.start_s)
    starts = [n.start_s for n in player]
    band = [n for n in notes if n.part in parts]
    if not band:
        return 0.0
    hits = 0
    for n in band:
        ok = n.note % 12 in scale_at(n.start_s)
        if not ok and or_player:
            near = player[:bisect_right(starts, n.start_s + tolerance_s)]
            ok = n.note % 12 in _sounding(near[-64:], n.start_s, tolerance_s)
        hits += ok
    return hits / len(band)
