"""bench/effects.py, run as a script with a tiny duration: its JSON has the documented shape,
covers every registered effect unit (and only those), and reports pyo's figures, or why not.
Timings are not checked (a few hundredths of a second of audio prove nothing about speed)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.rt.units import UNITS

ROOT = Path(__file__).resolve().parent.parent
FIG = {"ns_per_frame", "ns_per_frame_median", "cpu_ns_per_frame", "x_realtime"}


def _number(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _is_figure(fig):
    return set(fig) == FIG and all(_number(fig[k]) for k in FIG - {"x_realtime"}) \
        and (fig["x_realtime"] is None or _number(fig["x_realtime"]))


@pytest.fixture(scope="module")
def result():
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "effects.py"), "--json",
                           "--seconds", "0.05", "--repeats", "1", "--blocks", "64", "512"],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def test_the_header(result):
    assert result["schema"] == "bandmate.bench.effects/1"
    assert result["sample_rate"] == 48000 and result["seconds"] == 0.05
    assert result["repeats"] == 1 and result["blocks"] == [64, 512]
    assert set(result["settings"]) == {"default", "busy"}
    assert isinstance(result["input"], str)
    assert set(result["harness_ns_per_frame"]) == {"64", "512"}
    assert all(_number(v) for v in result["harness_ns_per_frame"].values())
    assert set(result["load_average"]) == {"start", "end"}


def test_every_effect_unit_of_the_registry_and_nothing_else(result):
    effects = [u.NAME for u in UNITS if not getattr(u, "INSTRUMENT", False) and u.NAME != "strip"]
    assert list(result["units"]) == effects
    assert set(result["not_measured"]) == {u.NAME for u in UNITS} - set(effects)
    assert "strip" in result["not_measured"]
    for kind, u in enumerate(UNITS):
        if u.NAME in result["units"]:
            assert result["units"][u.NAME]["kind"] == kind
            assert result["units"][u.NAME]["params"] == len(u.PARAMS)


def test_bandmate_figures_per_block_and_setting(result):
    for name, e in result["units"].items():
        assert set(e["bandmate"]) == {"64", "512"}, name
        for block in e["bandmate"].values():
            assert set(block) == {"default", "busy"}, name
            assert all(_is_figure(f) for f in block.values()), (name, block)


def test_pyo_figures_and_ratios_or_the_reason_there_are_none(result):
    for name, e in result["units"].items():
        pyo = e["pyo"]
        if "skipped" in pyo or "error" in pyo:
            assert set(pyo) in ({"skipped"}, {"error"}) and isinstance(next(iter(pyo.values())), str)
            assert "bandmate_over_pyo" not in e
            continue
        assert isinstance(pyo["objects"], str) and pyo["variants"], name
        assert set(e["bandmate_over_pyo"]) == set(pyo["variants"])
        for label, v in pyo["variants"].items():
            assert isinstance(v["objects"], str)
            for block in ("64", "512"):
                assert set(v[block]) == {"static", "moving"}
                for fig in v[block].values():
                    assert _is_figure(fig) or (set(fig) == {"error"} and isinstance(fig["error"], str))
                ratio = e["bandmate_over_pyo"][label][block]
                assert set(ratio) == {"default_vs_static", "busy_vs_moving",
                                      "default_vs_static_cpu", "busy_vs_moving_cpu"}
                assert all(r is None or _number(r) for r in ratio.values())
    if any("variants" in e["pyo"] for e in result["units"].values()):
        assert isinstance(result["pyo_version"], str)
