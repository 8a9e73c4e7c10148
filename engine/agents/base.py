"""What every generative agent shares (control side): the `Context` it is queried with, the
per-bar `BarInfo` snapshot of that context, and the `Agent` base class.

How an agent stays pure and cheap:

* ``agent.query(begin, end, ctx)`` renders whole bars through a `BarPattern` and returns the
  notes with onsets in ``[begin, end)``.
* A bar is rendered from a `BarInfo` only: the agent's seed, the bar index, the meter (the
  bar's start, length and pulses, from the context's `engine.meter.Meter`: a score's meter
  changes give bars of 3/4, 6/8, 5/4... on the file's bar lines), the style, the intensity
  at the bar's downbeat (quantised to 0.05), the chord in force on each beat
  (and the next downbeat, for approach notes), and the cues. `BarInfo` is hashable and is the
  cache key, so a rendered bar is reused until something it depends on changes (e.g. the player
  puts down a new chord that takes effect inside that bar) and then re-rendered.
* Steering (`engine.agents.steer`, the context's optional ``steer``): the style, energy and
  key of the band and each agent's on/off, density and octave in force at the bar's downbeat
  are in the `BarInfo` too, so a change re-renders the bars from the beat it is put in force.
* Groove: the style's micro-timing and accent template (`engine.agents.groove`, amount
  /band/groove) is applied to every agent's bar in `_render_bar`, after `render`.
* Randomness comes from `engine.patterns.rand` keyed by (seed, agent name, bar, ...), never from
  a generator carried between queries.

The harmonic resolution is one beat: a chord change that takes effect between beats is heard
from the next beat on (the conductor's `LiveHarmony` quantises changes to beats anyway).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any, Protocol, runtime_checkable

from engine.harmony import DEFAULT_PROGRESSION, Chord, LiveHarmony, Progression
from engine.meter import Meter, meter_of
from engine.parts import PARTS
from engine.patterns.event import Note
from engine.patterns.pattern import BarPattern

from .groove import apply_groove

__all__ = [
    "STYLES",
    "STYLE_TEMPO_BPM",
    "CUES",
    "Context",
    "StaticContext",
    "LiveContext",
    "BarInfo",
    "Agent",
    "cues_at",
    "quantise_intensity",
    "energise",
]

STYLES = ("rock", "house", "funk", "hiphop", "bossa", "breakbeat", "dnb", "jazz")
#: A tempo each style sounds right at (the conductor or the demo may use it).
STYLE_TEMPO_BPM = {"rock": 120, "house": 122, "funk": 104, "hiphop": 90, "bossa": 128,
                   "breakbeat": 132, "dnb": 174, "jazz": 140}

#: Performance cues a context may give for a bar (``ctx.cues_at(bar)``, optional):
#:   'fill'   drum fill over the last two beats (the phrase rules add fills on their own too)
#:   'build'  a whole-bar snare build-up; bass pedals eighths on the root
#:   'crash'  a crash (open hat + kick) on the downbeat
#:   'ending' the final chord: one hit on the downbeat, left to ring
CUES = frozenset({"fill", "build", "crash", "ending"})
_NO_CUES: frozenset[str] = frozenset()
MEMORY = "/band/memory"   # the steering address of the progression memory (engine.agents.steer)


@runtime_checkable
class Context(Protocol):
    """What agents read at query time (the conductor implements it; see `LiveContext`).

    ``seed``: the session's seed. ``beats_per_bar``: the meter's numerator (quarter-note beats per
    bar); optionally ``meter``, an `engine.meter.Meter` (None or absent: the constant meter of
    ``beats_per_bar``), which then numbers the bars. ``style``: one of `STYLES`.
    ``chord_at(beat)``: the harmony in force at that beat.
    ``intensity_at(beat)``: 0..1, how busy and loud the band plays.

    Optionally ``cues_at(bar) -> frozenset[str]`` (see `CUES`); a context without it has none.
    All must be pure for times already queried: the answer for a beat must not change once the
    scheduler has queried past it.
    """

    seed: int
    beats_per_bar: int
    style: str

    def chord_at(self, beat: Fraction) -> Chord: ...

    def intensity_at(self, beat: Fraction) -> float: ...


def cues_at(ctx: Any, bar: int) -> frozenset[str]:
    f = getattr(ctx, "cues_at", None)
    return frozenset(f(bar)) if f is not None else _NO_CUES


def energise(intensity: float, amount: float) -> float:
    """`intensity` (0..1) pushed by `amount` (0..1): 0.5 leaves it as it is, 1 makes it 1, 0
    makes it 0, linearly in between (the shape of /band/energy and /PART/agent/density)."""
    if amount == 0.5:
        return intensity
    if amount > 0.5:
        return intensity + (1.0 - intensity) * (2.0 * amount - 1.0)
    return intensity * 2.0 * amount


def _progression_chord(progression: Progression, beat: Fraction, meter: Meter,
                       steer: Any) -> Chord:
    """The progression's chord at `beat` (a chord a bar of `meter`), in the key /band/key
    has in force then."""
    chord = progression.chord_at(meter.bar_at(beat))
    if steer is None:
        return chord
    shift = steer.key_shift(beat, progression.chords[0].root)
    return chord if shift == 0 else Chord((chord.root + shift) % 12, chord.quality)


def quantise_intensity(x: float) -> float:
    """Intensity clamped to 0..1 and rounded to 0.05 (so small wobbles do not re-render)."""
    return round(min(1.0, max(0.0, float(x))) * 20) / 20


@dataclass
class StaticContext:
    """A context for tests and offline rendering: a fixed ``chord`` if given, else the
    ``progression``; ``intensity`` a number or a function of the bar index; ``cues`` by bar."""

    seed: int = 0
    beats_per_bar: int = 4
    style: str = "rock"
    progression: Progression = DEFAULT_PROGRESSION
    chord: Chord | None = None
    intensity: float | Callable[[int], float] = 0.7
    cues: Mapping[int, frozenset[str] | set[str] | str] = field(default_factory=dict)
    steer: Any = None   # an engine.agents.steer.Steering, or None
    meter: Meter | None = None   # None: the constant meter of beats_per_bar

    def chord_at(self, beat: Fraction) -> Chord:
        if self.chord is not None:
            return self.chord
        return _progression_chord(self.progression, beat, meter_of(self), self.steer)

    def intensity_at(self, beat: Fraction) -> float:
        if callable(self.intensity):
            return float(self.intensity(meter_of(self).bar_at(beat)))
        return float(self.intensity)

    def cues_at(self, bar: int) -> frozenset[str]:
        c = self.cues.get(bar)
        if c is None:
            return _NO_CUES
        return frozenset({c}) if isinstance(c, str) else frozenset(c)


@dataclass
class LiveContext:
    """The context a conductor keeps for live play.

    * ``harmony``: a `LiveHarmony`; feed it with ``harmony.update(held_notes, horizon)`` on every
      note-on/off of the player's chord hand and ``harmony.release(horizon)`` when all keys are
      up, where ``horizon`` is the end (beats) of the last window the scheduler has queried.
    * ``intensity``: set it from the player's playing (e.g. smoothed velocity and note density);
      it is read at each bar's downbeat when the bar is rendered.
    * ``cue(bar, name)``: ask for a fill/build/crash/ending in a bar not yet queried.
    """

    seed: int = 0
    beats_per_bar: int = 4
    style: str = "rock"
    harmony: LiveHarmony = field(default_factory=LiveHarmony)
    intensity: float = 0.6
    cues: dict[int, frozenset[str]] = field(default_factory=dict)
    steer: Any = None   # an engine.agents.steer.Steering, or None
    key: Any = None     # an engine.listen.key.Key the band keeps its own notes in, or None
    keys: tuple = ()    # (beat, Key) changes of key known ahead (a score); before them, `key`
    answer: Any = None  # an engine.agents.answer.CallResponse (call and response), or None
    memory: Any = None  # an engine.listen.progression.ProgressionMemory (/band/memory), or None
    meter: Meter | None = None   # None: the constant meter of beats_per_bar (a score's map)

    def __post_init__(self) -> None:
        if self.harmony.beats_per_bar != self.beats_per_bar:
            raise ValueError("harmony.beats_per_bar must equal beats_per_bar")

    def chord_at(self, beat: Fraction) -> Chord:
        """The loop the progression memory has learned, where it is locked and /band/memory
        is on (the next change anticipated); else the player's chord in force; else the
        progression's (in the steered key)."""
        if self.memory is not None and (self.steer is None
                                        or self.steer.at(MEMORY, beat) >= 0.5):
            loop = self.memory.loop_at(beat)
            if loop is not None:
                return loop.chord_at(beat)
        chord = self.harmony.player_chord_at(beat)
        if chord is not None:
            return chord
        chord = _progression_chord(self.harmony.progression, beat, meter_of(self), self.steer)
        key = self.key_at(beat) if self.keys else None
        if key is None or (self.steer is not None and self.steer.changed("/band/key")):
            return chord
        # a key heard from the player (and no /band/key asked for): the progression moves to
        # it, a minor progression to the heard minor key or the relative minor of a major one
        first = self.harmony.progression.chords[0]
        tonic = key.tonic if (key.mode == "minor") == first.is_minor else \
            (key.tonic + (9 if first.is_minor else 3)) % 12
        shift = (tonic - first.root) % 12
        return chord if shift == 0 else Chord((chord.root + shift) % 12, chord.quality)

    def intensity_at(self, beat: Fraction) -> float:
        return self.intensity

    def key_at(self, beat: Fraction):
        """The key the band keeps to (None: the chords' own scales only)."""
        if self.keys:
            i = bisect_right(self.keys, beat, key=lambda k: k[0]) - 1
            if i >= 0:
                return self.keys[i][1]
        return self.key

    def cues_at(self, bar: int) -> frozenset[str]:
        return self.cues.get(bar, _NO_CUES)

    def cue(self, bar: int, name: str) -> None:
        if name not in CUES:
            raise ValueError(f"unknown cue {name!r}; one of {sorted(CUES)}")
        self.cues[bar] = self.cues.get(bar, _NO_CUES) | {name}
        for old in [b for b in self.cues if b < bar - 16]:
            del self.cues[old]


