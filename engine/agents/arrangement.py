"""Putting the band together (control side): `Band` merges its agents' notes, and `DemoSong`
is a one-minute arrangement that plays without a player.

An *arrangement* is anything with ``parts_active(bar) -> set[str]``, ``intensity(bar) -> float``
and optionally ``drum_notes(bar) -> frozenset[int] | None`` (which drum notes may sound; None:
all) and ``cues_at(bar) -> frozenset[str]``. A `Band` with an arrangement plays only the
active parts in each bar and takes intensity and cues from it; without one (live play) every
part plays and intensity and cues come from the context.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from heapq import merge
from typing import Any

from engine.harmony import DEFAULT_PROGRESSION, Chord, Progression
from engine.meter import Meter, meter_of
from engine.parts import DRUM_NOTES, PARTS
from engine.patterns.event import Note, note_sort_key

from .base import STYLE_TEMPO_BPM, STYLES, Agent, Context, StaticContext, cues_at
from .bass import BassAgent
from .chords import ChordAgent
from .drums import DrumAgent
from .lead import LeadAgent

__all__ = ["Band", "DemoSong", "Section", "ArrangedContext", "DEMO_SECTIONS"]

_ALL = frozenset(PARTS)
_HATS = frozenset({DRUM_NOTES["closed_hat"], DRUM_NOTES["open_hat"]})


@dataclass(frozen=True)
class Section:
    """``bars`` bars playing ``parts``; intensity ramps linearly from ``intensity[0]`` in the
    first bar to ``intensity[1]`` in the last; ``drums`` limits the drum notes (None: all);
    ``cues`` maps a bar within the section (negative: from its end) to cues."""

    name: str
    bars: int
    parts: frozenset[str]
    intensity: tuple[float, float]
    drums: frozenset[int] | None = None
    cues: tuple[tuple[int, frozenset[str]], ...] = ()


def _s(name: str, bars: int, parts: Iterable[str], lo: float, hi: float | None = None,
       drums: Iterable[str] | None = None, **cues: int) -> Section:
    return Section(
        name, bars, frozenset(parts), (lo, lo if hi is None else hi),
        None if drums is None else frozenset(DRUM_NOTES[d] for d in drums),
        tuple((bar, frozenset({cue})) for cue, bar in cues.items()),
    )


DEMO_SECTIONS: tuple[Section, ...] = (
    # pads and hats; the drummer comes in with a fill (snare and toms allowed in its last bar)
    _s("intro", 3, {"chords", "drums"}, 0.3, drums=("closed_hat", "open_hat")),
    _s("pickup", 1, {"chords", "drums"}, 0.4, drums=("closed_hat", "open_hat", "snare",
                                                   "tom_high", "tom_mid", "tom_low"), fill=0),
    _s("groove", 4, {"chords", "drums"}, 0.5, 0.55, crash=0),
    _s("bass", 4, {"chords", "drums", "bass"}, 0.6, 0.65),
    _s("theme", 8, {"chords", "drums", "bass", "lead"}, 0.7, 0.8),
    _s("breakdown", 3, {"chords", "drums", "lead"}, 0.3, drums=("closed_hat", "kick")),
    _s("build", 1, {"chords", "drums", "bass", "lead"}, 0.6, build=0),
    _s("finale", 8, {"chords", "drums", "bass", "lead"}, 0.9, 1.0),
    _s("ending", 1, {"chords", "drums", "bass", "lead"}, 0.9, ending=0),
)


class DemoSong:
    """A one-minute arrangement: intro (pads + hats), drums enter after a fill, bass enters,
    lead enters (8-bar theme), a breakdown (pads, lead, hats and kick), a one-bar build, an
    8-bar finale with everything, and a final chord. 33 bars of 4/4: 66 s at 120 BPM.

    Harmony comes from ``progression`` (8 bars, so the finale starts and the song ends on the
    tonic). ``tempo_bpm`` defaults to the style's tempo (`STYLE_TEMPO_BPM`).
    """

    beats_per_bar = 4

    def __init__(
        self,
        style: str = "rock",
        progression: Progression = DEFAULT_PROGRESSION,
        tempo_bpm: float | None = None,
        sections: Sequence[Section] = DEMO_SECTIONS,
    ):
        if style not in STYLES:
            raise ValueError(f"unknown style {style!r}; one of {STYLES}")
        self.style = style
        self.progression = progression
        self.tempo_bpm = float(tempo_bpm if tempo_bpm is not None else STYLE_TEMPO_BPM[style])
        self.sections = tuple(sections)
        self._by_bar: list[tuple[Section, int]] = []
        for sec in self.sections:
            self._by_bar.extend((sec, k) for k in range(sec.bars))

    @property
    def length_bars(self) -> int:
        return len(self._by_bar)

    @property
    def length_beats(self) -> Fraction:
        return Fraction(self.length_bars * self.beats_per_bar)

    @property
    def duration_s(self) -> float:
        """Until the last bar's downbeat plus the ending's ring (two bars)."""
        return (self.length_bars + 1) * self.beats_per_bar * 60.0 / self.tempo_bpm

    def section_at(self, bar: int) -> Section | None:
        return self._by_bar[bar][0] if 0 <= bar < len(self._by_bar) else None

    def parts_active(self, bar: int) -> set[str]:
        sec = self.section_at(bar)
        return set(sec.parts) if sec is not None else set()

    def intensity(self, bar: int) -> float:
        if not 0 <= bar < len(self._by_bar):
            return 0.0
        sec, k = self._by_bar[bar]
        lo, hi = sec.intensity
        return lo + (hi - lo) * (k / (sec.bars - 1) if sec.bars > 1 else 0.0)

    def drum_notes(self, bar: int) -> frozenset[int] | None:
        sec = self.section_at(bar)
        return sec.drums if sec is not None else frozenset()

    def cues_at(self, bar: int) -> frozenset[str]:
        if not 0 <= bar < len(self._by_bar):
            return frozenset()
        sec, k = self._by_bar[bar]
        out: frozenset[str] = frozenset()
        for at, cues in sec.cues:
            if at == k or at == k - sec.bars:
                out |= cues
        return out

    def context(self, seed: int = 0) -> StaticContext:
        """A progression-driven context for rendering the demo offline (the `Band` overrides
        intensity and cues from the song)."""
        return StaticContext(seed=seed, beats_per_bar=self.beats_per_bar, style=self.style,
                             progression=self.progression, intensity=self.intensity,
                             cues={b: self.cues_at(b) for b in range(self.length_bars)})

    def band(self, seed: int = 0) -> Band:
        return Band(seed, self.style, arrangement=self)


@dataclass
class ArrangedContext:
    """``ctx`` with intensity and cues taken from an arrangement (cues are merged)."""

    ctx: Any
    arrangement: Any
    seed: int = field(init=False)
    beats_per_bar: int = field(init=False)
    style: str = field(init=False)
    steer: Any = field(init=False)
    meter: Meter = field(init=False)

    def __post_init__(self) -> None:
        self.seed = self.ctx.seed
        self.beats_per_bar = self.ctx.beats_per_bar
        self.style = self.ctx.style
        self.steer = getattr(self.ctx, "steer", None)
        self.meter = meter_of(self.ctx)

    def chord_at(self, beat: Fraction) -> Chord:
        return self.ctx.chord_at(beat)

    def intensity_at(self, beat: Fraction) -> float:
        return self.arrangement.intensity(self.meter.bar_at(beat))

    def cues_at(self, bar: int) -> frozenset[str]:
        f = getattr(self.arrangement, "cues_at", None)
        own = frozenset(f(bar)) if f is not None else frozenset()
        return own | cues_at(self.ctx, bar)


class Band:
    """``Band(seed, style, *agents, arrangement=None)``: the agents (default: drums, bass,
    chords and lead, all with ``seed`` and ``style``; None follows ``ctx.seed`` / ``ctx.style``)
    played together. ``band.query(begin, end, ctx)`` returns all their notes with onsets in
    ``[begin, end)``, sorted by (begin, part, note), keeping only the parts (and drum notes) the
    arrangement has active in each note's bar."""

    def __init__(self, seed: int | None = 0, style: str | None = None, *agents: Agent,
                 arrangement: Any = None):
        if style is not None and style not in STYLES:
            raise ValueError(f"unknown style {style!r}; one of {STYLES}")
        self.seed = seed
        self.style = style
        self.agents: tuple[Agent, ...] = agents or (
            DrumAgent(style, seed),
            BassAgent(seed, style),
            ChordAgent(seed, style),
            LeadAgent(seed, style),
        )
        self.arrangement = arrangement

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(a.part for a in self.agents)

    def agent(self, part: str) -> Agent:
        for a in self.agents:
            if a.part == part:
                return a
        raise KeyError(part)

    def prepare(self, bar: int, ctx: Context) -> None:
        """Render ``bar`` into the agents' caches now (e.g. mid-way through the bar before), so
        the query that reaches it stays cheap. Optional: queries render on demand."""
        if self.arrangement is not None:
            active = self.arrangement.parts_active(bar)
            ctx = ArrangedContext(ctx, self.arrangement)
        for a in self.agents:
            if self.arrangement is None or a.part in active:
                a.bar(bar, ctx)

    def query(self, begin: Fraction, end: Fraction, ctx: Context) -> list[Note]:
        """All active notes with onsets in ``[begin, end)`` beats, sorted by (begin, part, note)."""
        if end <= begin:
            return []
        arr = self.arrangement
        if arr is None:
            lists = [a.query(begin, end, ctx) for a in self.agents]
        else:
            ctx = ArrangedContext(ctx, arr)
            meter = ctx.meter
            bars = meter.bars_in(max(begin, Fraction(0)), end)
            active = {b: arr.parts_active(b) for b in bars}
            wanted = set().union(*active.values())
            mask_fn = getattr(arr, "drum_notes", None)
            masks = {b: (mask_fn(b) if mask_fn is not None else None) for b in bars}
            lists = []
            for a in self.agents:
                if a.part not in wanted:
                    continue
                notes = a.query(begin, end, ctx)
                lists.append([
                    n for n in notes
                    if a.part in active[b := meter.bar_at(n.begin)]
                    and (a.part != "drums" or masks[b] is None or n.note in masks[b])
                ])
        if len(lists) == 1:
            return lists[0]
        return list(merge(*lists, key=note_sort_key))
