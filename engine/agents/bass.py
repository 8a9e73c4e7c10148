"""The bass player (control side): roots, fifths, octaves and sevenths of the chord in force
(``ctx.chord_at``), with an approach note (chromatic from below or above, a scale step, or the
fifth below) on the last eighth (sixteenth in funk and breakbeat) before every chord change,
played legato into the new root. Register E1..G3 (MIDI 28..55); roots sit in E1..D#2.

Jazz walks (`BassAgent.walk`): a quarter note on every beat, the chord's root where it
starts, chord tones on the other strong beats, passing tones between, and a step (a semitone
or a whole tone, in the key when one is known) into every coming root; a two-feel (half notes)
at low energy. 'dnb' holds long sub roots with a syncopated move on the kick's "and" of 3.

Rhythm by style: 'rock' plays eighths locked to the kick (kick steps always, the others as
intensity rises); 'house' plays the kick's quarters with offbeat octaves; 'funk' plays
syncopated sixteenth figures; 'hiphop', 'bossa' and 'breakbeat' have their own figures.
Notes leave small gaps (a 32nd or a 16th) except approach notes, which tie into the
change.

In a band, give the bass the drummer's seed so it locks to the same kick variations.
"""

from __future__ import annotations

from fractions import Fraction

from engine.harmony import Chord, chord_scale
from engine.patterns.event import Note
from engine.patterns.rand import unit

from .base import Agent, BarInfo
from .drums import feel_pattern, fit_meter, kick_steps

__all__ = ["BassAgent", "BASS_LOW", "BASS_HIGH", "root_pitch"]

BASS_LOW, BASS_HIGH = 28, 55  # E1 .. G3

# Figures, one character per sixteenth (4/4). Always played: R root, 5 fifth, 8 octave,
# 7 seventh (octave if the chord has none), 3 third (fifth if none). Played as intensity rises:
# r root, o octave, f fifth. '.' rest. The first figure is the main one; odd bars of a 4-bar
# phrase use one of the others.
_FIGURES: dict[str, tuple[str, ...]] = {
    "funk": ("R..R..8.5..7R.8.", "R.8..R.R..5.7..8", "R..5.8..R..7.58."),
    "hiphop": ("R......fR.r.....", "R.....R...R..5..", "R..r....R.r....."),
    "bossa": ("R.....5.5.....r.", "R.....5.5.....8."),
    "breakbeat": ("R.r.......R8..5.", "R.R...r...R8....", "R.r.......R..7.."),
    # sub-bass: a long root, then a syncopated move on the kick's "and" of 3
    "dnb": ("R.........R.....", "R.........8..5..", "R......r..R...o."),
    # jazz walks (`BassAgent.walk`); this is only its rhythm, a note on every beat
    "jazz": ("R...R...R...R...",),
}
# (gap before the next onset, longest note), beats: a note lasts min(longest, time to the next
# onset - gap), and at least a 64th
_SHAPE = {
    "rock": (Fraction(1, 8), Fraction(1)),
    "house": (Fraction(1, 8), Fraction(3, 8)),
    "funk": (Fraction(1, 8), Fraction(1, 2)),
    "hiphop": (Fraction(1, 16), Fraction(2)),
    "bossa": (Fraction(1, 16), Fraction(3, 2)),
    "breakbeat": (Fraction(1, 8), Fraction(3, 4)),
    "dnb": (Fraction(1, 16), Fraction(3)),
    "jazz": (Fraction(1, 16), Fraction(1)),
}
_APPROACH_16TH = {"funk", "breakbeat"}


def root_pitch(pc: int) -> int:
    """The bass's home octave for a root pitch class: E1 (28) .. D#2 (39)."""
    return BASS_LOW + (pc - BASS_LOW) % 12


def _fold(p: int) -> int:
    while p < BASS_LOW:
        p += 12
    while p > BASS_HIGH:
        p -= 12
    return p


def _role_pitch(role: str, chord: Chord, low: int | None = None) -> int:
    """The pitch of a figure's role; ``low`` (a slash chord's bass) replaces the root for the
    root and octave roles."""
    r = root_pitch(chord.root)
    if role in "Rr":
        return r if low is None else root_pitch(low)
    if role in "8o":
        return (r if low is None else root_pitch(low)) + 12
    if role in "5f":
        return r + (chord.fifth - chord.root) % 12
    if role == "7":
        return r + ((chord.tones[3] - chord.root) % 12 if len(chord.tones) > 3 else 12)
    if role == "3":
        t = chord.third
        return r + ((t - chord.root) % 12 if t is not None else (chord.fifth - chord.root) % 12)
    raise ValueError(f"unknown bass role {role!r}")


