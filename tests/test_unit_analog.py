"""The analog voice as an instrument unit of the graph (engine.rt.units.analog): one parameter
system (its parameters are graph addresses like every unit's), its polyphony set when the graph
is built, pitch bend scaled by its own range, a noise seed of its own per part, any part may
play it (the drums too), and a sidechain that really hears the part it names."""
import numpy as np
import pytest

from engine.control.graph import Program, default_spec
from engine.control.state import EngineState
from engine.rt import layout as L
from engine.rt.events import (K_AFTERTOUCH, K_NOTE_OFF, K_NOTE_ON, K_PITCH_BEND)
from engine.rt.params import PARAMS, SYNTH_SPECS
from engine.rt.units import analog
from tests.enginekit import SR, analog_spec, engine, peak_hz, render

SINE = {"osc1_wave": "sine", "osc2_level": 0.0, "filter_type": "svf_lowpass",
        "cutoff_hz": 20000.0, "resonance": 0.0, "filter_env_octaves": 0.0, "amp_attack_s": 0.002,
        "amp_sustain": 1.0, "velocity_sensitivity": 0.0, "gain_db": -6.0, "key_tracking": 0.0,
        "velocity_to_cutoff_octaves": 0.0}


def test_its_parameters_are_params_with_units_and_graph_addresses():
    prog = Program(default_spec(), SR)
    for q in SYNTH_SPECS.values():
        assert f"/keys/synth/{q.name}" in prog.addresses
        assert q.index == PARAMS[q.index].index
    assert SYNTH_SPECS["cutoff_hz"].curve == "log" and SYNTH_SPECS["osc1_wave"].curve == "choice"
    assert SYNTH_SPECS["amp_attack_s"].smooth_s == 0.0            # stepped: applies at once
    assert SYNTH_SPECS["cutoff_hz"].smooth_s > 0.0                # smoothed in the kernel
    assert analog.PREPARE_PARAMS == ("polyphony",)


def test_a_parameter_set_by_address_glides_in_the_kernel():
    st = engine(dict(SINE, cutoff_hz=20000.0, filter_type="ladder", resonance=0.0))
    st.push_sched(0, K_NOTE_ON, 0, 57, 1.0, 1)
    bright = render(st, [], 0.3, part_bus=0)
    st.graph.set("/keys/synth/cutoff_hz", 100.0)
    dark = render(st, [], 0.5, part_bus=0)
    rms = lambda x: float(np.sqrt(np.mean(x ** 2)))   # noqa: E731
    assert rms(dark[-4800:]) < 0.5 * rms(bright[-4800:])
    steps = np.abs(np.diff(np.concatenate([bright[-100:], dark[:2000]])))
    assert steps.max() < 2.5 * np.abs(np.diff(bright[-4800:])).max()   # glided, no jump
    with pytest.raises(ValueError, match="when the graph is built"):
        st.graph.set("/keys/synth/polyphony", 4.0)


@pytest.mark.parametrize("voices,want", [(1, 8), (8, 8), (9, 16), (256, 256)])
def test_polyphony_is_whole_lanes_and_steals_beyond_it(voices, want):
    st = EngineState(SR, analog_spec({"keys": {"amp_sustain": 1.0}}, {"keys": voices}))
    notes = [(0, K_NOTE_ON, 0, 30 + (k % 90), 0.7, 1) for k in range(want + 3)]
    render(st, notes, 0.05)
    c = st.counters()
    assert c["voices"] == want and c["steals"] == 3


