"""Harmony (control side): chords, chord detection from held notes, progressions, and the live
chord timeline the conductor feeds from the player's keyboard.

Pitch classes are ints 0..11 (C=0). Musical time is exact `Fraction` beats.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

__all__ = [
    "Chord",
    "QUALITIES",
    "NOTE_NAMES",
    "detect_chord",
    "Progression",
    "DEFAULT_PROGRESSION",
    "LiveHarmony",
    "chord_scale",
]

NOTE_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
_NAME_TO_PC = {
    "C": 0, "B#": 0, "C#": 1, "Db": 1, "D": 2, "D#": 3, "Eb": 3, "E": 4, "Fb": 4, "E#": 5,
    "F": 5, "F#": 6, "Gb": 6, "G": 7, "G#": 8, "Ab": 8, "A": 9, "A#": 10, "Bb": 10, "B": 11,
    "Cb": 11,
}

#: quality -> (intervals above the root in chord order, name suffix)
QUALITIES: dict[str, tuple[tuple[int, ...], str]] = {
    "maj": ((0, 4, 7), ""),
    "min": ((0, 3, 7), "m"),
    "dim": ((0, 3, 6), "dim"),
    "aug": ((0, 4, 8), "aug"),
    "sus2": ((0, 2, 7), "sus2"),
    "sus4": ((0, 5, 7), "sus4"),
    "5": ((0, 7), "5"),
    "7": ((0, 4, 7, 10), "7"),
    "maj7": ((0, 4, 7, 11), "maj7"),
    "min7": ((0, 3, 7, 10), "m7"),
    "m7b5": ((0, 3, 6, 10), "m7b5"),
    "dim7": ((0, 3, 6, 9), "dim7"),
    "minmaj7": ((0, 3, 7, 11), "m(maj7)"),
    "6": ((0, 4, 7, 9), "6"),
    "min6": ((0, 3, 7, 9), "m6"),
    "7sus4": ((0, 5, 7, 10), "7sus4"),
    "add9": ((0, 4, 7, 2), "add9"),
    "madd9": ((0, 3, 7, 2), "m(add9)"),
    "9": ((0, 4, 7, 10, 2), "9"),
    "maj9": ((0, 4, 7, 11, 2), "maj9"),
    "min9": ((0, 3, 7, 10, 2), "m9"),
}
_SUFFIX_TO_QUALITY = {suffix: q for q, (_, suffix) in QUALITIES.items()}
_SUFFIX_TO_QUALITY.update({"maj": "maj", "min": "min", "M7": "maj7", "min7": "min7", "-": "min",
                           "-7": "min7", "ø": "m7b5", "ø7": "m7b5", "o": "dim", "o7": "dim7",
                           "+": "aug", "sus": "sus4", "m(maj7)": "minmaj7", "mM7": "minmaj7"})


@dataclass(frozen=True, slots=True)
class Chord:
    """A chord: ``root`` pitch class, ``quality`` (a key of `QUALITIES`) and its pitch classes
    ``tones`` in chord order (root, third, fifth, seventh, ninth), derived when left empty.

    ``bass`` is the pitch class the player had lowest when it is not the root (an inversion,
    named 'C/E'); it is ignored by ``==`` and ``hash``, so an inversion is the same harmony to the
    band (the bass agent still plays roots)."""

    root: int
    quality: str = "maj"
    tones: tuple[int, ...] = ()
    bass: int | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.root, int) or not 0 <= self.root <= 11:
            raise ValueError(f"Chord.root must be a pitch class 0..11, got {self.root!r}")
        if self.quality not in QUALITIES:
            raise ValueError(f"unknown chord quality {self.quality!r}; one of {list(QUALITIES)}")
        want = tuple((self.root + i) % 12 for i in QUALITIES[self.quality][0])
        if not self.tones:
            object.__setattr__(self, "tones", want)
        elif tuple(self.tones) != want:
            raise ValueError(f"tones {self.tones} do not spell {self.quality} on {self.root}: {want}")
        if self.bass is not None and not (isinstance(self.bass, int) and 0 <= self.bass <= 11):
            raise ValueError(f"Chord.bass must be a pitch class 0..11 or None, got {self.bass!r}")
        if self.bass == self.root:
            object.__setattr__(self, "bass", None)

    @property
    def name(self) -> str:
        """'Am7', 'F#', 'Bbmaj7', 'C/E'."""
        s = NOTE_NAMES[self.root] + QUALITIES[self.quality][1]
        if self.bass is not None:
            s += "/" + NOTE_NAMES[self.bass]
        return s

    def __str__(self) -> str:
        return self.name

    @property
    def third(self) -> int | None:
        """The chord's third (or sus note) pitch class, if it has one."""
        ivs = QUALITIES[self.quality][0]
        return (self.root + ivs[1]) % 12 if len(ivs) > 2 else None

    @property
    def fifth(self) -> int:
        """The fifth (diminished/augmented for dim/aug chords) pitch class."""
        ivs = QUALITIES[self.quality][0]
        return (self.root + ivs[2 if len(ivs) > 2 else 1]) % 12

    @property
    def is_minor(self) -> bool:
        return 3 in QUALITIES[self.quality][0] and 4 not in QUALITIES[self.quality][0]

    @classmethod
    def parse(cls, name: str) -> Chord:
        """'Am7' -> Chord(9, 'min7'); 'F#' -> Chord(6, 'maj'); 'C/E' -> C with bass E."""
        m = re.fullmatch(r"([A-G][#b]?)(.*?)(?:/([A-G][#b]?))?", name.strip())
        if not m or m.group(1) not in _NAME_TO_PC:
            raise ValueError(f"cannot parse chord name {name!r}")
        suffix = m.group(2)
        if suffix not in _SUFFIX_TO_QUALITY:
            raise ValueError(f"unknown chord suffix {suffix!r} in {name!r}")
        bass = _NAME_TO_PC[m.group(3)] if m.group(3) else None
        return cls(_NAME_TO_PC[m.group(1)], _SUFFIX_TO_QUALITY[suffix], bass=bass)


