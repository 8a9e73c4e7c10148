"""engine.rt.units.bitcrusher: levels on a ramp, step sizes, sample-and-hold widths, TPDF dither
statistics and determinism, the mix null test, block-size invariance and reset."""
import math

import numpy as np
import pytest

from engine.rt.units import KIND, UNITS, bitcrusher, dispatch
from tests import unitkit

SR = 48000.0
P = {p.name: p for p in bitcrusher.PARAMS}
N = bitcrusher.N


def params(glide=None, **kw):
    """Targets and current values; `kw` sets both, `glide` {name: start} only the current."""
    return unitkit.params(bitcrusher, start=glide, **kw)


def fresh_state():
    return unitkit.fresh(bitcrusher)


def render(left, right=None, prm=None, cuts=None, state=None, kind=None, in_place=False):
    return unitkit.render(bitcrusher, left, right, prm, cuts, state, kind=kind, in_place=in_place)


def noise(n, seed=1, amp=0.7):
    return amp * np.random.default_rng(seed).uniform(-1, 1, n)


def test_registered_and_dispatched():
    assert UNITS[KIND["bitcrusher"]] is bitcrusher
    x = noise(5000)
    prm = params(bits=4.0, dither="tpdf", downsample_hz=7000.0, glide={"bits": 12.0, "mix": 0.2})
    a = render(x, prm=prm.copy())
    b = render(x, prm=prm.copy(), kind=KIND["bitcrusher"], cuts=[64])
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    st = np.full(bitcrusher.state_size(SR), 7.0)
    dispatch.reset_unit(KIND["bitcrusher"], st, SR)
    assert np.array_equal(st, fresh_state())


