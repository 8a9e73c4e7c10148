"""The benchmark scripts run and print their JSON (their figures are reported, not tested)."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_instruments_bench_prints_its_figures():
    out = subprocess.run([sys.executable, "bench/instruments.py", "--json", "--seconds", "0.05",
                          "--voices", "8", "130", "--repeats", "1", "--no-peers"], cwd=ROOT,
                         capture_output=True, text=True, timeout=240, check=True).stdout
    r = json.loads(out.strip().splitlines()[-1])
    for n in ("8", "130"):
        for name in ("wavetable", "fm"):
            assert r["by_voices"][n][name]["ns_per_voice_sample"] is not None
