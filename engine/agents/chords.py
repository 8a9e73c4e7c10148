"""The keyboard comper (control side): voice-led chords around C3..C5, as sustained pads or
rhythmic stabs by style.

Voice leading: each chord is voiced in close position (every inversion, every octave that fits
in MIDI 48..74); the first chord of a 4-bar phrase takes the voicing nearest the middle of the
register (around D4), and every later chord of the phrase the voicing that moves the voices
least from the one before (plus a small pull towards the middle, so the hands do not drift).
Restarting the chain at each phrase keeps every bar a pure function of the phrase's chords; the
pull keeps the restart a small step.

Five-note chords drop their fifth; power chords are voiced root-fifth-octave. Jazz comps with
rootless voicings (`rootless_pcs`, the bass has the root) on the Charleston rhythm, pushing
the next bar's chord onto the "and" of 4 now and then; bossa plays the two-bar bossa comp.
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache

from engine.harmony import QUALITIES, Chord
from engine.meter import Meter
from engine.patterns.event import Note
from engine.patterns.rand import unit

from .base import Agent, BarInfo
from .drums import fit_meter

__all__ = ["ChordAgent", "voicings", "voicings_of", "voice_lead", "voice_lead_pcs",
           "rootless_pcs", "CHORD_LOW", "CHORD_HIGH", "CENTRE"]

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
    # the bossa comp: a two-bar figure, the second bar answering the first off the beat
    "bossa": ("X..x..x...x..x..", "..x..x..x...x..."),
    "breakbeat": ("X.......x.......", "X...........x..."),
    "dnb": ("X...............", "X.........x....."),
    # jazz: the Charleston (1, "and" of 2), its answers, and 'a': the next bar's chord
    # anticipated on the "and" of 4 (all swung to the triplet by the jazz groove)
    "jazz": ("X.....x.........", "X.....x.......a.", "..x.....x.....a.", "....x.....x....."),
}
#: styles whose figure alternates with the bar (A, B, A, B) instead of varying per phrase
_TWO_BAR = {"bossa"}
# gap before the next attack, longest note, base velocity
_SHAPE = {
    "rock": (Fraction(1, 8), Fraction(8), 0.56),
    "house": (Fraction(1, 8), Fraction(1, 4), 0.66),
    "funk": (Fraction(1, 8), Fraction(1, 8), 0.62),
    "hiphop": (Fraction(1, 16), Fraction(8), 0.52),
    "bossa": (Fraction(1, 8), Fraction(3, 4), 0.55),
    "breakbeat": (Fraction(1, 8), Fraction(8), 0.54),
    "dnb": (Fraction(1, 8), Fraction(8), 0.5),
    "jazz": (Fraction(1, 8), Fraction(1, 2), 0.55),
}


def _chord_pcs(chord: Chord) -> tuple[int, ...]:
    if chord.quality == "5":
        return (chord.root, chord.fifth, chord.root)
    ivs = QUALITIES[chord.quality][0]
    if len(ivs) > 4:
        return tuple((chord.root + i) % 12 for i in ivs if i != 7)
    return chord.tones


def rootless_pcs(chord: Chord, key: tuple[int, ...] = ()) -> tuple[int, ...]:
    """A jazz pianist's rootless voicing of ``chord``: third, seventh (the sixth on a plain
    major triad), ninth and the fifth (the thirteenth on a dominant) -- the 3-7-9-13 family,
    whose inversions are the A (3-5-7-9) and B (7-9-3-5) forms. A colour tone outside the
    known ``key`` (or a b9 over a minor or half-diminished chord) gives way to the fifth or
    the root; the chord's own tones always stay."""
    ivs = QUALITIES[chord.quality][0]
    r = chord.root
    third = chord.third if chord.third is not None else (r + 2) % 12
    fifth = chord.fifth
    if len(ivs) > 3 and ivs[3] in (9, 10, 11):
        seventh = (r + ivs[3]) % 12
    elif chord.is_minor or chord.quality == "aug":
        seventh = (r + 10) % 12
    else:
        seventh = (r + 9) % 12          # the sixth: a major triad comps as a 6/9
    ninth = (r + 2) % 12
    if len(ivs) > 4 and ivs[4] in (1, 3):
        ninth = (r + ivs[4]) % 12        # an altered dominant keeps its b9 / #9
    if chord.quality in ("dim", "dim7", "m7b5"):
        ninth = (r + 5) % 12             # the eleventh: a 9 would clash there
    top = (r + 9) % 12 if chord.quality in ("7", "9", "13") else fifth
    own = set(chord.tones)
    if key:
        if ninth not in key and ninth not in own:
            ninth = r
        if top not in key and top not in own:
            top = fifth
    out: list[int] = []
    for pc in (third, top, seventh, ninth):
        if pc not in out:
            out.append(pc)
    if len(out) < 4 and fifth not in out:
        out.append(fifth)
    return tuple(out)


def voicings(chord: Chord) -> tuple[tuple[int, ...], ...]:
    """Every close-position voicing of ``chord`` (each inversion, each octave) within
    CHORD_LOW..CHORD_HIGH, as ascending MIDI notes."""
    return voicings_of(_chord_pcs(chord))


