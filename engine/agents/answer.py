"""Call and response (control side): the band answers the player's phrase with one that grows
out of it, in the manner of Pachet's Continuator.

Model. Each note the player plays becomes a token (interval from the note before in semitones,
inter-onset interval and length in sixteenths, dynamic level 0..3). A variable-order Markov
model (orders 1..`MAX_ORDER`) maps every run of up to four tokens the player has played to the
tokens that followed it. Generating from the end of the player's last phrase, the longest run
with a known continuation is used (back-off to shorter ones, then to the intervals alone, then
to any token heard), so the answer reuses the player's intervals, rhythms and dynamics.

Timing. A phrase ends when every key is up; the answer is decided at once and put in force at
the next eighth note at least half a beat later (so within one beat of the phrase end). If the
player plays again first, or while it plays, the answer is cut from that note on (or from the
first beat not yet scheduled): it never changes what is already scheduled. Answers and their
cuts are kept with the beats they were decided at, so the agent stays a pure function of the
time span and what it was told (an offline render and a live run agree).

Pitch. The answer starts from the player's last note and follows the model's intervals; each
note is moved to the nearest pitch of the chord scale (`engine.harmony.chord_scale`, kept to
the key when one is known) of the chord in force at its onset when the answer is decided, and
folded by octaves to stay within an octave of the phrase's middle.

Randomness comes from `engine.patterns.rand.rng` keyed by (seed, phrase end), so the same
notes at the same beats give the same answer.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from engine.harmony import chord_scale
from engine.patterns.event import Note, note_sort_key
from engine.patterns.rand import rng

__all__ = ["CallResponse", "AnswerAgent", "Token", "tokens", "continuator", "generate",
           "ANSWER", "MAX_ORDER"]

ANSWER = "/lead/agent/answer"
MAX_ORDER = 4
GAP_BEATS = Fraction(1, 2)      # the silence after which the answer may start
MAX_PHRASES = 8                 # phrases remembered (older ones are forgotten)
MAX_ANSWER_BEATS = 8
MAX_PHRASE_NOTES = 64           # a phrase with no gap keeps only its latest notes
Token = tuple[int, int, int, int]   # (interval, ioi in 16ths, length in 16ths, dynamic level)


def _sixteenths(beats: Fraction, hi: int = 16) -> int:
    return max(1, min(hi, round(beats * 4)))


def tokens(phrase: list[tuple[Fraction, int, Fraction, float]]) -> list[Token]:
    """The tokens of a phrase of (onset beat, pitch, length beats, velocity 0..1), in onset
    order; notes struck together count as one (the highest)."""
    mono: list[tuple[Fraction, int, Fraction, float]] = []
    for n in sorted(phrase, key=lambda n: (n[0], -n[1])):
        if mono and n[0] - mono[-1][0] < Fraction(1, 8):
            continue
        mono.append(n)
    out = []
    for i, (on, pitch, length, vel) in enumerate(mono):
        ioi = mono[i + 1][0] - on if i + 1 < len(mono) else length
        out.append((pitch - mono[i - 1][1] if i else 0, _sixteenths(ioi),
                    min(_sixteenths(length), _sixteenths(ioi)), min(3, int(vel * 4))))
    return out


def continuator(phrases: list[list[Token]]) -> dict[tuple, list[Token]]:
    """The variable-order model: each run of 1..MAX_ORDER tokens (and each run of intervals,
    keyed ('i', ...)) → the tokens heard after it, in the order heard."""
    model: dict[tuple, list[Token]] = defaultdict(list)
    for toks in phrases:
        for i in range(1, len(toks)):
            for k in range(1, min(MAX_ORDER, i) + 1):
                model[tuple(toks[i - k:i])].append(toks[i])
                model[("i",) + tuple(t[0] for t in toks[i - k:i])].append(toks[i])
    return model


def generate(model: dict[tuple, list[Token]], history: list[Token], beats: Fraction,
             r) -> list[Token]:
    """Tokens continuing `history` until their onsets span `beats` (at least two, at most 32)."""
    every = [t for ts in model.values() for t in ts] or list(history)
    hist = list(history)
    out: list[Token] = []
    span = Fraction(0)
    while (span < beats or len(out) < 2) and len(out) < 32:
        choices = None
        for k in range(min(MAX_ORDER, len(hist)), 0, -1):
            choices = model.get(tuple(hist[-k:])) or \
                model.get(("i",) + tuple(t[0] for t in hist[-k:]))
            if choices:
                break
        # a token heard after itself would loop for ever: a third time in a row, anything else
        loop = len(out) >= 2 and out[-1] == out[-2]
        pool = [t for t in (choices or every) if not (loop and t == out[-1])] or \
            [t for t in every if t != out[-1]] or every
        tok = r.choice(pool)
        out.append(tok)
        hist.append(tok)
        span += Fraction(tok[1], 4)
    return out


@dataclass
class _Answer:
    begin: Fraction
    notes: tuple[Note, ...]
    cut: Fraction | None = None      # no onsets from here on (the player came back)


@dataclass
class CallResponse:
    """What the answer agent reads: the player's phrases and the answers decided from them.

    Feed it every player note with ``note(kind_on, pitch, velocity, beat, horizon, ctx)``
    (the conductor does); ``horizon`` is the first beat the scheduler has not queried."""

    part: str = "lead"
    phrases: list[list[tuple]] = field(default_factory=list)
    current: list[tuple] = field(default_factory=list)
    answers: list[_Answer] = field(default_factory=list)
    held: dict[int, tuple[Fraction, float]] = field(default_factory=dict)
    last_off: Fraction | None = None

    def note(self, on: bool, pitch: int, velocity: float, beat: Fraction, horizon: Fraction,
             ctx: Any) -> None:
        if on:
            if self.answers and (self.answers[-1].cut is None):
                a = self.answers[-1]
                a.cut = max(beat, horizon)
            if not self.held and self.last_off is not None and self.current \
                    and beat - self.last_off >= GAP_BEATS:
                self.phrases = (self.phrases + [self.current])[-MAX_PHRASES:]
                self.current = []
            self.held[pitch] = (beat, velocity)
            return
        start = self.held.pop(pitch, None)
        if start is None:
            return
        self.current.append((start[0], pitch, max(beat - start[0], Fraction(1, 16)), start[1]))
        del self.current[:-MAX_PHRASE_NOTES]
        if not self.held:
            self.last_off = beat
            self._answer(beat, horizon, ctx)

    def forget_held(self, pitches) -> None:
        """A source went away with `pitches` down: they count as released, without a phrase
        end (their note-offs never came, so no answer is decided from them)."""
        for p in pitches:
            self.held.pop(p, None)

    def _answer(self, end: Fraction, horizon: Fraction, ctx: Any) -> None:
        begin = max(Fraction(math.ceil((end + GAP_BEATS) * 2), 2), horizon)
        if begin > end + 1:
            return      # too late to answer within a beat
        call = tokens(self.current)
        model = continuator([tokens(p) for p in self.phrases] + [call])
        first = min(n[0] for n in self.current)
        beats = min(Fraction(MAX_ANSWER_BEATS), max(Fraction(1), end - first))
        r = rng(int(ctx.seed), "answer", str(end))
        toks = generate(model, call, beats, r)
        pitches = [n[1] for n in sorted(self.current)]
        middle = (max(pitches) + min(pitches)) / 2
        key_at = getattr(ctx, "key_at", None)
        p, t, notes = pitches[-1], begin, []
        for interval, ioi, length, level in toks:
            p = self._fit(p + interval, ctx.chord_at(t), key_at(t) if key_at else None,
                          middle, interval)
            notes.append(Note(t, Fraction(length, 4), self.part, p,
                              (2 * level + 1) / 8))
            t += Fraction(ioi, 4)
        # an answer replaces any not yet started (a phrase's later end wins)
        while self.answers and self.answers[-1].begin >= begin:
            self.answers.pop()
        if self.answers and self.answers[-1].cut is None:
            self.answers[-1].cut = begin
        self.answers = (self.answers + [_Answer(begin, tuple(notes))])[-MAX_PHRASES:]

    @staticmethod
    def _fit(p: int, chord, key, middle: float, interval: int) -> int:
        """`p` moved to the nearest pitch of `chord`'s scale (in `key` if known), ties in the
        direction of the interval, folded to within an octave of `middle`."""
        pcs = set(chord_scale(chord))
        if key is not None:
            inside = pcs & set(key.scale)
            pcs = inside if len(inside) >= 4 else inside | set(chord.tones)
        while p > middle + 12:
            p -= 12
        while p < middle - 12:
            p += 12
        up = interval >= 0
        for d in range(12):
            for q in ((p + d, p - d) if up else (p - d, p + d)):
                if q % 12 in pcs and 0 <= q <= 127:
                    return q
        return min(127, max(0, p))

    def query(self, begin: Fraction, end: Fraction) -> list[Note]:
        out = []
        for a in self.answers:
            stop = end if a.cut is None else min(end, a.cut)
            for n in a.notes:
                if begin <= n.begin < stop:
                    if a.cut is not None and n.begin + n.dur > a.cut:
                        n = Note(n.begin, a.cut - n.begin, n.part, n.note, n.velocity)
                    out.append(n)
        return out


class AnswerAgent:
    """The lead's slot in the band: the `lead` agent's notes while /lead/agent/answer is off,
    the answers of ``ctx.answer`` (a `CallResponse`) in its place while it is on."""

    def __init__(self, lead):
        self.lead = lead
        self.part = lead.part
        self.name = "answer"

    def __getattr__(self, name):
        return getattr(self.lead, name)

    def query(self, begin: Fraction, end: Fraction, ctx: Any) -> list[Note]:
        steer = getattr(ctx, "steer", None)
        calls = getattr(ctx, "answer", None)
        if steer is None or calls is None or (not steer.changed(ANSWER)
                                              and steer.base[ANSWER] < 0.5):
            return self.lead.query(begin, end, ctx)
        lead = [n for n in self.lead.query(begin, end, ctx) if steer.at(ANSWER, n.begin) < 0.5]
        answers = [n for n in calls.query(begin, end) if steer.at(ANSWER, n.begin) >= 0.5]
        return sorted(lead + answers, key=note_sort_key)
