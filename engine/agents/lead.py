"""The lead (control side): a monophonic melody, C4..C6 (MIDI 60..84), built from seeded motifs
and developed in phrases.

Form. A motif is a one-bar *call* (rhythm + contour in scale steps) and a one-bar *answer*.
A 4-bar phrase plays call, answer, the call again a step higher (a sequence, the phrase's peak),
and a cadence (the answer, landing on the chord's root or third and held). Each 8-bar period
plays a statement phrase and then a development phrase (inverted call, fragmented call,
rhythmic displacement). Periods alternate between two motifs (A, B, A, B...), and a fresh pair
is drawn every 32 bars, so ideas return before they are replaced.

Pitch. Contours walk the *chord scale* of the chord in force at each note (chord tones plus safe
tensions, `engine.harmony.chord_scale`); the downbeat and the bar's last note lean on chord
tones; the register
follows an arc over the phrase and rises a little with intensity.

Intensity. Low intensity drops inner notes of the call and turns answers into single long notes;
high intensity adds a scale run in the space after the call, leading into the next bar.
"""

from __future__ import annotations

import random
from bisect import bisect_left
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

from engine.harmony import Chord, chord_scale
from engine.patterns.event import Note
from engine.patterns.rand import rng, unit

from .base import Agent, BarInfo

__all__ = ["LeadAgent", "Motif", "make_motif", "LEAD_LOW", "LEAD_HIGH"]

LEAD_LOW, LEAD_HIGH = 60, 84  # C4 .. C6

# one-beat rhythm cells (sixteenths)
_CELLS = {
    "straight": ("x.x.", "x...", "x.x.", "x..x", "..x.", "x.xx", "x..."),
    "syncopated": ("x..x", ".x.x", "x.xx", "..x.", "xx.x", "x.x.", ".x.."),
    "latin": ("x..x", "..x.", "x.x.", "x...", ".x.x"),
    # eighths only: the jazz groove swings their off-beats to the triplet
    "swing": ("x.x.", "x...", "..x.", "x.x.", "..x.", "x..."),
}
_STYLE_CELLS = {"rock": "straight", "house": "straight", "funk": "syncopated",
                "hiphop": "syncopated", "bossa": "latin", "breakbeat": "syncopated",
                "dnb": "syncopated", "jazz": "swing"}
_STEPS = (-2, -1, 0, 1, 2)  # scale steps: in a pentatonic scale a step of 2 is a 4th or so
_STEP_WEIGHTS = (1.5, 5.0, 1.0, 5.0, 1.5)
# register targets (MIDI) for the four bars of a phrase: call, answer, sequence (peak), cadence
_ARC = (69, 66, 71, 67)


@dataclass(frozen=True, slots=True)
class Motif:
    """Rhythms as ((step, length in steps), ...) within one bar; contours in scale steps."""

    call: tuple[tuple[int, int], ...]
    call_contour: tuple[int, ...]
    answer: tuple[tuple[int, int], ...]
    answer_contour: tuple[int, ...]


def _rhythm(r: random.Random, cells: tuple[str, ...], beats: int, first_beat: int,
            tail_steps: int) -> tuple[tuple[int, int], ...]:
    for _ in range(20):
        pattern = "".join(r.choice(cells) for _ in range(beats))
        onsets = [first_beat * 4 + k for k, ch in enumerate(pattern) if ch == "x"]
        if len(onsets) >= 3:
            break
    else:
        onsets = [first_beat * 4, first_beat * 4 + 2, first_beat * 4 + 4]
    out = []
    for k, s in enumerate(onsets):
        nxt = onsets[k + 1] if k + 1 < len(onsets) else (first_beat + beats) * 4 + tail_steps
        out.append((s, nxt - s))
    return tuple(out)


def _contour(r: random.Random, n: int, lo: int = -4, hi: int = 5) -> tuple[int, ...]:
    pos, out = 0, [0]
    for _ in range(n - 1):
        for _ in range(10):
            step = r.choices(_STEPS, _STEP_WEIGHTS)[0]
            if lo <= pos + step <= hi and (step != 0 or out[-1] != pos):
                break
        else:
            step = -1 if pos > 0 else 1
        pos += step
        out.append(pos)
    return tuple(out)


