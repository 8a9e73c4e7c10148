"""Sound from words, measured: does each word move its feature, how fast is text -> patch, and
how many paraphrases outside the vocabulary land with and without the embedding model.

- latency: `from_text` of a few descriptions; cold = a new Python process importing the words
  code and making one patch (median of 3 processes, the time inside the process), of which
  `cold_engine_import_s` is importing the engine's unit declarations (numpy, numba and
  engine.rt.units, which every bandmate command imports) and `cold_words_s` the rest; warm =
  the same call again in one process (median of 20).
- words: engine.words.evaluate on every engine, from the plain evaluation bases
  (bench/words-bases) and from factory patches (analog keys, wavetable keys-organ, fm ep-tines,
  sampler pad-sampled): the share of (word, engine) pairs whose feature moved the way the
  vocabulary says against the opposite word (hit rate), further with "very" (intensity, over
  the pairs where "very" changes the patch) and the other way with "not" (negation); every
  render finite and under full scale.
- paraphrases: words outside the vocabulary (evaluate.PARAPHRASES); landed = mapped onto an
  intended headword, hit = that headword's feature moved the right way on the analog base.
  Without the model nothing lands (the words are reported as not understood).

    python bench/words.py [--json] [--engines analog,fm] [--skip-audio]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TEXTS = ["a warm, ethereal pad that shimmers like glass", "a very dark, gritty acid bass",
         "plucky metallic fm bell, not too bright", "wide lush strings with a slow swell"]
COLD = ("import time, sys; t0 = time.perf_counter(); import engine.rt.units; "
        "t1 = time.perf_counter(); from engine.words.design import from_text; "
        "from_text(sys.argv[1]); t2 = time.perf_counter(); print(t1 - t0, t2 - t1)")


def latency() -> dict:
    from engine.words.design import from_text
    cold = []
    for text in TEXTS[:3]:
        out = subprocess.run([sys.executable, "-c", COLD, text], cwd=ROOT, capture_output=True,
                             text=True, timeout=300, check=True)
        cold.append(tuple(float(x) for x in out.stdout.strip().splitlines()[-1].split()))
    warm = []
    for text in TEXTS:
        from_text(text)
    for _ in range(5):
        for text in TEXTS:
            t0 = time.perf_counter()
            from_text(text)
            warm.append(time.perf_counter() - t0)
    same = all(from_text(t)[0] == from_text(t)[0] for t in TEXTS)
    return {"cold_s": statistics.median(a + b for a, b in cold),
            "cold_engine_import_s": statistics.median(a for a, _ in cold),
            "cold_words_s": statistics.median(b for _, b in cold),
            "warm_s": statistics.median(warm),
            "warm_max_s": max(warm), "deterministic": same}


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
    from engine.words.evaluate import PARAPHRASES, paraphrase_hits
    out = {"count": len(PARAPHRASES), "model": embed.available()}
    runs = [("without_model", None)]
    if embed.available():
        runs.append(("with_model", embed.similar))
    for key, similar in runs:
        if skip_audio:
            from engine.words.vocab import vocabulary
            landed = sum(any(t.word in hs for t in vocabulary().parse(w, similar).terms)
                         for w, hs in PARAPHRASES.items())
            out[key] = {"landed_rate": round(landed / len(PARAPHRASES), 3)}
            continue
        rows = paraphrase_hits(similar)
        out[key] = {"landed_rate": round(sum(r["landed"] for r in rows) / len(rows), 3),
                    "hit_rate": round(sum(r["hit"] for r in rows) / len(rows), 3),
                    "mapped": {r["word"]: r["mapped"] for r in rows}}
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
    print(f"text -> patch: cold {lat['cold_s'] * 1000:.0f} ms (engine import "
          f"{lat['cold_engine_import_s'] * 1000:.0f} ms, words {lat['cold_words_s'] * 1000:.0f}"
          f" ms), warm {lat['warm_s'] * 1000:.1f} ms"
          f" (max {lat['warm_max_s'] * 1000:.1f}), deterministic: {lat['deterministic']}")
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
            print(f"paraphrases {key}: {p[key]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
