"""engine.rt.master: DC blocker, non-finite guard and both limiters, checked on the signal.

Most tests below are the look-ahead limiter's (LIMITER_MODE = LOOKAHEAD, renders and
mastering); the safety limiter's (the default, zero delay) are at the end."""
from pathlib import Path

import numpy as np
import pytest

from engine.rt import master as m

SR = 48000
LA = m.lookahead_samples(SR)


def run(l, r, params=None, cuts=(), state=None):
    """Master bus over copies of l, r (in place on the copies), split at `cuts`."""
    l, r = np.array(l, dtype=np.float64), np.array(r, dtype=np.float64)
    state = m.master_alloc_state(SR) if state is None else state
    params = lookahead_params() if params is None else params
    points = sorted(set([0, len(l)] + list(cuts)))
    for a, b in zip(points[:-1], points[1:]):
        m.master_process(state, params, l, r, a, b, SR)
    return l, r, state


def lookahead_params():
    p = m.master_default_params()
    p[m.LIMITER_MODE] = m.LOOKAHEAD
    return p


def params(**kw):
    p = lookahead_params()
    for k, v in kw.items():
        p[m.MASTER_PARAM_NAMES[k]] = v
    return p


def ceiling(db):
    return 10.0 ** (db / 20.0)


def loud_signals(n=SR):
    rng = np.random.default_rng(7)
    t = np.arange(n) / SR
    square = 10.0 * np.sign(np.sin(2 * np.pi * 110 * t))   # +20 dB square
    noise = 8.0 * rng.standard_normal(n)
    spikes = np.zeros(n)
    spikes[rng.integers(0, n, 60)] = rng.choice([-100.0, 100.0], 60)
    spikes[1000:1003] = [50.0, -50.0, 50.0]                   # adjacent impulses
    bursts = np.sin(2 * np.pi * 3000 * t) * np.where((t % 0.25) < 0.02, 30.0, 0.3)
    return {"square": square, "noise": noise, "spikes": spikes, "bursts": bursts,
            "mixed": 0.3 * square + noise * (t > 0.5) + spikes}


def test_latency_is_the_lookahead():
    assert LA == round(0.0015 * SR) == 72
    x = np.zeros(2000)
    x[500] = 0.25
    l, r, _ = run(x, -x)
    assert np.argmax(np.abs(l)) == 500 + LA
    assert l[500 + LA] == 0.25 and r[500 + LA] == -0.25  # below the ceiling: untouched
    assert np.all(l[:500 + LA] == 0.0)


@pytest.mark.parametrize("ceiling_db", [-1.0, -6.0, 0.0])
@pytest.mark.parametrize("name", ["square", "noise", "spikes", "bursts", "mixed"])
def test_limiter_never_exceeds_the_ceiling(name, ceiling_db):
    x = loud_signals()[name]
    y = np.roll(x, 37) * -0.7  # a different right channel
    l, r, st = run(x, y, params(ceiling_db=ceiling_db))
    c = ceiling(ceiling_db)
    assert np.max(np.abs(l)) <= c and np.max(np.abs(r)) <= c
    assert m.master_counters(st)["clamped"] == 0  # the limiter alone did it
    assert np.max(np.abs(l)) > 0.9 * c  # ... without crushing everything