@lru_cache(maxsize=1024)
def voicings_of(pcs: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """Every close-position voicing of the pitch classes ``pcs`` (see `voicings`)."""
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


def voice_lead(prev: tuple[int, ...] | None, chord: Chord) -> tuple[int, ...]:
    """The voicing of ``chord`` that moves least from ``prev`` (nearest the centre if None)."""
    return voice_lead_pcs(prev, _chord_pcs(chord))


@lru_cache(maxsize=4096)
def voice_lead_pcs(prev: tuple[int, ...] | None, pcs: tuple[int, ...]) -> tuple[int, ...]:
    """The voicing of the pitch classes ``pcs`` that moves least from ``prev`` (see
    `voice_lead`)."""
    cands = voicings_of(pcs)
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

    def lookback_from(self, bar: int, meter: Meter) -> Fraction:
        return meter.bar_start(bar - bar % PHRASE_BARS)

    @staticmethod
    def pcs(info: BarInfo, chord: Chord) -> tuple[int, ...]:
        """The pitch classes the comper voices ``chord`` with: rootless in jazz."""
        return rootless_pcs(chord, info.scale) if info.style == "jazz" else _chord_pcs(chord)

    def segments(self, info: BarInfo) -> list[tuple[int, int, tuple[int, ...]]]:
        """The bar's chords as (first step, end step, voicing), voice-led from the phrase start."""
        beats = info.lookback + info.chords[: info.beats_per_bar]
        prev: tuple[int, ...] | None = None
        last: Chord | None = None
        voiced: list[tuple[int, tuple[int, ...]]] = []  # (beat index in `beats`, voicing)
        for k, c in enumerate(beats):
            if c != last:
                prev = voice_lead_pcs(prev, self.pcs(info, c))
                voiced.append((k, prev))
                last = c
        offset = len(info.lookback)
        segs = []
        for j, (k, v) in enumerate(voiced):
            end_k = voiced[j + 1][0] if j + 1 < len(voiced) else len(beats)
            if end_k <= offset:
                continue
            segs.append((4 * max(0, k - offset), min(info.steps, 4 * (end_k - offset)), v))
        return segs

    def render(self, info: BarInfo) -> list[Note]:
        seed, bar, i, n = info.seed, info.bar, info.intensity, info.steps
        segs = self.segments(info)
        gap, max_dur, base_vel = _SHAPE[info.style]
        level = 0.75 + 0.3 * i

        if "ending" in info.cues:
            v = segs[0][2]
            dur = 2 * info.beats
            return [Note(info.start, dur, "chords", p, round(0.62 * level, 3)) for p in v]

        busy = info.busy              # intensity pushed by the agent's density
        push: list[int] = []          # the figure's 'a' steps (a push of the next chord)
        if "build" in info.cues:
            attacks = list(range(0, n, 2))
        elif busy < 0.35:
            attacks = []
        else:
            fig = self.figure(info.style, seed, bar, info.beat_pulses)
            attacks = [s for s, ch in enumerate(fig) if ch != "."]
            push = [s for s, ch in enumerate(fig) if ch == "a"]
            if self.anticipated(info):    # the last bar's "and" of 4 already played this chord
                attacks = [s for s in attacks if s != 0]
            if info.density > 0.5:    # denser: extra stabs on free eighths
                attacks = sorted(set(attacks) | {
                    s for s in range(0, n, 2)
                    if unit(seed, "chords", "dense", bar, s) < 1.2 * (info.density - 0.5)})
        pad = busy < 0.35 or max_dur >= info.beats
        antic = None   # (step, voicing): the next bar's chord pushed onto the "and" of 4
        if not pad and push and self.anticipates(info):
            antic = (push[-1], voice_lead_pcs(segs[-1][2], self.pcs(info, info.next_chord)))
            attacks = [s for s in attacks if s != push[-1]]
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
        if antic is not None:
            s, v = antic
            dur = Fraction(n - s, 4) + 1 - gap           # rings into the next downbeat
            for vi, p in enumerate(v):
                vj = base_vel * level + (unit(seed, "chords-vel", bar, s, vi) - 0.5) * 0.06
                out.append(Note(info.at(s), dur, "chords", p, round(min(1.0, max(0.05, vj)), 3),
                                round(0.0015 * vi, 4)))
        return out

    @staticmethod
    def figure(style: str, seed: int, bar: int, pulses: tuple[int, ...]) -> str:
        """The bar's comping figure (index 0 the main one; see `_FIGURES`) fitted to a bar of
        ``pulses`` (`BarInfo.beat_pulses`)."""
        figures = _FIGURES[style]
        pick = 0
        if style in _TWO_BAR:
            pick = bar % len(figures)
        elif bar % 2 == 1:
            pick = int(unit(seed, "chords", "figure", bar // 4) * len(figures))
        return fit_meter(figures[pick], pulses)

    def anticipates(self, info: BarInfo) -> bool:
        """Whether this bar ends by pushing the next bar's chord ('a' in the figure): only
        inside a phrase (the next bar's voicing chain then starts from this one) and when the
        chord changes at the next downbeat."""
        bpb = info.beats_per_bar
        return (info.bar % PHRASE_BARS == 1
                and info.chords[bpb] != info.chords[bpb - 1]
                and "a" in self.figure(info.style, info.seed, info.bar, info.beat_pulses))

    def anticipated(self, info: BarInfo) -> bool:
        """Whether the bar before pushed this bar's first chord (so its downbeat is tied; its
        figure fitted to this bar's pulses: the push on the last pulse is kept by any)."""
        return (info.bar % PHRASE_BARS == 2 and len(info.lookback) >= 1
                and info.lookback[-1] != info.chords[0]
                and "a" in self.figure(info.style, info.seed, info.bar - 1, info.beat_pulses))
