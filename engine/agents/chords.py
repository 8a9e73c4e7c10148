"""The keyboard comper (control side): voice-led chords around C3..C5, as sustained pads or
rhythmic stabs by style.

Voice leading: each chord is voiced in close position (every inversion, every octave that fits
in MIDI 48..74); the first chord of a 4-bar phrase takes the voicing nearest the middle of the
register (around D4), and every later chord of the phrase the voicing that moves the voices
least from the one before (plus a small pull towards the middle, so the hands do not drift).
Restarting the chain at each phrase keeps every bar a pure function of the phrase's chords; the
pull keeps the restart a small step.

Five-note chords drop their fifth; power chords are voiced root-fifth-octave.
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache

from engine.harmony import QUALITIES, Chord
from engine.patterns.event import Note
from engine.patterns.rand import unit

from .base import Agent, BarInfo
from .drums import fit_meter

__all__ = ["ChordAgent", "voicings", "voice_lead", "CHORD_LOW", "CHORD_HIGH", "CENTRE"]

CHORD_LOW, CHORD_HIGH = 48, 74  # C3 .. D5
CENTRE = 62.0  # D4
PHRASE_BARS = 4

# Comping figures (16 sixteenths, 4/4): 'X'/'x' an attack; the chord sounds until the next attack
# (less a gap) or the end of its chord. Index 0 is the main figure; odd bars may use another.
# Below intensity 0.35 every style plays pads (one attack per chord).
_FIGURES: dict[str, tuple[str, ...]] = {
    "rock": ("X.......x.......", "X.....x.x......."),
    "house": ("..X...x...X...x.", "..X..x....X..x.x", ".xX...x...X...x."),
    "funk": ("...x..x....x.x..", "..x..x.x...x..x.", ".x..x..x..x...x."),
    "hiphop": ("X...............", "X.........x....."),
    "bossa": ("X..x..x...x..x..", "X.x..x.x..x..x.."),
    "breakbeat": ("X.......x.......", "X...........x..."),
}
# gap before the next attack, longest note, base velocity
_SHAPE = {
    "rock": (Fraction(1, 8), Fraction(8), 0.56),
    "house": (Fraction(1, 8), Fraction(1, 4), 0.66),
    "funk": (Fraction(1, 8), Fraction(1, 8), 0.62),
    "hiphop": (Fraction(1, 16), Fraction(8), 0.52),
    "bossa": (Fraction(1, 8), Fraction(3, 4), 0.55),
    "breakbeat": (Fraction(1, 8), Fraction(8), 0.54),
}


def _chord_pcs(chord: Chord) -> tuple[int, ...]:
    if chord.quality == "5":
        return (chord.root, chord.fifth, chord.root)
    ivs = QUALITIES[chord.quality][0]
    if len(ivs) > 4:
        return tuple((chord.root + i) % 12 for i in ivs if i != 7)
    return chord.tones


@lru_cache(maxsize=512)
def voicings(chord: Chord) -> tuple[tuple[int, ...], ...]:
    """Every close-position voicing of ``chord`` (each inversion, each octave) within
    CHORD_LOW..CHORD_HIGH, as ascending MIDI notes."""
    pcs = _chord_pcs(chord)
    out = []
    for inv in range(len(pcs)):
        order = pcs[inv:] + pcs[:inv]
        for base in range(CHORD_LOW, CHORD_LOW + 12):
            if base % 12 != order[0]:
                continue
            for octave in (0, 12, 24):
                notes = [base + octave]
                for pc in order[1:]:
                    n = notes[-1] + 1
                    while n % 12 != pc:
                        n += 1
                    notes.append(n)
                if notes[-1] <= CHORD_HIGH and len(set(notes)) == len(notes):
                    out.append(tuple(notes))
    return tuple(sorted(set(out)))


def _centre_cost(v: tuple[int, ...]) -> float:
    c = abs(sum(v) / len(v) - CENTRE)
    if v[0] < 52 and v[1] - v[0] <= 4:
        c += 3.0  # close thirds low down are muddy
    return c


def _move_cost(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    return sum(min(abs(x - y) for y in a) for x in b) + sum(min(abs(x - y) for y in b) for x in a)


@lru_cache(maxsize=4096)
def voice_lead(prev: tuple[int, ...] | None, chord: Chord) -> tuple[int, ...]:
    """The voicing of ``chord`` that moves least from ``prev`` (nearest the centre if None)."""
    cands = voicings(chord)
    if prev is None:
        return min(cands, key=lambda v: (_centre_cost(v), v))
    return min(cands, key=lambda v: (_move_cost(prev, v) + 0.35 * _centre_cost(v), v))


def _undoubled(v: tuple[int, ...], chord: Chord, key_scale: tuple[int, ...]) -> tuple[int, ...]:
    """Voicing `v` without the chord's tones outside the key (its root aside) when a key is
    known: the player's chromatic tones (a secondary dominant's leading tone, a borrowed third)
    are theirs to sound, and an accompanist does not double them (a doubled leading tone
    resolves in octaves). At least two voices stay."""
    if not key_scale:
        return v
    kept = tuple(p for p in v if p % 12 in key_scale or p % 12 == chord.root)
    return kept if len(kept) >= 2 else v


class ChordAgent(Agent):
    """``ChordAgent(seed, style=None)``: None follows ``ctx.seed`` / ``ctx.style``."""

    name = "chords"
    part = "chords"

    def lookback_from(self, bar: int, beats_per_bar: int) -> int:
        return (bar - bar % PHRASE_BARS) * beats_per_bar

    def segments(self, info: BarInfo) -> list[tuple[int, int, tuple[int, ...]]]:
        """The bar's chords as (first step, end step, voicing), voice-led from the phrase start."""
        beats = info.lookback + info.chords[: info.beats_per_bar]
        prev: tuple[int, ...] | None = None
        last: Chord | None = None
        voiced: list[tuple[int, tuple[int, ...]]] = []  # (beat index in `beats`, voicing)
        for k, c in enumerate(beats):
            if c != last:
                prev = voice_lead(prev, c)
                voiced.append((k, prev))
                last = c
        offset = len(info.lookback)
        segs = []
        for j, (k, v) in enumerate(voiced):
            end_k = voiced[j + 1][0] if j + 1 < len(voiced) else len(beats)
            if end_k <= offset:
                continue
            segs.append((4 * max(0, k - offset), 4 * (end_k - offset), v))
        return segs

    def render(self, info: BarInfo) -> list[Note]:
        seed, bar, i, n = info.seed, info.bar, info.intensity, info.steps
        segs = self.segments(info)
        gap, max_dur, base_vel = _SHAPE[info.style]
        level = 0.75 + 0.3 * i

        if "ending" in info.cues:
            v = segs[0][2]
            dur = Fraction(2 * info.beats_per_bar)
            return [Note(info.start, dur, "chords", p, round(0.62 * level, 3)) for p in v]

        busy = info.busy              # intensity pushed by the agent's density
        if "build" in info.cues:
            attacks = list(range(0, n, 2))
        elif busy < 0.35:
            attacks = []
        else:
            figures = _FIGURES[info.style]
            pick = 0
            if bar % 2 == 1:
                pick = int(unit(seed, "chords", "figure", bar // 4) * len(figures))
            fig = fit_meter(figures[pick], info.beats_per_bar)
            attacks = [s for s, ch in enumerate(fig) if ch != "."]
            if info.density > 0.5:    # denser: extra stabs on free eighths
                attacks = sorted(set(attacks) | {
                    s for s in range(0, n, 2)
                    if unit(seed, "chords", "dense", bar, s) < 1.2 * (info.density - 0.5)})
        pad = busy < 0.35 or max_dur >= Fraction(info.beats_per_bar)
        out = []
        for s0, s1, v in segs:
            v = _undoubled(v, info.chord_at_step(s0), info.scale)
            if busy >= 0.85 and len(v) == 3 and v[0] + 12 <= CHORD_HIGH + 4:
                v = v + (v[0] + 12,)  # thicken: double the lowest voice an octave up
            times = [s for s in attacks if s0 <= s < s1]
            if pad or not times:
                # pads (and a chord the figure would skip) sound from the chord's first step
                times = sorted(set(times) | {s0})
            for k, s in enumerate(times):
                nxt = times[k + 1] if k + 1 < len(times) else s1
                dur = min(max_dur, Fraction(nxt - s, 4) - gap)
                if pad:
                    dur = Fraction(nxt - s, 4) - gap
                dur = max(dur, Fraction(1, 16))
                accent = 1.0 if s == s0 else 0.9
                if "build" in info.cues:
                    accent = 0.55 + 0.5 * s / n
                vel = base_vel * accent * level
                for vi, p in enumerate(v):
                    vj = vel + (unit(seed, "chords-vel", bar, s, vi) - 0.5) * 0.06
                    roll = 0.0 if pad else 0.0015 * vi  # a slight upward spread on stabs
                    nudge = round(roll + (unit(seed, "chords-nudge", bar, s) - 0.5) * 0.004, 4) + 0.0
                    out.append(Note(info.at(s), dur, "chords", p,
                                    round(min(1.0, max(0.05, vj)), 3), nudge))
        return out