# ---------------------------------------------------------------- bit depth


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 8, 12, 16])
def test_levels_on_a_full_scale_ramp_are_2_to_the_bits(bits):
    """A ramp over [-1, 1]: exactly 2^bits output levels, the two's-complement codes
    -2^(b-1) .. 2^(b-1) - 1 over 2^(b-1), each the input rounded to the nearest step."""
    x = np.linspace(-1.0, 1.0, 2 ** 18 + 1)
    out, _ = render(x, prm=params(bits=float(bits)))
    levels = np.unique(out)
    assert len(levels) == 2 ** bits
    h = 2.0 ** (bits - 1)
    assert np.array_equal(levels, np.arange(-h, h) / h)
    inside = x <= (h - 1) / h
    assert np.max(np.abs(out[inside] - x[inside])) <= 0.5 / h
    assert np.all(out[~inside] == (h - 1) / h)                 # full scale clips, like a converter
    assert out[len(x) // 2] == 0.0                             # silence stays silent


def test_levels_at_24_bits():
    """A ramp over 3000 steps of 24 bits (2^-23 each): 3001 levels, exact multiples."""
    step = 2.0 ** -23
    x = np.linspace(0.1, 0.1 + 3000 * step, 40001)
    out, _ = render(x, prm=params(bits=24.0))
    assert len(np.unique(out)) == 3001
    assert np.array_equal(out, np.floor(x / step + 0.5) * step)


@pytest.mark.parametrize("bits", [2.5, 3.7, 6.25])
def test_fractional_bits(bits):
    """Non-integer bits: step 2^(1 - bits), codes -floor(h) .. ceil(h) - 1 (h = 2^(bits - 1))."""
    x = np.linspace(-1.0, 1.0, 2 ** 16 + 1)
    out, _ = render(x, prm=params(bits=bits))
    h = 2.0 ** (bits - 1)
    codes = np.unique(np.round(out * h, 9))
    assert np.array_equal(codes, np.arange(-math.floor(h), math.ceil(h)))
    assert len(codes) == math.floor(h) + math.ceil(h)


def test_bits_glide_sample_by_sample():
    """A change of bits glides (20 ms one-pole): every sample is rounded to the step of the
    bits reached at that sample, so the step shrinks smoothly instead of jumping."""
    n = 6000
    x = noise(n, seed=2, amp=0.45)
    out, _ = render(x, prm=params(bits=8.0, glide={"bits": 2.0}))
    c = 1.0 - math.exp(-1.0 / (bitcrusher.SMOOTH_S * SR))
    b = 8.0 - 6.0 * (1.0 - c) ** np.arange(1, n + 1)     # bits at each sample (not yet snapped)
    h = 2.0 ** (b - 1.0)
    want = np.floor(x * h + 0.5) / h
    assert np.allclose(out, want, rtol=0, atol=1e-12)
    err = np.abs(out - x) * h
    assert err.max() <= 0.5 + 1e-9
    k = int(bitcrusher.SMOOTH_S * SR)
    assert b[k - 1] == pytest.approx(8.0 - 6.0 / math.e, abs=0.01)


# ---------------------------------------------------------------- sample and hold


@pytest.mark.parametrize("hz,width", [(8000.0, 6), (24000.0, 2), (1000.0, 48), (48000.0, 1),
                                      (192000.0, 1)])
def test_sample_and_hold_step_width_exact(hz, width):
    x = noise(20000)
    out, _ = render(x, prm=params(bits=24.0, downsample_hz=hz))
    taken = (np.arange(len(x)) // width) * width
    assert np.array_equal(out, np.floor(x[taken] * 2 ** 23 + 0.5) / 2 ** 23)


def test_sample_and_hold_at_a_fractional_ratio():
    """6400 Hz at 48 kHz (7.5 samples): the m-th sample is taken at ceil(7.5 m), widths 8, 7."""
    x = noise(30000)
    out, _ = render(x, prm=params(bits=24.0, downsample_hz=6400.0))
    starts = np.ceil(np.arange(0, 30000 / 7.5) * 7.5).astype(int)
    starts = starts[starts < len(x)]
    held = np.repeat(starts, np.diff(np.append(starts, len(x))))
    assert np.array_equal(out, np.floor(x[held] * 2 ** 23 + 0.5) / 2 ** 23)
    assert set(np.diff(starts)) == {7, 8}


# ---------------------------------------------------------------- dither


def test_tpdf_dither_linearises_and_has_the_textbook_noise_power():
    """A DC 0.3 steps above a level: undithered it rounds to that level; with TPDF dither
    (+-1 step) the mean output is the input and the error power is step^2 / 4, the same on
    both channels but uncorrelated between them."""
    bits = 8
    step = 2.0 ** (1 - bits)
    n = 400000
    x = np.full(n, 10.3 * step)
    plain, _ = render(x, prm=params(bits=float(bits)))
    assert np.all(plain == 10 * step)
    out_l, out_r = render(x, prm=params(bits=float(bits), dither="tpdf"))
    for out in (out_l, out_r):
        e = (out - x) / step
        assert abs(e.mean()) < 0.005
        assert e.var() == pytest.approx(0.25, rel=0.01)
        assert set(np.round(out / step).astype(int)) <= {9, 10, 11, 12}
    el, er = out_l - x, out_r - x
    assert abs(np.corrcoef(el, er)[0, 1]) < 0.01


def test_dither_is_deterministic_and_reset_restores_the_seed():
    x = noise(20000, seed=3, amp=0.01)
    prm = params(bits=6.0, dither="tpdf", downsample_hz=12000.0)
    st = fresh_state()
    first = render(x, prm=prm, state=st)
    second = render(x, prm=prm, state=st)                 # the generator runs on
    assert not np.array_equal(first[0], second[0])
    bitcrusher.reset(st, SR)
    assert np.array_equal(st, fresh_state())
    again = render(x, prm=prm, state=st)
    assert np.array_equal(first[0], again[0]) and np.array_equal(first[1], again[1])


# ---------------------------------------------------------------- mix


@pytest.mark.parametrize("in_place", [False, True])
def test_mix_zero_is_a_null_test(in_place):
    """mix 0: the output is the input bit for bit (signed zeros too), whatever the crusher."""
    x = noise(30000, seed=4)
    x[::97] = -0.0
    y = noise(30000, seed=5)
    for kw in ({"bits": 1.0}, {"bits": 3.3, "dither": "tpdf", "downsample_hz": 900.0}):
        out_l, out_r = render(x, y, prm=params(mix=0.0, **kw), in_place=in_place)
        assert out_l.tobytes() == x.tobytes() and out_r.tobytes() == y.tobytes()
    # and after a glide down to 0 (a 20 ms one-pole, at 0 within 1e-18 after 42 time constants)
    x = noise(60000, seed=4)
    out_l, _ = render(x, prm=params(bits=4.0, mix=0.0, glide={"mix": 1.0}))
    assert out_l[-10000:].tobytes() == x[-10000:].tobytes()
    assert not np.array_equal(out_l[:30000], x[:30000])


def test_mix_blends_dry_and_crushed():
    x = noise(10000, seed=6)
    wet, _ = render(x, prm=params(bits=3.0, downsample_hz=4000.0, mix=1.0))
    half, _ = render(x, prm=params(bits=3.0, downsample_hz=4000.0, mix=0.25))
    assert np.allclose(half, 0.75 * x + 0.25 * wet, rtol=0, atol=1e-15)


# ---------------------------------------------------------------- blocks, safety


@pytest.mark.parametrize("dither", ["off", "tpdf"])
def test_block_size_invariance(dither):
    rng = np.random.default_rng(7)
    n = 30000
    xl, xr = noise(n, 8), noise(n, 9)
    prm = params(bits=5.5, downsample_hz=11025.0, dither=dither, mix=0.8,
                 glide={"bits": 16.0, "downsample_hz": 40000.0, "mix": 0.1})
    ref = render(xl, xr, prm=prm.copy())
    for cuts in ([1], [7], [64], [4096], list(rng.integers(1, 700, 200))):
        got = render(xl, xr, prm=prm.copy(), cuts=cuts)
        assert np.array_equal(got[0], ref[0]) and np.array_equal(got[1], ref[1]), cuts[:3]


def test_extreme_params_and_inputs_stay_finite():
    rng = np.random.default_rng(10)
    nasty = rng.normal(0, 1, 4000) * 10.0 ** rng.integers(-320, 308, 4000)
    nasty[::7] = np.nan
    nasty[::11] = np.inf
    for v in (np.nan, np.inf, -np.inf, 1e300, -1e300, 0.0, -1.0):
        for w in (np.nan, 1e300, 0.0):
            prm = np.full(2 * N, v)
            prm[N:] = w
            st = fresh_state()
            ol, orr = render(nasty, nasty[::-1], prm=prm, state=st, cuts=[333])
            assert np.all(np.isfinite(ol)) and np.all(np.isfinite(orr))
            assert np.all(np.isfinite(st))
            assert np.all(np.abs(ol[np.isfinite(nasty) & (np.abs(nasty) < 1e15)]) < 1e16)
