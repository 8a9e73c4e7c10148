"""engine.rt.units.eq: the stereo parametric EQ, rendered offline on a numpy bus."""
import math

import numpy as np
import pytest

from engine.rt.units import KIND, UNITS, eq
from engine.rt.units.base import default_params
from engine.rt.units.dispatch import reset_unit, run_unit

FS = 48000.0
N = eq.N
IDX = {p.name: p.index for p in eq.PARAMS}
IO = np.array([0, 1, 2, 3, -1, -1, -1, -1], dtype=np.int64)


def params_at(**values):
    """Targets and current values both at `values` (settled), the rest at the defaults."""
    p = np.array(default_params(eq.PARAMS), dtype=np.float64)
    for name, v in values.items():
        p[IDX[name]] = v
        p[N + IDX[name]] = v
    return p


def set_targets(p, **values):
    for name, v in values.items():
        p[IDX[name]] = v
    return p


def fresh(fs=FS):
    s = np.zeros(eq.state_size(fs))
    eq.reset(s, fs)
    return s


def render(state, params, xl, xr=None, cuts=(), fs=FS):
    """Run eq.process over the whole signal, the span cut at `cuts`."""
    xr = xl if xr is None else xr
    n = len(xl)
    bus = np.zeros((4, n))
    bus[0] = xl
    bus[1] = xr
    edges = [0] + sorted(c for c in set(cuts) if 0 < c < n) + [n]
    for a, b in zip(edges[:-1], edges[1:]):
        eq.process(state, params, bus, IO, a, b, fs)
    return bus[2].copy(), bus[3].copy()


def noise(n, seed=0, scale=0.5):
    return np.random.default_rng(seed).standard_normal(n) * scale


# ---- the analytic response, written from the cookbook independently of the unit ----------

def rbj(kind, f, fs, gain_db=0.0, q=0.7071067811865476):
    """(b, a) of one RBJ Audio-EQ-Cookbook biquad."""
    A = 10.0 ** (gain_db / 40.0)
    w0 = 2 * np.pi * f / fs
    c, s = np.cos(w0), np.sin(w0)
    if kind in ("lowshelf", "highshelf"):
        S = 1.0
        alpha = s / 2 * np.sqrt((A + 1 / A) * (1 / S - 1) + 2)
    else:
        alpha = s / (2 * q)
    if kind == "highpass":
        b = [(1 + c) / 2, -(1 + c), (1 + c) / 2]
        a = [1 + alpha, -2 * c, 1 - alpha]
    elif kind == "lowpass":
        b = [(1 - c) / 2, 1 - c, (1 - c) / 2]
        a = [1 + alpha, -2 * c, 1 - alpha]
    elif kind == "peak":
        b = [1 + alpha * A, -2 * c, 1 - alpha * A]
        a = [1 + alpha / A, -2 * c, 1 - alpha / A]
    elif kind == "lowshelf":
        sq = 2 * np.sqrt(A) * alpha
        b = [A * ((A + 1) - (A - 1) * c + sq), 2 * A * ((A - 1) - (A + 1) * c),
             A * ((A + 1) - (A - 1) * c - sq)]
        a = [(A + 1) + (A - 1) * c + sq, -2 * ((A - 1) + (A + 1) * c),
             (A + 1) + (A - 1) * c - sq]
    elif kind == "highshelf":
        sq = 2 * np.sqrt(A) * alpha
        b = [A * ((A + 1) + (A - 1) * c + sq), -2 * A * ((A - 1) + (A + 1) * c),
             A * ((A + 1) + (A - 1) * c - sq)]
        a = [(A + 1) - (A - 1) * c + sq, 2 * ((A - 1) - (A + 1) * c),
             (A + 1) - (A - 1) * c - sq]
    else:
        raise ValueError(kind)
    return np.array(b), np.array(a)


