"""engine.rt.drums: the synthesised drum machine, checked offline on its signal."""
import math

import numpy as np
import pytest

from engine.parts import DRUM_NOTES
from engine.rt import drums as d

SR = 48000


def hits(state, params, events, n, cuts=(), block=None, empty_calls=()):
    """Render n samples, triggering events [(sample, note, velocity)] at their sample.

    Like the lead's render loop: the timeline is cut into blocks of `block` samples (one block
    if None), each with its own buffer, and each block is split at the events inside it and at
    the extra `cuts`; `empty_calls` are sample times at which a zero-length render is made too.
    """
    out = np.zeros(n)
    block = block or n
    points = sorted(set([e[0] for e in events] + list(cuts) + list(range(0, n, block)) + [n]))
    evs = sorted(events)
    k = 0
    for a, b in zip(points[:-1], points[1:]):
        while k < len(evs) and evs[k][0] == a:
            d.drum_trigger(state, params, evs[k][1], evs[k][2], SR)
            k += 1
        b0 = a - a % block
        buf = np.zeros(min(block, n - b0))
        if a in empty_calls:
            d.drum_render(state, params, buf, a - b0, a - b0, SR)
        d.drum_render(state, params, buf, a - b0, b - b0, SR)
        out[a:b] = buf[a - b0:b - b0]
    return out


def solo(note, n=SR, velocity=1.0, params=None):
    params = d.drum_default_params() if params is None else params
    return hits(d.drum_alloc_state(SR), params, [(0, note, velocity)], n)


def peak_hz(x, lo=20.0, hi=2000.0):
    w = x * np.hanning(len(x))
    spec = np.abs(np.fft.rfft(w, 8 * len(w)))
    f = np.fft.rfftfreq(8 * len(w), 1 / SR)
    band = (f >= lo) & (f <= hi)
    return f[band][np.argmax(spec[band])]


def band_share(x, lo_hz):
    p = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / SR)
    return p[f >= lo_hz].sum() / p.sum()


def test_notes_match_engine_parts():
    mine = {name: getattr(d, "NOTE_" + name.upper()) for name in d.INSTRUMENT_NAMES}
    assert mine == DRUM_NOTES
    for name in d.INSTRUMENT_NAMES:
        index = d.DRUM_INST_LEVEL_DB + getattr(d, name.upper())
        assert d.DRUM_PARAM_NAMES[name + "_level_db"] == index
    assert len(d.drum_default_params()) == d.DRUM_N_PARAMS


