"""Per-unit carry length: at a graph swap the audio thread copies only the live prefix of a
carried unit's state (engine.rt.units.base `carry_len`, the program's PR_CARRY_LEN column),
never the tables or samples behind it, and held notes keep sounding as if nothing happened."""
import numpy as np
import pytest

from engine.control.graph import Graph, Program
from engine.control.offline import OfflineDriver
from engine.control.state import EngineState
from engine.parts import KEYS
from engine.rt import layout as L
from engine.rt.events import K_NOTE_ON
from engine.rt.units import KIND, UNITS, analog, dispatch, kit, sampler, wavetable
from engine.rt.units.dispatch import PR_CARRY, PR_CARRY_LEN, PR_STATE_LEN
from tests.test_units import SR, make, run, script

DECLARED = [u for u in UNITS if hasattr(u, "carry_len")]

# instruments with a data tail, each with the values that load one
CASES = {"wavetable": {"table": "sine_saw"},
         "sampler": {"samples": "pad"},
         "sampler-mallet": {"samples": "mallet"},
         "sampler-builtin": {},
         "kit": {},
         "fm": {}}


def _unit(case):
    return UNITS[KIND[case.split("-")[0]]]


def _spec(case, **more):
    inst = {"unit": _unit(case).NAME, **CASES[case], **more}
    return {"parts": {"keys": {"instrument": inst}},
            "sends": {"delay": [{"unit": "delay"}], "reverb": [{"unit": "reverb"}]}}


def test_the_units_with_a_data_tail_declare_their_live_prefix():
    assert {u.NAME for u in DECLARED} == {"wavetable", "sampler", "kit", "analog"}
    assert analog.carry_len(SR) == analog.X_VF + L.VF_C_OSC * L.NVMAX // 2   # not the scratch
    assert wavetable.carry_len(SR) == wavetable.T0
    assert sampler.carry_len(SR) == sampler.RESET_END
    assert kit.carry_len(SR) == kit.K_SCRATCH
    for u in DECLARED:
        assert 0 < u.carry_len(SR) < u.state_size(SR)


@pytest.mark.parametrize("unit", DECLARED, ids=lambda u: u.NAME)
def test_the_state_after_the_prefix_is_not_live(unit):
    """A unit whose state after carry_len is replaced, mid-phrase, by a freshly prepared one's
    (what a swap leaves in the new bank) plays on exactly as the one left alone: everything
    live is in the prefix."""
    n, cut = 24000, 9001
    events = script(n)
    z = np.zeros(n)
    a_state, a_params = make(unit)
    ref = run(unit, a_state, a_params, z, z, events=events)
    b_state, b_params = make(unit)
    first = [e for e in events if e[0] < cut]
    x0 = run(unit, b_state, b_params, z[:cut], z[:cut], events=first)
    fresh, _ = make(unit)
    k = unit.carry_len(SR)
    b_state[k:] = fresh[k:]
    later = [(e[0] - cut, *e[1:]) for e in events if e[0] >= cut]
    x1 = run(unit, b_state, b_params, z[cut:], z[cut:], events=later)
    for c in range(2):
        assert np.array_equal(np.concatenate([x0[c], x1[c]]), ref[c])
    assert np.abs(ref[0]).max() > 0.01


@pytest.mark.parametrize("case", ["wavetable", "sampler", "kit", "fm"])
def test_carry_program_copies_only_the_prefix(case):
    """The program column holds each op's live prefix; carry_program copies it and nothing
    after it (the old bank's tail poisoned with NaN does not reach the new one)."""
    old, new = Program(_spec(case), SR), Program(_spec(case), SR)
    assert new.carry_from(old) == len(new.ops)
    unit = _unit(case)
    r = new.part_op[KEYS]
    op = new.ops[r]
    want = unit.carry_len(SR, **op.data) if hasattr(unit, "carry_len") else op.state_len
    assert new.prog[r, PR_CARRY_LEN] == want == op.carry_len
    assert new.prog[r, PR_CARRY] == r
    for k, o in enumerate(new.ops):                # every other unit: its whole state
        if k != r:
            assert new.prog[k, PR_CARRY_LEN] == new.prog[k, PR_STATE_LEN] == o.state_len
    ov = old.ustate[old.ops[r].state:old.ops[r].state + op.state_len]
    rng = np.random.default_rng(3)
    ov[:want] = rng.standard_normal(want)          # live state that must arrive
    ov[want:] = np.nan                             # data that must not be copied
    before = new.ustate.copy()
    dispatch.carry_program(new.prog, len(new.ops), new.ustate, new.uparams, old.prog,
                           len(old.ops), old.ustate, old.uparams)
    nv = new.ustate[op.state:op.state + op.state_len]
    assert np.array_equal(nv[:want], ov[:want])
    assert np.array_equal(nv[want:], before[op.state + want:op.state + op.state_len],
                          equal_nan=True)
    assert np.isfinite(new.ustate).all()
    assert new.carried_floats() == sum(o.carry_len for o in new.ops)


