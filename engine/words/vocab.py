"""The timbre vocabulary (engine/words/vocabulary.toml) and the parser that reads a phrase with
it (control side).

`vocabulary()` loads and checks the file once: every headword has an opposite that exists, a
feature the evaluation can measure, and moves whose targets are real parameters of their
engine or insert, with values of the right kind; a mistake is a DataError naming the file,
line and field. `Vocabulary.parse(text)` turns "not too bright, very warm pad" into terms
(headword, strength, the words that said it), the category and engine words that pick a base
patch, and the words it did not understand: those are reported, never guessed, unless a
`similar` function (the optional embedding model, engine.words.embed) maps them onto
headwords, and then the mapping is reported too.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from engine.tomldata import DataError, line_of, parse

PATH = Path(__file__).with_name("vocabulary.toml")
ENGINES = ("analog", "wavetable", "fm", "sampler")
MOVE_KEYS = ENGINES + ("any",)
FEATURES = ("centroid", "warmth", "air", "grit", "presence", "odd_even", "inharmonicity",
            "width", "tail", "motion", "time_centroid", "low_share")
MAX_STRENGTH = 2.5
SUFFIXES = ("iest", "ier", "est", "er", "ness", "ing", "ed", "es", "s", "y", "ly")


@dataclass(frozen=True)
class Word:
    """One headword: its group, spellings, opposite, measured feature and moves per engine."""
    name: str
    group: str
    forms: tuple[str, ...]
    opposite: str
    feature: str
    direction: str
    applies: tuple[str, ...]
    like: dict
    moves: dict          # engine (or "any") -> {target: move}
    near: tuple[str, ...] = ()   # words near in meaning: for the embedding model only


@dataclass(frozen=True)
class Term:
    """A headword found in a phrase, with its strength (negative: its opposite applies)."""
    word: str
    strength: float
    said: str            # the words of the phrase that said it ("not too bright")
    via: str = ""        # how an unknown word was mapped ("sparkly ~ bright 0.61")


@dataclass
class Parsed:
    terms: list[Term] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    engines: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)


class Vocabulary:
    """The loaded vocabulary: headwords, their forms, modifiers, ignored and category words."""

    def __init__(self, data: dict, text: str = "", where: str = str(PATH)):
        def fail(section, key, msg):
            line = line_of(text, section, key) if text else None
            raise DataError(f"{where}:{line or '?'}: [{section}] {key}: {msg}")

        self.intensity = {}
        for k, v in data.get("intensity", {}).items():
            if not isinstance(v, (int, float)) or isinstance(v, bool) or abs(v) > MAX_STRENGTH:
                fail("intensity", k, f"must be a number within +-{MAX_STRENGTH}, got {v!r}")
            self.intensity[k] = float(v)
        self.ignore = frozenset(data.get("ignore", {}).get("words", []))
        self.categories = {}
        for tag, words in data.get("categories", {}).items():
            for w in words:
                self.categories[w] = tag
        self.engine_words = {}
        for engine, words in data.get("engines", {}).items():
            if engine not in ENGINES:
                fail("engines", engine, f"must be one of {', '.join(ENGINES)}")
            for w in words:
                self.engine_words[w] = engine
        self.fresh = data.get("fresh", {})
        self.words: dict[str, Word] = {}
        self.forms: dict[str, str] = {}
        taken = {w: "ignore" for w in self.ignore} | {w: "categories" for w in self.categories} \
            | {w: "engines" for w in self.engine_words} \
            | {w: "intensity" for w in self.intensity if " " not in w}
        for name, spec in data.get("words", {}).items():
            sect = f"words.{name}"
            try:
                word = _word(name, spec)
            except ValueError as exc:
                fail(sect, str(exc).split(":")[0], str(exc).split(":", 1)[-1].strip())
            for form in (name,) + word.forms:
                if form in taken or form in self.forms:
                    fail(sect, "forms", f"{form!r} is already "
                         f"{taken.get(form) or 'a form of ' + self.forms[form]}")
                self.forms[form] = name
            self.words[name] = word
        for name, word in self.words.items():
            sect = f"words.{name}"
            if word.opposite not in self.words:
                fail(sect, "opposite", f"no headword {word.opposite!r}")
            for other in word.like:
                if other not in self.words or other == name:
                    fail(sect, "like", f"no other headword {other!r}")
            for key, moves in word.moves.items():
                for target, move in moves.items():
                    try:
                        check_move(key, target, move, self.fresh)
                    except (KeyError, ValueError) as exc:
                        fail(sect, key, f"{target}: {str(exc).strip(chr(39))}")
            if not word.like and not word.moves:
                fail(sect, "like", "a headword needs moves or `like`")

    # ---- lookup ------------------------------------------------------------------------------
    def lookup(self, token: str, table: dict) -> str | None:
        """`token` in `table` (forms, categories, engine words), or a plain inflection of an
        entry (darker -> dark, fatter -> fat, shimmers -> shimmer, pads -> pad)."""
        if token in table:
            return table[token]
        for suffix in SUFFIXES:
            if token.endswith(suffix) and len(token) - len(suffix) >= 3:
                stem = token[:-len(suffix)]
                for cand in (stem, stem + "e", stem[:-1] if len(stem) > 3 and stem[-1] ==
                             stem[-2] else None, stem[:-1] + "y" if stem.endswith("i") else None):
                    if cand and cand in table:
                        return table[cand]
        return None

    def expand(self, word: str, strength: float, engine: str) -> list[tuple[str, str, object,
                                                                              float]]:
        """(headword, target, move, strength) rows that `word` at `strength` applies on
        `engine`: its `like` components first (weighted), then its own moves; a negative
        strength applies the opposite's."""
        if strength < 0:
            return self.expand(self.words[word].opposite, -strength, engine)
        w = self.words[word]
        rows = []
        for other, weight in w.like.items():
            rows += [(word, t, m, s) for _, t, m, s in self.expand(other, strength * weight,
                                                                   engine)]
        for key in (engine, "any"):
            for target, move in w.moves.get(key, {}).items():
                rows.append((word, target, move, strength))
        return rows

    # ---- parsing -----------------------------------------------------------------------------
    def parse(self, text: str, similar=None) -> Parsed:
        """Terms, category and engine words, and unknown words of `text`. Modifiers
        (intensity, negation) apply to the next headword of the same clause (clauses end at
        , . ; ! ? and "and"/"but"); `similar(token)` may map an unknown word onto headwords:
        [(headword, score)]."""
        out = Parsed()
        for clause in re.split(r"[,.;!?]|\band\b|\bbut\b|\bwith\b", text.lower()):
            tokens = re.findall(r"[a-z0-9][a-z0-9'\-]*", clause)
            tokens = [t[:-2] if t.endswith("'s") else t for t in tokens]
            pending, said = 1.0, []
            i = 0
            while i < len(tokens):
                two = " ".join(tokens[i:i + 2])
                if len(tokens) > i + 1 and two in self.intensity:
                    pending *= self.intensity[two]
                    said.append(two)
                    i += 2
                    continue
                tok = tokens[i]
                i += 1
                if tok in self.intensity:
                    pending *= self.intensity[tok]
                    said.append(tok)
                    continue
                if tok in self.ignore:
                    continue
                head = self.lookup(tok, self.forms)
                if head is None and "-" in tok:        # "glass-like", "sub-bass"
                    parts = [self.lookup(p, self.forms) for p in tok.split("-")]
                    head = next((p for p in parts if p), None)
                if head is not None:
                    s = max(-MAX_STRENGTH, min(MAX_STRENGTH, pending))
                    out.terms.append(Term(head, s, " ".join(said + [tok])))
                    pending, said = 1.0, []
                    continue
                cat = self.lookup(tok, self.categories)
                if cat is not None:
                    if cat not in out.categories:
                        out.categories.append(cat)
                    continue
                eng = self.lookup(tok, self.engine_words)
                if eng is not None:
                    if eng not in out.engines:
                        out.engines.append(eng)
                    continue
                hits = similar(tok) if similar is not None and not tok.isdigit() else []
                if hits:
                    s = max(-MAX_STRENGTH, min(MAX_STRENGTH, pending))
                    via = tok + " ~ " + " + ".join(f"{h} {score:.2f}" for h, score in hits)
                    for h, _ in hits:
                        out.terms.append(Term(h, s / len(hits) ** 0.5, " ".join(said + [tok]),
                                              via))
                    pending, said = 1.0, []
                    continue
                if tok not in out.unknown and not tok.isdigit():
                    out.unknown.append(tok)
        return out


