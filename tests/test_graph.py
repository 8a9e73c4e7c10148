"""Unit chains on the master: config validation, layout, the engine running them, live changes."""
import numpy as np
import pytest

from engine.config import load_config
from engine.control.graph import Chain, check_chain
from engine.control.offline import OfflineDriver
from engine.control.session import Session
from engine.rt import layout as L
from engine.tomldata import DataError
from tests.test_units import make, run

SR = 48000


def test_check_chain_names_the_entry_and_key():
    ok = check_chain([{"unit": "width", "width": 1.5},
                      {"unit": "saturation", "curve": "hard", "drive_db": 6}])
    assert ok == [{"unit": "width", "width": 1.5},
                  {"unit": "saturation", "curve": 2.0, "drive_db": 6.0}]
    for bad, words in (([{"unit": "fuzz"}], "[0].unit: unknown unit 'fuzz'"),
                       ([{"width": 1.0}], "[0]: must be a table with a `unit` key"),
                       ([{"unit": "width"}, {"unit": "width", "wdth": 1}], "[1].wdth"),
                       ([{"unit": "width", "width": 3.0}], "[0].width: must be 0..2"),
                       ([{"unit": "saturation", "curve": "fuzzy"}], "[0].curve: must be one of"),
                       ([{"unit": "width", "width": "wide"}], "[0].width: must be a number"),
                       ("width", "must be a list")):
        with pytest.raises(ValueError) as err:
            check_chain(bad)
        assert words in str(err.value)


def test_a_broken_chain_in_config_names_file_line_and_key(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[mix]\nceiling_db = -1.0\nmaster_inserts = [{ unit = "width", width = 9 }]\n')
    with pytest.raises(DataError) as err:
        load_config(cfg, environ={})
    msg = str(err.value)
    assert "c.toml" in msg and ":3" in msg and "master_inserts" in msg and "[0].width" in msg


def _render(cfg, seconds=2.0, block=256):
    s = Session(cfg, SR, demo=True)
    return s, OfflineDriver(s.state, block, s.scheduler.advance).render(int(seconds * SR))


def test_the_master_chain_runs_in_the_engine_and_an_empty_one_changes_nothing():
    cfg = load_config("config.toml", environ={})
    assert cfg["mix"]["master_inserts"] == []
    _, plain = _render(cfg)
    cfg["mix"]["master_inserts"] = [{"unit": "width", "width": 0.0}]
    s, mono = _render(cfg)
    assert s.state.ctl[L.C_PROG_COUNT] == 1
    assert np.array_equal(mono[:, 0], mono[:, 1])           # width 0 before the limiter: mono
    assert not np.array_equal(plain[:, 0], plain[:, 1])
    cfg["mix"]["master_inserts"] = [{"unit": "width", "width": 1.0, "gain_db": 0.0}]
    _, same = _render(cfg)
    assert np.allclose(same, plain, atol=1e-6)               # an identity insert: the same mix


def test_the_master_chain_is_block_size_invariant():
    cfg = load_config("config.toml", environ={})
    cfg["mix"]["master_inserts"] = [{"unit": "saturation", "drive_db": 12.0},
                                    {"unit": "width", "width": 1.6}]
    _, a = _render(cfg, 1.5, block=1024)
    _, b = _render(cfg, 1.5, block=37)
    assert np.array_equal(a, b)


def test_a_live_parameter_change_reaches_the_unit_smoothed():
    cfg = load_config("config.toml", environ={})
    cfg["mix"]["master_inserts"] = [{"unit": "width", "width": 1.0}]
    s = Session(cfg, SR, demo=True)
    drv = OfflineDriver(s.state, 256, s.scheduler.advance)
    drv.render(SR // 2)
    s.set_master_insert(0, "width", 0.0)
    out = drv.render(SR // 2)
    k = s.master_inserts.param_index(0, "width")
    n = len(s.master_inserts.ops[0][0].PARAMS)
    assert s.state.arrays[L.S_UPARAMS][k] == 0.0
    assert s.state.arrays[L.S_UPARAMS][k + n] < 1e-6      # the smoothed value arrived
    side = np.abs(out[:, 0] - out[:, 1])
    assert side[:256].max() > 0.01 and side[-4800:].max() < 1e-4
    with pytest.raises(ValueError):
        s.set_master_insert(0, "width", 5.0)
    with pytest.raises(KeyError):
        s.set_master_insert(0, "depth", 1.0)


def test_chain_layout_matches_running_the_units_by_hand():
    from engine.control.state import EngineState
    st = EngineState(SR)
    chain = Chain([{"unit": "width", "width": 0.5}, {"unit": "saturation", "drive_db": 6.0}],
                  SR, (L.B_OUT_L, L.B_OUT_R))
    chain.write(st)
    from engine.rt.units import dispatch, saturation, width
    rng = np.random.default_rng(3)
    l, r = 0.3 * rng.standard_normal(2000), 0.3 * rng.standard_normal(2000)
    bus = st.arrays[L.S_BUS]
    bus[L.B_OUT_L, :2000], bus[L.B_OUT_R, :2000] = l, r
    dispatch.run_program(st.arrays[L.S_PROG], int(st.ctl[L.C_PROG_COUNT]),
                         st.arrays[L.S_USTATE], st.arrays[L.S_UPARAMS], st.arrays[L.S_UIO],
                         bus, 0, 2000, float(SR))
    a = run(width, *make(width, {"width": 0.5}), l, r)
    b = run(saturation, *make(saturation, {"drive_db": 6.0}), a[0], a[1])
    assert np.array_equal(bus[L.B_OUT_L, :2000], b[0]) and np.array_equal(bus[L.B_OUT_R, :2000], b[1])
