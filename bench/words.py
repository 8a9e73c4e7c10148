"""Sound from words, measured: does each word move its feature, how fast is text -> patch, and
how many paraphrases outside the vocabulary land with and without the embedding model.

- latency: text -> patch. cold = `bandmate patch from-text TEXT -o FILE` in a new Python
  process (median of 3 processes): `cold_s` inside the process (imports, config, the patch, the
  file), `cold_process_s` the whole process as a shell sees it (the interpreter's start too),
  without the embedding model (`--no-model`) and with it (`cold_model_s`: it loads the model
  and encodes the vocabulary's words); `cold_imports_numba` says whether Numba was imported
  (it must not be: engine.declared). Warm = `from_text` again in one process (median of 20).
- words: engine.words.evaluate on every engine, from the plain evaluation bases
  (bench/words-bases) and from factory patches (analog keys, wavetable keys-organ, fm ep-tines,
  sampler pad-sampled): the share of (word, engine) pairs whose feature moved the way the
  vocabulary says against the opposite word (hit rate), further with "very" (intensity, over
  the pairs where "very" changes the patch) and the other way with "not" (negation); every
  render finite and under full scale.
- paraphrases: words outside the vocabulary (evaluate.PARAPHRASES); landed = mapped onto an
  intended headword, hit = that headword's feature moved the right way on the analog base,
  for all of them and for the held-out ones (evaluate.HELD_OUT, never tuned on). Without the
  model nothing lands (the words are reported as not understood). With it, also the words
  not about timbre that map (evaluate.NOT_TIMBRE: must be none) and the everyday words that
  do (evaluate.EVERYDAY: reported). `context` says whether the contextual vectors
  (engine/words/model/context.npz) are there.

    python bench/words.py [--json] [--engines analog,fm] [--skip-audio]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TEXTS = ["a warm, ethereal pad that shimmers like glass", "a very dark, gritty acid bass",
         "plucky metallic fm bell, not too bright", "wide lush strings with a slow swell"]
COLD = ("import time, sys; t0 = time.perf_counter(); from engine.cli import main; "
        "rc = main(sys.argv[1:]); print(time.perf_counter() - t0, 'numba' in sys.modules, rc)")


def _cold(text: str, model: bool) -> tuple[float, float, bool]:
    """(seconds inside, seconds of the whole process, Numba imported) of one cold CLI run."""
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        args = ["patch", "from-text", text, "-o", str(Path(d) / "p.toml")]
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", COLD] + args + ([] if model else
                                                                   ["--no-model"]),
                             cwd=ROOT, capture_output=True, text=True, timeout=300, check=True)
        whole = time.perf_counter() - t0
    inside, numba, rc = out.stdout.strip().splitlines()[-1].split()
    return float(inside), whole, numba == "True"


def latency() -> dict:
    from engine import declared
    from engine.words import embed
    from engine.words.design import from_text
    declared.units()            # the declarations' cache, as any earlier bandmate run leaves it
    cold = [_cold(text, False) for text in TEXTS[:3]]
    model = [_cold(text, True) for text in TEXTS[:3]] if embed.available() else []
    warm = []
    for text in TEXTS:
        from_text(text)
    for _ in range(5):
        for text in TEXTS:
            t0 = time.perf_counter()
            from_text(text)
            warm.append(time.perf_counter() - t0)
    same = all(from_text(t)[0] == from_text(t)[0] for t in TEXTS)
    out = {"cold_s": statistics.median(c[0] for c in cold),
           "cold_process_s": statistics.median(c[1] for c in cold),
           "cold_imports_numba": any(c[2] for c in cold + model),
           "warm_s": statistics.median(warm), "warm_max_s": max(warm), "deterministic": same,
           "load_average_1min": os.getloadavg()[0]}
    if model:
        out["cold_model_s"] = statistics.median(c[0] for c in model)
        out["cold_model_process_s"] = statistics.median(c[1] for c in model)
    return out


def words(engines, bases) -> dict:
    from engine.control.warmup import warm_up
    from engine.words.evaluate import evaluate
    warm_up()
    t0 = time.perf_counter()
    rows = evaluate(engines, bases=bases)
    n = len(rows)

    def share(key):
        vals = [r[key] for r in rows if r[key] is not None]
        return round(sum(vals) / len(vals), 3) if vals else None

    misses = [f"{r['engine']}:{r['word']}" + "".join(
        f" {k}" for k in ("hit", "intensity", "negation", "safe") if r[k] is False)
        for r in rows if any(r[k] is False for k in ("hit", "intensity", "negation", "safe"))]
    return {"pairs": n, "hit_rate": share("hit"), "intensity_rate": share("intensity"),
            "negation_rate": share("negation"), "safe_rate": share("safe"),
            "intensity_not_applicable": sum(r["intensity"] is None for r in rows),
            "max_peak": max((r["peak"] for r in rows), default=None), "misses": misses,
            "seconds": round(time.perf_counter() - t0, 1), "rows": rows}


def paraphrases(skip_audio: bool) -> dict:
    from engine.words import embed
    from engine.words.evaluate import EVERYDAY, HELD_OUT, NOT_TIMBRE, PARAPHRASES, \
        paraphrase_hits
    from engine.words.vocab import vocabulary
    out = {"count": len(PARAPHRASES), "held_out": len(HELD_OUT), "model": embed.available(),
           "context": embed.available() and embed.CONTEXT.is_file()}
    runs = [("without_model", None)]
    if embed.available():
        runs.append(("with_model", embed.similar))
    for key, similar in runs:
        if skip_audio:
            rows = [{"word": w, "mapped": [t.word for t in vocabulary().parse(w, similar).terms]}
                    for w in PARAPHRASES]
            for r in rows:
                r["landed"] = any(h in PARAPHRASES[r["word"]] for h in r["mapped"])
                r["hit"] = None
        else:
            rows = paraphrase_hits(similar)
        held = [r for r in rows if r["word"] in HELD_OUT]

        def rate(rs, k):
            return None if rs[0][k] is None else round(sum(r[k] for r in rs) / len(rs), 3)

        out[key] = {"landed_rate": rate(rows, "landed"), "hit_rate": rate(rows, "hit"),
                    "held_out_landed_rate": rate(held, "landed"),
                    "held_out_hit_rate": rate(held, "hit"),
                    "not_landed": [r["word"] for r in rows if not r["landed"]],
                    "mapped": {r["word"]: r["mapped"] for r in rows}}
        if similar is not None:
            out[key]["not_timbre_mapped"] = [w for w in NOT_TIMBRE if similar(w)]
            out[key]["everyday_mapped"] = {w: [h for h, _ in similar(w)] for w in EVERYDAY
                                           if similar(w)}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--engines", default="analog,wavetable,fm,sampler")
    ap.add_argument("--skip-audio", action="store_true", help="latency and mapping only")
    args = ap.parse_args()
    from engine.words.evaluate import BASES, FACTORY_BASES
    report = {"latency": latency()}
    if not args.skip_audio:
        engines = tuple(args.engines.split(","))
        report["words"] = words(engines, BASES)
        report["words_factory_bases"] = words(engines, FACTORY_BASES)
    report["paraphrases"] = paraphrases(args.skip_audio)
    if args.json:
        slim = json.loads(json.dumps(report))
        for key in ("words", "words_factory_bases"):
            if key in slim:
                slim[key].pop("rows")
        print(json.dumps(slim, indent=2))
        return 0
    lat = report["latency"]
    print(f"text -> patch: cold {lat['cold_s'] * 1000:.0f} ms in the process "
          f"({lat['cold_process_s'] * 1000:.0f} ms with the interpreter's start"
          + (f"; with the model {lat['cold_model_s'] * 1000:.0f} ms" if "cold_model_s" in lat
             else "") + f"; Numba imported: {lat['cold_imports_numba']}), warm "
          f"{lat['warm_s'] * 1000:.1f} ms (max {lat['warm_max_s'] * 1000:.1f}), deterministic: "
          f"{lat['deterministic']}, load average {lat['load_average_1min']:.1f}")
    for key in ("words", "words_factory_bases"):
        if key not in report:
            continue
        w = report[key]
        print(f"{key}: {w['pairs']} (word, engine) pairs: hit {w['hit_rate']:.0%}, intensity "
              f"{w['intensity_rate']:.0%} ({w['intensity_not_applicable']} n/a), negation "
              f"{w['negation_rate']:.0%}, safe {w['safe_rate']:.0%} (max peak "
              f"{w['max_peak']:.3f})")
        for r in w["rows"]:
            print(f"  {r['engine']:9s} {r['word']:11s} {r['feature']:13s} base {r['base']:9.3f}"
                  f"  word {r['word_value']:9.3f}  opp {r['opposite_value']:9.3f}"
                  f"  very {r['very_value']:9.3f}  not {r['not_value']:9.3f}"
                  f"  {'ok' if r['hit'] else 'MISS'}"
                  f" {'n/a' if r['intensity'] is None else 'ok' if r['intensity'] else 'MISS'}"
                  f" {'ok' if r['negation'] else 'MISS'}")
    p = report["paraphrases"]
    for key in ("without_model", "with_model"):
        if key in p:
            q = {k: v for k, v in p[key].items() if k != "mapped"}
            print(f"paraphrases {key} ({p['count']}, {p['held_out']} held out): {q}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
