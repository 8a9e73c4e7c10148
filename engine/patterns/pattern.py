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
"""

from __future__ import annotations

from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Sequence
from fractions import Fraction
from heapq import merge
from typing import Any

from .event import Note, note_sort_key

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
]

QueryFn = Callable[[Fraction, Fraction, Any], list[Note]]

ZERO = Fraction(0)


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
        """Apply ``transform`` in bars where ``(bar - offset) % n == 0`` (Tidal's ``every``).
        Use ``offset=n-1`` for the last bar of every n-bar phrase."""
        if n <= 0:
            raise ValueError(f"every needs n > 0, got {n}")
        other = transform(self)
        return switch_bars(lambda bar: other if (bar - offset) % n == 0 else self)

    def __add__(self, other: Pattern) -> Pattern:
        return stack(self, other)


def switch_bars(choose: Callable[[int], Pattern]) -> Pattern:
    """A pattern that plays ``choose(bar)`` in each bar (splitting queries at bar edges)."""

    def q(begin: Fraction, end: Fraction, ctx: Any) -> list[Note]:
        bar_len = Fraction(ctx.beats_per_bar)
        out: list[Note] = []
        for bar in bars_in(begin, end, bar_len):
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

    ``render`` must return the notes whose onsets lie in that bar (beats ``bar * beats_per_bar``
    up to the next bar) and must depend only on ``bar`` and on what ``key(bar, ctx)`` captures
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
        k = (bar, ctx.beats_per_bar, self._key(bar, ctx))
        hit = self._cache.get(k)
        if hit is not None:
            self._cache.move_to_end(k)
            return hit
        bar_len = Fraction(ctx.beats_per_bar)
        start = bar * bar_len
        stop = start + bar_len
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
        bar_len = Fraction(ctx.beats_per_bar)
        bars = bars_in(begin, end, bar_len)
        out: list[Note] = []
        for bar in bars:
            notes, begins = self._bar(bar, ctx)
            lo = bisect_left(begins, begin) if bar == bars.start else 0
            hi = bisect_left(begins, end) if bar == bars.stop - 1 else len(begins)
            out.extend(notes[lo:hi])
        return out