# -- detection -------------------------------------------------------------------------------------
# Templates tried by detect_chord, in order of preference when two spell the same notes equally
# well. Entries with a missing fifth come after the full ones.
_DETECT: list[tuple[str, frozenset[int], int]] = []
for _i, _q in enumerate(("maj", "min", "7", "min7", "maj7", "sus4", "sus2", "dim", "m7b5", "dim7",
                         "aug", "6", "min6", "7sus4", "minmaj7", "add9", "madd9", "9", "min9",
                         "maj9")):
    _ivs = QUALITIES[_q][0]
    _DETECT.append((_q, frozenset(_ivs), _i))
    if _q in ("7", "maj7", "min7", "minmaj7"):  # a seventh chord without its fifth
        _DETECT.append((_q, frozenset(_ivs) - {7}, _i + 100))


def detect_chord(held_notes: Iterable[int]) -> Chord | None:
    """The chord spelled by the MIDI notes the player holds, or None.

    * Template matching over the held pitch classes: every note of a template must be held (the
      fifth may be left out of a 7th chord that has no other note) and at most one held note may
      be left unexplained (two when five or more pitch classes are held), e.g. an added tension.
    * Ties (the same pitch classes spell two chords: A C E G is Am7 or C6, F G C is Fsus2 or
      Csus4, augmented and diminished-seventh chords are symmetric) go to the chord whose root is
      the lowest held note; otherwise to the commoner quality. A chord whose root is not the
      lowest note is an inversion: its ``bass`` field is set ('C/E').
    * Two pitch classes: a fifth (or fourth) is a power chord ('5', rooted on the fifth's lower
      note, 'E5'); a major third or minor sixth is a major dyad, a minor third or major sixth a
      minor dyad (C+E -> C, A+C -> Am). Seconds, tritones and sevenths -> None.
    * One pitch class (single notes or octaves) -> None: the player is playing a line, and the
      band keeps the harmony it has. Empty -> None.
    """
    notes = [int(n) for n in held_notes]
    if not notes:
        return None
    pcs = frozenset(n % 12 for n in notes)
    bass = min(notes) % 12
    if len(pcs) == 1:
        return None
    if len(pcs) == 2:
        a, b = sorted(pcs)
        iv = (b - a) % 12
        for root, other_iv in ((a, iv), (b, (12 - iv) % 12)):
            if other_iv == 7:
                return Chord(root, "5", bass=bass)
            if other_iv == 4:
                return Chord(root, "maj", bass=bass)
            if other_iv == 3:
                # a minor third: the lower note of the third is the minor chord's root
                return Chord(root, "min", bass=bass)
        return None
    max_extra = 1 if len(pcs) <= 4 else 2
    best: tuple | None = None
    best_chord: Chord | None = None
    for root in pcs:
        rel = frozenset((p - root) % 12 for p in pcs)
        for quality, template, priority in _DETECT:
            if not template <= rel:
                continue
            extra = len(rel) - len(template)
            if extra > (0 if priority >= 100 else max_extra):  # a fifthless 7th explains all
                continue
            # fewer unexplained notes first, then complete chords, then the lowest note as root,
            # then common qualities
            score = (extra, priority >= 100, root != bass, priority)
            if best is None or score < best:
                best = score
                best_chord = Chord(root, quality, bass=bass)
    return best_chord


