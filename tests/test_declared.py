"""engine.declared: the units' declarations read without importing the kernels are the real
ones, the cache is keyed on the audio thread's sources, and `bandmate patch from-text` answers
without importing Numba."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine import declared

ROOT = Path(__file__).resolve().parent.parent


def test_declarations_are_the_units_own():
    from engine.rt.units import KIND, UNITS
    got = declared.units()
    assert [u.NAME for u in got] == [u.NAME for u in UNITS] and declared.kind() == KIND
    for real, decl in zip(UNITS, got):
        for key in ("INSTRUMENT", "DATA", "PREPARE_PARAMS", "CARRIERS"):
            assert getattr(decl, key, None) == getattr(real, key, None), (real.NAME, key)
        assert len(decl.PARAMS) == len(real.PARAMS)
        for q, p in zip(decl.PARAMS, real.PARAMS):
            for f in declared.FIELDS + ("index",):
                assert getattr(q, f) == getattr(p, f), (real.NAME, p.name, f)


def test_the_cache_is_read_written_and_survives_damage(tmp_path, monkeypatch):
    monkeypatch.setattr(declared, "cache_path", lambda: tmp_path / "d" / "units.json")
    declared.units.cache_clear()
    declared.kind.cache_clear()
    try:
        first = declared.units()
        data = json.loads((tmp_path / "d" / "units.json").read_text())
        assert [d["consts"]["NAME"] for d in data] == [u.NAME for u in first]
        # what the cache says is what a later process uses: a changed range shows
        data[0]["params"][0]["hi"] = data[0]["params"][0]["default"] + 0.5
        (tmp_path / "d" / "units.json").write_text(json.dumps(data))
        declared.units.cache_clear()
        assert declared.units()[0].PARAMS[0].hi == data[0]["params"][0]["hi"]
        # a damaged file: the real declarations
        (tmp_path / "d" / "units.json").write_text('[{"consts": {}}]')
        declared.units.cache_clear()
        assert [u.NAME for u in declared.units()] == [u.NAME for u in first]
    finally:
        declared.units.cache_clear()
        declared.kind.cache_clear()


def test_check_chain_needs_no_kernels():
    assert declared.check_chain([{"unit": "eq", "peak1_gain_db": 3.0}]) == \
        [{"unit": "eq", "peak1_gain_db": 3.0}]
    for bad, why in (([{"unit": "nope"}], "unknown unit"), ([{"unit": "fm"}], "not an effect"),
                     ([{"unit": "strip"}], "not an effect"),
                     ([{"unit": "eq", "peak1_gain_db": 99.0}], r"\[0\]\.peak1_gain_db")):
        with pytest.raises(ValueError, match=why):
            declared.check_chain(bad)


COLD = ("import sys; from engine.cli import main; rc = main(sys.argv[1:]); "
        "print('numba' in sys.modules, 'engine.rt.units' in sys.modules, rc, file=sys.stderr)")


def test_patch_from_text_does_not_import_the_kernels(tmp_path):
    declared.units()            # the cache exists (any earlier bandmate command writes it)
    out = tmp_path / "p.toml"
    run = subprocess.run([sys.executable, "-c", COLD, "patch", "from-text", "a dark pad",
                          "-o", str(out), "--no-model"], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert run.stderr.strip().splitlines()[-1] == "False False 0", run.stderr
    from engine.words.design import from_text
    assert out.read_text() == from_text("a dark pad")[0]