def make_motif(seed: int, key: int, style: str) -> Motif:
    """The motif numbered ``key`` for ``seed`` and ``style`` (pure)."""
    r = rng(seed, "lead", "motif", style, key)
    cells = _CELLS[_STYLE_CELLS[style]]
    call = _rhythm(r, cells, beats=r.choice((2, 3, 3)), first_beat=0, tail_steps=4)
    answer = _rhythm(r, cells, beats=2, first_beat=r.choice((0, 1)), tail_steps=6)
    call_contour = _contour(r, len(call))
    # answers tend to fall back: end at or below where they start
    ans = list(_contour(r, len(answer), lo=-5, hi=3))
    if ans[-1] > 0:
        ans = [-a for a in ans]
    return Motif(call, call_contour, answer, tuple(ans))


@lru_cache(maxsize=256)
def _scale_pitches(chord: Chord, key_scale: tuple[int, ...] = ()) -> tuple[int, ...]:
    """The lead's pitches over ``chord``: its chord scale, kept to the key's pitch classes when
    a key is known (the chord's own tones always stay)."""
    pcs = set(chord_scale(chord))
    if key_scale:
        inside = pcs & set(key_scale)
        # a chromatic chord's own tones outside the key are left to the chords (the lead stays
        # in the key) unless too little of its scale is left
        pcs = inside if len(inside) >= 4 else inside | set(chord.tones)
    return tuple(p for p in range(LEAD_LOW - 5, LEAD_HIGH + 6) if p % 12 in pcs)


def _nearest(pitches: tuple[int, ...], target: float) -> int:
    return min(pitches, key=lambda p: (abs(p - target), p))


def _chord_tones_near(chord: Chord, target: float, tones: tuple[int, ...] | None = None,
                      key_scale: tuple[int, ...] = ()) -> int:
    """The pitch of `tones` (default: the chord's) nearest `target`; with `key_scale`, the
    tones in the key if any (a chromatic tone of the player's chord is theirs to sound: an
    accompanist does not double it)."""
    pcs = tones if tones is not None else chord.tones
    if key_scale:
        pcs = tuple(p for p in pcs if p in key_scale) or pcs
    cands = tuple(p for p in range(LEAD_LOW, LEAD_HIGH + 1) if p % 12 in pcs)
    return _nearest(cands, target)