@dataclass(frozen=True, slots=True)
class BarInfo:
    """Everything a bar's rendering may depend on (hashable: it is the bar's cache key)."""

    seed: int
    bar: int
    beats_per_bar: int
    style: str
    intensity: float
    chords: tuple[Chord, ...]  # chord on each beat of the bar, then on the next bar's downbeat
    cues: frozenset[str] = _NO_CUES
    prev_cues: frozenset[str] = _NO_CUES
    lookback: tuple[Chord, ...] = ()  # agent-specific: chords on earlier beats (chord agent)
    on: bool = True          # steering (engine.agents.steer): the agent plays this bar
    density: float = 0.5     # 0.5: as the style has it; 0 fewest notes, 1 most
    octave: int = 0          # register shift, whole octaves
    basses: tuple[int | None, ...] = ()   # each chord's slash bass (empty: all in root position)
    scale: tuple[int, ...] = ()  # the key's pitch classes (empty: no key known)
    feel: str = "normal"     # steering /band/feel: normal | half | double (drums and bass)
    groove: float = 1.0      # /band/groove: how much of the style's groove template is applied
    # the meter (engine.meter): the bar's first beat, its length in quarter-note beats and its
    # pulses in sixteenths (None/empty: bar * beats_per_bar, beats_per_bar, quarter pulses);
    # beats_per_bar is then the beats the bar starts a chord on (its length rounded up)
    first_beat: Fraction | None = None
    length: Fraction | None = None
    pulses: tuple[int, ...] = ()

    @property
    def busy(self) -> float:
        """The intensity the agent chooses how many notes by: the bar's intensity pushed by
        its density (equal to the intensity at the neutral density 0.5)."""
        return energise(self.intensity, self.density)

    @property
    def start(self) -> Fraction:
        """The bar's first beat."""
        if self.first_beat is not None:
            return self.first_beat
        return Fraction(self.bar * self.beats_per_bar)

    @property
    def beats(self) -> Fraction:
        """The bar's length in quarter-note beats."""
        return Fraction(self.beats_per_bar) if self.length is None else self.length

    @property
    def steps(self) -> int:
        """Sixteenth-note steps in the bar."""
        return int(4 * self.beats)

    @property
    def beat_pulses(self) -> tuple[int, ...]:
        """The bar's pulses (beats) in sixteenths: (4, 4, 4) in 3/4, (6, 6) in 6/8."""
        return self.pulses or (4,) * self.beats_per_bar

    def at(self, step: int | Fraction) -> Fraction:
        """The beat of sixteenth ``step`` of this bar (steps may be fractions)."""
        return self.start + Fraction(step) / 4

    def chord_at_step(self, step: int) -> Chord:
        return self.chords[min(int(step) // 4, len(self.chords) - 1)]

    def bass_at_step(self, step: int) -> int:
        """The lowest pitch class of the chord at ``step``: its slash bass, else its root."""
        i = min(int(step) // 4, len(self.chords) - 1)
        b = self.basses[i] if self.basses else None
        return self.chords[i].root if b is None else b

    @property
    def next_chord(self) -> Chord:
        return self.chords[-1]


class Agent:
    """Base class: subclasses set ``name`` and ``part`` and implement ``render(info)``.

    ``seed`` salts every random choice (None: follow ``ctx.seed``); ``style`` None follows
    ``ctx.style``. `render` reads both from its `BarInfo`, never from ``self``.
    """

    name = "agent"
    part = "keys"

    def __init__(self, seed: int | None = 0, style: str | None = None, cache_bars: int = 48):
        if style is not None and style not in STYLES:
            raise ValueError(f"unknown style {style!r}; one of {STYLES}")
        if self.part not in PARTS:
            raise ValueError(f"{type(self).__name__}.part {self.part!r} is not a part")
        self.seed = None if seed is None else int(seed)
        self.style = style
        self.pattern = BarPattern(self._render_bar, self.bar_info, cache_size=cache_bars)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(seed={self.seed}, style={self.style!r})"

    def query(self, begin: Fraction, end: Fraction, ctx: Context) -> list[Note]:
        """Notes with onsets in ``[begin, end)`` (beats), sorted by (begin, part, note)."""
        return self.pattern.query(begin, end, ctx)

    def bar(self, bar: int, ctx: Context) -> list[Note]:
        """All notes with onsets in ``bar``."""
        return self.pattern.bar(bar, ctx)

    def bar_info(self, bar: int, ctx: Context) -> BarInfo:
        meter = meter_of(ctx)
        start = meter.bar_start(bar)
        length = meter.bar_length(bar)
        bpb = math.ceil(length)
        style = self.style or ctx.style
        steer = getattr(ctx, "steer", None)
        intensity = ctx.intensity_at(Fraction(start))
        on, density, octave, feel, groove = True, 0.5, 0, "normal", 1.0
        if steer is not None:
            feel = steer.feel_at(Fraction(start))
            groove = quantise_intensity(steer.at("/band/groove", Fraction(start)))
            style = steer.style_at(Fraction(start), style)
            intensity = energise(intensity, steer.at("/band/energy", Fraction(start)))
            on, density, octave = steer.agent(self.part, Fraction(start))
        if style not in STYLES:
            raise ValueError(f"unknown style {style!r}; one of {STYLES}")
        chords = tuple(ctx.chord_at(start + i) for i in range(bpb)) \
            + (ctx.chord_at(start + length),)
        first = max(Fraction(0), self.lookback_from(bar, meter))
        lookback = tuple(ctx.chord_at(first + k) for k in range(math.ceil(start - first)))
        # Chord equality ignores the slash bass, so the cache key carries it separately
        basses = tuple(c.bass for c in chords)
        key_at = getattr(ctx, "key_at", None)
        key = key_at(Fraction(start)) if key_at is not None else None
        return BarInfo(
            seed=int(ctx.seed) if self.seed is None else self.seed,
            bar=bar,
            beats_per_bar=bpb,
            style=style,
            intensity=quantise_intensity(intensity),
            chords=chords,
            cues=cues_at(ctx, bar),
            prev_cues=cues_at(ctx, bar - 1) if bar > 0 else _NO_CUES,
            lookback=lookback,
            on=on,
            density=density,
            octave=octave,
            basses=basses if any(b is not None for b in basses) else (),
            scale=tuple(sorted(key.scale)) if key is not None else (),
            feel=feel,
            groove=groove,
            first_beat=start,
            length=length,
            pulses=meter.pulses(bar),
        )

    def lookback_from(self, bar: int, meter: Meter) -> Fraction:
        """The first beat of earlier harmony that `render` needs (in `BarInfo.lookback`, one
        chord per beat up to the bar); the default, the bar's own first beat, needs none."""
        return meter.bar_start(bar)

    def _render_bar(self, bar: int, ctx: Context) -> list[Note]:
        info = self.bar_info(bar, ctx)
        if not info.on:
            return []
        notes = apply_groove(self.render(info), info.style, info.groove, info.start,
                             info.beat_pulses)
        if info.octave:
            shift = 12 * info.octave
            notes = [replace(n, note=min(127, max(0, n.note + shift))) for n in notes]
        return notes

    def render(self, info: BarInfo) -> list[Note]:
        raise NotImplementedError