def _word(name: str, spec: dict) -> Word:
    if not isinstance(spec, dict):
        raise ValueError(f"group: [words.{name}] must be a table")
    known = {"group", "forms", "opposite", "feature", "direction", "applies", "like",
             "doc", "near"} | set(MOVE_KEYS)
    for key in spec:
        if key not in known:
            raise ValueError(f"{key}: unknown key; known: {', '.join(sorted(known))}")
    for key in ("group", "opposite", "feature", "direction"):
        if not isinstance(spec.get(key), str):
            raise ValueError(f"{key}: must be a word")
    if spec["feature"] not in FEATURES:
        raise ValueError(f"feature: must be one of {', '.join(FEATURES)}")
    if spec["direction"] not in ("up", "down"):
        raise ValueError("direction: must be up or down")
    applies = tuple(spec.get("applies", ENGINES))
    if not set(applies) <= set(ENGINES):
        raise ValueError(f"applies: must name engines among {', '.join(ENGINES)}")
    like = spec.get("like", {})
    if not all(isinstance(v, (int, float)) and 0 < v <= MAX_STRENGTH for v in like.values()):
        raise ValueError(f"like: weights must be numbers in 0..{MAX_STRENGTH}")
    forms = spec.get("forms", [])
    if not all(isinstance(f, str) and f == f.lower() for f in forms):
        raise ValueError("forms: must be lower-case words")
    near = spec.get("near", [])
    if not isinstance(near, list) or \
            not all(isinstance(f, str) and f and f == f.lower() for f in near):
        raise ValueError("near: must be a list of lower-case words or short phrases")
    moves = {k: spec[k] for k in MOVE_KEYS if k in spec}
    for k, m in moves.items():
        if not isinstance(m, dict):
            raise ValueError(f"{k}: must be a table of target = move")
    return Word(name, spec["group"], tuple(forms), spec["opposite"], spec["feature"],
                spec["direction"], applies, dict(like), moves, tuple(near))