class LeadAgent(Agent):
    """``LeadAgent(seed, style=None)``: None follows ``ctx.seed`` / ``ctx.style``."""

    name = "lead"
    part = "lead"

    @staticmethod
    def motif_for(seed: int, bar: int, style: str) -> tuple[Motif, bool]:
        """(motif, is_development) for ``bar``."""
        period = bar // 8
        key = (period // 4) * 2 + period % 2  # A B A B, a fresh pair every 32 bars
        return make_motif(seed, key, style), (bar // 4) % 2 == 1

    def render(self, info: BarInfo) -> list[Note]:
        seed, bar, i = info.seed, info.bar, info.intensity
        style = info.style
        if "ending" in info.cues:
            c = info.chords[0]
            p = _chord_tones_near(c, 72, (c.root,))
            return [Note(info.start, 2 * info.beats, "lead", p, round(0.55 + 0.2 * i, 3))]
        if "build" in info.cues:
            return self._build(info)

        motif, develop = self.motif_for(seed, bar, style)
        role = bar % 4
        lift = round(5 * (i - 0.5)) + (2 if develop else 0)
        target = _ARC[role] + lift

        # (step, length in steps, contour degree, strong?)
        if role in (0, 2):
            rhythm, contour = motif.call, motif.call_contour
            if develop and role == 0:
                contour = tuple(-d for d in contour)  # inversion
            if develop and role == 2:
                head = rhythm[: max(2, len(rhythm) // 2)]
                span = head[-1][0] + head[-1][1] - head[0][0]
                shift = max(4, -(-span // 4) * 4)
                rhythm = head + tuple((s + shift, d) for s, d in head)  # fragment, repeated
                contour = contour[: len(head)] + tuple(c + 1 for c in contour[: len(head)])
        else:
            rhythm, contour = motif.answer, motif.answer_contour
            if develop and role == 1:
                rhythm = tuple((s + 2, d) for s, d in rhythm)  # displaced by an eighth
        steps_n = info.steps
        events = [(s, d, c) for (s, d), c in zip(rhythm, contour) if s < steps_n]

        # intensity (pushed by the density): thin at low intensity, answers become one long note
        busy = info.busy
        if busy < 0.4 and len(events) > 2:
            keep = [events[0]] + [e for k, e in enumerate(events[1:-1])
                                  if unit(seed, "lead", bar, "thin", k) < busy + 0.25] + \
                [events[-1]]
            events = keep
        if role in (1, 3) and busy < 0.3 and events:
            events = [events[-1]]

        if not events:  # e.g. an answer that starts after the end of a short bar
            return []
        chords_at = info.chord_at_step
        out: list[tuple[int, int, int]] = []  # (step, length, pitch)
        first_chord = chords_at(events[0][0])
        # keep the whole contour inside the range: move the anchor, not the notes
        scale0 = _scale_pitches(first_chord, info.scale)
        anchor = _nearest(scale0, _chord_tones_near(first_chord, target, key_scale=info.scale))
        i0 = scale0.index(anchor)
        degs = [deg for _, _, deg in events]
        lo_i = bisect_left(scale0, LEAD_LOW)
        hi_i = bisect_left(scale0, LEAD_HIGH + 1) - 1
        i0 = max(i0, lo_i - min(degs))
        i0 = min(i0, hi_i - max(degs))
        anchor = scale0[i0]
        for k, (s, d, deg) in enumerate(events):
            chord = chords_at(s)
            scale = _scale_pitches(chord, info.scale)
            a = _nearest(scale, anchor)
            idx = scale.index(a) + deg
            idx = max(0, min(len(scale) - 1, idx))
            p = scale[idx]
            last = k == len(events) - 1
            if last and role == 3:
                # cadence: land on the root or third
                tones = (chord.root,) if (chord.third is None or unit(seed, "lead", bar, "cad") < 0.6) \
                    else (chord.root, chord.third)
                p = _chord_tones_near(chord, p, tones, info.scale)
            elif s == 0 or last:
                # the downbeat and the bar's last note lean on a chord tone, unless that would
                # just repeat the note before (a repeated note stalls the line)
                near = _chord_tones_near(chord, p, key_scale=info.scale)
                if abs(near - p) <= 2 and (not out or near != out[-1][2]):
                    p = near
            p = max(LEAD_LOW, min(LEAD_HIGH, p))
            out.append((s, d, p))

        # high intensity: a scale run in the space after the call, into the next bar
        if role in (0, 2) and busy >= 0.7 and out:
            end = out[-1][0] + out[-1][1]
            run_from = min(steps_n - 4, ((out[-1][0] // 4) + 2) * 4)
            if run_from >= end - 2 and run_from < steps_n:
                out[-1] = (out[-1][0], max(1, min(out[-1][1], run_from - out[-1][0])), out[-1][2])
                step_len = 1 if style in ("funk", "breakbeat") and busy >= 0.85 else 2
                last_p = out[-1][2]
                direction = 1 if unit(seed, "lead", bar, "rundir") < 0.5 else -1
                if last_p >= 74:
                    direction = -1  # runs turn towards the middle of the range
                elif last_p <= 65:
                    direction = 1
                chord = chords_at(run_from)
                scale = _scale_pitches(chord, info.scale)
                idx = scale.index(_nearest(scale, out[-1][2]))
                for s in range(run_from, steps_n, step_len):
                    idx = max(0, min(len(scale) - 1, idx + direction))
                    p = max(LEAD_LOW, min(LEAD_HIGH, scale[idx]))
                    out.append((s, step_len, p))

        return self._notes(info, out, arc=role)

    def _build(self, info: BarInfo) -> list[Note]:
        chord = info.chords[0]
        scale = _scale_pitches(chord, info.scale)
        idx = scale.index(_nearest(scale, _chord_tones_near(chord, 64, key_scale=info.scale)))
        out = []
        for s in range(0, info.steps, 2):
            out.append((s, 2, scale[min(len(scale) - 1, idx + s // 2)]))
        return self._notes(info, out, arc=2)

    def _notes(self, info: BarInfo, events: list[tuple[int, int, int]], arc: int) -> list[Note]:
        seed, bar, i = info.seed, info.bar, info.intensity
        steps_n = info.steps
        events = sorted({s: (s, d, p) for s, d, p in events}.values())
        out = []
        for k, (s, d, p) in enumerate(events):
            nxt = events[k + 1][0] if k + 1 < len(events) else None
            # up to the next note (or the bar's end), less a short breath
            length = min(Fraction(d, 4), Fraction((nxt if nxt is not None else steps_n) - s, 4))
            length = max(Fraction(1, 16), length - Fraction(1, 16))
            base = 0.6 + 0.07 * (arc == 2) + 0.18 * i
            accent = 0.06 if s % 4 == 0 else (0.0 if s % 2 == 0 else -0.05)
            v = base + accent + (unit(seed, "lead-vel", bar, s) - 0.5) * 0.08
            nudge = round((unit(seed, "lead-nudge", bar, s) - 0.5) * 0.008, 4) + 0.0
            out.append(Note(info.at(s), length, "lead", p, round(min(1.0, max(0.05, v)), 3), nudge))
        return out