def response_db(b, a, freqs, fs):
    zi = np.exp(-1j * 2 * np.pi * freqs / fs)          # z^-1
    h = (b[0] + b[1] * zi + b[2] * zi ** 2) / (a[0] + a[1] * zi + a[2] * zi ** 2)
    return 20 * np.log10(np.abs(h))


def measured_db(params, fs=FS, n=1 << 17):
    x = np.zeros(n)
    x[0] = 1.0
    yl, yr = render(fresh(fs), params, x, fs=fs)
    assert np.array_equal(yl, yr)
    spec = np.fft.rfft(yl)
    freqs = np.fft.rfftfreq(n, 1.0 / fs)
    band = (freqs >= 20.0) & (freqs <= 20000.0)
    return freqs[band], 20 * np.log10(np.abs(spec[band]))


CASES = [
    # (unit settings, the one biquad expected: kind, f, gain_db, q), at 48 kHz unless given
    (dict(low_cut_hz=30.0), ("highpass", 30.0, 0.0, eq.BUTTERWORTH_Q)),
    (dict(low_cut_hz=200.0, low_cut_q=2.0), ("highpass", 200.0, 0.0, 2.0)),
    (dict(low_cut_hz=1000.0, low_cut_q=0.3), ("highpass", 1000.0, 0.0, 0.3)),
    (dict(low_shelf_hz=100.0, low_shelf_gain_db=12.0), ("lowshelf", 100.0, 12.0, 0)),
    (dict(low_shelf_hz=500.0, low_shelf_gain_db=-18.0), ("lowshelf", 500.0, -18.0, 0)),
    (dict(low_shelf_hz=20.0, low_shelf_gain_db=24.0), ("lowshelf", 20.0, 24.0, 0)),
    (dict(peak1_hz=1000.0, peak1_gain_db=12.0, peak1_q=1.0), ("peak", 1000.0, 12.0, 1.0)),
    (dict(peak1_hz=60.0, peak1_gain_db=-24.0, peak1_q=8.0), ("peak", 60.0, -24.0, 8.0)),
    (dict(peak1_hz=15000.0, peak1_gain_db=6.0, peak1_q=0.5), ("peak", 15000.0, 6.0, 0.5)),
    (dict(peak2_hz=3000.0, peak2_gain_db=-9.0, peak2_q=20.0), ("peak", 3000.0, -9.0, 20.0)),
    (dict(peak2_hz=20.0, peak2_gain_db=24.0, peak2_q=0.1), ("peak", 20.0, 24.0, 0.1)),
    (dict(high_shelf_hz=8000.0, high_shelf_gain_db=6.0), ("highshelf", 8000.0, 6.0, 0)),
    (dict(high_shelf_hz=1000.0, high_shelf_gain_db=-24.0), ("highshelf", 1000.0, -24.0, 0)),
    (dict(high_shelf_hz=20000.0, high_shelf_gain_db=12.0), ("highshelf", 20000.0, 12.0, 0)),
    (dict(high_cut_hz=1000.0), ("lowpass", 1000.0, 0.0, eq.BUTTERWORTH_Q)),
    (dict(high_cut_hz=5000.0, high_cut_q=4.0), ("lowpass", 5000.0, 0.0, 4.0)),
    (dict(high_cut_hz=19000.0, high_cut_q=0.3), ("lowpass", 19000.0, 0.0, 0.3)),
]


@pytest.mark.parametrize("settings, expect", CASES,
                         ids=[",".join(f"{k}={v}" for k, v in s.items()) for s, _ in CASES])
def test_magnitude_matches_the_cookbook(settings, expect):
    kind, f, g, q = expect
    freqs, got = measured_db(params_at(**settings))
    want = response_db(*rbj(kind, f, FS, g, q), freqs, FS)
    assert np.max(np.abs(got - want)) < 0.05


