"""engine.rt.units.gate: range, unity, hold and hysteresis to the sample, attack and release
time constants, click-free gain, side chain and stereo link, block-size invariance and reset,
rendered offline on a numpy bus (and once through the dispatch)."""
import math

import numpy as np
import pytest

from engine.rt.units import KIND, UNITS, dispatch, gate
from tests import unitkit

SR = 48000.0
P = {p.name: p for p in gate.PARAMS}
N = gate.N


def params(glide=None, **kw):
    """Targets and current values; `kw` sets both, `glide` {name: start} sets only the current."""
    return unitkit.params(gate, start=glide, **kw)


def fresh_state():
    return unitkit.fresh(gate)


def render(left, right=None, prm=None, side=None, cuts=None, state=None, kind=None):
    """Run the unit over the whole signal, cut into blocks of the sizes in `cuts` (cycled)."""
    return unitkit.render(gate, left, right, prm, cuts, state, kind=kind, side=side)


def lin(db):
    return 10.0 ** (db / 20.0)


def levels(*segments):
    """A DC signal of (dB, samples) segments: its gain through the gate is out / in."""
    return np.concatenate([np.full(n, lin(d)) for d, n in segments])


def ms(x):
    return int(round(x * SR / 1000.0))


# ---------------------------------------------------------------- registry


def test_registered_and_dispatched():
    assert UNITS[KIND["gate"]] is gate
    x = levels((-60, 3000), (-10, 3000), (-60, 6000))
    prm = params(threshold_db=-30.0, glide={"threshold_db": -5.0, "range_db": -20.0})
    a = render(x, prm=prm.copy())
    b = render(x, prm=prm.copy(), kind=KIND["gate"], cuts=[64])
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    st = np.full(gate.state_size(SR), 7.0)
    dispatch.reset_unit(KIND["gate"], st, SR)
    assert np.array_equal(st, fresh_state())


# ---------------------------------------------------------------- static gains


@pytest.mark.parametrize("range_db", [-80.0, -60.0, -24.0, -6.0, -0.5, 0.0])
def test_closed_attenuates_by_range_exactly(range_db):
    """A 440 Hz sine 20 dB under the threshold: the output is the input times 10^(range/20)
    from the first sample (to 1e-12 dB; a gate starts closed, not in between)."""
    n = int(SR)
    x = lin(-50.0) * np.sin(2 * np.pi * 440.0 * np.arange(n) / SR)
    out_l, out_r = render(x, prm=params(threshold_db=-30.0, range_db=range_db))
    m = np.abs(x) > 1e-9
    got = 20 * np.log10(out_l[m] / x[m])
    assert np.max(np.abs(got - range_db)) < 1e-12
    assert np.array_equal(out_l, out_r)


def test_open_passes_unity_bit_for_bit():
    """A sine above the threshold (hold longer than its half period) passes untouched: the
    gain snaps to exactly 1, from the first sample after reset, and after an opening once the
    attack has converged."""
    n = int(SR)
    t = np.arange(n) / SR
    x = lin(-12.0) * np.sin(2 * np.pi * 100.0 * t + 0.3)
    out, _ = render(x, prm=params(threshold_db=-40.0, hold_ms=20.0))
    assert np.array_equal(out, x)
    # closed on a quiet lead-in, then opened: after 30 attack time constants it is exact
    y = np.concatenate([np.full(4800, lin(-70.0)), x])
    out, _ = render(y, prm=params(threshold_db=-40.0, attack_ms=1.0, hold_ms=20.0))
    k = 4800 + ms(30 * 1.0)
    assert np.array_equal(out[k:], y[k:])
    assert np.all(np.abs(out[4800:k]) <= np.abs(y[4800:k]))


# ---------------------------------------------------------------- hold and hysteresis


