"""Measured, not asserted: does each word move its feature the way the vocabulary says?
(control side: bench/words.py reports it, tests/test_words.py asserts it).

For each engine a factory patch is the base (BASES). A word is applied to it as an edit
("bright", its opposite "dark", "very bright", "not bright"), the results rendered by
engine.words.features and compared:
    hit        the word's feature lies on its side of the opposite's (bright above dark)
    intensity  "very WORD" lies further along that direction than "WORD"
    negation   "not WORD" moves the feature the other way from the base
Every render is checked to be finite and under full scale.
"""
from __future__ import annotations

import tempfile
from functools import lru_cache
from pathlib import Path

from engine.words.design import FACTORY, edit_text
from engine.words.vocab import vocabulary

BASES = {"analog": "keys", "wavetable": "keys-organ", "fm": "ep-tines", "sampler": "pad-sampled"}
TOLERANCE = {"centroid": 1.0, "time_centroid": 0.002, "width": 1e-4}   # else 0.01 (dB, ...)


def base_path(engine: str) -> Path:
    return FACTORY / f"{BASES[engine]}.toml"


@lru_cache(maxsize=2048)
def features_of(engine: str, phrase: str) -> dict:
    """The features of the engine's base patch edited by `phrase` ("" for the base)."""
    from engine.patch import read_patch
    from engine.words.features import measure
    src = base_path(engine)
    text = edit_text(src, phrase)[0] if phrase else src.read_text()
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / src.name
        path.write_text(text)
        return measure(read_patch(path))


def _moved(feature: str, a: float, b: float, direction: str) -> bool:
    """a lies beyond b in `direction` by more than the feature's noise."""
    tol = TOLERANCE.get(feature, 0.01)
    return (a - b > tol) if direction == "up" else (b - a > tol)


def check_word(engine: str, word: str) -> dict:
    """The evaluation of one headword on one engine (all four phrases rendered)."""
    w = vocabulary().words[word]
    f = w.feature
    base = features_of(engine, "")[f]
    plain = features_of(engine, word)[f]
    opposite = features_of(engine, w.opposite)[f]
    very = features_of(engine, f"very {word}")[f]
    negated = features_of(engine, f"not {word}")[f]
    renders = [features_of(engine, p) for p in ("", word, w.opposite, f"very {word}",
                                                f"not {word}")]
    flip = "down" if w.direction == "up" else "up"
    return {"engine": engine, "word": word, "opposite": w.opposite, "feature": f,
            "direction": w.direction, "base": base, "word_value": plain,
            "opposite_value": opposite, "very_value": very, "not_value": negated,
            "hit": _moved(f, plain, opposite, w.direction),
            "intensity": _moved(f, very, plain, w.direction),
            "negation": _moved(f, negated, base, flip),
            "safe": all(r["finite"] == 1.0 and r["peak"] <= 1.0 for r in renders),
            "peak": max(r["peak"] for r in renders)}


def evaluate(engines=tuple(BASES), words=None) -> list[dict]:
    """Every headword (or `words`) on every engine it applies to."""
    vocab = vocabulary()
    rows = []
    for engine in engines:
        for name in sorted(words or vocab.words):
            if engine in vocab.words[name].applies:
                rows.append(check_word(engine, name))
    return rows


# paraphrases outside the vocabulary and the headwords they should land on (any of them)
PARAPHRASES = {
    "sparkly": ("bright", "shimmering", "glassy", "crisp"),
    "underwater": ("dark", "wobbly", "muffled"),
    "shiny": ("bright", "crisp", "glassy"),
    "dim": ("dark", "muffled"),
    "shadowy": ("dark", "muffled"),
    "luminous": ("bright", "crisp"),
    "glistening": ("bright", "shimmering", "glassy"),
    "woolly": ("dark", "muffled", "round", "warm"),
    "velvet": ("round", "warm"),
    "piercing": ("biting", "bright"),
    "sharp": ("biting", "bright", "crisp"),
    "buzzy": ("gritty", "biting", "distorted"),
    "breezy": ("airy",),
    "whispery": ("airy",),
    "immense": ("huge", "spacious", "cathedral"),
    "gigantic": ("huge",),
    "echoey": ("spacious", "cathedral"),
    "wavering": ("wobbly", "pulsing", "shimmering"),
    "trembling": ("pulsing", "wobbly"),
    "plinky": ("plucky", "percussive"),
    "hefty": ("fat", "sub"),
    "scrawny": ("thin",),
    "thunderous": ("sub", "fat", "huge"),
    "frosty": ("cold",),
    "toasty": ("warm",),
}


def paraphrase_hits(similar, engine: str = "analog") -> list[dict]:
    """For each paraphrase: the headwords it was mapped to (none without a model), whether one
    is intended, and whether the intended headword's feature moved the right way on the base
    when the paraphrase itself is applied."""
    vocab = vocabulary()
    rows = []
    for word, intended in PARAPHRASES.items():
        parsed = vocab.parse(word, similar)
        got = [t.word for t in parsed.terms]
        target = next((h for h in got if h in intended), None)
        moved = False
        if target is not None:
            w = vocab.words[target]
            before = features_of(engine, "")[w.feature]
            after = _features_similar(engine, word, similar)[w.feature]
            moved = _moved(w.feature, after, before, w.direction)
        rows.append({"word": word, "mapped": got, "intended": list(intended),
                     "landed": target is not None, "hit": moved})
    return rows


def _features_similar(engine: str, phrase: str, similar) -> dict:
    from engine.patch import read_patch
    from engine.words.features import measure
    src = base_path(engine)
    text = edit_text(src, phrase, similar)[0]
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / src.name
        path.write_text(text)
        return measure(read_patch(path))
