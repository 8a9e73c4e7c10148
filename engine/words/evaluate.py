"""Measured, not asserted: does each word move its feature the way the vocabulary says?
(control side: bench/words.py reports it, tests/test_words.py asserts it).

For each engine a plain mid-range patch is the base (bench/words-bases/ENGINE.toml, with room
to move every way; FACTORY_BASES are factory patches, which the bench reports beside). A word
is applied to it as an edit ("bright", its opposite "dark", "very bright", "not bright"), the
results rendered by engine.words.features and compared:
    hit        the word's feature lies on its side of the opposite's (bright above dark)
    intensity  "very WORD" lies further along that direction than "WORD"; not applicable
               (None) when "very WORD" makes the same patch (a switch: hollow sets a square
               wave, and a square cannot be more square) or when "WORD" itself could not move
               the feature from the base (it sits at that end already: no air to take from
               a sine)
    negation   "not WORD" lies on the other side of "WORD" and does not move the feature the
               word's way from the base (it moves it back, or leaves it where a base already
               sits at that end)
Every render is checked to be finite and under full scale.
"""
from __future__ import annotations

import tempfile
from functools import lru_cache
from pathlib import Path

from engine.words.design import FACTORY, edit_text
from engine.words.vocab import vocabulary

ROOT = Path(__file__).resolve().parents[2]
BASES = {e: ROOT / "bench" / "words-bases" / f"{e}.toml"
         for e in ("analog", "wavetable", "fm", "sampler")}
FACTORY_BASES = {"analog": FACTORY / "keys.toml", "wavetable": FACTORY / "keys-organ.toml",
                 "fm": FACTORY / "ep-tines.toml", "sampler": FACTORY / "pad-sampled.toml"}
# how far a feature must move to count (renders are deterministic, so there is no noise to
# beat, but a move far below what anyone hears is no move): dB features 0.1 dB
TOLERANCE = {"time_centroid": 0.005, "width": 1e-3, "motion": 0.05}
RELATIVE = {"centroid": 0.002}


@lru_cache(maxsize=4096)
def patch_text(src: Path, phrase: str) -> str:
    """The base `src` edited by `phrase` ("": the base), without its comment lines."""
    text = edit_text(src, phrase)[0] if phrase else src.read_text()
    return "\n".join(ln for ln in text.splitlines() if not ln.startswith("#")) + "\n"


@lru_cache(maxsize=4096)
def features_of(src: Path, phrase: str, similar=None) -> dict:
    """The features of the base patch `src` edited by `phrase` ("" for the base)."""
    from engine.patch import read_patch
    from engine.words.features import measure
    text = patch_text(src, phrase) if similar is None else edit_text(src, phrase, similar)[0]
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / src.name
        path.write_text(text)
        return measure(read_patch(path))


def _moved(feature: str, a: float, b: float, direction: str) -> bool:
    """a lies beyond b in `direction` by more than the feature's noise."""
    tol = TOLERANCE.get(feature, 0.1) + RELATIVE.get(feature, 0.0) * abs(b)
    return bool(a - b > tol) if direction == "up" else bool(b - a > tol)


def check_word(engine: str, word: str, bases: dict = BASES) -> dict:
    """The evaluation of one headword on one engine (all four phrases rendered)."""
    src = bases[engine]
    w = vocabulary().words[word]
    f = w.feature
    base = features_of(src, "")[f]
    plain = features_of(src, word)[f]
    opposite = features_of(src, w.opposite)[f]
    very = features_of(src, f"very {word}")[f]
    negated = features_of(src, f"not {word}")[f]
    renders = [features_of(src, p) for p in ("", word, w.opposite, f"very {word}",
                                             f"not {word}")]
    same = patch_text(src, word) == patch_text(src, f"very {word}")
    flip = "down" if w.direction == "up" else "up"
    return {"engine": engine, "word": word, "opposite": w.opposite, "feature": f,
            "direction": w.direction, "base": base, "word_value": plain,
            "opposite_value": opposite, "very_value": very, "not_value": negated,
            "hit": _moved(f, plain, opposite, w.direction),
            "intensity": None if same or not _moved(f, plain, base, w.direction)
            else _moved(f, very, plain, w.direction),
            "negation": _moved(f, plain, negated, w.direction) and
            not _moved(f, negated, base, w.direction),
            "negation_from_base": _moved(f, negated, base, flip),
            "safe": all(r["finite"] == 1.0 and r["peak"] <= 1.0 for r in renders),
            "peak": max(r["peak"] for r in renders)}