def engine_params(engine: str) -> dict:
    """name -> Param of an instrument engine's patch parameters."""
    if engine == "analog":
        from engine.rt.params import SYNTH_SPECS
        return SYNTH_SPECS
    from engine.declared import unit
    return {q.name: q for q in unit(engine).PARAMS}


def effect_params(unit: str) -> dict:
    """name -> Param of an effect unit (KeyError if it is not one)."""
    from engine.declared import kind, units
    if unit not in kind() or getattr(units()[kind()[unit]], "INSTRUMENT", False):
        raise KeyError(f"no effect unit {unit!r}")
    return {q.name: q for q in units()[kind()[unit]].PARAMS}


def target_params(engine: str, target: str) -> dict:
    """name -> Param that `target` may address on `engine` (fm roles: any operator's)."""
    if "." in target:
        return effect_params(target.split(".", 1)[0])
    if "/" in target:
        if engine != "fm" or target.split("/")[0] not in ("modulators", "carriers"):
            raise KeyError("only fm has modulators/ and carriers/ targets")
        return {target.split("/", 1)[1]: engine_params("fm")["op1_" + target.split("/", 1)[1]]}
    return engine_params(engine)


def check_move(key: str, target: str, move, fresh: dict) -> None:
    """A move's target exists for `key` (an engine or `any`: inserts only) and its value fits."""
    if key == "any" and "." not in target:
        raise KeyError("`any` moves inserts only (UNIT.PARAM)")
    params = target_params("fm" if "/" in target else key, target)
    name = target.rsplit(".", 1)[-1].rsplit("/", 1)[-1]
    if name not in params:
        raise KeyError(f"no parameter {name!r}")
    q = params[name]
    if "." in target and target.split(".")[0] not in fresh:
        raise KeyError(f"insert {target.split('.')[0]!r} has no [fresh] start")
    if isinstance(move, bool):
        raise ValueError("a move is a number or a table")
    if isinstance(move, (int, float)):
        if q.curve == "choice" or abs(move) > 1:
            raise ValueError("a step must be within +-1 of a continuous parameter")
        return
    if not isinstance(move, dict) or len(set(move) & {"toward", "snap", "set"}) != 1:
        raise ValueError("a table move has one of toward, snap, set")
    if "set" in move:
        if q.curve != "choice" or move["set"] not in q.choices or \
                not set(move.get("if", [])) <= set(q.choices):
            raise ValueError(f"set needs a choice of {'/'.join(q.choices or ())}")
    elif "toward" in move:
        if q.curve == "choice" or not q.lo <= move["toward"] <= q.hi or \
                not 0 < move.get("by", 1.0) <= 1:
            raise ValueError(f"toward must be within {q.lo:g}..{q.hi:g}, by within 0..1")
    elif q.curve == "choice" or not move["snap"] > 0:
        raise ValueError("snap needs a positive step on a continuous parameter")


@lru_cache(maxsize=4)
def vocabulary(path: str = str(PATH)) -> Vocabulary:
    """The vocabulary, loaded and checked once."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise DataError(f"{p}: cannot read: {exc.strerror}") from exc
    return Vocabulary(parse(text, str(p)), text, str(p))