@pytest.mark.parametrize("hold_ms", [0.0, 1.0, 10.0, 37.5, 20.01, 250.0])
def test_hold_time_to_the_sample(hold_ms):
    """Loud, then (at n0) under the closing threshold: the gain stays exactly 1 for
    round(hold_ms * rate / 1000) samples and starts falling on the next one."""
    n0 = 4800
    x = levels((-10, n0), (-70, ms(hold_ms) + 9600))
    out, _ = render(x, prm=params(threshold_db=-40.0, hysteresis_db=6.0, hold_ms=hold_ms,
                                  release_ms=50.0))
    g = out / x
    h = int(math.floor(hold_ms * SR / 1000.0 + 0.5))
    assert np.all(g[:n0 + h] == 1.0)
    assert g[n0 + h] < 1.0
    assert np.all(np.diff(g[n0 + h:]) <= 0.0)


def test_hysteresis_opens_at_threshold_closes_below_it():
    """Threshold -30 dB, hysteresis 6 dB, no hold: between -36 and -30 dB the gate keeps
    whatever state it is in; it opens on the first sample at -30 dB and closes on the first
    under -36 dB."""
    prm = params(threshold_db=-30.0, hysteresis_db=6.0, hold_ms=0.0, attack_ms=0.05,
                 release_ms=1.0, range_db=-60.0)
    segs = [(-33.0, 4800),      # in the band, from closed: stays closed
            (-29.99, 4800),     # opens on its first sample
            (-35.9, 9600),      # in the band, from open: stays open
            (-36.1, 4800),      # under the band: closes on its first sample
            (-31.0, 4800)]      # in the band, from closed: stays closed
    x = levels(*segs)
    g = render(x, prm=prm)[0] / x
    floor_ = lin(-60.0)
    assert np.allclose(g[:4800], floor_, rtol=1e-12)
    assert g[4799] == pytest.approx(floor_, rel=1e-12) and g[4800] > 0.99 * 0.01 + floor_
    assert np.all(g[4800 + 480:19200] == 1.0)            # open through the band
    assert g[19199] == 1.0 and g[19200] < 1.0           # closes on the first sample under
    assert np.allclose(g[19200 + 960:], floor_, rtol=1e-9)


@pytest.mark.parametrize("hyst_db", [0.0, 3.0, 12.0])
def test_hysteresis_on_slow_ramps_to_the_sample(hyst_db):
    """A level rising, then falling, 60 dB per second: the gate opens on the first sample at or
    above the threshold and closes on the first one below threshold - hysteresis (no hold)."""
    up = np.linspace(-70.0, -10.0, int(SR))
    level_db = np.concatenate([up, up[::-1]])
    x = lin(level_db)
    thr = -40.0
    prm = params(threshold_db=thr, hysteresis_db=hyst_db, hold_ms=0.0, attack_ms=0.05,
                 release_ms=1.0)
    g = render(x, prm=prm)[0] / x
    k_open = int(np.argmax(x >= lin(thr)))
    k_close = len(up) + int(np.argmax(x[len(up):] < lin(thr - hyst_db)))
    assert np.allclose(g[:k_open], lin(-80.0), rtol=1e-9)
    assert g[k_open] > 2 * lin(-80.0)
    assert np.all(g[k_open + 96:k_close] == 1.0)           # 40 attack constants on: exact
    assert g[k_close] < 1.0
    # the levels where it switched, as measured: threshold and threshold - hysteresis (0.001 dB)
    assert 20 * np.log10(x[k_open]) == pytest.approx(thr, abs=1e-3)
    assert 20 * np.log10(x[k_close]) == pytest.approx(thr - hyst_db, abs=1e-3)


# ---------------------------------------------------------------- ballistics