def test_frequencies_are_clamped_below_nyquist():
    """At 32 kHz a 20 kHz peak or high shelf sits at 0.49 * 32 kHz."""
    fs = 32000.0
    freqs, got = measured_db(params_at(peak1_hz=20000.0, peak1_gain_db=-12.0, peak1_q=2.0,
                                       high_shelf_hz=20000.0, high_shelf_gain_db=6.0), fs=fs)
    keep = freqs < 0.5 * fs
    want = (response_db(*rbj("peak", 0.49 * fs, fs, -12.0, 2.0), freqs, fs)
            + response_db(*rbj("highshelf", 0.49 * fs, fs, 6.0), freqs, fs))
    assert np.max(np.abs(got[keep] - want[keep])) < 0.05


def test_bands_in_series_and_output_gain():
    s = dict(low_cut_hz=80.0, low_cut_q=1.2, low_shelf_hz=150.0, low_shelf_gain_db=4.0,
             peak1_hz=400.0, peak1_gain_db=-6.0, peak1_q=2.0, peak2_hz=3000.0,
             peak2_gain_db=5.0, peak2_q=0.7, high_shelf_hz=9000.0, high_shelf_gain_db=-3.0,
             high_cut_hz=16000.0, high_cut_q=0.9, gain_db=-7.5)
    freqs, got = measured_db(params_at(**s))
    want = (response_db(*rbj("highpass", 80.0, FS, 0, 1.2), freqs, FS)
            + response_db(*rbj("lowshelf", 150.0, FS, 4.0), freqs, FS)
            + response_db(*rbj("peak", 400.0, FS, -6.0, 2.0), freqs, FS)
            + response_db(*rbj("peak", 3000.0, FS, 5.0, 0.7), freqs, FS)
            + response_db(*rbj("highshelf", 9000.0, FS, -3.0), freqs, FS)
            + response_db(*rbj("lowpass", 16000.0, FS, 0, 0.9), freqs, FS)
            - 7.5)
    assert np.max(np.abs(got - want)) < 0.05


# ---- transparency ------------------------------------------------------------------------

def test_defaults_are_transparent():
    assert [p.default for p in eq.PARAMS][IDX["low_cut_hz"]] == eq.PARAMS[IDX["low_cut_hz"]].lo
    assert eq.PARAMS[IDX["high_cut_hz"]].default == eq.PARAMS[IDX["high_cut_hz"]].hi
    xl, xr = noise(20000, 1), noise(20000, 2)
    s = fresh()
    yl, yr = render(s, params_at(), xl, xr, cuts=[333, 4000])
    assert np.array_equal(yl, xl) and np.array_equal(yr, xr)
    assert all(s[b * eq.STRIDE + eq.B_ON] == 0.0 for b in range(eq.BANDS))   # skipped, not run


def test_zero_gain_bands_are_bypassed_wherever_they_sit():
    xl, xr = noise(8000, 3), noise(8000, 4)
    p = params_at(low_shelf_hz=300.0, peak1_hz=77.0, peak1_q=12.0, peak2_hz=9000.0,
                  peak2_q=0.2, high_shelf_hz=2000.0)
    s = fresh()
    yl, yr = render(s, p, xl, xr)
    assert np.array_equal(yl, xl) and np.array_equal(yr, xr)
    assert all(s[b * eq.STRIDE + eq.B_ON] == 0.0 for b in range(eq.BANDS))


def test_a_band_gliding_back_to_zero_ends_bypassed():
    x = noise(48000, 5)
    p = params_at(peak1_gain_db=9.0)
    set_targets(p, peak1_gain_db=0.0)
    s = fresh()
    render(s, p, x)                                     # 1 s: the glide snaps to 0 dB
    assert p[N + IDX["peak1_gain_db"]] == 0.0
    y, _ = render(s, p, x)
    assert np.array_equal(y, x)


# ---- block-size invariance ---------------------------------------------------------------

GLIDE_FROM = dict(low_cut_hz=40.0, low_cut_q=0.5, low_shelf_hz=120.0, low_shelf_gain_db=-6.0,
                  peak1_hz=300.0, peak1_gain_db=8.0, peak1_q=3.0, peak2_hz=5000.0,
                  peak2_gain_db=-10.0, peak2_q=1.5, high_shelf_hz=6000.0,
                  high_shelf_gain_db=4.0, high_cut_hz=12000.0, high_cut_q=1.0, gain_db=2.0)
