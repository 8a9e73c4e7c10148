"""The arpeggiator (control side): held notes, or the harmony in force, played one step at a
time on the band's clock, like a hardware arpeggiator (Roland, Korg, Ableton's Arpeggiator).

Two uses, one `Arpeggiator`:

* ``/arp/input held``: the player's held notes (the keys part's notes of config ``[arp]
  channel``) are taken away from the instrument (`ARP_INPUT`: a part no instrument plays) and
  arpeggiated instead of sounding as held chords;
* ``/arp/input chords``: a band part arpeggiates the chord in force (the player's when they
  play one, else the band's progression: ``ctx.chord_at``); the player's notes sound as usual.

Its notes go through the band's scheduler (the session layers it over the band, `ArpLayer`), so
they are stamped on their samples exactly like the band's, swung by /band/swing, stopped by
/transport/playing, and an offline render plays what a live run plays.

Parameters (steering addresses, `ARP_PARAMS`; engine.agents.steer keeps them by beat):

    /arp/on             off | on
    /arp/input          held | chords
    /arp/part           the part it plays on: keys, bass, chords, lead
    /arp/mode           up, down, up_down, down_up (ends played once), up_down_ends,
                        down_up_ends (ends repeated), played (as played), random (seeded),
                        chord (the whole chord each step)
    /arp/rate           1/4 .. 1/32, dotted (d) and triplet (t): one step's length
    /arp/octaves        1..4: the pattern climbs that many octaves
    /arp/octave         -2..2: the whole arpeggio moved by octaves
    /arp/gate           0.01..1: each note's length, a share of its (swung) step
    /arp/latch          off | on: released notes keep playing until a new chord is played
    /arp/retrigger      off (the pattern runs on) | chord (restarts on a new chord) | bar
                        (restarts on every bar line, and so does the step grid)
    /arp/velocity_mode  played (each note's own velocity) | fixed (/arp/velocity)
    /arp/velocity       0..1

Rate and retrigger shape the grid and change from the next bar not yet scheduled; the others
from the next step not yet scheduled (engine.control.session). The step grid starts where the
rate came in force (a bar line; the session's start) and runs on across bars, so a dotted rate
keeps its cross-rhythm; with retrigger bar it restarts on every bar line.

Held notes. Every press and release is put in force from a beat the scheduler has not queried
(the horizon, as with the player's chords), kept as a timeline: the keys down and the latched
chord (the notes pressed since all keys were last up). A press with no key down starts a new
chord (latch: it replaces the latched one; retrigger chord: the pattern restarts). The index of
a step in its pattern is the count of grid steps since the pattern's start, so the notes are a
pure function of the beat: any chunking of queries gives the same notes.
"""
from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass
from fractions import Fraction
from heapq import merge
from typing import Any, Callable

from engine.harmony import Chord
from engine.meter import meter_of
from engine.parts import PARTS
from engine.patterns.event import Note, note_sort_key
from engine.patterns.rand import unit
from engine.rt.param import Param

__all__ = ["Arpeggiator", "ArpLayer", "ARP_PARAMS", "ARP_INPUT", "MODES", "RATES", "RATE_BEATS",
           "INPUTS", "RETRIGGERS", "ARP_PARTS", "VELOCITY_MODES", "ARP_AT_BAR", "sequence",
           "chord_notes", "CONFIG_KEYS"]

#: The part index of the player's notes the arpeggiator takes: past the band's parts, so no
#: instrument plays them (the engine ignores voice events of parts it does not have) while the
#: JACK callback still reports them to the control side.
ARP_INPUT = len(PARTS)

MODES = ("up", "down", "up_down", "down_up", "up_down_ends", "down_up_ends", "played",
         "random", "chord")
_Q = Fraction
#: rate name -> one step in beats (quarter notes); d dotted (x 3/2), t triplet (x 2/3)
RATE_BEATS = {"1/4": _Q(1), "1/4d": _Q(3, 2), "1/4t": _Q(2, 3),
              "1/8": _Q(1, 2), "1/8d": _Q(3, 4), "1/8t": _Q(1, 3),
              "1/16": _Q(1, 4), "1/16d": _Q(3, 8), "1/16t": _Q(1, 6),
              "1/32": _Q(1, 8), "1/32d": _Q(3, 16), "1/32t": _Q(1, 12)}
