"""The note event that patterns and agents produce (control side).

Time is musical and exact: ``begin`` and ``dur`` are `fractions.Fraction` quarter-note beats from
the start of the session. Swing and the conversion to sample times belong to the scheduler; the
only wall-clock quantity here is ``nudge_s``, a small humanising offset (seconds) that the
scheduler adds after converting ``begin`` to time.

A `Note` is checked when it is made (like a mido message), immutable and hashable.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from numbers import Integral, Real

from engine.parts import DRUM_NOTES, PARTS

__all__ = ["Note", "MAX_NUDGE_S", "DRUM_NOTE_SET", "note_sort_key"]

#: The largest humanising offset a note may carry (seconds). Agents stay well inside it.
MAX_NUDGE_S = 0.015
DRUM_NOTE_SET = frozenset(DRUM_NOTES.values())
_PARTS = frozenset(PARTS)


def _as_fraction(name: str, value) -> Fraction:
    if isinstance(value, Fraction):
        return value
    if isinstance(value, Integral) and not isinstance(value, bool):
        return Fraction(int(value))
    raise TypeError(
        f"Note.{name} must be a fractions.Fraction (or int) in beats, not {type(value).__name__} "
        f"{value!r}: musical time is exact, never float"
    )


@dataclass(frozen=True, slots=True)
class Note:
    """One note: onset ``begin`` and length ``dur`` in beats (quarter notes), on ``part``.

    ``note`` is a MIDI note number 0..127; for the ``drums`` part it must be one of the General
    MIDI drum notes in `engine.parts.DRUM_NOTES`. ``velocity`` is 0..1. ``nudge_s`` is a
    humanising timing offset in seconds (|nudge_s| <= MAX_NUDGE_S) applied by the scheduler;
    ``begin`` itself stays on the straight grid.
    """

    begin: Fraction
    dur: Fraction
    part: str
    note: int
    velocity: float
    nudge_s: float = 0.0

    def __post_init__(self) -> None:
        begin = _as_fraction("begin", self.begin)
        dur = _as_fraction("dur", self.dur)
        if begin is not self.begin:
            object.__setattr__(self, "begin", begin)
        if dur is not self.dur:
            object.__setattr__(self, "dur", dur)
        if begin < 0:
            raise ValueError(f"Note.begin must be >= 0 beats, got {begin}")
        if dur <= 0:
            raise ValueError(f"Note.dur must be > 0 beats, got {dur}")
        if self.part not in _PARTS:
            raise ValueError(f"Note.part must be one of {PARTS}, got {self.part!r}")
        if not isinstance(self.note, Integral) or isinstance(self.note, bool):
            raise TypeError(f"Note.note must be an int MIDI note, got {self.note!r}")
        if not 0 <= self.note <= 127:
            raise ValueError(f"Note.note must be a MIDI note 0..127, got {self.note}")
        if self.part == "drums" and self.note not in DRUM_NOTE_SET:
            raise ValueError(
                f"drum Note.note must be one of engine.parts.DRUM_NOTES "
                f"{sorted(DRUM_NOTE_SET)}, got {self.note}"
            )
        if not isinstance(self.velocity, Real) or isinstance(self.velocity, bool):
            raise TypeError(f"Note.velocity must be a float 0..1, got {self.velocity!r}")
        if not 0.0 <= self.velocity <= 1.0:
            raise ValueError(f"Note.velocity must be within 0..1, got {self.velocity}")
        if not isinstance(self.nudge_s, Real) or isinstance(self.nudge_s, bool):
            raise TypeError(f"Note.nudge_s must be a float (seconds), got {self.nudge_s!r}")
        if not abs(self.nudge_s) <= MAX_NUDGE_S:  # also rejects NaN
            raise ValueError(
                f"Note.nudge_s must be within +-{MAX_NUDGE_S * 1000:g} ms, got "
                f"{self.nudge_s * 1000:g} ms"
            )

    @property
    def end(self) -> Fraction:
        """Where the note is released (beats)."""
        return self.begin + self.dur

    def shifted(self, beats: Fraction) -> Note:
        """The same note ``beats`` later (earlier if negative)."""
        return Note(self.begin + beats, self.dur, self.part, self.note, self.velocity, self.nudge_s)


def note_sort_key(n: Note) -> tuple[Fraction, str, int]:
    """The canonical order of notes in every query result: (begin, part, note)."""
    return (n.begin, n.part, n.note)