def evaluate(engines=tuple(BASES), words=None, bases: dict = BASES) -> list[dict]:
    """Every headword (or `words`) on every engine it applies to."""
    vocab = vocabulary()
    rows = []
    for engine in engines:
        for name in sorted(words or vocab.words):
            if engine in vocab.words[name].applies:
                rows.append(check_word(engine, name, bases))
    return rows


# paraphrases outside the vocabulary and the headwords they should land on (any of them)
PARAPHRASES = {
    # words musicians use that the vocabulary does not know, with the headwords they mean (any
    # one of them counts as landed). None of them, nor its stem, is a form or a near word of the
    # vocabulary (tests/test_words.py): they measure how the model generalises.
    # The first 29 were the development set the near words and thresholds were tuned on; the
    # last 19 (from "glittery", HELD_OUT) were written down before any measurement. They are
    # not a perfectly clean test set: the near words were revised once after a run that also
    # printed them (a few near words, "fragile", "plump", may owe something to it).
    # bench/words.py reports both shares.
    "sparkly": ("bright", "shimmering", "glassy", "crisp"),
    "underwater": ("dark", "wobbly", "muffled"),
    "shiny": ("bright", "crisp", "glassy"),
    "dim": ("dark", "muffled"),
    "shadowy": ("dark", "muffled"),
    "luminous": ("bright", "crisp"),
    "glistening": ("bright", "shimmering", "glassy"),
    "woolly": ("dark", "muffled", "round", "warm"),
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
    "buttery": ("round", "warm"),
    "nasal": ("hollow", "biting", "closed"),
    "honky": ("hollow", "biting"),
    "dusty": ("dark", "gritty", "muffled", "closed"),
    "vintage": ("warm", "gritty", "dark"),
    "glittery": ("bright", "shimmering", "glassy", "crisp"),
    "shrill": ("bright", "biting", "thin"),
    "brittle": ("bright", "thin", "crisp", "glassy"),
    "muddy": ("dark", "muffled", "fat"),
    "creamy": ("round", "warm"),
    "fizzy": ("gritty", "bright", "airy"),
    "grainy": ("gritty", "distorted"),
    "haunting": ("ethereal", "dreamy", "spacious"),
    "watery": ("wobbly", "shimmering", "muffled", "dark"),
    "jangly": ("bright", "metallic", "percussive", "plucky"),
    "twangy": ("plucky", "bright", "biting"),
    "tubby": ("fat", "sub", "dark"),
    "sizzling": ("bright", "airy", "gritty"),
    "mushy": ("muffled", "dark", "round"),
    "wispy": ("airy", "thin"),
    "smoky": ("dark", "warm", "airy", "gritty"),
    "bubbly": ("pulsing", "wobbly", "plucky"),
    "stabby": ("percussive", "plucky", "biting"),
    "lofi": ("dark", "gritty", "muffled", "wobbly"),
}
HELD_OUT = tuple(list(PARAPHRASES)[list(PARAPHRASES).index("glittery"):])
# words not about timbre: none may map (tests/test_words.py)
NOT_TIMBRE = ("zorblax", "table", "python", "computer", "seven", "monday", "banana", "red",
              "flibber", "qwrtp", "96", "the", "jazz")
# everyday words, written down after the thresholds were set and never tuned on: how many
# map is reported (bench/words.py), not asserted; some have a real sense near a timbre word
# ("weather" and "january" ~ cold, "window" ~ glassy), which a model of meaning finds
EVERYDAY = tuple(
    "chair window election because government yesterday twelve football doctor kitchen "
    "january money school quickly london teacher bicycle tax insurance email keyboard "
    "breakfast hospital lawyer eleven tuesday purple green soccer policy which would about "
    "america internet restaurant weather animal engine paper".split())


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
            before = features_of(BASES[engine], "")[w.feature]
            after = features_of(BASES[engine], word, similar)[w.feature]
            moved = _moved(w.feature, after, before, w.direction)
        rows.append({"word": word, "mapped": got, "intended": list(intended),
                     "landed": target is not None, "hit": moved})
    return rows