@pytest.mark.parametrize("attack_ms,release_ms", [(0.5, 100.0), (5.0, 20.0), (20.0, 1000.0)])
def test_attack_and_release_time_constants(attack_ms, release_ms):
    """Opening, the gain covers 1 - 1/e of the way from the floor to 1 in attack_ms; closing
    (after the hold), 1 - 1/e of the way back in release_ms (each to within one sample)."""
    f = lin(-80.0)
    up = 4800
    down = up + ms(40 * attack_ms) + 4800
    hold = 10.0
    x = levels((-70, up), (-10, down - up), (-70, ms(hold) + ms(40 * release_ms)))
    g = render(x, prm=params(threshold_db=-40.0, attack_ms=attack_ms, hold_ms=hold,
                             release_ms=release_ms))[0] / x
    k_att = int(np.argmax(g[up:] >= f + (1 - f) * (1 - 1 / math.e)))
    assert abs(k_att - attack_ms * SR / 1000.0) <= 1.0, k_att
    # the one-pole exactly: g[up + k] = 1 - (1 - f) a^(k + 1)
    a = math.exp(-1000.0 / (attack_ms * SR))
    k = np.arange(min(200, ms(5 * attack_ms)))
    assert np.allclose(g[up + k], 1 - (1 - f) * a ** (k + 1), rtol=1e-12, atol=1e-15)
    start = down + ms(hold)
    assert g[start - 1] == 1.0
    k_rel = int(np.argmax(g[start:] <= f + (1 - f) / math.e))
    assert abs(k_rel - release_ms * SR / 1000.0) <= 1.0, k_rel
    assert g[-1] == pytest.approx(f, rel=1e-12)            # snapped to the floor
    assert np.all(np.diff(g[start:]) <= 0.0) and np.ptp(g[-480:]) == 0.0


def test_gain_never_steps():
    """The fastest attack (0.05 ms) on a full-scale key: the gain moves at most
    (1 - floor) * (1 - exp(-1 / (0.05 ms * rate))) = 0.341 per sample, and a range change
    while closed glides (20 ms) instead of jumping."""
    n = 24000
    x = np.full(n, lin(-70.0))
    key = np.zeros(n)
    key[6000:6100] = 1.0
    prm = params(threshold_db=-40.0, attack_ms=0.05, release_ms=1.0, hold_ms=0.0)
    g = render(x, prm=prm, side=key)[0] / x
    bound = (1 - lin(-80.0)) * (1 - math.exp(-1000.0 / (0.05 * SR)))
    steps = np.abs(np.diff(g))
    assert steps.max() <= bound * (1 + 1e-12)
    assert steps.max() >= 0.99 * bound                  # the bound is reached: it is tight
    prm = params(range_db=-20.0, glide={"range_db": -80.0}, attack_ms=0.05)
    g = render(x, prm=prm)[0] / x
    assert g[0] == pytest.approx(lin(-80.0), rel=1e-2)
    assert g[-1] == pytest.approx(lin(-20.0), rel=1e-9)
    assert np.abs(np.diff(g)).max() < 0.1 / ms(20.0) * 2


# ---------------------------------------------------------------- side chain, stereo link


def test_sidechain_keys_the_gate():
    """A pad under the threshold passes at unity while a kick on the side rows is loud and is
    down by range_db between kicks; without side rows the same pad stays closed, and a loud
    input with a silent key stays closed."""
    n = int(2 * SR)
    t = np.arange(n) / SR
    pad_l = lin(-50.0) * np.sin(2 * np.pi * 220.0 * t)
    pad_r = lin(-50.0) * np.cos(2 * np.pi * 330.0 * t)
    beat = (np.arange(n) % 12000) < 2400                       # 50 ms every 250 ms
    kick = np.where(beat, np.sin(2 * np.pi * 60.0 * t), 0.0)   # 60 Hz: zero crossings bridged
    prm = params(threshold_db=-30.0, range_db=-60.0, attack_ms=0.5, hold_ms=20.0,
                 release_ms=10.0)
    out_l, out_r = render(pad_l, pad_r, prm=prm, side=kick)
    for b in range(0, n, 12000):
        on = slice(b + 960, b + 2400)                           # after 20 attack constants
        assert np.array_equal(out_l[on], pad_l[on]) and np.array_equal(out_r[on], pad_r[on])
        off = slice(b + 2400 + ms(20.0) + ms(30 * 10.0), b + 12000)
        assert np.allclose(out_l[off], pad_l[off] * lin(-60.0), rtol=1e-9, atol=1e-18)
    # the gain is one for both sides (stereo-linked): both ratios agree wherever defined
    m = (np.abs(pad_l) > 1e-4) & (np.abs(pad_r) > 1e-4)
    assert np.allclose(out_l[m] / pad_l[m], out_r[m] / pad_r[m], rtol=1e-12)
    # no side rows: the pad keys itself, and it is under the threshold
    own, _ = render(pad_l, pad_r, prm=prm)
    assert np.allclose(own, pad_l * lin(-60.0), rtol=1e-12, atol=1e-18)
    # a loud input with a silent key: closed
    loud = 0.5 * np.sin(2 * np.pi * 220.0 * t)
    shut, _ = render(loud, prm=prm, side=np.zeros(n))
    assert np.allclose(shut, loud * lin(-60.0), rtol=1e-12, atol=1e-18)