RATES = tuple(RATE_BEATS)
INPUTS = ("held", "chords")
RETRIGGERS = ("off", "chord", "bar")
VELOCITY_MODES = ("played", "fixed")
ARP_PARTS = ("keys", "bass", "chords", "lead")
ON_OFF = ("off", "on")
CHORD_BASE = 60          # the chords input voices the chord's root in C4..B4 (before /arp/octave)
CHORD_SCAN_BEATS = 64    # how far back the chords input looks for the chord's start


def _choice(name, choices, default, doc):
    return Param(name, 0, len(choices) - 1, choices.index(default), curve="choice",
                 choices=choices, smooth_s=0.0, doc=doc)


#: every /arp/ address and its Param (engine.agents.steer adds them to the steering map)
ARP_PARAMS: dict[str, Param] = {
    "/arp/on": _choice("on", ON_OFF, "off", "the arpeggiator plays"),
    "/arp/input": _choice("input", INPUTS, "held",
                          "held: the player's held notes; chords: the harmony in force"),
    "/arp/part": _choice("part", ARP_PARTS, "keys", "the part the arpeggio plays on"),
    "/arp/mode": _choice("mode", MODES, "up", "the order the notes are played in"),
    "/arp/rate": _choice("rate", RATES, "1/16", "one step (d dotted, t triplet), from the "
                         "next bar"),
    "/arp/octaves": Param("octaves", 1.0, 4.0, 1.0, smooth_s=0.0,
                          doc="octaves the pattern climbs"),
    "/arp/octave": Param("octave", -2.0, 2.0, 0.0, smooth_s=0.0,
                         doc="the arpeggio moved by whole octaves"),
    "/arp/gate": Param("gate", 0.01, 1.0, 0.5, smooth_s=0.0,
                       doc="note length, a share of the step"),
    "/arp/latch": _choice("latch", ON_OFF, "off",
                          "released notes play on until a new chord is played"),
    "/arp/retrigger": _choice("retrigger", RETRIGGERS, "chord",
                              "the pattern restarts: never, on a new chord, on every bar"),
    "/arp/velocity_mode": _choice("velocity_mode", VELOCITY_MODES, "played",
                                  "played: each note's own velocity; fixed: /arp/velocity"),
    "/arp/velocity": Param("velocity", 0.0, 1.0, 0.8, smooth_s=0.0,
                           doc="the velocity of every note when velocity_mode is fixed"),
}
#: addresses that shape the step grid: they change from the next bar, the others at once
ARP_AT_BAR = frozenset({"/arp/rate", "/arp/retrigger"})
#: config [arp] keys that are addresses (/arp/KEY); `channel` is the config's own
CONFIG_KEYS = tuple(a.rsplit("/", 1)[1] for a in ARP_PARAMS)

ON, INPUT, PART, MODE, RATE, OCTAVES, OCTAVE, GATE, LATCH, RETRIGGER, VEL_MODE, VELOCITY = \
    ARP_PARAMS


def sequence(mode: str, notes: list[int], octaves: int) -> list[int]:
    """One cycle of `mode` over `notes` (MIDI notes in the order they were played, no
    repeats) spread over `octaves` octaves; for random, the notes it draws from (up), and
    for chord, the chord (one step)."""
    up = [n + 12 * o for o in range(octaves) for n in sorted(notes)]
    if mode in ("up", "random", "chord"):
        return up
    if mode == "down":
        return up[::-1]
    if mode == "up_down":
        return up + up[-2:0:-1]
    if mode == "down_up":
        return up[::-1] + up[1:-1]
    if mode == "up_down_ends":
        return up + up[::-1]
    if mode == "down_up_ends":
        return up[::-1] + up
    if mode == "played":
        return [n + 12 * o for o in range(octaves) for n in notes]
    raise ValueError(f"unknown arpeggio mode {mode!r}; one of {', '.join(MODES)}")


def chord_notes(chord: Chord) -> list[int]:
    """The chord's tones in chord order, its root in C4..B4, each tone above the one before."""
    out = [CHORD_BASE + chord.root]
    for pc in chord.tones[1:]:
        n = out[-1] + 1
        while n % 12 != pc:
            n += 1
        out.append(n)
    return out


@dataclass(frozen=True, slots=True)
class _Held:
    """The arpeggiator's input from one beat on: keys down and the latched chord, each as
    (source, note, velocity) in the order pressed, and the beat its chord started."""
    down: tuple[tuple[int, int, float], ...] = ()
    latched: tuple[tuple[int, int, float], ...] = ()
    start: Fraction | None = None


_NOTHING = _Held()