GLIDE_TO = dict(low_cut_hz=400.0, low_cut_q=3.0, low_shelf_hz=40.0, low_shelf_gain_db=9.0,
                peak1_hz=2000.0, peak1_gain_db=-12.0, peak1_q=0.4, peak2_hz=700.0,
                peak2_gain_db=6.0, peak2_q=10.0, high_shelf_hz=15000.0,
                high_shelf_gain_db=-8.0, high_cut_hz=3000.0, high_cut_q=0.4, gain_db=-5.0)


def _glide_params():
    return set_targets(params_at(**GLIDE_FROM), **GLIDE_TO)


@pytest.mark.parametrize("glide", [False, True], ids=["settled", "gliding"])
def test_block_size_invariance(glide):
    n = 12000
    xl, xr = noise(n, 6), noise(n, 7)
    outs = []
    cutsets = [list(range(0, n, bs)) for bs in (1, 7, 64, 4096)]
    rng = np.random.default_rng(8)
    cutsets += [sorted(rng.integers(1, n, 40).tolist()), []]
    for cuts in cutsets:
        p = _glide_params() if glide else params_at(**GLIDE_FROM)
        s = fresh()
        outs.append(render(s, p, xl, xr, cuts=cuts) + (s.copy(), p.copy()))
    first = outs[0]
    for o in outs[1:]:
        for a, b in zip(first, o):
            assert np.array_equal(a, b, equal_nan=True)
    if glide:                                           # the glide really moved something
        assert not np.array_equal(first[3][N:], params_at(**GLIDE_FROM)[N:])


def test_a_gliding_unit_matches_the_settled_one_when_done():
    """Coefficients follow the smoothed values: once settled, the glide's end is the target."""
    x = noise(96000, 9)
    p = _glide_params()
    s = fresh()
    render(s, p, x)                                     # 2 s: every parameter arrives
    assert np.array_equal(p[:N], p[N:])
    freqs, got = measured_db(params_at(**GLIDE_TO))
    # the unit keeps its design in the state: an impulse through the glided state (tails
    # cleared) gives the same response
    eq_state = s.copy()
    for b in range(eq.BANDS):
        o = b * eq.STRIDE
        eq_state[o + eq.B_S1L:o + eq.B_S2R + 1] = 0.0
    imp = np.zeros(1 << 17)
    imp[0] = 1.0
    y, _ = render(eq_state, p, imp)
    spec = 20 * np.log10(np.abs(np.fft.rfft(y)))
    band = (np.fft.rfftfreq(len(imp), 1 / FS) >= 20) & (np.fft.rfftfreq(len(imp), 1 / FS) <= 20000)
    assert np.max(np.abs(spec[band] - got)) < 1e-6


# ---- safety ------------------------------------------------------------------------------

def _extreme_settings():
    rng = np.random.default_rng(10)
    los = {p.name: p.lo for p in eq.PARAMS}
    his = {p.name: p.hi for p in eq.PARAMS}
    out = [los, his, {p.name: p.default for p in eq.PARAMS},
           dict({p.name: p.default for p in eq.PARAMS}, gain_db=24.0)]
    for p in eq.PARAMS:
        for v in (p.lo, p.hi):
            d = {q.name: (q.hi if q.name.endswith("gain_db") else q.default) for q in eq.PARAMS}
            d[p.name] = v
            out.append(d)
    for _ in range(6):
        out.append({p.name: (p.lo if rng.random() < 0.5 else p.hi) for p in eq.PARAMS})
    return out