class BassAgent(Agent):
    """``BassAgent(seed, style=None)``: None follows ``ctx.seed`` / ``ctx.style``."""

    name = "bass"
    part = "bass"

    def figure(self, info: BarInfo) -> str:
        """The bar's rhythm/role figure (before approach notes), fitted to the meter; in half
        or double time (/band/feel) the 4/4 figure in that feel, as the drums play it."""
        if info.feel == "normal":
            return self._figure(info.style, info.bar, info.seed, info.beat_pulses)
        return fit_meter(feel_pattern(self._figure(info.style, info.bar, info.seed,
                                                   (4, 4, 4, 4)), info.feel), info.beat_pulses)

    def _figure(self, style: str, bar: int, seed: int, pulses: tuple[int, ...]) -> str:
        n = sum(pulses)
        if style in ("rock", "house"):
            kicks = set(kick_steps(style, bar, pulses, seed))
            fig = []
            for s in range(n):
                if s in kicks:
                    fig.append("R")
                elif style == "rock" and s % 2 == 0:
                    fig.append("r")
                elif style == "house" and s % 4 == 2:
                    fig.append("o")
                else:
                    fig.append(".")
            fig[0] = "R"
            return "".join(fig)
        figures = _FIGURES[style]
        pick = 0
        if bar % 2 == 1:
            pick = int(unit(seed, "bass", "figure", bar // 4) * len(figures))
        return fit_meter(figures[pick], pulses)

    def render(self, info: BarInfo) -> list[Note]:
        seed, bar, i, n = info.seed, info.bar, info.intensity, info.steps
        level = 0.74 + 0.28 * i

        if "ending" in info.cues:
            c = info.chords[0]
            return [Note(info.start, info.beats, "bass",
                         root_pitch(c.root), round(min(1.0, 0.9 * level + 0.1), 3))]
        if info.style == "jazz" and "build" not in info.cues:
            return self.walk(info)

        # onsets: step -> role
        if "build" in info.cues:
            onsets = {s: "R" for s in range(0, n, 2)}
        else:
            fig = self.figure(info)
            # optional notes only from intensity 0.35 up (below it the bass is locked notes only)
            busy = info.busy          # intensity pushed by the agent's density
            p_opt = 0.0 if busy < 0.35 else min(0.95, 0.2 + 1.4 * (busy - 0.35))
            onsets = {}
            for s, ch in enumerate(fig):
                if ch == ".":
                    continue
                if ch in "rof" and unit(seed, "bass", bar, "opt", s) >= p_opt:
                    continue
                onsets[s] = ch

        # every chord change inside the bar starts with its root
        changes = [j for j in range(1, info.beats_per_bar + 1) if info.chords[j] != info.chords[j - 1]]
        for j in changes:
            if j < info.beats_per_bar:
                onsets[4 * j] = "R"
        onsets.setdefault(0, "R")

        # approach notes into each change (the next bar's downbeat included)
        approach_gap = 1 if info.style in _APPROACH_16TH else 2
        approaches: dict[int, int] = {}  # step -> pitch
        p_app = 0.6 + 0.4 * i
        # a chord on every beat (a chorale read from its score) leaves no room for approaches
        for j in (changes if len(changes) < 3 else ()):
            at = 4 * j if j < info.beats_per_bar else n      # the next downbeat: the bar's end
            step = at - approach_gap
            if step <= 0 or "build" in info.cues:
                continue
            if unit(seed, "bass", bar, "app?", j) >= p_app:
                continue
            for s in [s for s in onsets if step <= s < at]:
                del onsets[s]
            approaches[step] = self._approach(seed, info.chords[j - 1], info.chords[j], bar, j,
                                              info.scale)

        gap, max_dur = _SHAPE[info.style]
        times = sorted(set(onsets) | set(approaches))
        out = []
        for k, s in enumerate(times):
            nxt = times[k + 1] if k + 1 < len(times) else n
            span = Fraction(nxt - s, 4)
            chord = info.chord_at_step(s)
            if s in approaches:
                pitch, dur, v = approaches[s], span, 0.7
            else:
                role = onsets[s]
                low = info.bass_at_step(s) if info.basses else None
                if low is not None and info.scale and low not in info.scale:
                    low = None    # a chromatic slash bass is the player's: the root instead
                pitch = _fold(_role_pitch(role, chord, low))
                if info.scale and pitch % 12 not in info.scale and role not in "Rr8o":
                    pitch = _fold(_role_pitch("R", chord, low))  # a chromatic fifth or 7th

                dur = max(Fraction(1, 16), min(max_dur, span - gap))
                strong = role.isupper() or role in "5873"
                v = 0.86 if s % 4 == 0 else (0.76 if strong else 0.64)
                if "build" in info.cues:
                    v = 0.5 + 0.45 * s / n
            v = v * level + (unit(seed, "bass-vel", bar, s) - 0.5) * 0.08
            nudge = round((unit(seed, "bass-nudge", bar, s) - 0.5) * 0.005, 4) + 0.0
            out.append(Note(info.at(s), dur, "bass", pitch, round(min(1.0, max(0.05, v)), 3), nudge))
        return out

    def walk(self, info: BarInfo) -> list[Note]:
        """The jazz walking bass (see `_walk_pitches`); a two-feel below intensity 0.3 in
        4/4."""
        seed, bar = info.seed, info.bar
        level = 0.74 + 0.28 * info.intensity
        if info.busy < 0.3 and info.beats == 4:
            line = _walk_two_feel(info)
        else:
            line = list(enumerate(_walk_pitches(info)))
        out = []
        for k, (j, p) in enumerate(line):
            nxt = line[k + 1][0] if k + 1 < len(line) else info.beats
            dur = Fraction(nxt - j) - Fraction(1, 16)
            v = (0.8 if j == 0 else 0.74) * level \
                + (unit(seed, "bass-vel", bar, 4 * j) - 0.5) * 0.06
            nudge = round((unit(seed, "bass-nudge", bar, 4 * j) - 0.5) * 0.004, 4) + 0.0
            out.append(Note(info.start + j, dur, "bass", p, round(min(1.0, max(0.05, v)), 3),
                            nudge))
        return out

    def _approach(self, seed: int, cur: Chord, nxt: Chord, bar: int, j: int,
                  scale: tuple[int, ...] = ()) -> int:
        """A note a step (or a fourth) from the next root, leading into it; with a key's
        ``scale`` known, the nearest step of the key instead of a chromatic one."""
        target = root_pitch(nxt.root)
        kind = unit(seed, "bass", bar, "app", j)
        if kind < 0.35:
            p = target - 1  # chromatic from below
        elif kind < 0.55:
            p = target + 1  # chromatic from above
        elif kind < 0.85:
            # the nearest scale tone of the current chord below the target (a diatonic step)
            scale = chord_scale(cur)
            p = target - 1
            while p % 12 not in scale and p > target - 4:
                p -= 1
            if p % 12 not in scale:
                p = target - 1
        else:
            p = target - 5  # the next chord's fifth, below (a dominant approach)
        if scale and p % 12 not in scale:
            direction = -1 if p < target else 1
            for step in (1, 2):
                if (p - direction * step) % 12 in scale and p - direction * step != target:
                    p -= direction * step
                    break
                if (p + direction * step) % 12 in scale and p + direction * step != target:
                    p += direction * step
                    break
        if p < BASS_LOW:
            p = target + 1 if target + 1 <= BASS_HIGH else p + 12
        return _fold(p)


# -- jazz: the walking bass --------------------------------------------------------------------
WALK_TOP = 52  # E3: the walking line stays below it (the comping sits above)


def walk_target(seed: int, bar: int, pc: int) -> int:
    """The pitch a walking line lands on at ``bar``'s downbeat (root or slash bass ``pc``):
    within G1..F#2 or Bb1..A2 (seeded per bar), so the roots of neighbouring bars lie close
    and the line walks between them. The bar before computes the same pitch to lead into it."""
    low = 31 + (3 if unit(seed, "bass", "walk-oct", bar) < 0.5 else 0)
    return low + (pc - low) % 12


def _nearest_pc(pc: int, to: int, avoid: int | None = None) -> int:
    """The pitch of class ``pc`` nearest ``to`` within the walking range (not ``avoid``)."""
    cands = [p for p in range(BASS_LOW, WALK_TOP + 1) if p % 12 == pc and p != avoid]
    return min(cands, key=lambda p: (abs(p - to), p))


def _approach_walk(seed: int, bar: int, j: int, target: int, chord: Chord,
                   key: tuple[int, ...], avoid: int) -> int:
    """A note a semitone or a whole tone from ``target`` (above or below), leading into it:
    in the key when one is known (else chromatic or the chord's scale), never ``avoid``."""
    order = [-1, 1, -2, 2]
    k = int(unit(seed, "bass", "walk-app", bar, j) * 4)
    order = order[k:] + order[:k]
    scale = set(key) if key else set(chord_scale(chord))
    ok = [target + d for d in order if BASS_LOW <= target + d <= BASS_HIGH
          and target + d != avoid]
    fitting = [p for p in ok if (not key and abs(p - target) == 1) or p % 12 in scale]
    return (fitting or ok)[0]


def _walk_pitches(info: BarInfo) -> list[int]:
    """One pitch per beat: each chord's root (or slash bass) where it starts, chord tones on
    the other strong beats, passing tones between, and the beat before every change (the next
    bar's downbeat included) a step from the coming root. No note repeats the one before."""
    seed, bar, bpb = info.seed, info.bar, info.beats_per_bar
    key = info.scale
    starts = [0] + [j for j in range(1, bpb) if info.chords[j] != info.chords[j - 1]]
    pitches: list[int] = []
    for si, a in enumerate(starts):
        b = starts[si + 1] if si + 1 < len(starts) else bpb
        chord = info.chords[a]
        low = info.bass_at_step(4 * a)
        if a == 0:
            first = walk_target(seed, bar, low)
        else:
            first = _nearest_pc(low, pitches[starts[si - 1]], avoid=pitches[-1])
            if first == pitches[-1]:
                first = _nearest_pc(chord.third if chord.third is not None else chord.fifth,
                                    pitches[-1], avoid=pitches[-1])
        pitches.append(first)
        if b - a == 1:
            continue
        if b == bpb:
            nb = info.basses[-1] if info.basses and info.basses[-1] is not None \
                else info.next_chord.root
            target = walk_target(seed, bar + 1, nb)
        else:
            nb = info.bass_at_step(4 * b)
            target = _nearest_pc(nb, first)
        middle = list(range(a + 1, b - 1))
        last = pitches[-1]
        app = _approach_walk(seed, bar, b, target, chord,
                             key, avoid=last if not middle else -1)
        tones = set(chord.tones)
        passing = set(key) | tones if key else set(chord_scale(chord))
        for n_k, k in enumerate(middle):
            nxt_fixed = app if k == b - 2 else None
            # the line heads from where it is towards the approach note
            left = (b - 1) - k
            ideal = last + (app - last) / (left + 1) * 1.0
            pool = tones if k % 2 == 0 else passing
            cands = [p for p in range(BASS_LOW, WALK_TOP + 1)
                     if p % 12 in pool and p != last and p != nxt_fixed and abs(p - last) <= 7
                     and abs(p - app) <= 2 + 5 * left]
            if not cands:
                cands = [p for p in range(BASS_LOW, WALK_TOP + 1)
                         if p % 12 in tones and p != last and p != nxt_fixed]
            cands.sort(key=lambda p: (abs(p - ideal), p))
            pick = cands[1] if len(cands) > 1 and unit(seed, "bass", "walk", bar, k) < 0.3 \
                else cands[0]
            pitches.append(pick)
            last = pick
        if app == last:   # (only when the middle ended on it: step away by the other side)
            app = _approach_walk(seed, bar, b + 100, target, chord, key, avoid=last)
        pitches.append(app)
    return pitches


def _walk_two_feel(info: BarInfo) -> list[tuple[int, int]]:
    """Low energy: half notes, (beat, pitch): the root, then a chord tone on beat 3 (the
    new root where the chord changes there)."""
    seed, bar = info.seed, info.bar
    first = walk_target(seed, bar, info.bass_at_step(0))
    c2 = info.chords[2]
    if c2 != info.chords[1]:
        second = _nearest_pc(info.bass_at_step(8), first, avoid=first)
    else:
        second = _nearest_pc(c2.fifth, first, avoid=first)
    return [(0, first), (2, second)]