# -- scales for melodic agents -------------------------------------------------------------------------
# Pitch classes (as intervals) a melody may use over each quality without sounding out of key in
# the usual contexts: chord tones plus the tensions of the chord's pentatonic. Over a major chord
# that is the major pentatonic (fits ionian, lydian and mixolydian, so F in A minor gets no Bb);
# over a minor chord the minor pentatonic (fits aeolian, dorian, phrygian).
_SCALES: dict[str, tuple[int, ...]] = {
    "maj": (0, 2, 4, 7, 9),
    "min": (0, 3, 5, 7, 10),
    "dim": (0, 3, 6, 9),
    "aug": (0, 4, 8),
    "sus2": (0, 2, 5, 7, 9),
    "sus4": (0, 2, 5, 7, 10),
    "5": (0, 3, 5, 7, 10),
    "7": (0, 2, 4, 7, 10),
    "maj7": (0, 2, 4, 7, 9, 11),
    "min7": (0, 3, 5, 7, 10),
    "m7b5": (0, 3, 5, 6, 10),
    "dim7": (0, 3, 6, 9),
    "minmaj7": (0, 2, 3, 7, 11),
    "6": (0, 2, 4, 7, 9),
    "min6": (0, 2, 3, 7, 9),
    "7sus4": (0, 2, 5, 7, 10),
    "add9": (0, 2, 4, 7, 9),
    "madd9": (0, 2, 3, 7, 10),
    "9": (0, 2, 4, 7, 10),
    "maj9": (0, 2, 4, 7, 9, 11),
    "min9": (0, 2, 3, 7, 10),
}


def chord_scale(chord: Chord) -> tuple[int, ...]:
    """Sorted pitch classes a melody may use over ``chord`` (chord tones + safe tensions)."""
    return tuple(sorted({(chord.root + i) % 12 for i in _SCALES[chord.quality]} | set(chord.tones)))


# -- progressions ----------------------------------------------------------------------------------------
class Progression:
    """A cycle of chords, each lasting a whole number of bars; used when nobody plays.

    >>> Progression(["Am", "F", "C", "G"]).chord_at(5).name
    'F'
    """

    __slots__ = ("chords", "bars", "_starts", "_length")

    def __init__(self, chords: Sequence[Chord | str], bars: int | Sequence[int] = 1):
        if not chords:
            raise ValueError("a progression needs at least one chord")
        self.chords = tuple(c if isinstance(c, Chord) else Chord.parse(c) for c in chords)
        if isinstance(bars, int):
            bars = [bars] * len(self.chords)
        self.bars = tuple(int(b) for b in bars)
        if len(self.bars) != len(self.chords) or any(b <= 0 for b in self.bars):
            raise ValueError("bars must be positive, one per chord")
        starts, t = [], 0
        for b in self.bars:
            starts.append(t)
            t += b
        self._starts = tuple(starts)
        self._length = t

    @classmethod
    def parse(cls, text: str, bars: int | Sequence[int] = 1) -> Progression:
        """'Am F C G' or 'Am | F | C | G'."""
        return cls([t for t in re.split(r"[\s|,]+", text) if t], bars)

    @property
    def length_bars(self) -> int:
        return self._length

    def chord_at(self, bar: int) -> Chord:
        i = bisect_right(self._starts, bar % self._length) - 1
        return self.chords[i]

    def __repr__(self) -> str:
        return f"Progression({[c.name for c in self.chords]!r}, bars={list(self.bars)!r})"


#: i - VI - III - VII, then i - VI - iv - V7: A minor, one chord per bar, 8 bars.
DEFAULT_PROGRESSION = Progression.parse("Am F C G Am F Dm E7")