@pytest.mark.parametrize("fs", [8000.0, 44100.0, 192000.0])
def test_extremes_stay_finite(fs):
    n = 3000
    rng = np.random.default_rng(11)
    huge = rng.standard_normal(n) * 1e300
    huge[100] = np.inf
    huge[200] = -np.inf
    huge[300] = np.nan
    settings = _extreme_settings()
    for k, d in enumerate(settings):
        for x in (noise(n, k), huge):
            p = params_at(**d)
            set_targets(p, **settings[(k + 1) % len(settings)])     # glide to another extreme
            y = render(fresh(fs), p, x, -x, cuts=[1, 500, 501, 2000], fs=fs)
            assert np.all(np.isfinite(y[0])) and np.all(np.isfinite(y[1])), d
            assert np.all(np.isfinite(p))
    # targets far outside the ranges, infinite or NaN
    for bad in (np.nan, np.inf, -np.inf, 1e300, -1e300, 0.0):
        p = params_at(**GLIDE_FROM)
        p[:N] = bad
        y = render(fresh(fs), p, noise(n, 12), cuts=[7], fs=fs)
        assert np.all(np.isfinite(y[0])) and np.all(np.isfinite(y[1])), bad
        assert np.all(np.isfinite(p[N:]))               # the current values stay numbers


@pytest.mark.parametrize("name", [p.name for p in eq.PARAMS])
def test_out_of_range_values_act_as_the_limits(name):
    """Targets and current values anywhere (even NaN) are clamped to the parameter's range."""
    par = eq.PARAMS[IDX[name]]
    base = dict(GLIDE_FROM)
    x = noise(3000, 19)
    for bad, limit in ((par.lo - 1.0, par.lo), (-1e300, par.lo), (0.0, par.lo),
                       (math.nan, par.lo), (par.hi * 10.0 + 1.0, par.hi), (1e300, par.hi)):
        if bad == 0.0 and par.lo <= 0.0:
            continue
        want = render(fresh(), params_at(**dict(base, **{name: limit})), x)
        got = render(fresh(), params_at(**dict(base, **{name: bad})), x)
        assert np.array_equal(want[0], got[0]) and np.array_equal(want[1], got[1]), bad


@pytest.mark.parametrize("junk", [math.nan, 1e308, -1e200])
def test_a_corrupt_state_recovers(junk):
    """A state never reset (or overwritten) cannot poison the recursion: a band whose output
    is not finite restarts from silence."""
    s = np.full(eq.state_size(FS), junk)
    y = render(s, params_at(**GLIDE_FROM), noise(2000, 20))
    assert np.all(np.isfinite(y[0])) and np.all(np.isfinite(y[1]))


def test_nan_targets_are_ignored():
    x = noise(4000, 13)
    p = params_at(**GLIDE_FROM)
    want = render(fresh(), p.copy(), x)
    p[:N] = np.nan
    got = render(fresh(), p, x)
    assert np.array_equal(want[0], got[0]) and np.array_equal(want[1], got[1])


def test_unusable_sample_rate_passes_through():
    x = noise(500, 14)
    for fs in (0.0, -48000.0, np.nan, np.inf):
        s = np.zeros(eq.state_size(48000.0))
        eq.reset(s, fs)
        y = render(s, params_at(**GLIDE_FROM), x, fs=fs)
        assert np.array_equal(y[0], x)


# ---- reset -------------------------------------------------------------------------------

def test_reset_clears_the_tails():
    p = params_at(**GLIDE_FROM)
    s = fresh()
    render(s, p, noise(5000, 15))
    assert np.any(s[eq.B_S1L:eq.B_S2R + 1] != 0.0)      # a tail is there
    eq.reset(s, FS)
    x = noise(5000, 16)
    got = render(s, p, x)
    want = render(fresh(), params_at(**GLIDE_FROM), x)
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])


# ---- smoothing ---------------------------------------------------------------------------

def test_output_gain_step_is_smoothed():
    x = np.ones(4800)
    p = set_targets(params_at(), gain_db=24.0)
    y, _ = render(fresh(), p, x)
    assert np.max(np.abs(np.diff(y))) < 0.01             # unsmoothed: one jump of 14.8
    assert y[-1] > 10.0                                  # and it does get there


