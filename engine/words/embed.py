"""Words outside the vocabulary, by meaning (optional: the `words` extra, control side).

A static embedding model (model2vec's StaticModel: one vector per token, no torch at run time)
distilled once from the all-MiniLM-L6-v2 sentence model by tools/distil_words_model.py and kept
in engine/words/model/ with its licence. `load_similar()` returns a function mapping an
unknown word onto the headwords nearest in meaning ("sparkly" -> bright, shimmering), or None
when model2vec or the model is missing: then unknown words are only reported.

Each headword is represented by its own vector and its forms' vectors; a word's score for a
headword is the best cosine similarity among them. A word maps to the best headword when that
score reaches THRESHOLD (RARE_THRESHOLD for a word the model's tokenizer splits into three or
more pieces: a rare or made-up word, whose vector is a guess from its fragments), and also to
the runner-up when it is within MARGIN of the best, of another group and not its opposite
("woolly": dreamy and round), so a compound meaning keeps both halves. Single words are hard
for a sentence model (and harder for its static distillation): bench/words.py reports how many
paraphrases land; the rest stay "not understood".
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

MODEL_DIR = Path(__file__).with_name("model")
THRESHOLD = 0.5
RARE_THRESHOLD = 0.6
MARGIN = 0.03


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
def _table():
    """(headword per row, group per row, unit vectors) of every headword and form."""
    from engine.words.vocab import vocabulary
    vocab = vocabulary()
    heads, groups, texts = [], [], []
    for name, w in sorted(vocab.words.items()):
        for text in (name,) + w.forms:
            heads.append(name)
            groups.append(w.group)
            texts.append(text)
    return heads, groups, _unit_rows(np.asarray(_model().encode(texts), dtype=np.float64))


def nearest(word: str, k: int = 5) -> list[tuple[str, float]]:
    """The k headwords nearest to `word` with their scores, best first (ties by name)."""
    heads, _, table = _table()
    v = _unit_rows(np.asarray(_model().encode([word]), dtype=np.float64))[0]
    sims = table @ v
    best: dict[str, float] = {}
    for h, s in zip(heads, sims):
        if s > best.get(h, -2.0):
            best[h] = float(s)
    return sorted(best.items(), key=lambda hs: (-round(hs[1], 6), hs[0]))[:k]


def similar(word: str) -> list[tuple[str, float]]:
    """The headwords `word` stands for (none when nothing is near enough)."""
    from engine.words.vocab import vocabulary
    words = vocabulary().words
    ranked = nearest(word, 3)
    pieces = len(_model().tokenizer.encode(word, add_special_tokens=False).ids)
    if not ranked or ranked[0][1] < (THRESHOLD if pieces < 3 else RARE_THRESHOLD):
        return []
    out = [ranked[0]]
    for h, s in ranked[1:]:
        if s >= max(THRESHOLD, ranked[0][1] - MARGIN) and \
                words[h].group not in {words[o].group for o, _ in out} and \
                words[h].opposite not in {o for o, _ in out}:
            out.append((h, s))
            break
    return out


def load_similar():
    """`similar`, or None when the extra or the model is not installed."""
    return similar if available() else None
