"""Names of notes, drums, keys and scale degrees for patterns (control side).

`note_number("c4") == 60` (scientific pitch: C4 is middle C, MIDI 60; an octave-less name is in
octave 3, as Strudel has it); `drum_number("bd") == 36` (the drum machine's General MIDI
notes, `engine.parts.DRUM_NOTES`, and Tidal's short names); `as_key("A minor")` is an
`engine.listen.key.Key`; `degree_note(key, degree, octave)` the MIDI note of a scale degree.
"""
from __future__ import annotations

import re
from numbers import Integral

from engine.listen.key import Key
from engine.parts import DRUM_NOTES

__all__ = ["note_number", "drum_number", "as_key", "degree_note", "DRUM_ALIASES", "NOTE_RE",
           "DEGREE_SCALES"]

#: Tidal's short drum names beside the drum machine's own (`engine.parts.DRUM_NOTES`)
DRUM_ALIASES = {"bd": "kick", "sd": "snare", "sn": "snare", "cp": "clap", "hh": "closed_hat",
                "hat": "closed_hat", "ch": "closed_hat", "oh": "open_hat", "rs": "rim",
                "lt": "tom_low", "mt": "tom_mid", "ht": "tom_high"}

#: a note name: letter, optional accidentals (# or s sharp, b flat), optional octave
NOTE_RE = re.compile(r"([a-gA-G])(#|s|b)?(-?\d+)?")
_LETTER = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}
_DEFAULT_OCTAVE = 3

#: the scales scale degrees count in (the natural minor: degrees are diatonic)
DEGREE_SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}


def note_number(name: str | int) -> int:
    """The MIDI note of ``name`` ('c4' 60, 'eb3' 51, 'f#2' 42, 'a' 57) or of an int 0..127;
    ValueError for anything else (a note outside 0..127 included)."""
    if isinstance(name, Integral) and not isinstance(name, bool):
        n = int(name)
    elif isinstance(name, str):
        text = name.strip()
        if text.lstrip("-").isdigit():
            n = int(text)
        else:
            m = NOTE_RE.fullmatch(text)
            if m is None:
                raise ValueError(f"{name!r} is not a note (c4, eb3, f#2, a MIDI number "
                                 f"0..127) nor a drum ({', '.join(sorted(_drum_names()))})")
            letter, acc, octave = m.groups()
            n = (int(octave) if octave is not None else _DEFAULT_OCTAVE) * 12 + 12 \
                + _LETTER[letter.lower()] + {None: 0, "#": 1, "s": 1, "b": -1}[acc]
    else:
        raise TypeError(f"a note is a name like 'c4' or a MIDI number, not {name!r}")
    if not 0 <= n <= 127:
        raise ValueError(f"note {name!r} is MIDI {n}, outside 0..127")
    return n


def _drum_names() -> set[str]:
    return set(DRUM_NOTES) | set(DRUM_ALIASES)


def drum_number(name: str) -> int | None:
    """The drum note of a drum name ('kick', 'bd', 'hh', ...), None if it is not one."""
    key = DRUM_ALIASES.get(name, name)
    return DRUM_NOTES.get(key)


def as_key(key: Key | str) -> Key:
    """A `Key` from a Key or its name ('A minor', 'F#m', 'Eb', 'C major')."""
    if isinstance(key, Key):
        return key
    if isinstance(key, str):
        return Key.parse(key)
    raise TypeError(f"a key is an engine.listen.key.Key or a name like 'A minor', not {key!r}")


def degree_note(key: Key, degree: int, octave: int) -> int:
    """The MIDI note of scale ``degree`` (0 the tonic, 7 the tonic an octave up, -1 the degree
    below the tonic) of ``key`` (diatonic: the natural minor for a minor key), counted from the
    tonic in ``octave`` (scientific: octave 4 holds middle C)."""
    scale = DEGREE_SCALES[key.mode]
    octaves, step = divmod(int(degree), len(scale))
    n = 12 * (octave + 1) + key.tonic + 12 * octaves + scale[step]
    if not 0 <= n <= 127:
        raise ValueError(f"degree {degree} of {key.name} from octave {octave} is MIDI {n}, "
                         f"outside 0..127")
    return n