def test_band_gain_step_is_smoothed():
    """A 1 kHz sine meets a +24 dB peak switched on at 1 kHz: in the first millisecond the
    level may grow by ~1 dB (20 ms smoothing), not by the full 24 dB."""
    n = 4800
    x = np.sin(2 * np.pi * 1000.0 * np.arange(n) / FS)
    p = set_targets(params_at(peak1_hz=1000.0, peak1_q=1.0), peak1_gain_db=24.0)
    y, _ = render(fresh(), p, x)
    assert np.max(np.abs(y[:48])) < 1.3
    assert np.max(np.abs(y[-480:])) > 10.0


def test_frequency_glide_is_smoothed():
    """A low cut swept from 10 Hz to 1 kHz on DC: no jump between samples."""
    x = np.ones(4800)
    p = set_targets(params_at(), low_cut_hz=1000.0)
    y, _ = render(fresh(), p, x)
    assert np.max(np.abs(np.diff(y))) < 0.05
    assert abs(y[-1]) < 0.01


# ---- registry and dispatch ---------------------------------------------------------------

def test_registered_and_dispatched():
    assert UNITS[KIND["eq"]] is eq
    x = noise(3000, 17)
    want = render(fresh(), _glide_params(), x, cuts=[100])
    s = np.full(eq.state_size(FS), 123.0)
    reset_unit(KIND["eq"], s, FS)
    assert np.array_equal(s, fresh(), equal_nan=True)
    p = _glide_params()
    bus = np.zeros((4, len(x)))
    bus[0] = x
    bus[1] = x
    run_unit(KIND["eq"], s, p, bus, IO, 0, 100, FS)
    run_unit(KIND["eq"], s, p, bus, IO, 100, len(x), FS)
    assert np.array_equal(bus[2], want[0]) and np.array_equal(bus[3], want[1])


def test_in_place():
    x = noise(2000, 18)
    want = render(fresh(), params_at(**GLIDE_FROM), x)
    bus = np.zeros((2, len(x)))
    bus[0] = x
    bus[1] = x
    eq.process(fresh(), params_at(**GLIDE_FROM), bus, np.array([0, 1, 0, 1, -1, -1, -1, -1]), 0,
               len(x), FS)
    assert np.array_equal(bus[0], want[0]) and np.array_equal(bus[1], want[1])


def test_param_declarations():
    assert eq.N == len(eq.PARAMS) == 15
    for name in ("low_cut_hz", "low_cut_q", "low_shelf_hz", "low_shelf_gain_db", "peak1_hz",
                 "peak1_gain_db", "peak1_q", "peak2_hz", "peak2_gain_db", "peak2_q",
                 "high_shelf_hz", "high_shelf_gain_db", "high_cut_hz", "gain_db"):
        assert name in IDX
    assert eq.PARAMS[IDX["low_cut_hz"]].curve == "log"
    assert (eq.PARAMS[IDX["high_cut_hz"]].lo, eq.PARAMS[IDX["high_cut_hz"]].hi) == (1000, 20000)
    assert (eq.PARAMS[IDX["low_cut_hz"]].lo, eq.PARAMS[IDX["low_cut_hz"]].hi) == (10, 1000)


def test_kernel_has_no_path_to_python():
    """The compiled kernel (recompiled here: cached code cannot be inspected) calls nothing but
    LLVM intrinsics and libm: no allocation, no raise site, no Python (tests/test_rt_proof)."""
    import llvmlite.binding as llb
    from numba import njit

    from engine.rt.dsp import JIT
    from tests.test_rt_proof import violations

    k = njit(**dict(JIT, cache=False))(eq.process.py_func)
    k(fresh(), params_at(), np.zeros((4, 8)), IO, 0, 8, FS)
    (ir,) = k.inspect_llvm().values()
    entry = [f.name for f in llb.parse_assembly(ir).functions
             if not f.is_declaration and f.name.startswith("_ZN6engine2rt5units2eq7process")]
    assert len(entry) == 1
    assert violations(ir, entry[0]) == []