def _engine(spec, chord):
    st = EngineState(SR)
    st.graph = Graph(st, spec, SR)
    for n in chord:
        st.push_sched(100, K_NOTE_ON, KEYS, n, 0.8, 1)
    return st


@pytest.mark.parametrize("case", ["wavetable", "sampler", "sampler-mallet", "sampler-builtin"])
def test_a_swap_keeps_the_held_notes_and_reads_the_new_banks_data(case):
    """A chord held across a swap to the same graph: the carried instrument plays on, sample
    for sample as without the swap, even though the old bank's tables were zeroed when the
    swap began (the new bank reads its own, from prepare)."""
    spec = _spec(case)
    chord = (48, 55, 60, 64)
    other = _engine(spec, chord)
    ref = OfflineDriver(other, 256).render(SR)
    st = _engine(spec, chord)
    drv = OfflineDriver(st, 256)
    a = drv.render(SR // 2)
    voices = int(st.ctl[L.C_VOICES_ACTIVE])
    ringing = case != "sampler-mallet"              # (struck bars have died away by the end)
    assert voices >= len(chord) or not ringing
    old = st.graph.program
    new = st.graph.swap(spec, xfade_ms=0.0)          # one sample: the new bank's weight is 1
    r = new.part_op[KEYS]
    op = old.ops[r]
    assert new.prog[r, PR_CARRY] == r
    data = {"wavetable": wavetable.T0, "sampler": sampler.RESET_END}[op.unit.NAME]
    old.ustate[op.state + data:op.state + op.state_len] = 0.0     # the old bank's data
    b = drv.render(SR // 2)
    assert not st.graph.busy()
    assert np.array_equal(np.concatenate([a, b]), ref)
    assert np.abs(b[-4800:]).max() > 1e-3 or not ringing
    assert int(st.ctl[L.C_VOICES_ACTIVE]) == int(other.ctl[L.C_VOICES_ACTIVE])
    # the copy at the swap: every carried op's live prefix, the instrument's data left out
    whole = sum(o.state_len for o in new.ops)
    assert new.carried_floats() == whole - (op.state_len - data)


def test_editing_a_sampler_patch_keeps_the_held_notes(tmp_path):
    """Hot reload of a sampler patch (its samples through the graph's prepare path): an edit
    of a value carries the voices over (only their prefix is copied) and glides; a broken
    set name is reported and nothing changes; another set is a new instrument, crossfaded."""
    import shutil

    from engine.control.hotreload import PatchWatcher
    from tests.test_hotreload import _edit, _seam, _session
    root = tmp_path
    (root / "patches").mkdir()
    for name in ("bass", "chords", "lead"):
        shutil.copy(f"patches/{name}.toml", root / "patches" / f"{name}.toml")
    path = root / "patches" / "keys.toml"
    shutil.copy("patches/pad-sampled.toml", path)
    s = _session(root)
    for n in (48, 55, 60, 64):
        s.state.push_sched(100, K_NOTE_ON, KEYS, n, 0.8, 1)
    w = PatchWatcher(s, log=lambda _: None)
    drv = OfflineDriver(s.state, 256, s.scheduler.advance)
    a = drv.render(SR)
    voices = int(s.state.ctl[L.C_VOICES_ACTIVE])
    assert voices >= 4
    r = s.graph.program.part_op[KEYS]
    _edit(path, path.read_text().replace("cutoff_hz = 2500.0", "cutoff_hz = 900.0"))
    assert w.poll() == ["keys: sampled pad reloaded"]
    prog = s.graph.program
    assert prog.prog[r, PR_CARRY] == r                     # the sampler carried over
    assert prog.prog[r, PR_CARRY_LEN] == sampler.RESET_END < prog.ops[r].state_len // 100
    b = drv.render(SR // 2)
    assert int(s.state.ctl[L.C_VOICES_ACTIVE]) == voices
    across, _ = _seam(a, b)
    steady = max(np.abs(np.diff(a[-24000:, 0])).max(), np.abs(np.diff(b[2400:, 0])).max())
    assert across <= 1.05 * steady
    while s.graph.busy():
        drv.render(256)
    good = path.read_text()
    _edit(path, good.replace('samples = "pad"', 'samples = "padd"'))
    said = w.poll()
    assert len(said) == 1 and "unchanged" in said[0] and "padd" in said[0], said
    assert s.graph.program is prog
    _edit(path, good.replace('samples = "pad"', 'samples = "mallet"'))
    assert w.poll() == ["keys: sampled pad reloaded"]
    assert s.graph.program.prog[r, PR_CARRY] == -1         # another set: a new instrument
    c = drv.render(SR // 2)
    assert np.isfinite(c).all() and np.abs(np.diff(c[:, 0])).max() < 0.2