def test_every_instrument_sounds_and_ends():
    for name, note in DRUM_NOTES.items():
        state = d.drum_alloc_state(SR)
        out = hits(state, d.drum_default_params(), [(0, note, 1.0)], 4 * SR)
        assert 0.1 < np.max(np.abs(out)) < 1.0, name
        assert d.drum_active_voices(state) == 0, f"{name} never ended"
        assert np.all(out[-SR // 2:] == 0.0), name


def test_unknown_notes_and_zero_velocity_are_ignored():
    state = d.drum_alloc_state(SR)
    p = d.drum_default_params()
    for note in (0, 35, 40, 41, 60, 127, float("nan"), 1e300):
        assert d.drum_trigger(state, p, note, 1.0, SR) == -1
    for vel in (0.0, -1.0, float("nan")):
        assert d.drum_trigger(state, p, 36, vel, SR) == -1
    assert d.drum_active_voices(state) == 0
    assert d.drum_trigger(state, p, 36.2, 1.0, SR) >= 0  # fractional notes round


PATTERN = [(0, 36, 1.0), (0, 42, 0.8), (3000, 42, 0.4), (6000, 38, 0.9), (6000, 46, 0.6),
           (7999, 42, 0.5), (8000, 39, 1.0), (9000, 37, 0.7), (12000, 36, 0.8), (12000, 45, 0.9),
           (12001, 47, 0.9), (14000, 50, 1.0), (16384, 36, 1.0), (16384, 38, 0.3)]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_block_size_invariance(seed):
    n = 24000
    p = d.drum_default_params()
    p[d.DRUM_TUNE_ST] = -3.0
    ref = hits(d.drum_alloc_state(SR), p, PATTERN, n)
    rng = np.random.default_rng(seed)
    cuts = set(rng.integers(0, n, 300).tolist())
    cuts |= {c + 1 for c in list(cuts)[:100]}              # length-1 segments
    cuts |= {e[0] + 1 for e in PATTERN} | {e[0] - 1 for e in PATTERN}
    empties = set(rng.choice(sorted(cuts), 50).tolist())
    for block in (1, 64, 256, 16384):  # 16384 puts an event exactly on a block edge
        got = hits(d.drum_alloc_state(SR), p, PATTERN, n, cuts=cuts, block=block,
                   empty_calls=empties)
        assert np.array_equal(ref, got), f"block {block}"


def test_deterministic():
    p = d.drum_default_params()
    a = hits(d.drum_alloc_state(SR), p, PATTERN, 20000)
    b = hits(d.drum_alloc_state(SR), p, PATTERN, 20000)
    assert np.array_equal(a, b)
    # the noise differs from hit to hit (each voice is seeded from the hit counter)
    h = hits(d.drum_alloc_state(SR), p, [(0, 42, 1.0), (4000, 42, 1.0)], 8000)
    assert not np.allclose(h[:2000], h[4000:6000])


@pytest.mark.parametrize("tune_st", [0.0, 7.0, -5.0])
def test_kick_fundamental_is_its_tuned_end_pitch(tune_st):
    p = d.drum_default_params()
    p[d.DRUM_TUNE_ST] = tune_st
    out = solo(36, params=p)
    expected = d.KICK_HZ * 2 ** (tune_st / 12)
    assert abs(peak_hz(out[int(0.15 * SR):]) - expected) < 0.03 * expected
    # the attack sweeps down from well above it
    assert peak_hz(out[:int(0.012 * SR)], hi=1000.0) > 1.5 * expected


def test_toms_are_pitched_low_to_high():
    f = [peak_hz(solo(DRUM_NOTES[t])[int(0.1 * SR):int(0.5 * SR)])
         for t in ("tom_low", "tom_mid", "tom_high")]
    assert abs(f[0] - d.TOM_HZ_LOW) < 5 and abs(f[1] - d.TOM_HZ_MID) < 6
    assert abs(f[2] - d.TOM_HZ_HIGH) < 8
    assert f[0] < f[1] < f[2]


@pytest.mark.parametrize("hat", ["closed_hat", "open_hat"])
def test_hats_are_mostly_above_5khz(hat):
    out = solo(DRUM_NOTES[hat], velocity=0.7)
    assert band_share(out, 5000.0) > 0.95


def test_closed_hat_is_short_open_hat_is_long():
    c = solo(42)
    o = solo(46)
    assert np.max(np.abs(c[int(0.2 * SR):])) < 1e-3 * np.max(np.abs(c))
    assert np.max(np.abs(o[int(0.2 * SR):int(0.3 * SR)])) > 0.1 * np.max(np.abs(o))


def test_snare_has_body_and_noise():
    out = solo(38)
    assert 150 < peak_hz(out, hi=500.0) < 220
    assert 0.3 < band_share(out, 1000.0) < 0.9


def test_clap_has_separate_bursts_before_its_tail():
    out = solo(39)
    burst = int(d.CLAP_BURST_S * SR + 0.5)
    env = np.array([np.max(np.abs(out[k:k + burst // 4])) for k in range(0, 4 * burst, burst // 4)])
    # each burst starts loud and falls before the next one re-attacks
    for b in range(3):
        start, end = env[4 * b], env[4 * b + 3]
        assert end < 0.5 * start and env[4 * (b + 1)] > 2 * end


@pytest.mark.parametrize("name", sorted(DRUM_NOTES))
def test_velocity_scales_level(name):
    """Level goes as velocity^1.6 (velocity 0.5: -9.6 dB); a softer hit is also darker, which
    only takes a little more off its peak (up to 1.5 dB here), never adds to it."""
    loud = np.max(np.abs(solo(DRUM_NOTES[name], velocity=1.0)))
    soft = np.max(np.abs(solo(DRUM_NOTES[name], velocity=0.5)))
    db = 20 * math.log10(soft / loud)
    law = 20 * math.log10(0.5 ** 1.6)
    assert law - 1.5 < db < law + 0.1


def test_closed_hat_chokes_open_hat_with_a_short_fade():
    p = d.drum_default_params()
    p[d.DRUM_INST_LEVEL_DB + d.CLOSED_HAT] = -120.0  # closed hat silent: only the open hat heard
    t0 = 4000
    free = hits(d.drum_alloc_state(SR), p, [(0, 46, 1.0)], 12000)
    state = d.drum_alloc_state(SR)
    choked = hits(state, p, [(0, 46, 1.0), (t0, 42, 1.0)], 12000)
    fade = int(d.CHOKE_S * SR)
    assert np.array_equal(choked[:t0], free[:t0])
    ramp = (fade - np.arange(1, fade + 1)) / fade
    assert np.allclose(choked[t0:t0 + fade], free[t0:t0 + fade] * ramp, rtol=1e-12, atol=0)
    assert np.all(choked[t0 + fade:] == 0.0)
    assert np.max(np.abs(free[t0 + fade:t0 + 4 * fade])) > 0.05  # it would have kept ringing
    assert state[0, d.V_ACTIVE] == 0 and state[0, d.V_INST] == d.OPEN_HAT


def test_retrigger_fades_the_previous_hit_of_the_same_drum():
    state = d.drum_alloc_state(SR)
    p = d.drum_default_params()
    first = d.drum_trigger(state, p, 36, 1.0, SR)
    d.drum_render(state, p, np.zeros(2000), 0, 2000, SR)
    second = d.drum_trigger(state, p, 36, 1.0, SR)
    assert second != first and state[first, d.V_FADE_LEN] > 0
    d.drum_render(state, p, np.zeros(2000), 0, int(d.CHOKE_S * SR), SR)
    assert state[first, d.V_ACTIVE] == 0 and state[second, d.V_ACTIVE] == 1


def test_voice_stealing_takes_the_quietest_voice_never_the_loud_one():
    p = d.drum_default_params()
    for inst in range(d.N_INSTRUMENTS):
        if inst != d.KICK:
            p[d.DRUM_INST_LEVEL_DB + inst] = -120.0
    kick_alone = hits(d.drum_alloc_state(SR), p, [(0, 36, 1.0)], 8000)
    state = d.drum_alloc_state(SR)
    flood = [(2400, note, 1.0) for note in [42, 46, 38, 39, 37, 45, 47, 50] * 5]
    out = hits(state, p, [(0, 36, 1.0)] + flood, 8000)
    assert state[d.DRUM_GLOBAL, d.G_STOLEN] > 0
    assert d.drum_active_voices(state) <= d.DRUM_VOICES
    assert np.array_equal(out, kick_alone)


def test_level_change_is_smoothed():
    p = d.drum_default_params()
    state = d.drum_alloc_state(SR)
    out = np.zeros(12000)
    d.drum_trigger(state, p, 36, 1.0, SR)
    d.drum_render(state, p, out, 0, 3000, SR)
    p[d.DRUM_LEVEL_DB] = d.MUTE_DB
    d.drum_render(state, p, out, 3000, 12000, SR)
    steps = np.abs(np.diff(out[2900:3100]))
    assert steps.max() < 0.03  # a hard switch would jump by ~0.4
    assert np.max(np.abs(out[3000:3100])) > 0.1  # smoothed, not switched
    assert np.max(np.abs(out[9000:])) < 5e-3 * np.max(np.abs(out))  # and it does go silent


@pytest.mark.parametrize("name,value", [
    ("tune_st", 1e6), ("tune_st", -1e6), ("decay_scale", 1e6), ("decay_scale", -5.0),
    ("decay_scale", 0.0), ("level_db", 1e3), ("kick_level_db", float("inf")),
    ("tune_st", float("nan")), ("level_db", float("nan")), ("decay_scale", float("-inf"))])
def test_extreme_params_stay_finite(name, value):
    p = d.drum_default_params()
    p[d.DRUM_PARAM_NAMES[name]] = value
    events = [(k * 700, note, vel) for k, (note, vel) in
              enumerate([(n, v) for n in DRUM_NOTES.values() for v in (1.0, 1e9, 0.01)])]
    out = hits(d.drum_alloc_state(SR), p, events, 30000)
    assert np.all(np.isfinite(out))
    assert np.max(np.abs(out)) < 20.0


def test_panic_fades_everything_out():
    state = d.drum_alloc_state(SR)
    p = d.drum_default_params()
    out = np.zeros(4000)
    for note in DRUM_NOTES.values():
        d.drum_trigger(state, p, note, 1.0, SR)
    d.drum_render(state, p, out, 0, 1000, SR)
    d.drum_panic(state, SR)
    d.drum_render(state, p, out, 1000, 4000, SR)
    fade = int(math.ceil(d.CHOKE_S * SR))
    assert np.all(out[1000 + fade:] == 0.0)
    assert np.max(np.abs(out[1000:1000 + fade // 2])) > 0.01  # faded, not cut


@pytest.mark.parametrize("sr", [22050, 44100, 96000])
def test_other_sample_rates(sr):
    p = d.drum_default_params()
    for name, note in DRUM_NOTES.items():
        state = d.drum_alloc_state(sr)
        out = np.zeros(sr)
        d.drum_trigger(state, p, note, 1.0, sr)
        d.drum_render(state, p, out, 0, sr, sr)
        assert np.all(np.isfinite(out)) and 0.05 < np.max(np.abs(out)) < 1.0, name
        if name == "kick":
            tail = out[int(0.15 * sr):] * np.hanning(sr - int(0.15 * sr))
            spec = np.abs(np.fft.rfft(tail, 8 * len(tail)))
            f = np.fft.rfftfreq(8 * len(tail), 1 / sr)
            assert abs(f[np.argmax(spec)] - d.KICK_HZ) < 1.5


@pytest.mark.parametrize("seed", [4, 5])
def test_block_size_invariance_while_levels_glide(seed):
    """A level change mid-stream glides per sample, whatever the split (a settled voice takes
    a shortcut; it must give the very same samples)."""
    n = 24000
    rng = np.random.default_rng(seed)
    cuts = set(rng.integers(0, n, 300).tolist()) | {9000}
    outs = []
    for split in (False, True):
        state = d.drum_alloc_state(SR)
        p = d.drum_default_params()
        out = np.zeros(n)
        extra = list(cuts) if split else []
        points = sorted(set([0, 9000, n] + [e[0] for e in PATTERN] + extra))
        evs = sorted(PATTERN)
        k = 0
        for a, b in zip(points[:-1], points[1:]):
            if a == 9000:
                p[d.DRUM_LEVEL_DB] = -12.0
                p[d.DRUM_INST_LEVEL_DB + d.CLOSED_HAT] = 3.0
            while k < len(evs) and evs[k][0] == a:
                d.drum_trigger(state, p, evs[k][1], evs[k][2], SR)
                k += 1
            d.drum_render(state, p, out, a, b, SR)
        outs.append(out)
    assert np.array_equal(outs[0], outs[1])
