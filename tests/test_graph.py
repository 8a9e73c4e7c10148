"""Unit chains on the master: config validation, layout, the engine running them, live changes."""
import numpy as np
import pytest

from engine.config import load_config
from engine.control.graph import Graph, GraphBusy, Program, check_chain
from engine.control.offline import OfflineDriver
from engine.control.session import Session
from engine.rt import layout as L
from engine.tomldata import DataError
from tests.enginekit import analog_targets
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
    assert s.state.ctl[L.C_BANK_OPS] == len(s.graph.program.ops)
    assert s.graph.program.ops[-1].path == "/master/width"
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
    s.set("/master/width/width", 0.0)
    out = drv.render(SR // 2)
    k, q = s.graph.program.resolve("/master/width/width")
    n = len(s.graph.program.ops[-1].unit.PARAMS)
    assert s.state.arrays[L.S_UPARAMS][k] == 0.0
    assert s.state.arrays[L.S_UPARAMS][k + n] < 1e-6      # the smoothed value arrived
    side = np.abs(out[:, 0] - out[:, 1])
    assert side[:256].max() > 0.01 and side[-4800:].max() < 1e-4
    with pytest.raises(ValueError):
        s.set("/master/width/width", 5.0)
    with pytest.raises(KeyError) as err:
        s.set("/master/width/depth", 1.0)
    assert "/master/width has gain_db, width" in str(err.value)


def test_every_parameter_has_one_address():
    spec = {"parts": {"bass": {"inserts": [{"unit": "eq"}, {"unit": "compressor",
                                                           "sidechain": "drums"},
                                           {"unit": "eq", "name": "tone"}, {"unit": "eq"}],
                               "mix": {"pan": -0.25, "sends": {"reverb": 0.2}}},
                      "drums": {}},
            "sends": {"delay": [{"unit": "chorus"}], "reverb": [{"unit": "width"}]},
            "master": [{"unit": "saturation"}]}
    prog = Program(spec, SR)
    paths = [op.path for op in prog.ops]
    # the drums first: the bass's compressor listens to them
    assert paths == ["/drums/synth", "/drums/mix", "/bass/synth", "/bass/eq",
                     "/bass/compressor", "/bass/tone", "/bass/eq2", "/bass/mix",
                     "/sends/delay/chorus", "/sends/delay/return",
                     "/sends/reverb/width", "/sends/reverb/return", "/master/saturation"]
    assert prog.value_of("/bass/mix/pan") == -0.25
    assert prog.value_of("/bass/mix/reverb_send") == 0.2 == prog.value_of("/bass/mix/send2")
    assert prog.value_of("/bass/mix/delay_send") == 0.0
    assert prog.value_of("/bass/compressor/sidechain") == 1.0      # external: it listens
    # rows: the instrument writes the part's stereo pair, the inserts work on it in place
    bass = L.B_PART0 + 2, L.B_PART0 + 3
    drums = L.B_PART0 + 8, L.B_PART0 + 9
    assert list(prog.ops[2].io[:4]) == [*bass, *bass] and prog.ops[2].io[7] == 1  # part: a seed
    assert list(prog.ops[3].io[:4]) == [*bass, *bass]
    assert list(prog.ops[4].io[:6]) == [*bass, *bass, *drums]      # sidechain: the drums' pair
    assert list(prog.ops[7].io[:4]) == [*bass, L.B_OUT_L, L.B_OUT_R]
    assert list(prog.ops[1].io[:4]) == [*drums, L.B_OUT_L, L.B_OUT_R]
    assert list(prog.ops[8].io[:4]) == [L.B_SEND0, L.B_SEND0 + 1] * 2
    assert all(op.io[6] == L.B_CTX for op in prog.ops)
    for bad, words in (({"parts": {"tuba": {}}}, "parts.tuba: no such part"),
                       ({"parts": {"bass": {"mix": {"sends": {"echo": 1.0}}}}},
                        "parts.bass.mix.sends.echo: no such send"),
                       ({"parts": {"bass": {"inserts": [{"unit": "eq", "sidechain": "x"}]}}},
                        "parts.bass.inserts[0].sidechain"),
                       ({"parts": {"bass": {"inserts": [{"unit": "eq", "name": "a"},
                                                        {"unit": "width", "name": "a"}]}}},
                        "/bass/a: two units with one name"),
                       ({"master": [{"unit": "strip"}]}, "master[0].unit: strip is not an effect"),
                       ({"sends": {"a": [], "b": [], "c": [], "d": [], "e": []}}, "at most 4")):
        with pytest.raises(ValueError) as err:
            Program(bad, SR)
        assert words in str(err.value), (words, str(err.value))


BASE = {"parts": {p: {} for p in ("keys", "bass", "chords", "lead", "drums")},
        "sends": {"delay": [], "reverb": []}}


def _notes_engine(spec):
    from engine.control.state import EngineState
    from engine.rt.events import K_NOTE_ON
    st = EngineState(SR)
    st.graph = Graph(st, spec, SR)
    for k, n in enumerate((48, 55, 60, 64)):
        st.push_sched(0, K_NOTE_ON, k % 4, n, 0.8, 1)
    return st


def test_a_swap_crossfades_without_a_click_and_is_acknowledged():
    dark = {**BASE, "master": [{"unit": "width", "gain_db": -6.0}]}
    st = _notes_engine(BASE)
    drv = OfflineDriver(st, 128)
    a = drv.render(SR // 2)
    assert not st.graph.busy()
    st.graph.swap(dark, xfade_ms=20.0, time=SR // 2 + 1000)
    assert st.graph.busy()
    with pytest.raises(GraphBusy):
        st.graph.swap(BASE)
    b = drv.render(SR // 2)
    assert not st.graph.busy() and st.ctl[L.C_BANK] == 1
    out = np.concatenate([a, b])
    # the swap changed the sound from its time on, and never jumped more than the music does
    ref = OfflineDriver(_notes_engine(BASE), 128).render(SR)
    t = SR // 2 + 1000
    assert np.array_equal(out[:t], ref[:t])
    change = out[-SR // 4:] - ref[-SR // 4:]
    assert np.sqrt(np.mean(change ** 2)) > 0.1 * np.sqrt(np.mean(ref[-SR // 4:] ** 2))
    steps = np.abs(np.diff(out, axis=0)).max(1)
    around = steps[SR // 2 + 900:SR // 2 + 2100].max()
    assert around <= 1.1 * steps[SR // 4:SR // 2].max()
    # the same events, another block size, the swap at the same time: bit-identical
    st2 = _notes_engine(BASE)
    drv2 = OfflineDriver(st2, 61)
    c = drv2.render(SR // 2)
    st2.graph.swap(dark, xfade_ms=20.0, time=SR // 2 + 1000)
    d = drv2.render(SR // 2)
    assert np.array_equal(out, np.concatenate([c, d]))


def test_a_swap_carries_the_state_of_units_that_stay():
    spec = {**BASE, "parts": {"keys": {"inserts": [{"unit": "chorus"}]}},
            "master": [{"unit": "compressor", "threshold_db": -30.0}]}
    st = _notes_engine(spec)
    drv = OfflineDriver(st, 256)
    a = drv.render(SR // 4)
    new = st.graph.swap(spec, xfade_ms=5.0)           # the same graph again
    assert [int(r) for r in new.prog[:, 6]] == list(range(len(new.ops)))
    b = drv.render(SR // 4)
    # the new bank continued the old one's delay lines and envelopes: the swap is inaudible,
    # the output the same as with no swap at all
    st2 = _notes_engine(spec)
    drv2 = OfflineDriver(st2, 256)
    ref = drv2.render(SR // 2)
    assert np.allclose(np.concatenate([a, b]), ref, atol=1e-6)
    # a unit that changed is not carried (its state starts fresh, crossfaded in)
    other = {**spec, "master": [{"unit": "saturation"}]}
    while st.graph.busy():
        drv.render(256)
    new = st.graph.swap(other)
    assert [int(r) for r in new.prog[:, 6]] == list(range(len(new.ops) - 1)) + [-1]


@pytest.mark.parametrize("engine", ["wavetable", "fm"])
def test_a_part_plays_an_instrument_unit_through_the_graph(engine):
    """Notes for a part whose graph has an instrument go to that unit (at their sample), not
    to the built-in voice; its voices are counted; every note ends; a swap to another engine
    crossfades and the new one plays."""
    from engine.control.state import EngineState
    from engine.rt.events import K_NOTE_OFF, K_NOTE_ON, K_SUSTAIN
    st = EngineState(SR)
    spec = {**BASE, "parts": {"bass": {"instrument": {"unit": engine, "gain_db": -6.0},
                                       "inserts": [{"unit": "eq", "low_cut_hz": 30.0}]}}}
    st.graph = Graph(st, spec, SR)
    assert st.graph.program.ops[0].path == "/bass/synth"
    assert st.ctl[L.C_PART_OP + 1] == 0 and st.ctl[L.C_PART_OP] == -1
    for k, n in enumerate((36, 43, 48)):
        st.push_sched(1000 + 4800 * k, K_NOTE_ON, 1, n, 0.9, 1)
        st.push_sched(30000 + 100 * k, K_NOTE_OFF, 1, n, 0.0, 1)
    st.push_sched(20000, K_SUSTAIN, 1, 0, 1.0, 0)
    st.push_sched(40000, K_SUSTAIN, 1, 0, 0.0, 0)
    drv = OfflineDriver(st, 128)
    a = drv.render(1000)
    assert np.abs(a).max() == 0.0                              # nothing before the first note
    b = drv.render(24000)
    assert np.abs(b).max() > 0.01
    assert int(st.ctl[L.C_VOICES_ACTIVE]) == 3
    c = drv.render(5 * SR)                    # pedal up at 40000: released, rung out
    assert int(st.ctl[L.C_VOICES_ACTIVE]) == 0
    assert np.abs(c[-4800:]).max() < 1e-4                      # no stuck note
    # the first sample of sound is the note's sample
    st2 = EngineState(SR)
    st2.graph = Graph(st2, spec, SR)
    st2.push_sched(777, K_NOTE_ON, 1, 48, 0.9, 1)
    x = OfflineDriver(st2, 256).render(2000)
    assert np.abs(x[:777]).max() == 0.0 and np.abs(x[777:800]).max() > 0.0
    # swap the part to the other engine while a note sounds: it fades over, then plays
    other = "fm" if engine == "wavetable" else "wavetable"
    st2.graph.swap({**spec, "parts": {"bass": {"instrument": {"unit": other}}}})
    st2.push_sched(st2.sample_time + 4800, K_NOTE_ON, 1, 55, 0.9, 1)
    y = OfflineDriver(st2, 256).render(SR // 2)
    steps = np.abs(np.diff(np.concatenate([x, y]), axis=0)).max()
    assert steps < 0.2
    assert np.abs(y[-4800:]).max() > 0.01
    assert int(st2.ctl[L.C_VOICES_ACTIVE]) == 1


def test_an_instrument_is_not_an_insert_and_a_table_is_set_at_build_time():
    with pytest.raises(ValueError, match="wavetable is not an effect"):
        Program({"master": [{"unit": "wavetable"}]}, SR)
    with pytest.raises(ValueError, match="eq is not an instrument"):
        Program({"parts": {"keys": {"instrument": {"unit": "eq"}}}}, SR)
    from engine.control.state import EngineState
    st = EngineState(SR)
    st.graph = Graph(st, {"parts": {"keys": {"instrument": {"unit": "wavetable",
                                                            "table": "square"}}}}, SR)
    with pytest.raises(ValueError, match="set when the graph is built"):
        st.graph.set("/keys/synth/table", "saw")
    st.graph.set("/keys/synth/cutoff_hz", 500.0)


def test_every_address_reaches_its_parameter():
    """Session.set is the one way to change anything: graph units, the analog voice, the kit,
    the limiter; a wrong address or value is refused with the reason."""
    from engine.rt import master
    from engine.rt.params import SYNTH_SPECS
    cfg = load_config("config.toml", environ={})
    s = Session(cfg, SR, demo=True)
    addrs = s.addresses()
    for a in ("/bass/synth/cutoff_hz", "/chords/chorus/mix", "/drums/reverb/decay_s",
              "/drums/synth/tune_st", "/drums/synth/closed_hat_pan", "/master/limiter/ceiling_db", "/lead/mix/reverb_send",
              "/sends/delay/delay/time_beats"):
        assert a in addrs, a
    s.set("/bass/synth/cutoff_hz", 321.0)
    s.set("/bass/synth/filter_type", "svf_lowpass")
    s.set("/drums/synth/tune_st", -2.0)
    s.set("/master/limiter/ceiling_db", -3.0)
    s.set("/chords/chorus/mix", 0.2)
    OfflineDriver(s.state, 256, s.scheduler.advance).render(512)
    a = s.state.arrays
    assert analog_targets(s.state, "bass")[SYNTH_SPECS["cutoff_hz"].index] == 321.0
    assert analog_targets(s.state, "bass")[SYNTH_SPECS["filter_type"].index] == 1.0
    assert a[L.S_UPARAMS][s.graph.program.resolve("/drums/synth/tune_st")[0]] == -2.0
    assert a[L.S_MASTER_PARAMS][master.LIMITER_CEILING_DB] == -3.0
    k, _ = s.graph.program.resolve("/chords/chorus/mix")
    assert a[L.S_UPARAMS][k] == 0.2
    for bad, exc, words in (("/bass/synth/cutof_hz", KeyError, "/bass/synth has"),
                            ("/drums/synth/tuning", KeyError, "/drums/synth has"),
                            ("/master/limiter/limiter", KeyError, "before a stream"),
                            ("/chords/chorus/speed", KeyError, "/chords/chorus has")):
        with pytest.raises(exc, match=words):
            s.set(bad, 1.0)
    with pytest.raises(ValueError):
        s.set("/bass/synth/cutoff_hz", 1e6)
    with pytest.raises(ValueError):
        s.set("/master/limiter/ceiling_db", 3.0)
