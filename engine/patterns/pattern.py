"""A small Strudel-like pattern core on exact `Fraction` beats (control side).

A `Pattern` wraps one pure function ``query(begin, end, ctx) -> list[Note]`` returning the notes
whose ONSET lies in the half-open span ``[begin, end)``, sorted by ``(begin, part, note)``
(`note_sort_key`). Transforms (`fast`, `slow`, `late`, `every`, `stack`, ...) wrap the query in a
new Pattern; nothing is mutated and nothing is consumed, so for any split point ``m``::

    p.query(a, m, ctx) + p.query(m, b, ctx) == p.query(a, b, ctx)

Notes are only ever triggered by their onset (Strudel's ``hasOnset``): a note that lasts past the
end of a query is returned once, by the query that holds its onset.

Swing is not applied here: the scheduler swings the grid. Times returned are straight.

``ctx`` is passed through untouched; `BarPattern` reads ``ctx.beats_per_bar`` (the meter's
numerator; the denominator is 4, so a bar is ``beats_per_bar`` quarter-note beats).

Cycles (Tidal's and Strudel's unit of pattern time) are bars: one cycle is `cycle_beats(ctx)`
beats, ``ctx.beats_per_bar`` (4 when a pattern is queried without a context). `pure`,
`sequence`, `cat` and the mini-notation (`engine.patterns.mini`) fill one cycle; `every`, `rev`,
`iter`, `ply` and `euclid` work cycle by cycle. `fast`/`slow` scale time from beat 0; shifts
(`late`, `early`, `off`) are in beats. Every random choice (`degrade`, `sometimes`,
`humanise`) is `engine.patterns.rand` keyed by the seed given and the note's onset, so it never
depends on how the time is queried. The live-coder's guide is docs/patterns.md.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Sequence
from fractions import Fraction
from heapq import merge
from typing import Any

from engine.meter import meter_of

from .event import DRUM_NOTE_SET, MAX_NUDGE_S, Note, note_sort_key
from .rand import mix, unit

__all__ = [
    "Pattern",
    "BarPattern",
    "QueryFn",
    "silence",
    "stack",
    "euclid",
    "steps",
    "euclid_steps",
    "as_fraction",
    "bars_in",
    "switch_bars",
    "cycle_beats",
    "pure",
    "sequence",
    "cat",
    "DEFAULT_CYCLE_BEATS",
    "as_pattern",
]

QueryFn = Callable[[Fraction, Fraction, Any], list[Note]]

ZERO = Fraction(0)
#: beats in one cycle when a pattern is queried without a context (a bar of 4/4)
DEFAULT_CYCLE_BEATS = 4


def cycle_beats(ctx: Any) -> Fraction:
    """Beats in one cycle: a bar of the context (``ctx.beats_per_bar``), else
    `DEFAULT_CYCLE_BEATS`."""
    bpb = getattr(ctx, "beats_per_bar", None)
    return Fraction(DEFAULT_CYCLE_BEATS if bpb is None else bpb)


def as_fraction(x: Fraction | int | str) -> Fraction:
    """Exact beats from a Fraction, an int or a string like '3/4'. Floats are refused."""
    if isinstance(x, Fraction):
        return x
    if isinstance(x, bool) or isinstance(x, float):
        raise TypeError(f"musical time must be exact (Fraction, int or 'p/q'), got {x!r}")
    return Fraction(x)


def bars_in(begin: Fraction, end: Fraction, bar_len: Fraction) -> range:
    """Indices of the bars (each ``bar_len`` beats, bar 0 starting at beat 0) that overlap the
    half-open span ``[begin, end)``."""
    if end <= begin:
        return range(0)
    return range(int(begin // bar_len), int(-(-end // bar_len)))


class Pattern:
    """A pure query function with composable transforms."""

    __slots__ = ("_query",)

    def __init__(self, query: QueryFn):
        self._query = query

    def query(self, begin: Fraction, end: Fraction, ctx: Any = None) -> list[Note]:
        """Notes with onset in ``[begin, end)`` sorted by (begin, part, note)."""
        if end <= begin:
            return []
        return self._query(begin, end, ctx)

    __call__ = query

    # -- transforms ---------------------------------------------------------------------------
    def fast(self, factor: Fraction | int | str) -> Pattern:
        """Play ``factor`` times faster (onsets and durations divided by ``factor``)."""
        f = as_fraction(factor)
        if f <= 0:
            raise ValueError(f"fast factor must be > 0, got {f}")

        def q(begin: Fraction, end: Fraction, ctx: Any) -> list[Note]:
            return [
                Note(n.begin / f, n.dur / f, n.part, n.note, n.velocity, n.nudge_s)
                for n in self.query(begin * f, end * f, ctx)
            ]

        return Pattern(q)

    def slow(self, factor: Fraction | int | str) -> Pattern:
        """Play ``factor`` times slower."""
        return self.fast(1 / as_fraction(factor))

    def late(self, beats: Fraction | int | str) -> Pattern:
        """Shift later by ``beats`` (earlier if negative); nothing is returned before beat 0."""
        t = as_fraction(beats)

        def q(begin: Fraction, end: Fraction, ctx: Any) -> list[Note]:
            b = max(begin, t, ZERO)  # the inner pattern starts at beat 0; nothing before 0
            if end <= b:
                return []
            return [n.shifted(t) for n in self.query(b - t, end - t, ctx)]

        return Pattern(q)

    def early(self, beats: Fraction | int | str) -> Pattern:
        return self.late(-as_fraction(beats))

    def filter(self, keep: Callable[[Note], bool]) -> Pattern:
        """Only the notes for which ``keep(note)`` is true (keep must be pure)."""
        return Pattern(lambda b, e, ctx: [n for n in self.query(b, e, ctx) if keep(n)])

    def fmap(self, fn: Callable[[Note], Note | None]) -> Pattern:
        """Map each note through a pure ``fn`` that keeps its onset; None drops the note."""

        def q(begin: Fraction, end: Fraction, ctx: Any) -> list[Note]:
            out = []
            for n in self.query(begin, end, ctx):
                m = fn(n)
                if m is not None:
                    if m.begin != n.begin:
                        raise ValueError("fmap must not move onsets; use late/fast")
                    out.append(m)
            out.sort(key=note_sort_key)
            return out

        return Pattern(q)

    def every(self, n: int, transform: Callable[[Pattern], Pattern], offset: int = 0) -> Pattern:
        """Apply ``transform`` in cycles (bars) where ``(cycle - offset) % n == 0`` (Tidal's
        ``every``); ``every(1, f)`` is ``f``. Use ``offset=n-1`` for the last bar of every
        n-bar phrase: ``p.every(4, lambda x: x.rev(), offset=3)``."""
        if n <= 0:
            raise ValueError(f"every needs n > 0, got {n}")
        other = transform(self)
        return switch_bars(lambda bar: other if (bar - offset) % n == 0 else self)

    # -- cycle-by-cycle transforms (live coding; docs/patterns.md) ---------------------------------
    def _by_cycle(self, render: Callable[[int, Fraction, Fraction, list[Note], Any],
                                         Iterable[Note]]) -> Pattern:
        """A pattern made one whole cycle at a time: ``render(cycle, start, length, notes,
        ctx)`` gets this pattern's notes with onsets in the cycle and returns the new notes,
        each with its onset in the same cycle; a query keeps those in its span. Whatever the
        query, a cycle is rendered the same, so chunking cannot change the notes."""

        def q(begin: Fraction, end: Fraction, ctx: Any) -> list[Note]:
            length = cycle_beats(ctx)
            out: list[Note] = []
            for c in bars_in(max(begin, ZERO), end, length):
                start = c * length
                notes = render(c, start, length, self.query(start, start + length, ctx), ctx)
                out.extend(sorted((n for n in notes if begin <= n.begin < end),
                                  key=note_sort_key))
            return out

        return Pattern(q)

    def rev(self) -> Pattern:
        """Retrograde: each cycle played backwards (a note ending where the cycle ends now
        starts it). A note is first cut at its cycle's end, so ``p.rev().rev() == p`` for
        patterns whose notes stay inside their cycle (`sequence`, the mini-notation).
        ``sequence("c4", "e4", "g4").rev()`` plays g4 e4 c4."""

        def render(c, start, length, notes, ctx):
            stop = start + length
            for n in notes:
                dur = min(n.dur, stop - n.begin)
                yield Note(start + stop - n.begin - dur, dur, n.part, n.note, n.velocity,
                           n.nudge_s)

        return self._by_cycle(render)

    def iter(self, n: int) -> Pattern:
        """Tidal's ``iter``: cycle ``c`` starts ``c % n`` n-ths of a cycle into the pattern
        (``sequence("a","b","c","d").iter(4)``: abcd, bcda, cdab, dabc), wrapping round."""
        if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
            raise ValueError(f"iter needs a whole number n > 0, got {n!r}")

        def q(begin: Fraction, end: Fraction, ctx: Any) -> list[Note]:
            length = cycle_beats(ctx)
            out: list[Note] = []
            for c in bars_in(max(begin, ZERO), end, length):
                shift = (c % n) * length / n
                lo, hi = max(begin, c * length), min(end, (c + 1) * length)
                out.extend(m.shifted(-shift) for m in self.query(lo + shift, hi + shift, ctx))
            return out

        return Pattern(q)

    def ply(self, n: int) -> Pattern:
        """Each note played ``n`` times in its own length (``sequence("c4", "e4").ply(2)``:
        c4 c4 e4 e4), the length first cut at the end of the note's cycle."""
        if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
            raise ValueError(f"ply needs a whole number n > 0, got {n!r}")

        def render(c, start, length, notes, ctx):
            for m in notes:
                d = min(m.dur, start + length - m.begin) / n
                for i in range(n):
                    yield Note(m.begin + i * d, d, m.part, m.note, m.velocity, m.nudge_s)

        return self._by_cycle(render)

    def euclid(self, k: int, n: int, rotation: int = 0) -> Pattern:
        """The pattern played in the Euclidean rhythm E(k, n) (`euclid`, rotated left by
        ``rotation``): on each of the k onsets among n equal steps of a cycle, the notes of
        this pattern sounding then (among those starting in the same cycle), one step long.
        ``pure("bd").euclid(3, 8)`` is the tresillo; the mini-notation writes it ``bd(3,8)``."""
        hits = [i for i, on in enumerate(euclid(k, n, rotation)) if on]

        def render(c, start, length, notes, ctx):
            step = length / n
            for i in hits:
                t = start + i * step
                for m in notes:
                    if m.begin <= t < m.end:
                        yield Note(t, step, m.part, m.note, m.velocity, m.nudge_s)

        return self._by_cycle(render)

    def off(self, beats: Fraction | int | str, transform: Callable[[Pattern], Pattern]
            ) -> Pattern:
        """This pattern with ``transform`` of itself ``beats`` later on top (Tidal's ``off``):
        ``p.off("1/2", lambda x: x.transpose(12))`` adds an octave echo an eighth later."""
        return stack(self, transform(self.late(beats)))

    # -- notes: pitch, velocity, length -------------------------------------------------------
    def on(self, part: str) -> Pattern:
        """Every note on ``part`` (a pitched note on 'drums' must be a drum note: the query
        raises otherwise, and `Session.play` says so before anything plays)."""
        from engine.parts import DRUM_NOTES

        def move(n: Note) -> Note:
            if part == "drums" and n.part != "drums" and n.note not in DRUM_NOTE_SET:
                raise ValueError(f"the drums part plays drums ({', '.join(DRUM_NOTES)}; or bd "
                                 f"sd hh oh cp rs lt mt ht), not the pitched note {n.note}")
            return Note(n.begin, n.dur, part, n.note, n.velocity, n.nudge_s)

        return self._notes(move)

    def transpose(self, semitones: int) -> Pattern:
        """Pitched notes ``semitones`` up (down if negative); drum hits stay as they are; a
        note pushed outside MIDI 0..127 is dropped."""
        if isinstance(semitones, bool) or not isinstance(semitones, int):
            raise TypeError(f"transpose takes whole semitones, got {semitones!r}")
        return self._pitch(lambda n: n + semitones)

    def invert(self, axis: int | str = "c4") -> Pattern:
        """Melodic inversion around ``axis`` (a MIDI note or a name like 'e4'): a note k
        semitones above it goes k below. Drum hits stay; a note outside 0..127 is dropped."""
        from .pitch import note_number
        a = note_number(axis)
        return self._pitch(lambda n: 2 * a - n)

    def range(self, lo: int | str, hi: int | str) -> Pattern:
        """Each pitched note moved by whole octaves into ``lo..hi`` (at least an octave apart,
        so every pitch class fits): keeps a line in one register."""
        from .pitch import note_number
        low, high = note_number(lo), note_number(hi)
        if high - low < 11:
            raise ValueError(f"range needs hi - lo >= 11 semitones, got {lo!r}..{hi!r}")

        def fold(n: int) -> int:
            if n < low:
                n += 12 * -(-(low - n) // 12)
            elif n > high:
                n -= 12 * -(-(n - high) // 12)
            return n

        return self._pitch(fold)

    def scale(self, key: Any = None) -> Pattern:
        """Each pitched note moved to the nearest note of a scale (a tie goes down): ``key``
        an `engine.listen.key.Key` or a name ('A minor', 'F#m', 'Eb'), or None for the band's
        harmony: the chord scale (`engine.harmony.chord_scale`) of the chord in force on the
        note's beat (``ctx.chord_at``, whose resolution is a beat), so the line follows the
        changes."""
        from engine.harmony import chord_scale

        from .pitch import as_key
        fixed = None if key is None else frozenset(as_key(key).scale)

        def snap(n: int, pcs) -> int:
            for d in (0, -1, 1, -2, 2, -3, 3):
                if (n + d) % 12 in pcs and 0 <= n + d <= 127:
                    return n + d
            return n

        def q(begin: Fraction, end: Fraction, ctx: Any) -> list[Note]:
            out = []
            for m in self.query(begin, end, ctx):
                if m.part != "drums":
                    if fixed is None:
                        chord_at = getattr(ctx, "chord_at", None)
                        if chord_at is None:
                            raise ValueError("scale() without a key follows the band's chords:"
                                             " query it with a context that has chord_at")
                        pcs = chord_scale(chord_at(Fraction(m.begin // 1)))
                    else:
                        pcs = fixed
                    m = Note(m.begin, m.dur, m.part, snap(m.note, pcs), m.velocity, m.nudge_s)
                out.append(m)
            out.sort(key=note_sort_key)
            return out

        return Pattern(q)

    def velocity(self, value: float) -> Pattern:
        """Every note at velocity ``value`` (0..1)."""
        v = _unit_interval("velocity", value)
        return self._notes(lambda n: Note(n.begin, n.dur, n.part, n.note, v, n.nudge_s))

    def legato(self, factor: Fraction | int | str) -> Pattern:
        """Every note's length times ``factor`` (> 0): "1/2" staccato, 2 overlapping."""
        f = as_fraction(factor)
        if f <= 0:
            raise ValueError(f"legato factor must be > 0, got {f}")
        return self._notes(lambda n: Note(n.begin, n.dur * f, n.part, n.note, n.velocity,
                                          n.nudge_s))

    # -- seeded chance: keyed by (seed, the note's onset), never by a generator --------------
    def degrade(self, amount: float = 0.5, seed: int = 0) -> Pattern:
        """Drop each onset's notes with probability ``amount`` (0..1): the draw is keyed by
        ``seed`` and the onset, so a chord goes or stays whole, the same seed drops the same
        notes, and `sometimes` with the same seed changes exactly the notes this drops."""
        a = _unit_interval("degrade amount", amount)
        s = _seed(seed)
        return self.filter(lambda n: _chance(s, n) >= a)

    def sometimes(self, transform: Callable[[Pattern], Pattern], amount: float = 0.5,
                  seed: int = 0) -> Pattern:
        """``transform`` applied to about ``amount`` (0..1) of the onsets: the notes of this
        pattern whose draw (as in `degrade`) is ``>= amount`` play as they are, and the notes
        of ``transform(self)`` whose draw is below it play beside them.
        ``p.sometimes(lambda x: x.transpose(12), 0.25, seed=1)``: a quarter jump an octave."""
        a = _unit_interval("sometimes amount", amount)
        s = _seed(seed)
        return stack(self.filter(lambda n: _chance(s, n) >= a),
                     transform(self).filter(lambda n: _chance(s, n) < a))

    def humanise(self, timing_ms: float = 5.0, velocity: float = 0.1, seed: int = 0
                 ) -> Pattern:
        """A player's unevenness, seeded: each note's timing nudged by up to ``timing_ms``
        either way (``Note.nudge_s``: the onset stays on the grid, the scheduler moves the
        sound; at most `MAX_NUDGE_S`) and its velocity scaled by up to ``velocity`` (a
        fraction, 0..1) either way, each draw keyed by ``seed``, the onset, part and note."""
        if isinstance(timing_ms, bool) or not isinstance(timing_ms, (int, float)) \
                or not 0 <= timing_ms <= MAX_NUDGE_S * 1000:
            raise ValueError(f"humanise timing_ms must be 0..{MAX_NUDGE_S * 1000:g}, "
                             f"got {timing_ms!r}")
        vel = _unit_interval("humanise velocity", velocity)
        s = _seed(seed)
        t = timing_ms / 1000.0

        def fn(n: Note) -> Note:
            key = (n.begin.numerator, n.begin.denominator, n.part, n.note)
            nudge = n.nudge_s + (2.0 * unit(s, "nudge", *key) - 1.0) * t
            v = n.velocity * (1.0 + (2.0 * unit(s, "velocity", *key) - 1.0) * vel)
            return Note(n.begin, n.dur, n.part, n.note, min(1.0, max(0.0, v)),
                        min(MAX_NUDGE_S, max(-MAX_NUDGE_S, nudge)))

        return self._notes(fn)

    # -- helpers -------------------------------------------------------------------------------
    def _notes(self, fn: Callable[[Note], Note]) -> Pattern:
        """Each note through ``fn`` (onsets kept), re-sorted."""

        def q(begin: Fraction, end: Fraction, ctx: Any) -> list[Note]:
            out = [fn(n) for n in self.query(begin, end, ctx)]
            out.sort(key=note_sort_key)
            return out

        return Pattern(q)

    def _pitch(self, fn: Callable[[int], int]) -> Pattern:
        """Pitched notes' numbers through ``fn``; drum hits kept; outside 0..127 dropped."""

        def move(n: Note) -> Note | None:
            if n.part == "drums":
                return n
            k = fn(n.note)
            if not 0 <= k <= 127:
                return None
            return Note(n.begin, n.dur, n.part, k, n.velocity, n.nudge_s)

        return self.fmap(move)

    def __add__(self, other: Pattern) -> Pattern:
        return stack(self, other)


def switch_bars(choose: Callable[[int], Pattern]) -> Pattern:
    """A pattern that plays ``choose(bar)`` in each bar (splitting queries at bar edges)."""

    def q(begin: Fraction, end: Fraction, ctx: Any) -> list[Note]:
        bar_len = cycle_beats(ctx)
        out: list[Note] = []
        for bar in bars_in(max(begin, ZERO), end, bar_len):
            lo = max(begin, bar * bar_len)
            hi = min(end, (bar + 1) * bar_len)
            out.extend(choose(bar).query(lo, hi, ctx))
        return out

    return Pattern(q)


def silence() -> Pattern:
    return Pattern(lambda b, e, ctx: [])


def stack(*patterns: Pattern) -> Pattern:
    """Play patterns together; the result stays sorted by (begin, part, note)."""
    pats = tuple(patterns)

    def q(begin: Fraction, end: Fraction, ctx: Any) -> list[Note]:
        return list(merge(*(p.query(begin, end, ctx) for p in pats), key=note_sort_key))

    return Pattern(q)


# -- building patterns: one cycle at a time -----------------------------------------------------
def _unit_interval(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number 0..1, got {value!r}")
    return float(value)


def _seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"a seed is a whole number, got {seed!r}")
    return seed


def _chance(seed: int, n: Note) -> float:
    """The draw `degrade` and `sometimes` make for a note: keyed by the seed and the onset."""
    return unit(seed, "chance", n.begin.numerator, n.begin.denominator)


def pure(note: int | str, velocity: float = 0.8, part: str | None = None) -> Pattern:
    """One note a cycle, at the cycle's start, lasting the whole cycle: ``note`` a MIDI number,
    a name ('c4', 'eb3') or a drum ('kick', 'bd', 'hh', ...: then on the drums part). A
    pitched note plays on ``part`` (default 'lead'; `Session.play` puts a pattern on its own
    part anyway)."""
    from .pitch import drum_number, note_number
    drum = drum_number(note) if isinstance(note, str) else None
    if drum is not None:
        num, where = drum, "drums" if part is None else part
    else:
        num, where = note_number(note), "lead" if part is None else part
    v = _unit_interval("velocity", velocity)
    Note(ZERO, Fraction(1), where, num, v)         # checked now, not at the first query

    def q(begin: Fraction, end: Fraction, ctx: Any) -> list[Note]:
        length = cycle_beats(ctx)
        first = max(0, -(-begin // length))
        last = -(-end // length)
        return [Note(c * length, length, where, num, v) for c in range(first, last)]

    return Pattern(q)


def as_pattern(item: Pattern | int | str) -> Pattern:
    """A Pattern as it is, a MIDI number or a drum as `pure`, a string as mini-notation."""
    if isinstance(item, Pattern):
        return item
    if isinstance(item, str):
        from .mini import mini
        return mini(item)
    if isinstance(item, int) and not isinstance(item, bool):
        return pure(item)
    raise TypeError(f"not a pattern, a note or mini-notation: {item!r}")


def _compress(p: Pattern, lo: Fraction, hi: Fraction) -> Pattern:
    """``p``'s cycle c squeezed into the fraction ``[lo, hi)`` of cycle c."""
    width = hi - lo

    def q(begin: Fraction, end: Fraction, ctx: Any) -> list[Note]:
        length = cycle_beats(ctx)
        out: list[Note] = []
        for c in bars_in(max(begin, ZERO), end, length):
            start = c * length
            slot = start + lo * length
            b, e = max(begin, slot), min(end, slot + width * length)
            if e <= b:
                continue
            for n in p.query(start + (b - slot) / width, start + (e - slot) / width, ctx):
                out.append(Note(slot + (n.begin - start) * width, n.dur * width, n.part,
                                n.note, n.velocity, n.nudge_s))
        return out

    return Pattern(q)


def sequence(*items: Pattern | int | str, weights: Sequence[Fraction | int] | None = None
             ) -> Pattern:
    """The items one after another within each cycle (Tidal's ``fastcat``): each gets an
    equal share, or ``weights[i]`` shares. Item i plays its own cycle c in its slot of cycle c.
    Items are patterns, notes (`pure`) or mini-notation strings:
    ``sequence("c4", "e4", sequence("g4", "b4"), silence())`` is ``mini("c4 e4 [g4 b4] ~")``."""
    pats = [as_pattern(i) for i in items]
    if not pats:
        return silence()
    w = [as_fraction(x) for x in weights] if weights is not None else [Fraction(1)] * len(pats)
    if len(w) != len(pats) or any(x <= 0 for x in w):
        raise ValueError(f"sequence needs one weight > 0 per item, got {weights!r}")
    if len(pats) == 1:
        return pats[0]
    total = sum(w)
    edges = [Fraction(0)]
    for x in w:
        edges.append(edges[-1] + x / total)
    return stack(*(_compress(p, edges[i], edges[i + 1]) for i, p in enumerate(pats)))


def cat(*items: Pattern | int | str) -> Pattern:
    """One item a cycle, in turn (Tidal's ``cat``/``slowcat``, the mini-notation's ``<a b>``):
    cycle c plays item ``c % len(items)``, which plays its own cycle ``c // len(items)``."""
    pats = [as_pattern(i) for i in items]
    if not pats:
        return silence()
    n = len(pats)

    def q(begin: Fraction, end: Fraction, ctx: Any) -> list[Note]:
        length = cycle_beats(ctx)
        out: list[Note] = []
        for c in bars_in(max(begin, ZERO), end, length):
            shift = (c - c // n) * length
            lo, hi = max(begin, c * length), min(end, (c + 1) * length)
            out.extend(m.shifted(shift) for m in pats[c % n].query(lo - shift, hi - shift, ctx))
        return out

    return Pattern(q)


# -- rhythm helpers -------------------------------------------------------------------------------
def euclid(k: int, n: int, rotation: int = 0) -> tuple[bool, ...]:
    """Bjorklund's even spreading of ``k`` onsets over ``n`` steps (Toussaint's E(k, n)):
    ``euclid(3, 8)`` is x..x..x. (tresillo), ``euclid(5, 8)`` is x.xx.xx. (cinquillo).
    ``rotation`` rotates left: step i of the result is step ``(i + rotation) % n`` of E(k, n)."""
    if n <= 0:
        raise ValueError(f"euclid needs n > 0 steps, got {n}")
    if not 0 <= k <= n:
        raise ValueError(f"euclid needs 0 <= k <= n, got k={k}, n={n}")
    if k == 0:
        return (False,) * n
    groups: list[list[bool]] = [[True] for _ in range(k)]
    rest: list[list[bool]] = [[False] for _ in range(n - k)]
    while len(rest) > 1:
        m = min(len(groups), len(rest))
        paired = [groups[i] + rest[i] for i in range(m)]
        rest = groups[m:] if len(groups) > m else rest[m:]
        groups = paired
    flat = [x for g in groups + rest for x in g]
    r = rotation % n
    return tuple(flat[r:] + flat[:r])


_STEP_CHARS = {"X": 1.0, "x": 0.85, "o": 0.65, "g": 0.35, ".": 0.0, "-": 0.0}


def steps(
    hits: str | Sequence[float | bool],
    *,
    step: Fraction | int | str,
    part: str,
    note: int,
    velocity: float = 0.8,
    dur: Fraction | int | str | None = None,
) -> Pattern:
    """A cyclic step sequence: one cycle is ``len(hits) * step`` beats, from beat 0.

    ``hits`` is a string ('X' accent 1.0, 'x' 0.85, 'o' 0.65, 'g' ghost 0.35, '.' rest; the
    number scales ``velocity``) or a sequence of velocity scales / bools (0 or False = rest).
    ``dur`` defaults to one step."""
    st = as_fraction(step)
    if st <= 0:
        raise ValueError(f"step must be > 0, got {st}")
    if isinstance(hits, str):
        try:
            scales = [_STEP_CHARS[c] for c in hits]
        except KeyError as e:
            raise ValueError(f"unknown step character {e.args[0]!r} in {hits!r}") from None
    else:
        scales = [float(h) for h in hits]
    if not scales:
        raise ValueError("steps needs at least one step")
    d = st if dur is None else as_fraction(dur)
    n = len(scales)
    vels = [min(1.0, max(0.0, s * velocity)) for s in scales]

    def q(begin: Fraction, end: Fraction, ctx: Any) -> list[Note]:
        first = max(0, int(-(-begin // st)))
        last = int(-(-end // st))  # exclusive
        return [
            Note(i * st, d, part, note, vels[i % n])
            for i in range(first, last)
            if scales[i % n] > 0
        ]

    return Pattern(q)


def euclid_steps(
    k: int, n: int, rotation: int = 0, **kwargs: Any
) -> Pattern:
    """`steps` over the Euclidean rhythm E(k, n) rotated by ``rotation`` (see `euclid`)."""
    return steps(euclid(k, n, rotation), **kwargs)


# -- per-bar generation with a cache ----------------------------------------------------------------
class BarPattern(Pattern):
    """A pattern generated one bar at a time by a pure ``render(bar, ctx) -> list[Note]``.

    ``render`` must return the notes whose onsets lie in that bar (from its first beat up to
    the next bar's, as the context's meter has them: `engine.meter.meter_of`) and must
    depend only on ``bar`` and on what ``key(bar, ctx)`` captures
    from the context (for an agent: its seed, the style, the chords and intensity in force...).
    Rendered bars are kept in a small LRU cache keyed by ``(bar, key(bar, ctx))``, so a query for
    a 100 ms window is a couple of dictionary look-ups and bisects. Not thread-safe: use one
    BarPattern from one thread (the asyncio thread).
    """

    __slots__ = ("_render", "_key", "_cache", "_cache_size")

    def __init__(
        self,
        render: Callable[[int, Any], Iterable[Note]],
        key: Callable[[int, Any], Hashable] | None = None,
        cache_size: int = 64,
    ):
        super().__init__(self._query_bars)
        self._render = render
        self._key = key if key is not None else (lambda bar, ctx: None)
        self._cache: OrderedDict[Hashable, tuple[list[Note], list[Fraction]]] = OrderedDict()
        self._cache_size = cache_size

    def clear_cache(self) -> None:
        self._cache.clear()

    def bar(self, bar: int, ctx: Any) -> list[Note]:
        """All notes with onsets in ``bar`` (a copy)."""
        return list(self._bar(bar, ctx)[0])

    def _bar(self, bar: int, ctx: Any) -> tuple[list[Note], list[Fraction]]:
        meter = meter_of(ctx)
        start = meter.bar_start(bar)
        stop = start + meter.bar_length(bar)
        k = (bar, start, stop, self._key(bar, ctx))
        hit = self._cache.get(k)
        if hit is not None:
            self._cache.move_to_end(k)
            return hit
        notes = sorted(self._render(bar, ctx), key=note_sort_key)
        for n in notes:
            if not start <= n.begin < stop:
                raise ValueError(
                    f"render of bar {bar} returned a note at beat {n.begin}, outside "
                    f"[{start}, {stop}): {n}"
                )
        entry = (notes, [n.begin for n in notes])
        self._cache[k] = entry
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return entry

    def _query_bars(self, begin: Fraction, end: Fraction, ctx: Any) -> list[Note]:
        begin = max(begin, ZERO)
        bars = meter_of(ctx).bars_in(begin, end)
        out: list[Note] = []
        for bar in bars:
            notes, begins = self._bar(bar, ctx)
            lo = bisect_left(begins, begin) if bar == bars.start else 0
            hi = bisect_left(begins, end) if bar == bars.stop - 1 else len(begins)
            out.extend(notes[lo:hi])
        return out
