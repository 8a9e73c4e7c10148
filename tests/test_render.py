"""The whole render kernel: block-size invariance, safety under abuse, event timing."""
import numpy as np
import pytest

from engine.rt import layout as L
from engine.rt.events import (
    ASAP, FX_MASTER, K_ALL_NOTES_OFF, K_FX, K_UNIT_PARAM, K_MOD_WHEEL, K_NOTE_OFF,
    K_NOTE_ON, K_PANIC, K_PITCH_BEND, K_SOURCE_GONE, K_SUSTAIN, K_TEMPO,
)
from engine.rt import master, voice
from engine.rt.params import P_BEND_ST, P_MOD, SYNTH_SPECS
from engine.control.graph import Program, default_spec
from tests.enginekit import SR, analog_voices, engine, latency, render

_GRAPH = Program(default_spec(), SR)     # the graph every EngineState starts with
MIX = {a: _GRAPH.resolve(a)[0] for a in ("/bass/mix/pan", "/lead/mix/delay_send",
                                           "/sends/delay/delay/feedback",
                                           "/sends/reverb/reverb/decay_s")}


def syn(part, k):
    """The params-pool index of parameter k (engine.rt.params) of part's analog voice."""
    return float(_GRAPH.ops[_GRAPH.part_op[part]].params + k)


RATES = [44100, 48000, 96000]
BLOCKS = [1, 7, 64, 333, 4096]   # the reference renders with 256
EDGE_BLOCKS = [7, 64, 256, 333, 4096]