class Arpeggiator:
    """See the module's docstring. `steer`: the steering map holding the /arp/ addresses (an
    engine.agents.steer.Steering); `swung`: the clock's swing (beat -> swung beat; None:
    straight), so a gate is a share of the step as it sounds; `keep_beats`: history kept."""

    def __init__(self, steer: Any, swung: Callable[[Fraction], Fraction] | None = None,
                 keep_beats: int = 256):
        self.steer = steer
        self.swung = swung
        self.keep_beats = keep_beats
        self._beats: list[Fraction] = []
        self._held: list[_Held] = []

    # ---- input: the player's keys (the session calls these on its own thread) ----------------
    @property
    def now(self) -> _Held:
        """The input as it stands after the last change."""
        return self._held[-1] if self._held else _NOTHING

    def holds(self, source: int, note: int) -> bool:
        """Whether key `note` of `source` is down in the arpeggiator's input."""
        return any(s == source and n == note for s, n, _ in self.now.down)

    def press(self, source: int, note: int, velocity: float, at: Fraction) -> None:
        """Key `note` of `source` went down; in force from beat `at` (not yet scheduled)."""
        cur = self.now
        key = (int(source), int(note), min(max(float(velocity), 0.0), 1.0))
        down = tuple(k for k in cur.down if k[:2] != key[:2])
        if down:
            latched = tuple(k for k in cur.latched if k[:2] != key[:2]) + (key,)
            start = cur.start
        else:                   # a new chord: it replaces the latched one
            latched, start = (key,), None
        self._put(_Held(down + (key,), latched, start), at, new_chord=not down)

    def lift(self, source: int, note: int, at: Fraction) -> None:
        """Key `note` of `source` came up (the latched chord keeps it)."""
        cur = self.now
        down = tuple(k for k in cur.down if k[:2] != (source, note))
        if down != cur.down:
            self._put(_Held(down, cur.latched, cur.start), at)

    def release(self, source: int | None, at: Fraction, latched: bool = True) -> None:
        """Every key of `source` (None: of every source) up; with `latched`, its notes leave
        the latched chord too (an unplugged keyboard, all notes off, a panic)."""
        cur = self.now
        keep = (lambda k: False) if source is None else (lambda k: k[0] != source)
        down = tuple(k for k in cur.down if keep(k))
        held = tuple(k for k in cur.latched if keep(k)) if latched else cur.latched
        if (down, held) != (cur.down, cur.latched):
            self._put(_Held(down, held, cur.start if held else None), at)

    def unlatch(self, at: Fraction) -> None:
        """Latch went off: the latched chord is what is down from `at` on (so turning latch on
        again does not bring an old chord back)."""
        cur = self.now
        if cur.latched != cur.down:
            self._put(_Held(cur.down, cur.down, cur.start if cur.down else None), at)

    def _put(self, held: _Held, at: Fraction, new_chord: bool = False) -> None:
        at = Fraction(at)
        if self._beats and at < self._beats[-1]:
            at = self._beats[-1]            # never before a change already made
        if new_chord:
            held = _Held(held.down, held.latched, at)
        if self._beats and self._beats[-1] == at:
            self._held[-1] = held
        else:
            self._beats.append(at)
            self._held.append(held)
        cut = bisect_right(self._beats, at - self.keep_beats) - 1
        if cut > 0:
            del self._beats[:cut], self._held[:cut]

    def held_at(self, beat: Fraction) -> _Held:
        i = bisect_right(self._beats, beat) - 1
        return self._held[i] if i >= 0 else _NOTHING

    # ---- output -------------------------------------------------------------------------------
    def query(self, begin: Fraction, end: Fraction, ctx: Any) -> list[Note]:
        """The arpeggio's notes with onsets in ``[begin, end)`` beats, sorted by (begin, part,
        note): a pure function of the steering, the input timeline and the context."""
        st = self.steer
        if end <= begin or (not st.changed(ON) and st.base[ON] < 0.5):
            return []
        meter = meter_of(ctx)
        out: list[Note] = []
        chords: dict[int, Chord] = {}
        bar = max(0, meter.bar_at(begin))
        while meter.bar_start(bar) < end:
            b0 = meter.bar_start(bar)
            b1 = b0 + meter.bar_length(bar)
            step = RATE_BEATS[RATES[int(st.at(RATE, b0))]]
            by_bar = RETRIGGERS[int(st.at(RETRIGGER, b0))] == "bar"
            origin = b0 if by_bar else self._since(RATE, b0)
            # the grid starts again at the next bar line: the last step ends there
            cut = RETRIGGERS[int(st.at(RETRIGGER, b1))] == "bar" or self._since(RATE, b1) == b1
            k = math.ceil((max(begin, b0) - origin) / step)
            s = origin + k * step
            stop = min(end, b1)
            while s < stop:
                length = min(step, b1 - s) if cut else step
                self._step(s, length, origin, step, k, ctx, chords, out)
                k += 1
                s = origin + k * step
            bar += 1
        out.sort(key=note_sort_key)
        return out

    def _since(self, address: str, beat: Fraction) -> Fraction:
        """The beat from which the value of `address` in force at `beat` has been in force."""
        return self.steer.since(address, beat)

    def _step(self, s: Fraction, length: Fraction, origin: Fraction, step: Fraction, k: int,
              ctx: Any, chords: dict, out: list[Note]) -> None:
        st = self.steer
        if st.at(ON, s) < 0.5:
            return
        if INPUTS[int(st.at(INPUT, s))] == "held":
            held = self.held_at(s)
            keys = held.latched if st.at(LATCH, s) >= 0.5 else held.down
            played: dict[int, float] = {}
            for _, n, v in keys:
                played.setdefault(n, v)
            start = held.start
        else:
            chord = self._chord(ctx, s, chords)
            v = round(0.45 + 0.4 * min(1.0, max(0.0, float(ctx.intensity_at(s)))), 3)
            played = {n: v for n in chord_notes(chord)}
            start = self._chord_start(ctx, s, chord, chords)
        if not played:
            return
        anchor = origin
        if RETRIGGERS[int(st.at(RETRIGGER, s))] == "chord" and start is not None \
                and start > origin:
            anchor = start
        index = k - math.ceil((anchor - origin) / step)
        mode = MODES[int(st.at(MODE, s))]
        octaves = int(st.at(OCTAVES, s))
        cycle = sequence(mode, list(played), octaves)
        if mode == "chord":
            shift = 12 * (index % octaves)
            pitches = [n + shift for n in cycle[:len(played)]]
        elif mode == "random":
            pitches = [cycle[int(unit(int(ctx.seed), "arp", s.numerator, s.denominator)
                                 * len(cycle))]]
        else:
            pitches = [cycle[index % len(cycle)]]
        fixed = VELOCITY_MODES[int(st.at(VEL_MODE, s))] == "fixed"
        velocity = st.at(VELOCITY, s)
        part = ARP_PARTS[int(st.at(PART, s))]
        span = length
        if self.swung is not None:
            span = max(self.swung(s + length) - self.swung(s), length / 4)
        dur = Fraction(round(st.at(GATE, s) * 1000), 1000) * span
        octave = 12 * int(st.at(OCTAVE, s))
        for p in pitches:
            n = p + octave
            if 0 <= n <= 127:
                out.append(Note(s, dur, part, n, self._velocity(played, p, fixed, velocity)))

    @staticmethod
    def _velocity(played: dict[int, float], pitch: int, fixed: bool, velocity: float) -> float:
        if fixed:
            return float(velocity)
        while pitch not in played:      # an octave copy: the velocity of the note it copies
            pitch -= 12
        return played[pitch]

    @staticmethod
    def _chord(ctx: Any, beat: Fraction, memo: dict) -> Chord:
        key = beat if beat.denominator != 1 else int(beat)
        chord = memo.get(key)
        if chord is None:
            chord = memo[key] = ctx.chord_at(Fraction(beat))
        return chord

    def _chord_start(self, ctx: Any, s: Fraction, chord: Chord, memo: dict) -> Fraction | None:
        """The beat the chord in force at `s` came in (harmony changes on beats); None when it
        has been in force for longer than CHORD_SCAN_BEATS (the pattern then runs on)."""
        b = math.floor(s)
        if Fraction(b) != s and self._chord(ctx, Fraction(b), memo) != chord:
            return s
        for _ in range(CHORD_SCAN_BEATS):
            if b <= 0:
                return Fraction(0)
            if self._chord(ctx, Fraction(b - 1), memo) != chord:
                return Fraction(b)
            b -= 1
        return None


class ArpLayer:
    """The band with the arpeggiator over it, as the scheduler queries them (one sorted list)."""

    def __init__(self, band: Any, arp: Arpeggiator):
        self.band = band
        self.arp = arp

    def query(self, begin: Fraction, end: Fraction, ctx: Any) -> list[Note]:
        notes = self.band.query(begin, end, ctx)
        arp = self.arp.query(begin, end, ctx)
        if not arp:
            return notes
        return list(merge(notes, arp, key=note_sort_key))