def test_one_side_row_is_a_mono_key():
    n = 9600
    x = np.full(n, lin(-70.0))
    key = np.zeros(n)
    key[4800:] = 1.0
    prm = params(threshold_db=-40.0, attack_ms=0.05)
    for side in ((key, np.zeros(n)), (np.zeros(n), key)):
        g = render(x, prm=prm, side=side)[0] / x
        assert g[4799] == pytest.approx(lin(-80.0), rel=1e-12) and g[-1] == 1.0


def test_stereo_link_opens_both_sides():
    """Loud left, quiet right: the right channel opens with the left (one gain)."""
    n = 9600
    l = levels((-70, 2400), (-6, 4800), (-70, 2400))
    r = np.full(n, lin(-75.0))
    out_l, out_r = render(l, r, prm=params(threshold_db=-40.0, hold_ms=0.0, release_ms=5.0))
    assert np.allclose(out_l / l, out_r / r, rtol=1e-12)
    assert np.all(out_r[2400 + 960:7200] == r[2400 + 960:7200])


# ---------------------------------------------------------------- block-size invariance, safety


def glide_params():
    return params(threshold_db=-20.0, range_db=-30.0, attack_ms=3.0, hold_ms=15.0,
                  release_ms=60.0, hysteresis_db=10.0,
                  glide={"threshold_db": -60.0, "range_db": -80.0, "hysteresis_db": 0.0})


@pytest.mark.parametrize("with_side", [False, True])
def test_block_size_invariance(with_side):
    rng = np.random.default_rng(6)
    n = 30000
    env = np.repeat(10 ** rng.uniform(-4, 0, n // 700 + 1), 700)[:n]
    xl, xr = env * rng.normal(0, 1, n), env * rng.normal(0, 1, n)
    side = (np.roll(xl, 333), rng.normal(0, 0.01, n)) if with_side else None
    ref = render(xl, xr, prm=glide_params(), side=side)
    for cuts in ([1], [7], [64], [4096], list(rng.integers(1, 700, 200))):
        got = render(xl, xr, prm=glide_params(), side=side, cuts=cuts)
        assert np.array_equal(got[0], ref[0]) and np.array_equal(got[1], ref[1]), cuts[:3]


def test_params_glide_and_settle():
    prm = glide_params()
    render(np.zeros(48000), prm=prm)
    assert np.array_equal(prm[:N], prm[N:])


def test_extreme_params_and_inputs_stay_finite():
    rng = np.random.default_rng(7)
    nasty = rng.normal(0, 1, 4000) * 10.0 ** rng.integers(-320, 308, 4000)
    nasty[::7] = np.nan
    nasty[::11] = np.inf
    for v in (np.nan, np.inf, -np.inf, 1e300, -1e300, 0.0, -1.0):
        prm = np.full(2 * N, v)
        st = fresh_state()
        ol, orr = render(nasty, nasty[::-1], prm=prm, side=np.roll(nasty, 3), state=st,
                         cuts=[333])
        assert np.all(np.isfinite(ol)) and np.all(np.isfinite(orr)) and np.all(np.isfinite(st))


def test_reset_equals_fresh():
    rng = np.random.default_rng(8)
    a = rng.uniform(-1, 1, 9000)
    b = rng.uniform(-1, 1, 9000) * np.linspace(0, 1, 9000)
    st = fresh_state()
    render(a, prm=params(threshold_db=-10.0, hold_ms=100.0), state=st)
    assert not np.array_equal(st, fresh_state())
    gate.reset(st, SR)
    assert np.array_equal(st, fresh_state())
    prm = params(threshold_db=-12.0, release_ms=7.0)
    again = render(b, prm=prm.copy(), state=st)
    new = render(b, prm=prm.copy())
    assert np.array_equal(again[0], new[0]) and np.array_equal(again[1], new[1])
