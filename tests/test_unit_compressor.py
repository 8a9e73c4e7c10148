"""engine.rt.units.compressor: static curve, ballistics, side chain, transparency, block-size
invariance and safety, rendered offline on a numpy bus (and once through the dispatch)."""
import math

import numpy as np
import pytest

from engine.rt.units import KIND, UNITS, compressor, dispatch
from tests import unitkit

SR = 48000.0
P = {p.name: p for p in compressor.PARAMS}
N = compressor.N


def params(glide=None, **kw):
    """Targets and current values; `kw` sets both, `glide` {name: start} sets only the current."""
    return unitkit.params(compressor, start=glide, **kw)


def fresh_state(sr=SR):
    return unitkit.fresh(compressor, sr)


def render(left, right=None, prm=None, side=None, cuts=None, state=None, sr=SR, kind=None):
    """Run the unit over the whole signal, cut into blocks of the sizes in `cuts` (cycled)."""
    return unitkit.render(compressor, left, right, prm, cuts, state, sr, kind, side=side)


def gr_db(x_db, t, r, w):
    """The analytic gain computer of Giannoulis, Massberg & Reiss (2012), eq. 4, as a reduction."""
    if 2 * (x_db - t) < -w:
        y = x_db
    elif w > 0 and 2 * abs(x_db - t) <= w:
        y = x_db + (1 / r - 1) * (x_db - t + w / 2) ** 2 / (2 * w)
    else:
        y = t + (x_db - t) / r
    return x_db - y


def db(x):
    return 20 * np.log10(x)


def rms(x):
    return math.sqrt(float(np.mean(np.square(x))))


# ---------------------------------------------------------------- registry


def test_registered_and_dispatched():
    assert UNITS[KIND["compressor"]] is compressor
    rng = np.random.default_rng(1)
    x = rng.normal(0, 0.3, 3000)
    prm = params(threshold_db=-30.0, glide={"threshold_db": -5.0})
    a = render(x, prm=prm.copy())
    b = render(x, prm=prm.copy(), kind=KIND["compressor"], cuts=[64])
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    st = np.full(compressor.state_size(SR), 7.0)
    dispatch.reset_unit(KIND["compressor"], st, SR)
    assert np.array_equal(st, fresh_state())


# ---------------------------------------------------------------- static curve


@pytest.mark.parametrize("knee", [0.0, 6.0, 12.0])
def test_static_curve_rms_sines(knee):
    """Steady 1 kHz sines, -60..0 dBFS: settled output level = analytic curve within 0.1 dB."""
    t, r, makeup = -24.0, 4.0, 3.0
    n = int(SR)
    ph = 2 * np.pi * 1000.0 * np.arange(n) / SR
    for level in np.arange(-60.0, 0.01, 3.0):
        x = 10 ** (level / 20) * np.sin(ph)
        prm = params(threshold_db=t, ratio=r, knee_db=knee, makeup_db=makeup, detector="rms",
                     attack_ms=5.0, release_ms=50.0)
        out, _ = render(x, prm=prm)
        tail = slice(n - 9600, n)                       # last 200 ms, 200 whole cycles
        in_db = db(rms(x[tail]))
        got = db(rms(out[tail])) - in_db
        want = makeup - gr_db(in_db, t, r, knee)
        assert abs(got - want) < 0.1, (level, knee, got, want)


