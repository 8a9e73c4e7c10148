"""The whole render kernel: block-size invariance, safety under abuse, event timing."""
import numpy as np
import pytest

from engine.rt import layout as L
from engine.rt.events import (
    ASAP, FX_DELAY, FX_MASTER, FX_REVERB, K_ALL_NOTES_OFF, K_FX, K_MIX, K_MOD_WHEEL, K_NOTE_OFF,
    K_NOTE_ON, K_PANIC, K_PARAM, K_PITCH_BEND, K_SOURCE_GONE, K_SUSTAIN, K_TEMPO,
)
from engine.rt.params import MIX_SPECS, SYNTH_SPECS
from tests.enginekit import SR, engine, latency, render


def busy_session():
    """Every event kind, overlapping notes, steals, parameter sweeps, all parts, on a grid
    that puts events on block edges (multiples of 64) and between them."""
    rng = np.random.default_rng(7)
    ev = []
    for i in range(120):
        t = int(rng.integers(0, int(1.8 * SR)))
        if i % 5 == 0:
            t -= t % 64                                   # exactly on a block edge
        part = int(rng.integers(0, 4))
        note = int(rng.integers(30, 96))
        ev.append((t, K_NOTE_ON, part, note, float(rng.uniform(0.2, 1)), 1))
        ev.append((t + int(rng.integers(100, 20000)), K_NOTE_OFF, part, note, 0.0, 1))
    for t in range(0, 2 * SR, 6000):
        ev.append((t, K_NOTE_ON, 4, [36, 38, 42, 46, 39][t // 6000 % 5], 0.9, 1))
    cut = SYNTH_SPECS["cutoff_hz"].index
    ev += [(3000, K_PARAM, 0, cut, 300.0, 0), (30000, K_PARAM, 0, cut, 8000.0, 0),
           (12345, K_PARAM, 2, SYNTH_SPECS["filter_type"].index, 2.0, 0),
           (22222, K_PARAM, 1, SYNTH_SPECS["osc1_wave"].index, 3.0, 0),
           (5000, K_PITCH_BEND, 0, 0, 1.5, 0), (40000, K_PITCH_BEND, 0, 0, -2.0, 0),
           (7000, K_MOD_WHEEL, 3, 0, 0.8, 0), (9000, K_SUSTAIN, 0, 0, 1.0, 0),
           (50000, K_SUSTAIN, 0, 0, 0.0, 0), (60000, K_MIX, 1, MIX_SPECS["pan"].index, -0.7, 0),
           (61000, K_MIX, 3, MIX_SPECS["delay_send"].index, 0.9, 0),
           (62000, K_FX, FX_REVERB, 0, 5.0, 0), (63000, K_FX, FX_DELAY, 1, 0.7, 0),
           (64000, K_TEMPO, -1, 0, 140.0, 0), (70000, K_SOURCE_GONE, -1, 0, 0, 1),
           (80000, K_ALL_NOTES_OFF, 2, 0, 0, 0), (88000, K_FX, FX_MASTER, 0, 3.0, 0)]
    return ev


@pytest.fixture(scope="module")
def reference():
    st = engine(dry=False, polyphony={"keys": 16, "chords": 8})
    return render(st, busy_session(), 2.0, block=256), st.counters()


@pytest.mark.parametrize("block", [1, 7, 64, 333, 4096])
def test_block_size_invariance_null_test(reference, block):
    st = engine(dry=False, polyphony={"keys": 16, "chords": 8})
    out = render(st, busy_session(), 2.0, block=block)
    ref, counters = reference
    assert counters["steals"] > 0                     # the session exercises stealing
    assert np.array_equal(out, ref)                   # bit-identical: a perfect null


def test_same_events_same_output_and_reset_state_is_clean(reference):
    st = engine(dry=False, polyphony={"keys": 16, "chords": 8})
    assert np.array_equal(render(st, busy_session(), 2.0, block=512), reference[0])


def test_event_lands_on_its_exact_sample():
    st = engine({"osc1_wave": "pulse", "filter_type": "svf_highpass", "cutoff_hz": 20.0,
                 "amp_attack_s": 0.0005, "gain_db": 0.0})
    for t in (0, 63, 64, 1000, 4097):
        st2 = engine({"osc1_wave": "pulse", "filter_type": "svf_highpass", "cutoff_hz": 20.0,
                      "amp_attack_s": 0.0005, "gain_db": 0.0})
        x = render(st2, [(t, K_NOTE_ON, 0, 60, 1.0, 1)], 0.2, block=64, part_bus=0)
        assert np.all(x[:t] == 0.0) and x[t] != 0.0
        y = render(engine(), [(t, K_NOTE_ON, 4, 36, 1.0, 1)], 0.2, block=64)
        first = np.flatnonzero(np.abs(y[:, 0]) > 0)[0]
        assert first == t + latency()                 # the master adds no delay
    assert st.counters()["late_events"] == 0


def test_late_events_apply_at_once_and_are_counted():
    st = engine()
    render(st, [], 0.1)
    st.push_midi(10, K_NOTE_ON, 0, 60, 1.0, 1)
    st.push_midi(ASAP, K_NOTE_ON, 0, 64, 1.0, 1)
    render(st, [], 0.01)
    c = st.counters()
    assert c["late_events"] == 1 and c["voices"] == 2


EXTREMES = [(spec.index, v) for spec in SYNTH_SPECS.values()
            for v in (spec.lo, spec.hi, -1e30, 1e30, 0.0)]


def test_no_nan_or_inf_and_never_above_the_ceiling_under_abuse():
    rng = np.random.default_rng(3)
    ev = []
    for i, (k, v) in enumerate(EXTREMES):
        ev.append((i * 300, K_PARAM, i % 4, k, v, 0))
    for i in range(300):
        ev.append((int(rng.integers(0, SR)), K_NOTE_ON, int(rng.integers(0, 5)),
                   float(rng.choice([0, 1, 127, 60.5, 200, -5])), float(rng.uniform(-1, 3)), 1))
    ev += [(100, K_PITCH_BEND, 0, 0, 1e9, 0), (200, K_MOD_WHEEL, 0, 0, -50, 0),
           (300, K_MIX, 0, 0, 1e9, 0), (400, K_FX, FX_DELAY, 1, 50.0, 0),
           (500, K_FX, FX_REVERB, 0, 1e6, 0), (600, K_FX, FX_MASTER, 0, 1e6, 0),
           (700, K_FX, 99, 0, 1.0, 0), (800, K_PARAM, 7, 0, 1.0, 0), (900, K_MIX, 2, 99, 1.0, 0),
           (SR // 2, K_PANIC, -1, 0, 0, 0), (SR // 2 + 10, K_NOTE_ON, 0, 60, 1.0, 1)]
    st = engine(dry=False)
    out = render(st, ev, 1.5, block=128)
    assert np.all(np.isfinite(out))
    assert np.abs(out).max() <= 10 ** (-1.0 / 20) + 1e-7


def test_loud_mix_is_limited_to_the_ceiling():
    gain = SYNTH_SPECS["gain_db"].index
    ev = [(0, K_PARAM, p, gain, 12.0, 0) for p in range(4)]
    ev += [(10, K_NOTE_ON, p, 36 + 5 * i + p, 1.0, 1) for p in range(4) for i in range(8)]
    ev += [(t, K_NOTE_ON, 4, 36, 1.0, 1) for t in range(0, SR, 4000)]
    st = engine(dry=False)
    out = render(st, ev, 1.0)
    ceiling = 10 ** (-1.0 / 20)
    assert np.abs(out).max() <= ceiling + 1e-7
    assert np.abs(out).max() > 0.9 * ceiling          # it was really driven into the limiter


def test_panic_silences_everything_quickly():
    ev = [(0, K_NOTE_ON, p, 60, 1.0, 1) for p in range(4)] + [(SR // 4, K_PANIC, -1, 0, 0, 0)]
    st = engine()
    out = render(st, ev, 0.5)
    tail = out[SR // 4 + int(0.01 * SR) + latency():, 0].astype(float)
    # all that remains is the DC blocker settling (sub-audio): nothing moves sample to sample
    assert np.abs(np.diff(tail)).max() < 1e-4
    assert np.abs(tail[-100:]).max() < 1e-3
    assert st.counters()["voices"] == 0


def test_source_gone_releases_only_that_sources_notes():
    ev = [(0, K_NOTE_ON, 0, 60, 1.0, 7), (0, K_NOTE_ON, 0, 64, 1.0, 8),
          (1000, K_SOURCE_GONE, -1, 0, 0, 7)]
    st = engine({"amp_release_s": 0.01})
    render(st, ev, 0.2)
    vm = st.arrays[L.S_VMETA]
    held = {int(vm[L.VM_NOTE, v]) for v in range(8) if vm[L.VM_HELD, v] == 1.0}
    assert held == {64}
