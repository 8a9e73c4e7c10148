"""A small mini-notation (Tidal's and Strudel's) for one-line patterns (control side).

``mini("c4 e4 [g4 b4] ~")`` fills each cycle (a bar) with four equal steps: c4, e4, then g4 and
b4 sharing the third step, then a rest. What it reads:

=============  ================================================================================
``c4 eb3 60``  a note (name with octave, scientific: c4 = 60; or a MIDI number)
``bd hh kick`` a drum (`engine.parts.DRUM_NOTES`, or bd sd hh oh cp rs lt mt ht): drums part
``~``          a rest
``[a b]``      a group: its items share one step
``[a, b]``     a stack: the sequences separated by commas play together
``<a b c>``    one item per cycle, in turn (`cat`)
``a*2 a/2``    the item fast or slow (``a*1.5``; ``a*3/2`` is the same: fast 3, then slow 2)
``a!3``        the item repeated in three steps (``a !`` repeats the one before)
``a@3``        the item lasts three steps' worth (a weight)
``a?  a?0.3``  the item dropped with probability 0.5 (or the given one), seeded
``a(3,8,2)``   the item in the Euclidean rhythm E(3, 8) rotated by 2
=============  ================================================================================

`degrees(text, key, octave)` reads the same notation with whole numbers as scale degrees of a
key. A mistake raises ValueError naming the column; nothing is half-built.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from fractions import Fraction

from .pattern import Pattern, cat, pure, sequence, silence, stack
from .pitch import as_key, degree_note, drum_number, note_number
from .rand import mix

__all__ = ["mini", "degrees"]

_TOKEN = re.compile(r"\s+|([\[\]<>(),~*/!@?])|([^\s\[\]<>(),~*/!@?]+)")


class _Parser:
    def __init__(self, text: str, atom: Callable[[str], Pattern], seed: int):
        if not isinstance(text, str):
            raise TypeError(f"mini-notation is a string, got {text!r}")
        self.text = text
        self.atom = atom
        self.seed = seed
        self.tokens: list[tuple[str, int]] = []
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if m is None:       # cannot happen: every character is a token or space
                raise self.error("cannot read", pos)
            if m.group(1) or m.group(2):
                self.tokens.append((m.group(1) or m.group(2), pos))
            pos = m.end()
        self.i = 0
        self.chances = 0        # how many '?' so far: each gets its own seed

    def error(self, what: str, pos: int | None = None) -> ValueError:
        if pos is None:
            pos = self.tokens[self.i][1] if self.i < len(self.tokens) else len(self.text)
        return ValueError(f"mini-notation: {what} at column {pos + 1} in {self.text!r}")

    def peek(self) -> str | None:
        return self.tokens[self.i][0] if self.i < len(self.tokens) else None

    def take(self, want: str | None = None) -> str:
        tok = self.peek()
        if tok is None or (want is not None and tok != want):
            raise self.error(f"expected {want!r}" if want else "unexpected end")
        self.i += 1
        return tok

    def parse(self) -> Pattern:
        if self.peek() is None:
            raise self.error("empty pattern")
        p = self.stack_of_sequences(end=None)
        if self.peek() is not None:
            raise self.error(f"unexpected {self.peek()!r}")
        return p

    def stack_of_sequences(self, end: str | None) -> Pattern:
        layers = [self.sequence(end)]
        while self.peek() == ",":
            self.take(",")
            layers.append(self.sequence(end))
        return layers[0] if len(layers) == 1 else stack(*layers)

    def sequence(self, end: str | None) -> Pattern:
        steps: list[tuple[Pattern, Fraction]] = []
        while self.peek() not in (end, ",", None):
            if self.peek() == "!":          # a bare '!' repeats the step before
                self.take("!")
                if not steps:
                    raise self.error("'!' with nothing before it to repeat",
                                     self.tokens[self.i - 1][1])
                steps.append(steps[-1])
                continue
            steps.extend(self.step())
        if not steps:
            raise self.error("an empty sequence")
        pats, weights = zip(*steps)
        return sequence(*pats, weights=weights)

    def items_until(self, end: str) -> list[Pattern]:
        """The items of ``<a b c>``, each a step with its modifiers."""
        items: list[Pattern] = []
        while self.peek() not in (end, None):
            items.extend(p for p, _ in self.step())
        if not items:
            raise self.error("an empty <>")
        return items

    def step(self) -> list[tuple[Pattern, Fraction]]:
        tok = self.peek()
        pos = self.tokens[self.i][1] if tok is not None else len(self.text)
        if tok == "[":
            self.take("[")
            p = self.stack_of_sequences(end="]")
            self.take("]")
        elif tok == "<":
            self.take("<")
            p = cat(*self.items_until(">"))
            self.take(">")
        elif tok == "~":
            self.take("~")
            p = silence()
        elif tok is None or tok in "]>(),*/!@?":
            raise self.error(f"unexpected {tok!r}" if tok else "unexpected end", pos)
        else:
            self.take()
            try:
                p = self.atom(tok)
            except (TypeError, ValueError) as exc:
                raise self.error(str(exc), pos) from None
        weight, repeat = Fraction(1), 1
        while self.peek() in ("*", "/", "@", "!", "?", "("):
            op = self.take()
            if op in "*/":
                f = self.number(positive=True)
                p = p.fast(f) if op == "*" else p.slow(f)
            elif op == "@":
                weight = self.number(positive=True)
            elif op == "!":
                if not self.adjacent() or not self.peek().isdigit():
                    repeat += 1         # 'a!' is a a; 'a!3' below is a a a
                    continue
                repeat = int(self.whole(minimum=1))
            elif op == "?":
                amount = Fraction(1, 2)
                if self.adjacent() and re.fullmatch(r"\d*\.?\d+", self.peek()):
                    amount = self.number(positive=False)
                    if amount > 1:
                        raise self.error("a '?' chance is 0..1", self.tokens[self.i - 1][1])
                self.chances += 1
                p = p.degrade(float(amount), mix(self.seed, "?", self.chances) >> 1)
            else:                           # (k,n) or (k,n,rotation)
                k = self.whole(minimum=0)
                self.take(",")
                n = self.whole(minimum=1)
                r = 0
                if self.peek() == ",":
                    self.take(",")
                    r = self.whole(minimum=None)
                self.take(")")
                if k > n:
                    raise self.error(f"euclid ({k},{n}) needs k <= n", pos)
                p = p.euclid(k, n, r)
        return [(p, weight)] * repeat

    def adjacent(self) -> bool:
        """Whether the next token follows the last one with no space ('a?0.3', 'a!3')."""
        if self.i >= len(self.tokens):
            return False
        tok, pos = self.tokens[self.i - 1]
        return self.tokens[self.i][1] == pos + len(tok)

    def number(self, positive: bool) -> Fraction:
        pos = self.tokens[self.i][1] if self.i < len(self.tokens) else len(self.text)
        tok = self.take()
        try:
            v = Fraction(tok)
        except (ValueError, ZeroDivisionError):
            raise self.error(f"expected a number, got {tok!r}", pos) from None
        if v < 0 or (positive and v == 0):
            raise self.error(f"expected a number > 0, got {tok!r}", pos)
        return v

    def whole(self, minimum: int | None) -> int:
        pos = self.tokens[self.i][1] if self.i < len(self.tokens) else len(self.text)
        tok = self.take()
        if not re.fullmatch(r"-?\d+", tok) or (minimum is not None and int(tok) < minimum):
            least = "" if minimum is None else f" >= {minimum}"
            raise self.error(f"expected a whole number{least}, got {tok!r}", pos)
        return int(tok)


def _note_atom(velocity: float) -> Callable[[str], Pattern]:
    def atom(word: str) -> Pattern:
        if drum_number(word) is not None:
            return pure(word, velocity)
        return pure(note_number(word), velocity)
    return atom


def mini(text: str, velocity: float = 0.8, seed: int = 0) -> Pattern:
    """The pattern a line of mini-notation describes (see the module's table): notes at
    ``velocity``; every ``?`` draws from ``seed`` (each ``?`` its own stream)."""
    return _Parser(text, _note_atom(velocity), seed).parse()


def degrees(text: str, key="C major", octave: int = 4, velocity: float = 0.8,
            seed: int = 0) -> Pattern:
    """Mini-notation whose words are scale degrees of ``key`` (a Key or a name such as
    'A minor'): 0 the tonic in ``octave`` (scientific, 4 holds middle C), 2 the third, 7 the
    tonic an octave up, -1 the degree below the tonic. ``degrees("0 2 4 ~", "A minor", 3)``
    plays A3 C4 E4 and a rest."""
    k = as_key(key)
    if isinstance(octave, bool) or not isinstance(octave, int):
        raise TypeError(f"octave must be a whole number, got {octave!r}")

    def atom(word: str) -> Pattern:
        if not re.fullmatch(r"-?\d+", word):
            raise ValueError(f"{word!r} is not a scale degree (a whole number)")
        return pure(degree_note(k, int(word), octave), velocity)

    return _Parser(text, atom, seed).parse()
