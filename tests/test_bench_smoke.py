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


def test_control_bench_prints_its_sections():
    """bench/control.py, briefly: MQTT (through mosquitto) and OSC command-to-sound latency and
    a rate each, on a JACK dummy server."""
    import shutil
    import pytest
    if shutil.which("jackd") is None or shutil.which("mosquitto_passwd") is None:
        pytest.skip("needs jackd (Debian: jackd2) and mosquitto")
    out = subprocess.run([sys.executable, "bench/control.py", "--json", "--repeats", "3",
                          "--seconds", "0.3", "--rates", "200", "--hours", "2",
                          "--hour-s", "12"], cwd=ROOT,
                         capture_output=True, text=True, timeout=240, check=True).stdout
    r = json.loads(out.strip().splitlines()[-1])
    for proto in ("mqtt", "osc"):
        lat = r[f"{proto}_latency"]
        assert lat["repeats"] == 3 and 0.0 < lat["median_ms"] <= lat["max_ms"]
        rate = r[f"{proto}_throughput"]["by_rate"][0]
        assert rate["rate_per_s"] == 200 and rate["sent"] == 60
        assert rate["applied"] == rate["sent"] and rate["backlog_s"] is not None
    mem = r["memory_day"]
    assert mem["hours"] == [1, 2] and len(mem["traced_mb"]) == 2 and mem["scheduled_notes"] > 0