# -- the live chord timeline ---------------------------------------------------------------------------------
class LiveHarmony:
    """The harmony in force at each beat, fed by the player's held notes (control side).

    Rules (what the conductor relies on):

    * Nothing already scheduled changes: a change asked for while the scheduler has queried up to
      ``horizon`` (beats) takes effect at the first multiple of ``quantum_beats`` at or after
      ``horizon``. A quantum of 1 beat makes the band follow on the next beat; 2 (half a 4/4 bar)
      keeps the harmonic rhythm steadier.
    * A newer request that takes effect at the same or an earlier beat replaces a pending one, so
      the passing chords heard while the player is still putting a chord down are never played if
      the final one arrives before they take effect.
    * `update` with a single note, a non-chord or nothing keeps the harmony (no change).
    * `release` (all keys up) keeps the last chord; unless the player plays again first, the
      ``progression`` resumes at the start of a bar ``resume_after_bars`` bars later (``None``:
      never resume).
    * Before the player's first chord the progression is in force.
    """

    __slots__ = ("progression", "beats_per_bar", "quantum", "resume_after_bars", "_beats",
                 "_chords", "_keep_history_beats")

    def __init__(
        self,
        progression: Progression = DEFAULT_PROGRESSION,
        beats_per_bar: int = 4,
        quantum_beats: Fraction | int = 1,
        resume_after_bars: int | None = 2,
        keep_history_beats: int = 64,
    ):
        self.progression = progression
        self.beats_per_bar = beats_per_bar
        self.quantum = Fraction(quantum_beats)
        if self.quantum <= 0:
            raise ValueError("quantum_beats must be > 0")
        self.resume_after_bars = resume_after_bars
        # change points: beats (sorted) and what takes effect there (Chord, or None = progression)
        self._beats: list[Fraction] = []
        self._chords: list[Chord | None] = []
        self._keep_history_beats = keep_history_beats

    def effective_beat(self, horizon: Fraction) -> Fraction:
        """Where a change asked for now takes effect, given the scheduler's query horizon."""
        q = self.quantum
        return -(-Fraction(horizon) // q) * q

    def chord_at(self, beat: Fraction) -> Chord:
        chord = self.player_chord_at(beat)
        if chord is not None:
            return chord
        return self.progression.chord_at(int(beat // self.beats_per_bar))

    def player_chord_at(self, beat: Fraction) -> Chord | None:
        """The player's chord in force at `beat`, or None where the progression is."""
        i = bisect_right(self._beats, beat) - 1
        return self._chords[i] if i >= 0 else None

    def set_chord(self, chord: Chord | None, horizon: Fraction) -> Fraction:
        """Put ``chord`` (None: the progression) in force from the next quantum at or after
        ``horizon``; return that beat."""
        at = self.effective_beat(horizon)
        self._schedule(chord, at)
        return at

    def update(self, held_notes: Iterable[int], horizon: Fraction) -> Chord | None:
        """Feed the notes held now (call it on every note-on/off while keys are down); return the
        chord detected (taking effect at ``effective_beat(horizon)``), or None for no change."""
        chord = detect_chord(held_notes)
        if chord is not None:
            self._schedule(chord, self.effective_beat(horizon))
        return chord

    def release(self, horizon: Fraction) -> Fraction | None:
        """All keys are up: schedule the progression's return; return its beat (or None)."""
        if self.resume_after_bars is None or not self._chords or self._chords[-1] is None:
            return None
        bpb = self.beats_per_bar
        at = self.effective_beat(horizon)
        resume = Fraction((-(-at // bpb) + self.resume_after_bars) * bpb)
        self._schedule(None, resume)
        return resume

    def changes(self) -> list[tuple[Fraction, Chord | None]]:
        """The change points kept (beat, chord or None for the progression), for display/tests."""
        return list(zip(self._beats, self._chords))

    def _schedule(self, chord: Chord | None, at: Fraction) -> None:
        # drop changes not yet in force at `at` (they are after the horizon, so unplayed)
        i = bisect_right(self._beats, at)
        if i > 0 and self._beats[i - 1] == at:
            i -= 1
        del self._beats[i:], self._chords[i:]
        in_force = self._chords[-1] if self._chords else None
        if in_force != chord:
            self._beats.append(at)
            self._chords.append(chord)
        self._prune(at)

    def _prune(self, now: Fraction) -> None:
        # keep the change in force keep_history_beats ago, drop older ones
        cut = bisect_right(self._beats, now - self._keep_history_beats) - 1
        if cut > 0:
            del self._beats[:cut], self._chords[:cut]