def busy_session(sr=SR):
    """Every event kind, overlapping notes, steals, parameter sweeps, all parts, on a grid
    that puts events exactly on the block edges of every block size tested (and on the
    samples either side of them), and between them. Times are the same in seconds at every
    sample rate."""
    def at(t48):
        return t48 * sr // SR

    rng = np.random.default_rng(7)
    ev = []
    for i in range(120):
        t = int(rng.integers(0, int(1.8 * sr)))
        part = int(rng.integers(0, 4))
        note = int(rng.integers(30, 96))
        ev.append((t, K_NOTE_ON, part, note, float(rng.uniform(0.2, 1)), 1))
        ev.append((t + at(int(rng.integers(100, 20000))), K_NOTE_OFF, part, note, 0.0, 1))
    cut = SYNTH_SPECS["cutoff_hz"].index
    for b in EDGE_BLOCKS:                       # on block edges: k * b, and k * b -+ 1
        for k in rng.choice(np.arange(1, int(1.8 * sr) // b), 3, replace=False):
            t = int(k) * b
            part = int(rng.integers(0, 4))
            note = int(rng.integers(30, 96))
            ev += [(t, K_NOTE_ON, part, note, 0.8, 1), (t - 1, K_NOTE_ON, 4, 38, 0.7, 1),
                   (t + 1, K_UNIT_PARAM, -1, syn(part, cut), float(rng.uniform(200, 9000)), 0),
                   (t + b, K_NOTE_OFF, part, note, 0.0, 1)]
    for t in range(0, 2 * SR, 6000):
        ev.append((at(t), K_NOTE_ON, 4, [36, 38, 42, 46, 39][t // 6000 % 5], 0.9, 1))
    ev += [(at(t), *rest) for t, *rest in [
        (3000, K_UNIT_PARAM, -1, syn(0, cut), 300.0, 0), (30000, K_UNIT_PARAM, -1, syn(0, cut), 8000.0, 0),
        (12345, K_UNIT_PARAM, -1, syn(2, SYNTH_SPECS["filter_type"].index), 2.0, 0),
        (22222, K_UNIT_PARAM, -1, syn(1, SYNTH_SPECS["osc1_wave"].index), 3.0, 0),
        (5000, K_PITCH_BEND, 0, 0, 0.75, 0), (40000, K_PITCH_BEND, 0, 0, -1.0, 0),
        (7000, K_MOD_WHEEL, 3, 0, 0.8, 0), (9000, K_SUSTAIN, 0, 0, 1.0, 0),
        (50000, K_SUSTAIN, 0, 0, 0.0, 0), (60000, K_UNIT_PARAM, -1, MIX["/bass/mix/pan"], -0.7, 0),
        (61000, K_UNIT_PARAM, -1, MIX["/lead/mix/delay_send"], 0.9, 0),
        (62000, K_UNIT_PARAM, -1, MIX["/sends/reverb/reverb/decay_s"], 5.0, 0), (63000, K_UNIT_PARAM, -1, MIX["/sends/delay/delay/feedback"], 0.7, 0),
        (64000, K_TEMPO, -1, 0, 140.0, 0), (70000, K_SOURCE_GONE, -1, 0, 0, 1),
        (80000, K_ALL_NOTES_OFF, 2, 0, 0, 0), (88000, K_FX, FX_MASTER, 0, 3.0, 0)]]
    return ev


def test_the_busy_session_puts_events_on_every_block_edge():
    for sr in RATES:
        times = {e[0] for e in busy_session(sr)}
        for b in EDGE_BLOCKS:
            edges = [t for t in times if t > 0 and t % b == 0 and {t - 1, t + 1} <= times]
            assert len(edges) >= 3, (sr, b)


def busy_engine(sr):
    return engine(sr=sr, dry=False, polyphony={"keys": 16, "chords": 8})


@pytest.fixture(scope="module", params=RATES, ids=lambda sr: f"{sr}Hz")
def reference(request):
    sr = request.param
    st = busy_engine(sr)
    return sr, render(st, busy_session(sr), 2.0, block=256), st.counters()


@pytest.mark.parametrize("block", BLOCKS)
def test_block_size_invariance_null_test(reference, block):
    sr, ref, counters = reference
    assert counters["steals"] > 0 and counters["late_events"] == 0   # stealing, on time
    assert np.abs(ref).max() > 0.1
    st = busy_engine(sr)
    out = render(st, busy_session(sr), 2.0, block=block)
    assert np.array_equal(out, ref)                   # bit-identical: a perfect null
    assert dict(st.counters(), blocks=0) == dict(counters, blocks=0)


def test_same_events_same_output_and_reset_state_is_clean(reference):
    sr, ref, _ = reference
    assert np.array_equal(render(busy_engine(sr), busy_session(sr), 2.0, block=512), ref)


@pytest.mark.parametrize("sr", RATES)
@pytest.mark.parametrize("block", [7, 64])
def test_event_lands_on_its_exact_sample(sr, block):
    patch = {"osc1_wave": "pulse", "filter_type": "svf_highpass", "cutoff_hz": 20.0,
             "amp_attack_s": 0.0005, "gain_db": 0.0}
    for t in (0, 1, 63, 64, 1000, 4097):             # 63 = 9 * 7 and 64: block edges
        st = engine(patch, sr=sr)
        x = render(st, [(t, K_NOTE_ON, 0, 60, 1.0, 1)], 0.2, block=block, part_bus=0)
        assert np.all(x[:t] == 0.0) and x[t] != 0.0
        assert st.counters()["late_events"] == 0
        drums = engine(sr=sr)
        y = render(drums, [(t, K_NOTE_ON, 4, 36, 1.0, 1)], 0.2, block=block)
        first = np.flatnonzero(np.abs(y[:, 0]) > 0)[0]
        assert first == t + latency(sr)               # the master's delay (0: safety limiter)
        assert drums.counters()["late_events"] == 0


def test_late_events_apply_at_once_and_are_counted():
    st = engine()
    render(st, [], 0.1)
    st.push_midi(10, K_NOTE_ON, 0, 60, 1.0, 1)
    st.push_midi(ASAP, K_NOTE_ON, 0, 64, 1.0, 1)
    render(st, [], 0.01)
    c = st.counters()
    assert c["late_events"] == 1 and c["voices"] == 2


EXTREMES = [(k, v) for k in [spec.index for spec in SYNTH_SPECS.values()] + [P_BEND_ST, P_MOD]
            for v in (-1e30, 1e30, -48.0, 48.0, 0.0, 1.0)]


def test_no_nan_or_inf_and_never_above_the_ceiling_under_abuse():
    rng = np.random.default_rng(3)
    ev = []
    for i, (k, v) in enumerate(EXTREMES):
        ev.append((i * 300, K_UNIT_PARAM, -1, syn(i % 4, k), v, 0))
    for i in range(300):
        ev.append((int(rng.integers(0, SR)), K_NOTE_ON, int(rng.integers(0, 5)),
                   float(rng.choice([0, 1, 127, 60.5, 200, -5])), float(rng.uniform(-1, 3)), 1))
    ev += [(100, K_PITCH_BEND, 0, 0, 1e9, 0), (200, K_MOD_WHEEL, 0, 0, -50, 0),
           (300, K_UNIT_PARAM, -1, 0, 1e9, 0), (400, K_UNIT_PARAM, -1, MIX["/sends/delay/delay/feedback"], 50.0, 0),
           (500, K_UNIT_PARAM, -1, MIX["/sends/reverb/reverb/decay_s"], 1e6, 0), (600, K_FX, FX_MASTER, 0, 1e6, 0),
           (700, K_FX, 99, 0, 1.0, 0), (800, K_NOTE_ON, 7, 60, 1.0, 1), (900, K_UNIT_PARAM, -1, 1e9, 1.0, 0), (950, K_UNIT_PARAM, -1, 3, 1.0, 7),
           (SR // 2, K_PANIC, -1, 0, 0, 0), (SR // 2 + 10, K_NOTE_ON, 0, 60, 1.0, 1)]
    st = engine(dry=False)
    out = render(st, ev, 1.5, block=128)
    assert np.all(np.isfinite(out))
    assert np.abs(out).max() <= 10 ** (-1.0 / 20) + 1e-7
    # nothing unsafe ever reached the master (its guard would have hidden it), and the
    # limiter alone kept the ceiling
    assert st.counters()["nonfinite"] == 0
    assert master.master_counters(st.arrays[L.S_MASTER_STATE])["clamped"] == 0
    assert np.abs(out[-SR // 2:]).max() > 0.01                       # still playing


def test_loud_mix_is_limited_to_the_ceiling():
    gain = SYNTH_SPECS["gain_db"].index
    ev = [(0, K_UNIT_PARAM, -1, syn(p, gain), 12.0, 0) for p in range(4)]
    ev += [(10, K_NOTE_ON, p, 36 + 5 * i + p, 1.0, 1) for p in range(4) for i in range(8)]
    ev += [(t, K_NOTE_ON, 4, 36, 1.0, 1) for t in range(0, SR, 4000)]
    st = engine(dry=False)
    out = render(st, ev, 1.0)
    ceiling = 10 ** (-1.0 / 20)
    assert np.abs(out).max() <= ceiling + 1e-7
    assert np.abs(out).max() > 0.9 * ceiling          # it was really driven into the limiter
    mc = master.master_counters(st.arrays[L.S_MASTER_STATE])
    assert mc["clamped"] == 0 and mc["limit_gain"] < 0.5   # the limiter did it, not the clamp


def test_panic_silences_everything_quickly():
    at = SR // 4
    ev = [(0, K_NOTE_ON, p, 60, 1.0, 1) for p in range(4)] + [(at, K_PANIC, -1, 0, 0, 0)]
    st = engine()
    out = render(st, ev, 0.5)
    assert np.abs(out[at - SR // 20:at]).max() > 0.1                  # it was playing
    tail = out[at + int(0.01 * SR) + latency():, 0].astype(float)
    # all that remains is the DC blocker settling (sub-audio): nothing moves sample to sample
    assert np.abs(np.diff(tail)).max() < 1e-4
    assert np.abs(tail[-100:]).max() < 1e-3
    assert st.counters()["voices"] == 0


@pytest.mark.parametrize("part", range(4))
def test_panic_fades_each_synth_part_over_the_steal_time(part):
    """Every voice fades out linearly to exactly 0 over STEAL_TIME_S: faded, not cut."""
    at = SR // 4
    fade = round(voice.STEAL_TIME_S * SR)
    notes = [(0, K_NOTE_ON, part, n, 1.0, 1) for n in (48, 55, 60, 64)]
    patch = {"amp_sustain": 1.0, "filter_env_octaves": 0.0}   # (a fade freezes the filter)
    x = render(engine(patch, part=part), notes + [(at, K_PANIC, -1, 0, 0, 0)], 0.4,
               part_bus=part)
    held = render(engine(patch, part=part), notes, 0.4, part_bus=part)
    ramp = (fade - 1 - np.arange(fade)) / fade
    assert np.array_equal(x[:at], held[:at])
    assert np.allclose(x[at:at + fade], held[at:at + fade] * ramp, rtol=1e-5, atol=1e-6)
    assert np.abs(held[at:at + fade]).max() > 0.05
    assert np.all(x[at + fade:] == 0.0)


def test_source_gone_releases_only_that_sources_notes():
    ev = [(0, K_NOTE_ON, 0, 60, 1.0, 7), (0, K_NOTE_ON, 0, 64, 1.0, 8),
          (1000, K_SOURCE_GONE, -1, 0, 0, 7)]
    st = engine({"amp_release_s": 0.01})
    x = render(st, ev, 0.2, part_bus=0)
    vm = analog_voices(st, "keys")
    held = {int(vm[L.VM_NOTE, v]) for v in range(8) if vm[L.VM_HELD, v] == 1.0}
    assert held == {64}
    # on the signal: once source 7's note has died away, what sounds is source 8's note alone
    alone = render(engine({"amp_release_s": 0.01}), ev[1:2], 0.2, part_bus=0)
    assert not np.allclose(x[:1000], alone[:1000])
    assert np.array_equal(x[SR // 10:], alone[SR // 10:])
