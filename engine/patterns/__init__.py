"""Patterns on exact musical time (control side): `Note` events and the `Pattern` core."""

from .event import DRUM_NOTE_SET, MAX_NUDGE_S, Note, note_sort_key
from .pattern import (
    BarPattern,
    Pattern,
    as_fraction,
    bars_in,
    euclid,
    euclid_steps,
    silence,
    stack,
    steps,
    switch_bars,
)
from .rand import mix, rng, unit

__all__ = [
    "Note", "MAX_NUDGE_S", "DRUM_NOTE_SET", "note_sort_key",
    "Pattern", "BarPattern", "as_fraction", "bars_in", "euclid", "euclid_steps", "silence",
    "stack", "steps", "switch_bars", "mix", "rng", "unit",
]