def test_pitch_bend_is_scaled_by_the_instruments_own_range():
    for rng_st, bend, want in ((2.0, 1.0, 2.0), (12.0, -1.0, -12.0), (7.0, 0.5, 3.5)):
        st = engine(dict(SINE, pitch_bend_range_semitones=rng_st))
        x = render(st, [(0, K_NOTE_ON, 0, 69, 1.0, 1), (10, K_PITCH_BEND, 0, 0, bend, 0)],
                   0.5, part_bus=0)
        hz = peak_hz(x[SR // 4:])
        assert abs(12 * np.log2(hz / 440.0) - want) < 0.02, (rng_st, bend, hz)


def test_aftertouch_and_bad_events_change_nothing_and_break_nothing():
    ev = [(0, K_NOTE_ON, 0, 60, 1.0, 1), (100, K_AFTERTOUCH, 0, 0, 0.9, 0)]
    a = render(engine(SINE), ev, 0.2, part_bus=0)
    b = render(engine(SINE), ev[:1], 0.2, part_bus=0)
    assert np.array_equal(a, b)
    bad = ev + [(200, K_NOTE_ON, 0, float("nan"), 1.0, 1), (300, K_NOTE_ON, 0, 1e9, 1.0, 1),
                (400, K_NOTE_OFF, 0, float("inf"), 0.0, 1), (500, K_PITCH_BEND, 0, 0, 1e300, 0)]
    st = engine(SINE)
    c = render(st, bad, 0.3, part_bus=0)
    assert np.all(np.isfinite(c)) and st.counters()["voices"] == 1


def test_each_part_plays_its_own_noise():
    """The same noise patch on two parts: the graph seeds each with its part, so the two are
    uncorrelated (one noise for all parts would double in level and image in the centre)."""
    noise = dict(SINE, noise_level=1.0, gain_db=-20.0, filter_type="svf_highpass",
                 cutoff_hz=8000.0)             # (the 65 Hz sine filtered away: noise alone)
    st = EngineState(SR, analog_spec({"keys": noise, "lead": noise}))
    ev = [(0, K_NOTE_ON, 0, 36, 1.0, 1), (0, K_NOTE_ON, 3, 36, 1.0, 1)]
    keys = render(st, ev, 0.3, part_bus=0)
    st2 = EngineState(SR, analog_spec({"keys": noise, "lead": noise}))
    lead = render(st2, ev, 0.3, part_bus=3)
    x, y = keys[SR // 10:], lead[SR // 10:]
    assert np.abs(x).max() > 0.01
    assert abs(np.corrcoef(x, y)[0, 1]) < 0.2


def test_the_drums_part_can_play_the_analog_voice():
    spec = default_spec()
    spec["parts"]["drums"]["instrument"] = {"unit": "analog", "polyphony": 8.0}
    st = EngineState(SR, spec)
    x = render(st, [(0, K_NOTE_ON, 4, 36, 1.0, 1), (4800, K_NOTE_OFF, 4, 36, 0.0, 1)], 2.0,
               part_bus=4)
    assert np.abs(x[:4800]).max() > 0.01
    assert st.counters()["voices"] == 0 and np.abs(x[-4800:]).max() < 1e-4


def test_a_sidechain_hears_the_part_it_names():
    """Kick ducks bass: the compressor on the bass listens to the drums' pair (the drums are
    rendered first, whatever the parts' order)."""
    def bass_with(kicks):
        spec = analog_spec({"bass": dict(SINE, gain_db=-6.0)})
        spec["parts"]["bass"]["inserts"] = [
            {"unit": "compressor", "sidechain": "drums", "threshold_db": -40.0, "ratio": 20.0,
             "attack_ms": 1.0, "release_ms": 80.0}]
        st = EngineState(SR, spec)
        prog = st.graph.program
        assert [op.path for op in prog.ops].index("/drums/mix") < \
            [op.path for op in prog.ops].index("/bass/compressor")
        ev = [(0, K_NOTE_ON, 1, 45, 1.0, 1)] + \
            [(t, K_NOTE_ON, 4, 36, 1.0, 1) for t in range(SR // 4, SR, SR // 4)] * kicks
        return render(st, ev, 1.0, part_bus=1)
    plain, ducked = bass_with(0), bass_with(1)
    k = SR // 4 + SR // 100                          # 10 ms after a kick
    seg = slice(k, k + SR // 50)
    assert np.sqrt(np.mean(ducked[seg] ** 2)) < 0.5 * np.sqrt(np.mean(plain[seg] ** 2))


def test_a_sidechain_loop_is_refused():
    from engine.control.graph import check_spec
    spec = default_spec()
    spec["parts"]["bass"]["inserts"] = [{"unit": "compressor", "sidechain": "drums"}]
    spec["parts"]["drums"]["inserts"] = [{"unit": "compressor", "sidechain": "bass"}]
    with pytest.raises(ValueError, match="loop"):
        check_spec(spec)


def test_bus_rows_are_the_graphs_alone():
    assert L.B_OUT_L == 0 and L.B_PART0 + 2 * L.NPARTS == L.BUS_ROWS


@pytest.mark.parametrize("colour,slope", [("white", 0.0), ("pink", -3.0), ("brown", -6.0)])
def test_noise_colours_have_their_slopes_at_one_level(colour, slope):
    """Octave bands 200 Hz .. 6.4 kHz of the noise alone (the oscillator a sine at 8 Hz):
    white is flat, pink falls 3 dB an octave, brown 6; all three at white's level within 3 dB."""
    patch = dict(SINE, osc1_wave="sine", noise_level=1.0, noise_color=colour, gain_db=0.0,
                 cutoff_hz=20000.0)
    x = render(engine(patch), [(0, K_NOTE_ON, 0, 0, 1.0, 1)], 2.0, part_bus=0)[SR // 10:]
    f = np.fft.rfftfreq(len(x), 1 / SR)
    power = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    bands = [10 * np.log10(power[(f >= 200 * 2 ** k) & (f < 400 * 2 ** k)].mean())
             for k in range(5)]
    fit = np.polyfit(np.arange(5), bands, 1)[0]
    assert abs(fit - slope) < 1.0, (colour, bands)
    white = render(engine(dict(patch, noise_color="white")), [(0, K_NOTE_ON, 0, 0, 1.0, 1)], 2.0,
                   part_bus=0)[SR // 10:]
    assert abs(20 * np.log10(np.std(x) / np.std(white))) < 3.0
