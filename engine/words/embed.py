"""Words outside the vocabulary, by meaning (optional: the `words` extra, control side).

A static embedding model (model2vec's StaticModel: one vector per token, no torch at run time)
distilled once from the all-MiniLM-L6-v2 sentence model by tools/distil_words_model.py and kept
in engine/words/model/ with its licence. `load_similar()` returns a function mapping an
unknown word onto the headwords nearest in meaning ("underwater" -> muffled, "brittle" ->
thin), or None when model2vec or the model is missing: then unknown words are only reported.

Each headword is represented by several vectors: its own, its forms' and its `near` words'
(vocabulary.toml: synonyms not sure enough to be forms, "treble" for bright, "submerged" for
muffled); a word's score for a headword is the best cosine similarity among them. A single
static vector of a rare adjective is a poor guess made from its word pieces ("sparkly" is
"spark" + "##ly"), so a word is also scored through its stems when the tokenizer knows them
as whole words (sparkly -> spark, sparkle; watery -> water), keeping the better score.

A word alone is its meaning out of use, though. So the model folder also holds contextual
vectors (context.npz, made by the same tool): for the vocabulary's words and the 50 000 most
frequent English words, the teacher's sentence vector of the word inside short timbre
sentences ("a sparkly sound", "the synth sounds sparkly", "a sparkly tone"), averaged, with
most of what the sentences share taken out. For a word found there, a headword's score is the
mean of its static score and its contextual score (the same matching, against the headwords'
contextual vectors); any other word is scored by the static model alone. Both are plain
lookups: no torch at run time.

A word maps to the best headword when its score reaches THRESHOLD (RARE_THRESHOLD for a word
the tokenizer splits into three or more pieces and no known stem rescues: a rare or made-up
word), and to up to MAX_HEADWORDS - 1 more whose scores are within MARGIN of the best, each of
another group and not the opposite of one already taken, so a compound meaning keeps its
parts ("nasal": closed + hollow). The strength of a composed move is shared among its parts
(engine.words.vocab.Vocabulary.parse). The thresholds were calibrated on the paraphrase table
of engine/words/evaluate.py against a list of words that are not about timbre, none of which
may map (tests/test_words.py); bench/words.py reports the rates.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

MODEL_DIR = Path(__file__).with_name("model")
CONTEXT = MODEL_DIR / "context.npz"
THRESHOLD = 0.5
RARE_THRESHOLD = 0.6
MARGIN = 0.1
MAX_HEADWORDS = 3
# adjective endings a stem is found under (sparkly -> spark, watery -> water, haunting -> haunt)
SUFFIXES = ("iness", "ness", "ous", "ing", "ish", "ly", "ey", "y")


def available() -> bool:
    try:
        import model2vec  # noqa: F401
    except ImportError:
        return False
    return (MODEL_DIR / "model.safetensors").is_file()


@lru_cache(maxsize=1)
def _model():
    from model2vec import StaticModel
    return StaticModel.from_pretrained(str(MODEL_DIR))


def _unit_rows(m: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(m, axis=1, keepdims=True)
    return m / np.maximum(n, 1e-12)


@lru_cache(maxsize=1)
def _context() -> tuple[dict, np.ndarray]:
    """({text: row}, unit vectors) of context.npz; empty when the file is missing."""
    if not CONTEXT.is_file():
        return {}, np.zeros((0, 1))
    with np.load(CONTEXT, allow_pickle=False) as f:
        words = f["words"].tobytes().decode().split("\n")
        vectors = f["vectors"].astype(np.float32)
    return {w: i for i, w in enumerate(words)}, _unit_rows(vectors)


def _encode(texts: list[str], context: bool) -> np.ndarray:
    """Unit vectors of `texts`: contextual ones (every text must be in context.npz) or the
    static model's."""
    if context:
        index, vectors = _context()
        return vectors[[index[t] for t in texts]]
    return _unit_rows(np.asarray(_model().encode(texts), dtype=np.float64))