@pytest.mark.parametrize("knee", [0.0, 6.0, 24.0])
def test_static_curve_peak_square(knee):
    """A square wave has one magnitude: the peak detector reads it exactly (0.01 dB)."""
    t, r = -30.0, 8.0
    n = 24000
    sq = np.where((np.arange(n) // 24) % 2 == 0, 1.0, -1.0)
    for level in np.arange(-60.0, 0.01, 2.0):
        x = 10 ** (level / 20) * sq
        out, _ = render(x, prm=params(threshold_db=t, ratio=r, knee_db=knee, attack_ms=1.0,
                                       release_ms=20.0))
        got = db(abs(out[-1]) / abs(x[-1]))
        assert abs(got + gr_db(level, t, r, knee)) < 0.01, (level, knee, got)


# ---------------------------------------------------------------- ballistics


@pytest.mark.parametrize("attack_ms,release_ms", [(10.0, 100.0), (2.0, 400.0), (50.0, 30.0)])
def test_attack_release_times(attack_ms, release_ms):
    """A level step up, then down: the gain reduction covers 1 - 1/e of its change in
    attack_ms, then release_ms (within 10 %), with the peak detector."""
    up = int(0.05 * SR)
    down = up + int(10 * attack_ms / 1000 * SR)
    n = down + int(10 * release_ms / 1000 * SR)
    x = np.full(n, 10 ** (-40 / 20))
    x[up:down] = 10 ** (-6 / 20)
    prm = params(threshold_db=-18.0, ratio=4.0, knee_db=0.0, attack_ms=attack_ms,
                 release_ms=release_ms)
    out, _ = render(x, prm=prm)
    g = db(x / out)                                      # gain reduction, dB
    full = gr_db(-6.0, -18.0, 4.0, 0.0)
    assert g[up - 1] == 0.0 and abs(g[down - 1] - full) < 1e-3    # 10 time constants
    k_att = np.argmax(g[up:] >= (1 - 1 / math.e) * full)
    assert abs(k_att / SR * 1000 - attack_ms) <= 0.1 * attack_ms, k_att
    k_rel = np.argmax(g[down:] <= full / math.e)
    assert abs(k_rel / SR * 1000 - release_ms) <= 0.1 * release_ms, k_rel


# ---------------------------------------------------------------- side chain


def test_external_sidechain_ducks_bass():
    n = int(1.5 * SR)
    tt = np.arange(n) / SR
    bass = 0.1 * np.sin(2 * np.pi * 55.0 * tt)                  # -20 dBFS, in the knee
    kick = np.where((np.arange(n) // 480) % 2 == 0, 0.5, -0.5)  # -6 dBFS square
    kick[: int(0.5 * SR)] = 0.0
    kick[int(1.0 * SR):] = 0.0
    prm = params(sidechain="external", threshold_db=-18.0, ratio=4.0, knee_db=6.0,
                 attack_ms=1.0, release_ms=50.0)
    out, out_r = render(bass, prm=prm, side=kick)
    quiet = slice(0, int(0.5 * SR))
    assert np.array_equal(out[quiet], bass[quiet])                 # the kick is silent
    duck = slice(int(0.8 * SR), int(1.0 * SR))
    m = np.abs(bass[duck]) > 0.01
    got = db(out[duck][m] / bass[duck][m])
    want = -gr_db(db(0.5), -18.0, 4.0, 6.0)                         # -9.0 dB
    assert np.max(np.abs(got - want)) < 0.01
    assert np.array_equal(out, out_r)
    # the same bass compressed on its own (internal) is barely touched, so the ducking came
    # from the side rows
    own, _ = render(bass, prm=params(threshold_db=-18.0, ratio=4.0, knee_db=6.0,
                                      attack_ms=1.0, release_ms=50.0))
    assert db(rms(own[duck]) / rms(bass[duck])) > -0.5


def test_external_without_side_rows_falls_back_to_internal():
    rng = np.random.default_rng(2)
    quiet = rng.uniform(-0.01, 0.01, 20000)                         # below -40 dBFS
    out, _ = render(quiet, prm=params(sidechain="external"))         # side rows -1
    assert np.array_equal(out, quiet)
    loud = rng.uniform(-1, 1, 20000)
    ext, _ = render(loud, prm=params(sidechain="external"))
    internal, _ = render(loud, prm=params(sidechain="internal"))
    assert np.array_equal(ext, internal)
    assert rms(ext) < 0.7 * rms(loud)


# ---------------------------------------------------------------- transparency


def test_ratio_one_is_transparent():
    rng = np.random.default_rng(3)
    xl, xr = rng.uniform(-1, 1, 20000), rng.uniform(-1, 1, 20000)
    for det in ("peak", "rms"):
        ol, orr = render(xl, xr, prm=params(ratio=1.0, threshold_db=-60.0, knee_db=12.0,
                                             detector=det))
        assert np.max(np.abs(ol - xl)) <= 1e-12 and np.max(np.abs(orr - xr)) <= 1e-12


def test_threshold_zero_quiet_is_transparent():
    rng = np.random.default_rng(4)
    xl, xr = rng.uniform(-0.3, 0.3, 20000), rng.uniform(-0.3, 0.3, 20000)  # below -10 dBFS
    for det in ("peak", "rms"):
        ol, orr = render(xl, xr, prm=params(threshold_db=0.0, ratio=20.0, knee_db=12.0,
                                             detector=det))
        assert np.max(np.abs(ol - xl)) <= 1e-12 and np.max(np.abs(orr - xr)) <= 1e-12


def test_mix_blends_dry_and_compressed():
    rng = np.random.default_rng(5)
    x = rng.uniform(-1, 1, 10000)
    wet, _ = render(x, prm=params(mix=1.0, threshold_db=-30.0))
    dry, _ = render(x, prm=params(mix=0.0, threshold_db=-30.0))
    half, _ = render(x, prm=params(mix=0.5, threshold_db=-30.0))
    assert np.array_equal(dry, x)
    assert np.allclose(half, 0.5 * (x + wet), atol=1e-12)


# ---------------------------------------------------------------- block-size invariance


def glide_params():
    return params(threshold_db=-40.0, ratio=10.0, knee_db=12.0, attack_ms=50.0,
                  release_ms=500.0, makeup_db=6.0, detector="rms", sidechain="external", mix=0.9,
                  glide={"threshold_db": -10.0, "ratio": 2.0, "knee_db": 0.0, "attack_ms": 1.0,
                         "release_ms": 20.0, "makeup_db": 0.0, "detector": "peak",
                         "sidechain": "internal", "mix": 0.3})


@pytest.mark.parametrize("glide", [False, True])
def test_block_size_invariance(glide):
    rng = np.random.default_rng(6)
    n = 20000
    env = np.repeat(rng.uniform(0.001, 1.0, n // 500 + 1), 500)[:n]
    xl, xr = env * rng.normal(0, 1, n), env * rng.normal(0, 1, n)
    side = (np.repeat(rng.uniform(0, 1, n // 700 + 1), 700)[:n] * rng.normal(0, 1, n),
            rng.normal(0, 0.2, n))
    prm = glide_params() if glide else params(detector="rms", sidechain="external")
    ref = render(xl, xr, prm=prm.copy(), side=side)
    cuts_random = list(rng.integers(1, 700, 200))
    for cuts in ([1], [7], [64], [4096], cuts_random):
        got = render(xl, xr, prm=prm.copy(), side=side, cuts=cuts)
        assert np.array_equal(got[0], ref[0]) and np.array_equal(got[1], ref[1]), cuts[:3]
    via = render(xl, xr, prm=prm.copy(), side=side, cuts=[64], kind=KIND["compressor"])
    assert np.array_equal(via[0], ref[0]) and np.array_equal(via[1], ref[1])


def test_params_glide():
    """The smoothed values reach the targets, and a glide is not a jump."""
    prm = glide_params()
    x = np.full(20000, 0.5)
    out, _ = render(x, prm=prm)
    assert np.array_equal(prm[:N], prm[N:])
    assert np.max(np.abs(np.diff(out))) < 0.01


# ---------------------------------------------------------------- safety


def test_extreme_params_and_inputs_stay_finite():
    n = 4000
    rng = np.random.default_rng(7)
    nasty = rng.normal(0, 1, n) * 10.0 ** rng.integers(-320, 308, n)
    nasty[::7] = np.nan
    nasty[::11] = np.inf
    nasty[::13] = -np.inf
    nasty[::17] = 1e308
    nasty[::19] = 5e-324
    side = np.roll(nasty, 3)
    extremes = [np.nan, np.inf, -np.inf, 1e300, -1e300, 0.0, -1.0, 1e-300]
    for v in extremes:
        for w in extremes:
            prm = np.full(2 * N, v)
            prm[N:] = w
            for sr in (SR, 0.0, 1e12, np.nan):
                st = fresh_state(SR)
                ol, orr = render(nasty, nasty[::-1], prm=prm, side=side, state=st, sr=sr,
                                 cuts=[333])
                assert np.all(np.isfinite(ol)) and np.all(np.isfinite(orr)), (v, w, sr)
                assert np.all(np.isfinite(st))
    for p in compressor.PARAMS:
        for v in (p.lo, p.hi):
            ol, orr = render(nasty, prm=params(**{p.name: v}), side=side)
            assert np.all(np.isfinite(ol)) and np.all(np.isfinite(orr))


def test_state_flushes_to_zero_after_silence():
    x = np.zeros(int(3 * SR))
    x[:4800] = 0.9
    x[4800:9600] = 1e-300                                   # denormal-range tail
    st = fresh_state()
    out, _ = render(x, prm=params(detector="rms", release_ms=50.0), state=st)
    assert st[compressor.S_MS] == 0.0 and st[compressor.S_GR] == 0.0
    assert np.all(np.isfinite(out))


def test_reset_equals_fresh():
    rng = np.random.default_rng(8)
    a = rng.uniform(-1, 1, 9000)
    b = rng.uniform(-1, 1, 9000) * np.linspace(0, 1, 9000)
    st = fresh_state()
    render(a, prm=params(detector="rms", threshold_db=-40.0, attack_ms=3.0), state=st)
    assert not np.array_equal(st, fresh_state())
    compressor.reset(st, SR)
    assert np.array_equal(st, fresh_state())
    prm = params(threshold_db=-30.0, release_ms=7.0)
    again = render(b, prm=prm.copy(), state=st)
    new = render(b, prm=prm.copy())
    assert np.array_equal(again[0], new[0]) and np.array_equal(again[1], new[1])
