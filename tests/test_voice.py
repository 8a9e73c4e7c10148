"""The synth voice, asserted on the signal: pitch, aliasing, filter curves, envelopes."""
import math

import numpy as np
import pytest

from engine.rt import layout as L
from engine.rt import voice
from engine.rt.events import K_NOTE_OFF, K_NOTE_ON, K_PITCH_BEND, K_SUSTAIN
from engine.rt.params import SMOOTH_S
from tests.enginekit import SR, engine, peak_hz, render

OPEN = {"filter_type": "ladder", "cutoff_hz": 20000.0, "resonance": 0.0, "key_tracking": 0.0,
        "filter_env_octaves": 0.0, "velocity_to_cutoff_octaves": 0.0, "osc2_level": 0.0,
        "amp_attack_s": 0.001, "amp_sustain": 1.0, "velocity_sensitivity": 0.0, "gain_db": 0.0,
        "drive": 1.0}


def note_bus(patch, note=69, seconds=0.5, vel=1.0):
    st = engine(dict(OPEN, **patch))
    return render(st, [(0, K_NOTE_ON, 0, note, vel, 1)], seconds, part_bus=0)


@pytest.mark.parametrize("wave", ["saw", "pulse", "triangle", "sine"])
@pytest.mark.parametrize("note", [45, 69, 93])
def test_oscillator_pitch_by_fft(wave, note):
    x = note_bus({"osc1_wave": wave}, note)[SR // 10:]
    expected = 440.0 * 2 ** ((note - 69) / 12)
    assert peak_hz(x) == pytest.approx(expected, rel=2e-3)


def _alias_db(x, f0):
    """Energy away from the harmonics of f0, relative to the total, in dB."""
    n = len(x)
    spec = np.abs(np.fft.rfft(x * np.blackman(n))) ** 2
    freqs = np.fft.rfftfreq(n, 1 / SR)
    harmonic = np.zeros_like(spec, dtype=bool)
    for h in np.arange(f0, SR / 2, f0):
        harmonic |= np.abs(freqs - h) < 30.0
    return 10 * np.log10(spec[~harmonic].sum() / spec.sum())


@pytest.mark.parametrize("wave", ["saw", "pulse", "triangle"])
def test_band_limited_oscillators_alias_far_less_than_naive(wave):
    note = 100                                   # 2637 Hz: many harmonics fold at 48 kHz
    f0 = 440.0 * 2 ** ((note - 69) / 12)
    x = note_bus({"osc1_wave": wave}, note, 1.0)[SR // 4:SR // 4 + 32768]
    t = (np.arange(len(x)) * f0 / SR) % 1.0
    naive = {"saw": 2 * t - 1, "pulse": np.where(t < 0.5, -1.0, 1.0),
             "triangle": 4 * np.abs(t - 0.5) - 1}[wave]
    ours, theirs = _alias_db(x, f0), _alias_db(naive, f0)
    assert ours < theirs - 12.0, (ours, theirs)
    assert ours < {"saw": -28.0, "pulse": -28.0, "triangle": -50.0}[wave]  # 2-point PolyBLEP


def _tpt_s(z, g):
    """The bilinear transform with prewarping used by TPT filters: s/wc = (1/g)(z-1)/(z+1)."""
    return (z - 1) / (z + 1) / g


def _impulse_response(filter_type, cutoff, res, n=8192):
    """Drive one voice's filter stage directly with a tiny impulse (linear region)."""
    vf = np.zeros(L.VF_ROWS * L.NVMAX, np.float32)
    w = math.pi * cutoff / SR
    g = math.tan(w)
    lo, hi = np.uint64(0), np.uint64(8)
    out = np.zeros(n)
    amp = 1e-4
    for i in range(n):
        vf[L.VF_OSC * L.NVMAX] = amp if i == 0 else 0.0
        if filter_type == "ladder":
            vf[L.VF_G * L.NVMAX] = g / (1 + g)
            k = 3.9 * res
            voice._ladder(vf, lo, hi, np.float32(k), np.float32(1.0), np.float32(1 + 0.5 * k))
        else:
            vf[L.VF_G * L.NVMAX] = g
            voice._svf(vf, lo, hi, np.float32(2.0 - 1.96 * res), np.float32(1.0),
                       {"lp": 1, "bp": 2, "hp": 3}[filter_type])
        out[i] = vf[L.VF_OUT * L.NVMAX] / amp
    return out, g


@pytest.mark.parametrize("cutoff,res", [(500.0, 0.0), (2000.0, 0.5), (5000.0, 0.9)])
def test_ladder_matches_the_analytic_curve(cutoff, res):
    h, g = _impulse_response("ladder", cutoff, res)
    freqs = np.linspace(20, 0.45 * SR, 400)
    z = np.exp(2j * np.pi * freqs / SR)
    h1 = 1 / (1 + _tpt_s(z, g))
    k = 3.9 * res
    analytic = (1 + 0.5 * k) * h1 ** 4 / (1 + k * h1 ** 4)
    measured = np.array([np.sum(h * z0 ** -np.arange(len(h))) for z0 in z])
    err_db = 20 * np.log10(np.abs(measured) / np.abs(analytic))
    audible = np.abs(analytic) > 1e-4       # above -80 dB: below, float32 state is the floor
    assert np.max(np.abs(err_db[audible])) < 0.05


@pytest.mark.parametrize("mode", ["lp", "bp", "hp"])
@pytest.mark.parametrize("cutoff,res", [(300.0, 0.2), (3000.0, 0.7)])
def test_svf_matches_the_analytic_curve(mode, cutoff, res):
    h, g = _impulse_response(mode, cutoff, res)
    freqs = np.linspace(20, 0.45 * SR, 400)
    z = np.exp(2j * np.pi * freqs / SR)
    s = _tpt_s(z, g)
    damp = 2.0 - 1.96 * res
    den = s * s + damp * s + 1
    analytic = {"lp": 1 / den, "bp": damp * s / den, "hp": s * s / den}[mode]
    measured = np.array([np.sum(h * z0 ** -np.arange(len(h))) for z0 in z])
    err_db = 20 * np.log10(np.abs(measured) / np.abs(analytic))
    audible = np.abs(analytic) > 1e-4
    assert np.max(np.abs(err_db[audible])) < 0.05


def _analytic_adsr(n, sr, a, d, s, r, off):
    """The envelope's documented curve at output samples n (the note starts at sample 0 and is
    released at `off`; the envelope steps once before each sample it shapes). Exponential
    segments: the attack aims at 1.3 with 1.4 time constants per attack_s (98 % of full level
    at attack_s, full level at 1.047 attack_s, where it turns into the decay); the decay goes
    99 % of the way (4.6 time constants) to the sustain level in decay_s; the release goes
    down by 99 % (-40 dB) in release_s."""
    att = 1.3 * (1.0 - np.exp(-1.4 * (n + 1) / (a * sr)))
    peak = int(np.argmax(att >= 1.0))

    def held(m):
        return np.where(m < peak, att[np.minimum(m, len(att) - 1)],
                        s + (1.0 - s) * np.exp(-4.6 * (m - peak) / (d * sr)))
    at_off = held(np.array([off - 1]))[0]
    return np.where(n < off, held(n), at_off * np.exp(-4.6 * (n - off + 1) / (r * sr))), peak


@pytest.mark.parametrize("a,d,s,r", [(0.05, 0.2, 0.5, 0.3), (0.01, 0.05, 0.2, 0.1)])
def test_adsr_follows_its_analytic_curve(a, d, s, r):
    """The amplifier envelope, sample by sample: the note divided by the same note at full
    level (same oscillator and filter; only the envelope differs) is the envelope itself."""
    off = int(0.8 * SR)
    patch = dict(OPEN, osc1_wave="sine", amp_attack_s=a, amp_decay_s=d, amp_sustain=s,
                 amp_release_s=r)
    st = engine(patch)
    x = render(st, [(0, K_NOTE_ON, 0, 69, 1.0, 1), (off, K_NOTE_OFF, 0, 69, 0.0, 1)], 1.4,
               part_bus=0)
    full = render(engine(dict(OPEN, osc1_wave="sine", amp_attack_s=0.0005, amp_sustain=1.0)),
                  [(0, K_NOTE_ON, 0, 69, 1.0, 1)], 1.4, part_bus=0)
    n = np.arange(len(x))
    want, peak = _analytic_adsr(n, SR, a, d, s, r, off)
    assert peak / SR == pytest.approx(1.047 * a, rel=0.01)       # full level at ~attack_s
    freed = int(np.flatnonzero(want >= voice.IDLE_LEVEL)[-1]) + 1  # below -80 dB: voice freed
    # where the full-level note is well away from its zero crossings (and at full level)
    use = (np.abs(full) > 0.3 * np.abs(full).max()) & (n > SR // 100) & (n < freed)
    env = x[use] / full[use]
    assert np.max(np.abs(env - want[use])) < 5e-4                # float32 envelope rounding
    assert np.all(x[freed + 1:] == 0.0) and x[freed - 2] != 0.0   # freed, and not before
    assert st.counters()["voices"] == 0


def test_velocity_scales_level():
    loud = np.abs(note_bus({"velocity_sensitivity": 1.0}, vel=1.0)).max()
    soft = np.abs(note_bus({"velocity_sensitivity": 1.0}, vel=0.5)).max()
    assert soft / loud == pytest.approx(0.25, rel=0.05)


def _cycle_frequencies(x, sr):
    """Frequency of each cycle of x (from one upward zero crossing, linearly interpolated, to
    the next) and the crossing times in samples."""
    i = np.flatnonzero((x[:-1] < 0) & (x[1:] >= 0))
    tz = i + x[i] / (x[i] - x[i + 1])
    return sr / np.diff(tz), tz


def _mean_over_cycles(f, tz, sr):
    """Mean of a per-sample frequency f over each interval between crossing times tz."""
    phase = np.concatenate([[0.0], np.cumsum(f / sr)])            # cycles, at sample edges
    at = np.interp(tz, np.arange(len(phase)), phase)
    return np.diff(at) / np.diff(tz) * sr


@pytest.mark.parametrize("bend", [2.0, -7.0])
def test_pitch_bend_glides_with_the_smoothing_time_constant(bend):
    """The frequency, cycle by cycle, follows 440 Hz * 2^(b(t)/12) where the bend b(t) goes
    to its new value as a one-pole glide with the engine's SMOOTH_S time constant: not a step,
    not faster, not slower."""
    at = SR // 4
    x = render(engine(dict(OPEN, osc1_wave="sine")),
               [(0, K_NOTE_ON, 0, 69, 1.0, 1), (at, K_PITCH_BEND, 0, 0, bend, 0)], 0.6,
               part_bus=0)
    measured, tz = _cycle_frequencies(x, SR)
    k = np.arange(len(x)) - at
    glide = np.where(k < 0, 0.0, bend * -np.expm1(-(k + 1) / (SMOOTH_S * SR)))
    want = _mean_over_cycles(440.0 * 2 ** (glide / 12), tz, SR)
    mid = (tz[1:] + tz[:-1]) / 2
    steady = mid > SR // 20                                        # after the attack
    assert np.max(np.abs(measured - want)[steady]) < 0.25           # Hz
    # it does move: 15 ms (one time constant) after the bend it is 63 % of the way there
    assert np.interp(at + SMOOTH_S * SR, mid, measured) == pytest.approx(
        440.0 * 2 ** (bend * (1 - math.exp(-1)) / 12), abs=0.5)
    assert measured[-1] == pytest.approx(440.0 * 2 ** (bend / 12), abs=0.05)


def test_sustain_pedal_holds_and_lifts():
    st = engine(dict(OPEN, osc1_wave="sine", amp_release_s=0.05))
    ev = [(0, K_SUSTAIN, 0, 0, 1.0, 0), (100, K_NOTE_ON, 0, 69, 1.0, 1),
          (SR // 4, K_NOTE_OFF, 0, 69, 0.0, 1), (SR // 2, K_SUSTAIN, 0, 0, 0.0, 0)]
    x = render(st, ev, 1.0, part_bus=0)
    full = np.abs(x[int(0.1 * SR):int(0.2 * SR)]).max()
    assert np.abs(x[int(0.4 * SR):int(0.45 * SR)]).max() > 0.99 * full  # held by the pedal
    assert np.abs(x[int(0.75 * SR):]).max() == 0.0                     # released after lifting


def test_voice_stealing_does_not_click():
    st = engine(dict(OPEN, osc1_wave="sine", amp_attack_s=0.005), polyphony={"keys": 8})
    ev = [(i * 1000, K_NOTE_ON, 0, 57 + i, 1.0, 1) for i in range(8)]
    steal_at = 20000
    ev.append((steal_at, K_NOTE_ON, 0, 80, 1.0, 1))
    x = render(st, ev, 0.6, part_bus=0)
    assert st.counters()["steals"] == 1
    # from just before the steal, through the fade, into the thief's first millisecond (later,
    # the new chord's own waveform sets the steps, not the steal)
    normal = np.abs(np.diff(x[15000:steal_at])).max()
    fade = voice.steal_samples(SR)
    around = np.abs(np.diff(x[steal_at - 10:steal_at + fade + SR // 1000])).max()
    assert around < 1.3 * normal
    assert peak_hz(x[steal_at + 4800:]) != pytest.approx(440 * 2 ** ((57 - 69) / 12), rel=0.01)


@pytest.mark.parametrize("sr", [44100, 48000, 96000])
def test_stolen_voice_fades_linearly_over_steal_time_then_the_thief_starts(sr):
    """All 8 voices busy; the loud one (the oldest) is stolen. Its sound goes down linearly to
    exactly 0 over STEAL_TIME_S (in whole samples), and the thief's note starts on the very
    next sample, as if played alone there. The 7 other voices are silent (velocity 0 with full
    velocity sensitivity), so the part bus holds just the stolen note and the thief."""
    patch = dict(OPEN, osc1_wave="sine", velocity_sensitivity=1.0, amp_attack_s=0.002)
    fade = round(voice.STEAL_TIME_S * sr)
    steal_at = sr // 5
    seconds = 0.4
    held = [(0, K_NOTE_ON, 0, 57, 1.0, 1)] + [(10 + i, K_NOTE_ON, 0, 60 + i, 0.0, 1)
                                              for i in range(7)]
    st = engine(patch, sr=sr, polyphony={"keys": 8})
    x = render(st, held + [(steal_at, K_NOTE_ON, 0, 76, 0.9, 1)], seconds, part_bus=0)
    assert st.counters()["steals"] == 1
    stolen = render(engine(patch, sr=sr), [(0, K_NOTE_ON, 0, 57, 1.0, 1)], seconds, part_bus=0)
    thief = render(engine(patch, sr=sr), [(steal_at + fade, K_NOTE_ON, 0, 76, 0.9, 1)], seconds,
                   part_bus=0)
    assert np.array_equal(x[:steal_at], stolen[:steal_at])
    ramp = (fade - 1 - np.arange(fade)) / fade                     # last fade sample is 0
    seg = slice(steal_at, steal_at + fade)
    assert np.allclose(x[seg], stolen[seg] * ramp, rtol=1e-6, atol=1e-9)
    assert np.abs(stolen[seg]).max() > 0.5                         # it was sounding
    assert np.all(thief[:steal_at + fade] == 0.0) and thief[steal_at + fade] != 0.0
    assert np.array_equal(x[steal_at + fade:], thief[steal_at + fade:])


def test_64_voices_of_keys_play_at_once():
    """64 notes at once on the 64 voices of keys: the part sounds exactly the sum of the 64
    notes played alone (each voice is independent), nothing stolen."""
    patch = dict(OPEN, osc1_wave="sine", gain_db=-40.0)
    st = engine(patch)
    ev = [(i, K_NOTE_ON, 0, 30 + i, 1.0, 1) for i in range(64)]
    x = render(st, ev, 0.1, part_bus=0)
    assert st.counters()["voices"] == 64 and st.counters()["steals"] == 0
    alone = sum(render(engine(patch), [e], 0.1, part_bus=0) for e in ev)
    assert np.allclose(x, alone, rtol=0, atol=1e-6 * np.abs(alone).max())
    without_one = alone - render(engine(patch), [ev[37]], 0.1, part_bus=0)
    assert not np.allclose(x, without_one, rtol=0, atol=1e-3 * np.abs(alone).max())


@pytest.mark.parametrize("sr", [44100, 96000])
def test_other_sample_rates_keep_pitch_and_safety(sr):
    st = engine(dict(OPEN, osc1_wave="sine"), sr=sr)
    x = render(st, [(0, K_NOTE_ON, 0, 69, 1.0, 1), (0, K_NOTE_ON, 4, 38, 1.0, 1)], 0.5,
               part_bus=0)
    assert peak_hz(x[sr // 10:], sr) == pytest.approx(440.0, rel=2e-3)
    out = render(engine(sr=sr, dry=False), [(0, K_NOTE_ON, p, 60, 1.0, 1) for p in range(5)], 0.5)
    assert np.all(np.isfinite(out)) and 0.01 < np.abs(out).max() <= 10 ** (-1 / 20) + 1e-7


# ---- the render paths: voice by voice and stage by stage give the same bits ----------------

PATH_PATCHES = {
    "ladder saw/pulse, filter env": {"osc1_wave": "saw", "osc2_wave": "pulse", "pulse_width": 0.3,
                                     "filter_type": "ladder", "resonance": 0.6, "cutoff_hz": 500.0,
                                     "filter_env_octaves": 2.5, "drive": 2.0},
    "svf lowpass, LFO on cutoff": {"osc1_wave": "saw", "osc2_wave": "saw", "detune_cents": 14.0,
                                   "filter_type": "svf_lowpass", "filter_env_octaves": 0.8,
                                   "cutoff_hz": 1500.0,
                                   "lfo_rate_hz": 3.0, "lfo_to_cutoff_octaves": 0.5},
    "svf bandpass, vibrato, noise": {"osc1_wave": "triangle", "osc2_wave": "sine",
                                     "filter_type": "svf_bandpass", "filter_env_octaves": 0.0,
                                     "cutoff_hz": 1200.0,
                                     "lfo_rate_hz": 5.5, "lfo_to_pitch_semitones": 0.3,
                                     "noise_level": 0.2},
    "svf highpass, static cutoff": {"osc1_wave": "sine", "osc2_wave": "triangle",
                                    "filter_type": "svf_highpass", "filter_env_octaves": 0.0,
                                    "cutoff_hz": 300.0,
                                    "lfo_shape": "triangle", "lfo_rate_hz": 2.0},
}


def _render_part_with(patch, notes, scalar_voices, seconds=0.4, block=97, release_at=0.2):
    """Part 0 alone through voice.render_part_with: `notes` start at 0 (at different
    velocities), are released at `release_at` (so voices go idle one by one mid-chunk)."""
    st = engine(dict(OPEN, **patch, amp_release_s=0.05, amp_attack_s=0.003))
    a = st.arrays
    vf, vm, ps = a[L.S_VF], a[L.S_VMETA], a[L.S_PART]
    ps[0, L.PS_SETTLING] = ps[0, L.PS_COEF_DIRTY] = 1.0
    for i, n in enumerate(notes):
        voice.note_on(vf, vm, ps, a[L.S_PCUR], 0, float(n), 0.5 + 0.1 * (i % 5), 1.0, 0, SR)
    frames = int(seconds * SR)
    off = int(release_at * SR)
    edges = sorted(set(range(0, frames, block)) | {off, frames})
    out = np.zeros(frames)
    for s, e in zip(edges, edges[1:]):
        if s == off:
            for n in notes:
                voice.note_off(vf, vm, ps, 0, float(n), 1.0)
        voice.render_part_with(vf, vm, a[L.S_PTARGET], a[L.S_PCUR], ps, 0, out, s, e, 0, SR,
                               scalar_voices)
    return out


@pytest.mark.parametrize("name", list(PATH_PATCHES))
@pytest.mark.parametrize("notes", [[60], [48, 67], [40, 52, 59, 64, 71, 76, 83, 88, 95]])
def test_voice_by_voice_and_stage_by_stage_give_the_same_bits(name, notes):
    """A chunk renders the part's sounding voices one by one (few) or stage by stage across all
    of them (many); which one may change from chunk to chunk, so both must compute the same."""
    by_voice = _render_part_with(PATH_PATCHES[name], notes, 1 << 30)
    by_stage = _render_part_with(PATH_PATCHES[name], notes, 0)
    assert np.abs(by_stage).max() > 1e-3
    assert np.array_equal(by_voice, by_stage)


@pytest.mark.parametrize("name", list(PATH_PATCHES))
def test_chunks_render_what_sample_by_sample_renders(name):
    """The chunk paths against the general per-sample path (forced here by keeping the part
    settling): the same arithmetic, so the same bits."""
    notes = [48, 55, 64]
    chunked = _render_part_with(PATH_PATCHES[name], notes, voice.SCALAR_VOICES)
    st = engine(dict(OPEN, **PATH_PATCHES[name], amp_release_s=0.05, amp_attack_s=0.003))
    a = st.arrays
    vf, vm, ps = a[L.S_VF], a[L.S_VMETA], a[L.S_PART]
    ps[0, L.PS_COEF_DIRTY] = 1.0
    for i, n in enumerate(notes):
        voice.note_on(vf, vm, ps, a[L.S_PCUR], 0, float(n), 0.5 + 0.1 * (i % 5), 1.0, 0, SR)
    out = np.zeros(len(chunked))
    for s in range(len(out)):
        if s == int(0.2 * SR):
            for n in notes:
                voice.note_off(vf, vm, ps, 0, float(n), 1.0)
        ps[0, L.PS_SETTLING] = 1.0
        voice.render_part(vf, vm, a[L.S_PTARGET], a[L.S_PCUR], ps, 0, out, s, s + 1, 0, SR)
    assert np.abs(out).max() > 1e-3
    assert np.array_equal(chunked, out)
