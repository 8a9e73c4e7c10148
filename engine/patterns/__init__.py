"""Patterns on exact musical time (control side): `Note` events, the `Pattern` core with its
combinators, the mini-notation and stable randomness. The live-coder's guide: docs/patterns.md.
"""

from .event import DRUM_NOTE_SET, MAX_NUDGE_S, Note, note_sort_key
from .pattern import (
    DEFAULT_CYCLE_BEATS,
    BarPattern,
    Pattern,
    as_fraction,
    as_pattern,
    bars_in,
    cat,
    cycle_beats,
    euclid,
    euclid_steps,
    pure,
    sequence,
    silence,
    stack,
    steps,
    switch_bars,
)
from .mini import degrees, mini
from .rand import mix, rng, unit

__all__ = [
    "Note", "MAX_NUDGE_S", "DRUM_NOTE_SET", "note_sort_key",
    "Pattern", "BarPattern", "as_fraction", "as_pattern", "bars_in", "cat", "cycle_beats",
    "DEFAULT_CYCLE_BEATS", "euclid", "euclid_steps", "pure", "sequence", "silence", "stack",
    "steps", "switch_bars", "mini", "degrees", "mix", "rng", "unit",
]