def _vocabulary_texts() -> list[tuple[str, str]]:
    """(headword, text) for every headword, form and near word."""
    from engine.words.vocab import vocabulary
    return [(name, text) for name, w in sorted(vocabulary().words.items())
            for text in dict.fromkeys((name,) + w.forms + w.near)]


def missing_context() -> list[str]:
    """The vocabulary's texts context.npz lacks (the vocabulary changed since the model was
    made: remake it with tools/distil_words_model.py)."""
    index = _context()[0]
    return [text for _, text in _vocabulary_texts() if text not in index] if index else []


@lru_cache(maxsize=2)
def _table(context: bool = False):
    """(headword per row, unit vectors) of every headword, form and near word, static or
    contextual (then those context.npz has)."""
    pairs = _vocabulary_texts()
    if context:
        index = _context()[0]
        pairs = [(h, t) for h, t in pairs if t in index]
    return [h for h, _ in pairs], _encode([t for _, t in pairs], context)


def in_context(word: str) -> bool:
    """`word` has a contextual vector (context.npz is there and lists it)."""
    return word in _context()[0]


def stems(word: str) -> list[str]:
    """`word` without an adjective ending, as whole words the tokenizer knows (sparkly ->
    spark, sparkle; muddy -> mud; bubbly -> bubble), in order, without repeats."""
    known = _model().tokenizer.get_vocab()
    out = []
    for suffix in SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            stem = word[:-len(suffix)]
            out += [stem, stem + "e"]
            if len(stem) > 3 and stem[-1] == stem[-2]:
                out.append(stem[:-1])
            if stem.endswith("i"):
                out.append(stem[:-1] + "y")
    return [s for s in dict.fromkeys(out) if s in known and s != word]


def _scores(word: str, context: bool) -> dict[str, float]:
    """Each headword's score for `word`: the best cosine similarity between `word` or one of
    its stems and the headword's texts, with static or contextual vectors."""
    heads, table = _table(context)
    texts = [word] + [s for s in stems(word) if not context or in_context(s)]
    sims = (table @ _encode(texts, context).T).max(1)
    best: dict[str, float] = {}
    for h, s in zip(heads, sims):
        if s > best.get(h, -2.0):
            best[h] = float(s)
    return best


def nearest(word: str, k: int = 5) -> list[tuple[str, float]]:
    """The k headwords nearest to `word` (or to one of its stems) with their scores, best
    first (ties by name): the static model's score, or for a word with a contextual vector
    the mean of the static and the contextual score (each errs on words the other gets
    right: "the" is near "full" only in context, "sparkly" near bright only there)."""
    best = _scores(word, False)
    if in_context(word):
        context = _scores(word, True)
        best = {h: (s + context[h]) / 2 if h in context else s for h, s in best.items()}
    return sorted(best.items(), key=lambda hs: (-round(hs[1], 6), hs[0]))[:k]


def similar(word: str) -> list[tuple[str, float]]:
    """The headwords `word` stands for (none when nothing is near enough)."""
    from engine.words.vocab import vocabulary
    words = vocabulary().words
    ranked = nearest(word, 8)
    pieces = len(_model().tokenizer.encode(word, add_special_tokens=False).ids)
    rare = pieces >= 3 and not stems(word)
    if not ranked or ranked[0][1] < (RARE_THRESHOLD if rare else THRESHOLD):
        return []
    out = [ranked[0]]
    for h, s in ranked[1:]:
        if len(out) >= MAX_HEADWORDS or s < ranked[0][1] - MARGIN:
            break
        if s >= THRESHOLD and words[h].group not in {words[o].group for o, _ in out} and \
                words[h].opposite not in {o for o, _ in out} and \
                h not in {words[o].opposite for o, _ in out}:
            out.append((h, s))
    return out


def load_similar():
    """`similar`, or None when the extra or the model is not installed."""
    return similar if available() else None
