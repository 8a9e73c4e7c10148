"""The limiter unit: the master's safety and look-ahead limiters as an insert (ceiling, true peak,
transparency, release, latency, block sizes, bad input, reset, the graph)."""
import math

import numpy as np
import pytest
from scipy.signal import resample_poly

from engine.control.graph import check_chain
from engine.rt import master
from engine.rt.units import KIND, UNITS, dispatch, limiter
from tests import unitkit

SR = unitkit.SR
LA = master.lookahead_samples(SR)            # 72 at 48 kHz
MODES = ["safety", "lookahead"]


def params(glide=None, **kw):
    return unitkit.params(limiter, glide=glide, **kw)


def render(left, right=None, prm=None, cuts=None, state=None, kind=None, in_place=False,
           changes=None):
    return unitkit.render(limiter, left, right, prm, cuts, state, kind=kind, in_place=in_place,
                          changes=changes)


def lin(db):
    return 10.0 ** (db / 20.0)


def sines(n, amp, hz=(441.0, 3001.0), seed=0):
    t = np.arange(n) / SR
    ph = np.random.default_rng(seed).random(len(hz)) * 2 * np.pi
    return amp * sum(np.sin(2 * np.pi * f * t + p) for f, p in zip(hz, ph)) / len(hz)


def bursts(n, amp, seed=1):
    """White noise at `amp` RMS in 30 ms bursts every 100 ms, quiet (1 %) between."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SR
    return rng.standard_normal(n) * np.where((t % 0.1) < 0.03, amp, 0.01 * amp)


def true_peak(x):
    """The peak of x 4x oversampled (polyphase, a 4x band-limited interpolation)."""
    return np.abs(resample_poly(x, 4, 1)).max()


# ---------------------------------------------------------------- registry


def test_registered_at_the_end_and_dispatched():
    assert UNITS[-1] is limiter and UNITS[KIND["limiter"]] is limiter
    x = bursts(6000, 0.8)
    for mode in MODES:
        prm = params(mode=mode, release_ms=30.0, glide={"input_gain_db": 9.0})
        a = render(x, -x, prm=prm.copy())
        b = render(x, -x, prm=prm.copy(), kind=KIND["limiter"], cuts=[64])
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    st = np.full(limiter.state_size(SR), 7.0)
    dispatch.reset_unit(KIND["limiter"], st, SR)
    assert np.array_equal(st, unitkit.fresh(limiter))


def test_the_graph_accepts_it_in_a_chain():
    ok = check_chain([{"unit": "eq"}, {"unit": "limiter", "mode": "lookahead",
                                        "ceiling_db": -3.0, "input_gain_db": 6}])
    assert ok[1] == {"unit": "limiter", "mode": 1.0, "ceiling_db": -3.0, "input_gain_db": 6.0}
    with pytest.raises(ValueError, match=r"\[0\].ceiling_db"):
        check_chain([{"unit": "limiter", "ceiling_db": 3.0}])
    with pytest.raises(ValueError, match=r"\[0\].mode"):
        check_chain([{"unit": "limiter", "mode": "brickwall"}])


# ---------------------------------------------------------------- the ceiling


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("ceiling_db", [-0.1, -1.0, -6.0, -24.0])
@pytest.mark.parametrize("signal", ["sines", "high_sines", "bursts"])
def test_no_sample_exceeds_the_ceiling_with_20_db_too_much(mode, ceiling_db, signal):
    n = 48000
    x = {"sines": lambda: sines(n, 1.0),
         "high_sines": lambda: sines(n, 1.0, hz=(9001.0, 15013.0, 19001.0)),
         "bursts": lambda: bursts(n, 0.5)}[signal]()
    y = render(x, 0.5 * x[::-1], params(mode=mode, ceiling_db=ceiling_db, input_gain_db=20.0),
               cuts=[256])
    c = lin(ceiling_db)
    assert np.abs(y[0]).max() <= c and np.abs(y[1]).max() <= c
    assert np.abs(y[0]).max() > 0.9 * c            # and it is limiting, not muting
    st = unitkit.fresh(limiter)
    render(x, x, params(mode=mode, ceiling_db=ceiling_db, input_gain_db=20.0), state=st)
    assert limiter.counters(st)["clamped"] == 0    # the final clamp never had to act


@pytest.mark.parametrize("signal, over_db", [("sines", 0.1), ("high_sines", 1.5),
                                             ("bursts", 1.5)])
def test_lookahead_true_peak_overshoot_is_as_documented(signal, over_db):
    """4x oversampled, the look-ahead limiter's output (a sample-peak limiter whose gain changes
    are smooth ramps) exceeds the ceiling between samples by at most 0.1 dB on sines under
    5 kHz, 1.5 dB on full-band noise and sines near Nyquist (the module doc's figures)."""
    n = 48000
    x = {"sines": lambda: sines(n, 10.0),
         "high_sines": lambda: sines(n, 10.0, hz=(9001.0, 15013.0, 19001.0)),
         "bursts": lambda: bursts(n, 5.0)}[signal]()
    y, _ = render(x, x, params(mode="lookahead", ceiling_db=-1.0))
    assert true_peak(y[LA:]) <= lin(-1.0 + over_db)


# ---------------------------------------------------------------- transparency


def test_safety_below_its_threshold_is_the_input_sample_for_sample():
    x = sines(20000, lin(-1.0 - 3.0 - 0.5))            # peaks under ceiling - 3 dB
    y = render(x, -x, params(ceiling_db=-1.0))
    assert np.array_equal(y[0], x) and np.array_equal(y[1], -x)


def test_lookahead_below_the_ceiling_is_the_input_delayed():
    x = sines(20000, lin(-1.5))
    y = render(x, -x, params(mode="lookahead", ceiling_db=-1.0))
    assert np.all(y[0][:LA] == 0.0)
    assert np.allclose(y[0][LA:], x[:-LA], rtol=0, atol=1e-15)
    assert np.allclose(y[1][LA:], -x[:-LA], rtol=0, atol=1e-15)


@pytest.mark.parametrize("mode", MODES)
def test_latency_is_what_it_reports(mode):
    prm = params(mode=mode)
    x = np.zeros(1000)
    x[100] = 0.5
    y, _ = render(x, x, prm)
    lat = limiter.latency_samples(prm, SR)
    assert lat == (0 if mode == "safety" else LA) and LA == 72
    assert np.argmax(np.abs(y)) == 100 + lat
    assert limiter.latency_samples(params(mode="lookahead"), 44100) == 66


def test_input_gain_glides_and_is_exact_once_settled():
    x = sines(48000, 0.01)
    prm = params(glide={"input_gain_db": 12.0})
    y, _ = render(x, x, prm, cuts=[100])
    assert abs(y[100] / x[100]) < 1.2                                  # gliding, not jumped
    assert np.allclose(y[-2000:], x[-2000:] * lin(12.0), rtol=1e-12)   # there by the end


# ---------------------------------------------------------------- release


@pytest.mark.parametrize("release_ms", [20.0, 100.0, 400.0])
def test_lookahead_release_time_is_as_set(release_ms):
    """A loud step (gain pulled to 1/4) then a quiet one: after the look-ahead the gain
    recovers 63 % of the way in release_ms (within 5 %)."""
    loud = int(0.1 * SR)
    n = loud + int(6 * release_ms * 1e-3 * SR)
    x = np.where(np.arange(n) < loud, 4.0 * lin(-1.0), 0.5)
    y, _ = render(x, x, params(mode="lookahead", ceiling_db=-1.0, release_ms=release_ms))
    gain = y[LA:] / x[:-LA]
    g0 = gain[loud - 1]
    assert g0 == pytest.approx(0.25, rel=1e-9)
    after = gain[loud:]
    t63 = np.argmax(after >= g0 + (1.0 - g0) * (1.0 - math.exp(-1.0)))
    assert t63 / SR * 1e3 == pytest.approx(release_ms + 1e3 * LA / SR, rel=0.05)


@pytest.mark.parametrize("release_ms", [20.0, 100.0, 400.0])
def test_safety_release_follows_its_held_peak_envelope(release_ms):
    """The safety limiter's gain is threshold / envelope: the envelope holds the peak 20 ms,
    then falls towards the new level with a release_ms time constant."""
    loud = int(0.1 * SR)
    n = loud + int(6 * release_ms * 1e-3 * SR)
    hi, lo = 4.0, 0.25
    x = np.where(np.arange(n) < loud, hi, lo)
    y, _ = render(x, x, params(ceiling_db=0.0, release_ms=release_ms))
    thr = lin(master.SAFETY_THRESHOLD_DB)
    gain = y / x
    hold = int(master.SAFETY_HOLD_S * SR)
    t = np.arange(n - loud - hold) / SR
    env = lo + (hi - lo) * np.exp(-t / (release_ms * 1e-3))
    want = np.minimum(1.0, thr / env)
    assert np.allclose(gain[loud:loud + hold], thr / hi, rtol=1e-12)   # held
    assert np.allclose(gain[loud + hold:], want, rtol=0.01, atol=0.002)


# ---------------------------------------------------------------- robustness


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("seed", [1, 2])
def test_block_size_invariance(mode, seed):
    n = 12000
    x = bursts(n, 2.0, seed)
    prm = params(mode=mode, ceiling_db=-2.0, release_ms=25.0, glide={"input_gain_db": 10.0})
    changes = {5000: {"ceiling_db": -7.0, "release_ms": 300.0, "input_gain_db": -3.0}}
    ref = render(x, x[::-1], prm.copy(), changes=changes)
    rng = np.random.default_rng(seed)
    for cuts in ([1], [7], [64], [4096], rng.integers(1, 700, 50).tolist()):
        got = render(x, x[::-1], prm.copy(), cuts=cuts, changes=changes)
        assert np.array_equal(ref[0], got[0]) and np.array_equal(ref[1], got[1])


@pytest.mark.parametrize("mode", MODES)
def test_nonfinite_and_absurd_input_is_read_as_silence(mode):
    x = sines(8000, 3.0)
    x[1000:1010] = np.nan
    x[2000] = np.inf
    x[3000] = -np.inf
    x[4000] = 1e300
    y = render(x, x, params(mode=mode, ceiling_db=-1.0))
    assert np.all(np.isfinite(y[0])) and np.abs(y[0]).max() <= lin(-1.0)
    assert np.abs(y[0][6000:]).max() > 0.5                 # the music goes on


def test_extreme_parameters_hold_the_ceiling_and_bad_targets_are_ignored():
    x = sines(6000, 1e12)
    for mode in MODES:
        y = render(x, x, params(mode=mode, ceiling_db=-24.0, input_gain_db=24.0, release_ms=1.0))
        assert np.all(np.isfinite(y[0])) and np.abs(y[0]).max() <= lin(-24.0)
        prm = params(mode=mode, ceiling_db=-6.0, release_ms=50.0)
        prm[:limiter.N] = [math.nan, math.inf, -math.inf, math.nan]
        a = render(x * 1e-12, x * 1e-12, prm)
        b = render(x * 1e-12, x * 1e-12, params(mode=mode, ceiling_db=-6.0, release_ms=50.0))
        assert np.array_equal(a[0], b[0])                  # every bad target left as it was


@pytest.mark.parametrize("mode", MODES)
def test_reset_returns_to_a_fresh_limiter(mode):
    x = bursts(6000, 3.0)
    prm = params(mode=mode)
    st = unitkit.fresh(limiter)
    render(x, x, prm.copy(), state=st)
    limiter.reset(st, SR)
    assert np.array_equal(st, unitkit.fresh(limiter))
    a = render(x, x, prm.copy(), state=st)
    b = render(x, x, prm.copy())
    assert np.array_equal(a[0], b[0])


def test_a_change_of_mode_starts_the_other_limiter_afresh_and_holds_the_ceiling():
    x = bursts(24000, 3.0)
    y = render(x, x, params(), changes={8000: {"mode": 1.0}, 16000: {"mode": 0.0}},
               cuts=[100])
    assert np.abs(y[0]).max() <= lin(-1.0) and np.all(np.isfinite(y[0]))
    assert np.all(y[0][8000:8000 + LA] == 0.0)             # the look-ahead ring starts silent


def test_in_place_equals_separate_rows():
    x = bursts(5000, 2.0)
    for mode in MODES:
        a = render(x, -x, params(mode=mode))
        b = render(x, -x, params(mode=mode), in_place=True)
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_runs_as_a_master_insert_and_a_part_insert_in_the_engine():
    from engine.config import load_config
    from engine.control.offline import OfflineDriver
    from engine.control.session import Session
    cfg = load_config("config.toml", environ={})
    cfg["mix"]["master_inserts"] = [{"unit": "limiter", "input_gain_db": 24.0,
                                     "ceiling_db": -20.0}]
    cfg["mix"]["bass_inserts"] = [{"unit": "limiter", "mode": "lookahead", "ceiling_db": -20.0}]
    s = Session(cfg, 48000, demo=True)
    out = OfflineDriver(s.state, 256, s.scheduler.advance).render(2 * 48000)
    assert "/master/limiter" in [op.path for op in s.graph.program.ops]
    assert "/bass/limiter" in [op.path for op in s.graph.program.ops]
    peak = np.abs(out).max()
    assert lin(-26.0) < peak <= lin(-20.0 + 0.1)     # (the master's DC blocker comes after)