def test_limiter_holds_a_loud_square_at_the_ceiling():
    t = np.arange(SR) / SR
    x = 10.0 * np.sign(np.sin(2 * np.pi * 100 * t + 0.1))
    l, _, st = run(x, x)
    c = ceiling(-1.0)
    periods = np.abs(l[SR // 2:]).reshape(-1, SR // 100)
    # every period's peak sits right at the ceiling (the DC blocker makes the tops droop)
    assert np.all(periods.max(axis=1) <= c) and np.all(periods.max(axis=1) > 0.999 * c)
    assert 0.5 * c / 10.0 < m.master_counters(st)["limit_gain"] < c / 10.0


def test_quiet_signal_passes_untouched():
    t = np.arange(SR) / SR
    x = 0.5 * np.sin(2 * np.pi * 1000 * t)
    l, r, st = run(x, x)
    assert m.master_counters(st)["limit_gain"] == 1.0
    # only the DC blocker is in the way: the output is the blocked input, delayed by LA
    coef = 1.0 - 2.0 * np.pi * m.DC_HZ / SR
    blocked, x1, y1 = np.zeros(SR), 0.0, 0.0
    for k in range(SR):
        y1 = x[k] - x1 + coef * y1
        x1 = x[k]
        blocked[k] = y1
    assert np.allclose(l[LA:], blocked[:SR - LA], rtol=0, atol=1e-12)
    assert np.all(l[:LA] == 0.0)


def test_release_recovers_gain():
    t = np.arange(2 * SR) / SR
    x = np.sin(2 * np.pi * 200 * t) * np.where(t < 0.5, 10.0, 0.5)
    p = params(release_ms=50.0)
    l, _, st = run(x, x, p)
    after = lambda s: np.max(np.abs(l[int(s * SR):int(s * SR) + 480]))
    assert after(0.502) < 0.2          # just after the loud part, gain is still low
    assert after(0.8) > 0.98 * 0.5      # 300 ms = 6 release times later it is back to unity
    assert 0.2 < after(0.55) < 0.49     # and it got there gradually, not in one step


def test_release_ms_changes_recovery_speed():
    t = np.arange(SR) / SR
    x = np.sin(2 * np.pi * 200 * t) * np.where(t < 0.3, 10.0, 0.5)
    fast = run(x, x, params(release_ms=20.0))[0]
    slow = run(x, x, params(release_ms=300.0))[0]
    w = slice(int(0.4 * SR), int(0.41 * SR))
    assert np.max(np.abs(fast[w])) > 1.5 * np.max(np.abs(slow[w]))


def test_nonfinite_input_becomes_zero_is_counted_and_does_not_stick():
    t = np.arange(SR) / SR
    x = 0.5 * np.sin(2 * np.pi * 300 * t)
    bad_l, bad_r = x.copy(), x.copy()
    bad_l[1000], bad_r[1000] = np.nan, np.nan
    bad_l[5000], bad_r[7000] = np.inf, -np.inf
    bad_l[9000] = 1e300
    clean_l, clean_r = x.copy(), x.copy()
    for arr, k in ((clean_l, 1000), (clean_r, 1000), (clean_l, 5000), (clean_r, 7000),
                   (clean_l, 9000)):
        arr[k] = 0.0
    l, r, st = run(bad_l, bad_r)
    want_l, want_r, _ = run(clean_l, clean_r)
    assert np.all(np.isfinite(l)) and np.all(np.isfinite(r))
    assert np.array_equal(l, want_l) and np.array_equal(r, want_r)  # exactly a 0 sample
    assert m.master_counters(st)["nonfinite"] == 5
    assert m.master_counters(st)["resets"] == 0


def test_a_block_of_nan_then_music_recovers():
    n = 20000
    x = 0.5 * np.sin(2 * np.pi * 300 * np.arange(n) / SR)
    x[:5000] = np.nan
    l, r, st = run(x, x)
    assert np.all(l[:5000 + LA] == 0.0)
    assert np.max(np.abs(l[12000:])) > 0.45  # the music after it is back, unharmed
    assert m.master_counters(st)["nonfinite"] == 10000


def test_dc_is_removed():
    t = np.arange(2 * SR) / SR
    x = 0.4 + 0.2 * np.sin(2 * np.pi * 220 * t)
    l, r, _ = run(x, -x)
    tail = l[SR:]
    assert abs(tail.mean()) < 1e-3 and abs(r[SR:].mean()) < 1e-3
    assert np.max(np.abs(tail)) == pytest.approx(0.2, rel=0.01)


@pytest.mark.parametrize("seed", [5, 6])
def test_block_size_invariance(seed):
    sig = loud_signals(30000)
    x = sig["mixed"] + 0.2
    y = sig["bursts"]
    x[4321] = np.nan
    rng = np.random.default_rng(seed)
    cuts = set(rng.integers(0, 30000, 400).tolist())
    cuts |= {c + 1 for c in list(cuts)[:150]}
    p = params(release_ms=35.0, gain_db=3.0)
    ref_l, ref_r, ref_st = run(x, y, p)
    got_l, got_r, got_st = run(x, y, p, cuts=cuts)
    assert np.array_equal(ref_l, got_l) and np.array_equal(ref_r, got_r)
    assert np.array_equal(ref_st, got_st)
    one_l, one_r, _ = run(x, y, p, cuts=range(0, 30000, 1))
    assert np.array_equal(ref_l, one_l) and np.array_equal(ref_r, one_r)


def _dc_blocked(x):
    coef = 1.0 - 2.0 * np.pi * m.DC_HZ / SR
    y, x1, y1 = np.zeros(len(x)), 0.0, 0.0
    for k in range(len(x)):
        y1 = x[k] - x1 + coef * y1
        x1 = x[k]
        y[k] = y1
    return y


def test_gain_change_is_smoothed():
    """A gain change glides as a one-pole with GAIN_SMOOTH_S from the sample it arrives: the
    output is exactly the input times that glide, DC-blocked, delayed by the look-ahead. (The
    change lands at a peak of the sine, where a gain step would jump.)"""
    n, at = 9600, 4800
    x = 0.5 * np.sin(2 * np.pi * 300 * np.arange(n) / SR + np.pi / 2)
    st = m.master_alloc_state(SR)
    l, r = x.copy(), x.copy()
    m.master_process(st, params(), l, r, 0, at, SR)
    m.master_process(st, params(gain_db=-40.0), l, r, at, n, SR)
    target = 10 ** (-40 / 20)
    ks = 1.0 - np.exp(-1.0 / (m.GAIN_SMOOTH_S * SR))
    glide = np.ones(n)
    glide[at:] = target + (1.0 - target) * (1.0 - ks) ** np.arange(1, n - at + 1)
    want = _dc_blocked(x * glide)
    assert np.allclose(l[LA:], want[:n - LA], rtol=0, atol=1e-12)
    assert np.max(np.abs(l[-480:])) < 0.05  # and it does get there
    slope = 0.5 * 2 * np.pi * 300 / SR       # and never steps: no click
    assert np.max(np.abs(np.diff(l[at + LA - 20:at + LA + 200]))) <= 1.01 * slope


@pytest.mark.parametrize("name,value", [("ceiling_db", 100.0), ("ceiling_db", -1e9),
                                        ("ceiling_db", float("nan")), ("release_ms", 0.0),
                                        ("release_ms", -1.0), ("release_ms", 1e12),
                                        ("gain_db", 1e9), ("gain_db", float("-inf")),
                                        ("gain_db", float("nan"))])
def test_extreme_params_stay_finite_and_below_0dbfs(name, value):
    x = loud_signals(20000)["mixed"]
    l, r, st = run(x, x, params(**{name: value}))
    assert np.all(np.isfinite(l)) and np.all(np.isfinite(r))
    assert np.max(np.abs(l)) <= 1.0 and np.max(np.abs(r)) <= 1.0
    assert m.master_counters(st)["clamped"] == 0


def test_ceiling_change_is_respected_from_the_samples_entering_after_it():
    x = loud_signals(20000)["noise"]
    st = m.master_alloc_state(SR)
    l, r = x.copy(), x.copy()
    m.master_process(st, params(ceiling_db=-1.0), l, r, 0, 10000, SR)
    m.master_process(st, params(ceiling_db=-12.0), l, r, 10000, 20000, SR)
    assert np.max(np.abs(l[:10000 + LA])) <= ceiling(-1.0)
    assert np.max(np.abs(l[10000 + LA:])) <= ceiling(-12.0)
    assert m.master_counters(st)["clamped"] == 0


def test_reset_keeps_counters_and_returns_to_a_fresh_bus():
    x = loud_signals(5000)["mixed"]
    x[10] = np.nan
    _, _, st = run(x, x)
    m.master_reset(st)
    fresh = m.master_alloc_state(SR)
    assert m.master_counters(st)["nonfinite"] == 2
    for k in (m.M_NONFINITE, m.M_CLAMPED, m.M_RESETS):
        st[k] = 0.0
    assert np.array_equal(st, fresh)


def test_corrupted_state_is_reset_not_kept():
    x = 0.5 * np.sin(2 * np.pi * 300 * np.arange(8000) / SR)
    st = m.master_alloc_state(SR)
    run(x[:4000], x[:4000], state=st)
    st[m.M_RELEASED] = np.nan  # as if something had poisoned the limiter
    l, r, _ = run(x[4000:], x[4000:], state=st)
    assert np.all(np.isfinite(l)) and np.all(np.isfinite(r))
    assert m.master_counters(st)["resets"] == 1
    assert np.max(np.abs(l[1000:])) > 0.45  # and it plays on


@pytest.mark.parametrize("seed", [7, 8])
def test_block_size_invariance_while_gain_glides(seed):
    sig = loud_signals(30000)
    x, y = sig["mixed"], sig["bursts"]
    rng = np.random.default_rng(seed)
    cuts = set(rng.integers(0, 30000, 400).tolist()) | {12000}
    outs = []
    for split in (False, True):
        st = m.master_alloc_state(SR)
        l, r = x.copy(), y.copy()
        points = sorted(set([0, 12000, 30000] + (list(cuts) if split else [])))
        for a, b in zip(points[:-1], points[1:]):
            p = params(gain_db=0.0) if a < 12000 else params(gain_db=-9.0, ceiling_db=-3.0)
            m.master_process(st, p, l, r, a, b, SR)
        outs.append((l, r, st))
    assert np.array_equal(outs[0][0], outs[1][0]) and np.array_equal(outs[0][1], outs[1][1])
    assert np.array_equal(outs[0][2], outs[1][2])


# ---- the safety limiter (LIMITER_MODE = SAFETY: live and default; no delay) -------------------

def safety(**kw):
    p = params(**kw)
    p[m.LIMITER_MODE] = m.SAFETY
    return p


def test_safety_is_the_default_and_adds_no_delay():
    assert m.master_default_params()[m.LIMITER_MODE] == m.SAFETY
    assert m.latency_samples(m.master_default_params(), SR) == 0
    assert m.latency_samples(lookahead_params(), SR) == LA
    x = np.zeros(2000)
    x[500] = 0.25
    l, r, _ = run(x, -x, safety())
    assert np.all(l[:500] == 0.0)
    assert l[500] == 0.25 and r[500] == -0.25          # at its own sample, untouched


def test_safety_passes_a_signal_below_its_threshold_sample_for_sample():
    t = np.arange(SR) / SR
    x = 0.6 * np.sin(2 * np.pi * 1000 * t)              # -4.4 dBFS: under -1 - 3 dB
    l, r, st = run(x, x, safety())
    coef = 1.0 - 2.0 * np.pi * m.DC_HZ / SR
    blocked, x1, y1 = np.zeros(SR), 0.0, 0.0
    for k in range(SR):
        y1 = x[k] - x1 + coef * y1
        x1 = x[k]
        blocked[k] = y1
    assert np.array_equal(l, blocked)                   # only the DC blocker, no delay
    assert m.master_counters(st)["limit_gain"] == 1.0


@pytest.mark.parametrize("ceiling_db", [-1.0, -6.0, 0.0])
@pytest.mark.parametrize("name", ["square", "noise", "spikes", "bursts", "mixed"])
def test_safety_never_exceeds_the_ceiling(name, ceiling_db):
    x = loud_signals()[name]
    y = np.roll(x, 37) * -0.7
    l, r, st = run(x, y, safety(ceiling_db=ceiling_db))
    c = ceiling(ceiling_db)
    assert np.max(np.abs(l)) <= c and np.max(np.abs(r)) <= c
    assert np.max(np.abs(l)) > 0.8 * c
    assert m.master_counters(st)["clamped"] == 0   # the limiter and the clipper did it


def test_safety_holds_a_loud_sustained_tone_without_clipping_it():
    """Once the 1 ms attack has caught up, a +20 dB sine comes out as a sine at the threshold:
    the gain does the work, the clipper and the clamp do not."""
    t = np.arange(SR) / SR
    x = 10.0 * np.sin(2 * np.pi * 220 * t)
    l, _, st = run(x, x, safety())
    thr = ceiling(-1.0 + m.SAFETY_THRESHOLD_DB)
    tail = l[SR // 2:]
    assert np.max(np.abs(tail)) == pytest.approx(thr, rel=0.01)
    spec = np.abs(np.fft.rfft(tail * np.hanning(len(tail))))
    k = round(220 * len(tail) / SR)
    harmonics = spec[3 * k - 2:3 * k + 3].max() / spec[k - 2:k + 3].max()
    assert harmonics < 10 ** (-40 / 20)                 # 3rd harmonic below -40 dB


def test_safety_soft_clipper_bends_before_the_ceiling():
    """A transient faster than the attack is bent smoothly, not flattened at the ceiling."""
    x = np.zeros(4000)
    n = np.arange(200)
    x[1000:1200] = 3.0 * np.sin(np.pi * n / 200)        # a 4 ms +9.5 dB bump from silence
    l, _, st = run(x, x, safety())
    c = ceiling(-1.0)
    seg = l[1000:1200]
    assert seg.max() <= c and seg.max() > 0.9 * c
    assert m.master_counters(st)["clamped"] == 0
    assert np.sum(seg >= c * 0.9999) <= 2              # no flat top


def test_safety_nonfinite_input_becomes_zero_and_music_goes_on():
    t = np.arange(SR) / SR
    x = 0.5 * np.sin(2 * np.pi * 300 * t)
    bad = x.copy()
    bad[1000:1100] = np.nan
    bad[5000] = np.inf
    l, r, st = run(bad, x, safety())
    assert np.all(np.isfinite(l)) and np.all(np.isfinite(r))
    assert m.master_counters(st)["nonfinite"] == 101
    assert np.max(np.abs(l[SR // 2:])) > 0.45


@pytest.mark.parametrize("seed", [1, 2])
def test_safety_block_size_invariance(seed):
    x = loud_signals()["mixed"]
    y = np.roll(x, 11)
    ref = run(x, y, safety())
    rng = np.random.default_rng(seed)
    cuts = sorted(set(rng.integers(1, len(x) - 1, 300).tolist()) | {1, 2, 64})
    got = run(x, y, safety(), cuts=cuts)
    assert np.array_equal(ref[0], got[0]) and np.array_equal(ref[1], got[1])


# ---- through the whole engine ----------------------------------------------------------------

@pytest.mark.parametrize("limiter", ["safety", "lookahead"])
def test_the_whole_demo_played_hot_never_needs_the_final_clamp(tmp_path, monkeypatch, limiter):
    """The whole demo song with the master at +12 dB and every part at +12 dB, rendered the way
    `bandmate render --demo` renders (session, scheduler, offline driver, render kernel, WAV):
    the limiter alone (either one) holds the ceiling on every sample; the final clamp (the
    second guarantee) never engages."""
    import soundfile as sf

    from engine.config import load_config
    from engine.control.export import render
    from engine.control.session import Session
    from engine.parts import PARTS
    from engine.rt import layout as L

    monkeypatch.chdir(Path(__file__).resolve().parents[1])   # patch paths are relative
    cfg = load_config("config.toml", environ={})
    cfg["mix"]["master_gain_db"] = 12.0
    cfg["mix"]["limiter"] = limiter
    for part in PARTS:
        cfg["mix"][f"{part}_gain_db"] = 12.0
    session = Session(cfg, SR, demo=True)
    wav = tmp_path / "hot.wav"
    render(session, session.length_s, wav, cfg["render"]["block_size"], progress=False)
    counters = m.master_counters(session.state.arrays[L.S_MASTER_STATE])
    assert counters["clamped"] == 0
    assert counters["nonfinite"] == 0 and counters["resets"] == 0
    out, sr = sf.read(wav, dtype="float32")
    assert sr == SR and len(out) == round(session.length_s * SR)
    c = np.float32(ceiling(cfg["mix"]["ceiling_db"]))        # float32 rounding is monotonic
    assert np.abs(out).max() <= c
    # and it was hot: driven to the ceiling, still pulling down by more than 5 dB at the end
    assert np.abs(out).max() > 0.95 * c
    assert counters["limit_gain"] < 10 ** (-5 / 20)
