"""engine.rt.units.reverb (the FDN, also the engine's reverb send) and engine.rt.units.plate
(Dattorro's plate): RT60 by Schroeder backward integration, stereo decorrelation and width,
predelay to the sample, the send equivalence, the plate's first reflections from its topology,
block-size invariance and safety, rendered offline on a numpy bus."""
import math

import numpy as np
import pytest

from engine.rt.units import KIND, UNITS, dispatch, plate, reverb
from tests import unitkit

SR = 48000


def params(unit, glide=None, **kw):
    """Targets and current values; `kw` sets both, `glide` {name: target} only the targets."""
    return unitkit.params(unit, glide=glide, **kw)


fresh = unitkit.fresh
render = unitkit.render


def impulse(n, at=0):
    x = np.zeros(n)
    x[at] = 1.0
    return x


def band(ir, lo_hz, hi_hz, skirt=1.0):
    """The IR restricted to lo_hz..hi_hz, with raised-cosine skirts `skirt` octaves wide (a
    smooth window: a brick wall would smear the early energy over the tail)."""
    spec = np.fft.rfft(ir)
    f = np.fft.rfftfreq(len(ir), 1.0 / SR)
    octs = np.log2(np.maximum(f, 1e-9))
    w = np.ones_like(f)
    lo, hi = math.log2(lo_hz), math.log2(hi_hz)
    w[octs < lo - skirt] = 0.0
    m = (octs >= lo - skirt) & (octs < lo)
    w[m] = 0.5 - 0.5 * np.cos(np.pi * (octs[m] - lo + skirt) / skirt)
    w[octs > hi + skirt] = 0.0
    m = (octs > hi) & (octs <= hi + skirt)
    w[m] = 0.5 + 0.5 * np.cos(np.pi * (octs[m] - hi) / skirt)
    return np.fft.irfft(spec * w, len(ir))


def schroeder_rt60(energy, lo_db=-5.0, hi_db=-35.0):
    """RT60 from the energy decay curve (backward integration of `energy`), a least-squares
    line through lo_db..hi_db extrapolated to -60 dB."""
    edc = np.cumsum(energy[::-1])[::-1]
    edc_db = 10 * np.log10(edc / edc[0] + 1e-300)
    i0, i1 = np.argmax(edc_db < lo_db), np.argmax(edc_db < hi_db)
    assert i1 > i0 + 100
    slope_db_per_s = np.polyfit(np.arange(i0, i1) / SR, edc_db[i0:i1], 1)[0]
    return -60.0 / slope_db_per_s


def stereo_rt60(unit, decay_s, lo_hz=125.0, hi_hz=1000.0, skirt=1.0, **kw):
    """RT60 of the unit's stereo impulse response (mono impulse in, L^2 + R^2) in a band
    below the damping (decay_s is the RT60 where the damping passes)."""
    n = int((1.3 * decay_s + 0.4) * SR)             # the tail reaches about -80 dB
    x = impulse(n)
    p = dict(decay_s=decay_s, predelay_ms=0.0, damping_hz=20000.0, wet_level=1.0,
             dry_level=0.0)
    p.update(kw)
    l, r = render(unit, x, x, prm=params(unit, **p), cuts=[4096])
    return schroeder_rt60(band(l, lo_hz, hi_hz, skirt) ** 2 + band(r, lo_hz, hi_hz, skirt) ** 2)


def test_the_schroeder_measure_reads_a_known_decay():
    """The measure itself: exponentially decaying noise with a 1.7 s RT60 reads 1.7 s."""
    n = 3 * SR
    rng = np.random.default_rng(0)
    e = (rng.standard_normal(n) * 10 ** (-3 * np.arange(n) / (1.7 * SR))) ** 2
    assert schroeder_rt60(e) == pytest.approx(1.7, rel=0.01)


def test_registered_and_dispatched():
    for unit in (reverb, plate):
        assert UNITS[KIND[unit.NAME]] is unit
        x = np.random.default_rng(1).standard_normal(3000)
        a = render(unit, x, prm=params(unit, glide={"decay_s": 5.0}))
        b = render(unit, x, prm=params(unit, glide={"decay_s": 5.0}), kind=KIND[unit.NAME],
                   cuts=[64])
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
        st = np.full(unit.state_size(SR), 7.0)
        dispatch.reset_unit(KIND[unit.NAME], st, SR)
        assert np.array_equal(st, fresh(unit))


# ---------------------------------------------------------------- the FDN reverb


@pytest.mark.parametrize("decay_s", [0.5, 2.0, 6.0])
@pytest.mark.parametrize("size", [0.5, 1.0, 1.25])
def test_reverb_rt60_follows_decay_s(decay_s, size):
    """Measured (125 Hz..1 kHz, -5..-35 dB): 0.97..1.05 x decay_s over these cases."""
    assert stereo_rt60(reverb, decay_s, size=size) == pytest.approx(decay_s, rel=0.1)


def test_reverb_damping_shortens_the_highs_only():
    """Damping at 4 kHz: well below it (63..250 Hz) the RT60 is still decay_s, an octave
    above it less than half of that."""
    lows = stereo_rt60(reverb, 2.0, 63.0, 250.0, damping_hz=4000.0)
    highs = stereo_rt60(reverb, 2.0, 8000.0, 16000.0, damping_hz=4000.0)
    assert lows == pytest.approx(2.0, rel=0.1)
    assert highs < 0.5 * lows


def wet_ir(unit, n=2 * SR, **kw):
    x = impulse(n)
    p = dict(predelay_ms=0.0, wet_level=1.0, dry_level=0.0)
    p.update(kw)
    return render(unit, x, x, prm=params(unit, **p), cuts=[4096])


def correlation(a, b):
    return float(np.corrcoef(a, b)[0, 1])


@pytest.mark.parametrize("unit", [reverb, plate], ids=["reverb", "plate"])
def test_tail_is_decorrelated_and_width_mixes_it(unit):
    """A mono impulse in: at width 1 the two tails share nothing (|r| < 0.3; measured
    reverb -0.05, plate 0.00); width w gives L' = (1 + w)/2 L + (1 - w)/2 R, so width 0 is
    mono (r = 1) and width 0.5 has the correlation that mix implies (0.6 for r = 0)."""
    tail = slice(int(0.1 * SR), 2 * SR)
    l, r = wet_ir(unit, width=1.0)
    r1 = correlation(l[tail], r[tail])
    assert abs(r1) < 0.3
    l0, r0 = wet_ir(unit, width=0.0)
    assert np.array_equal(l0, r0)
    assert np.allclose(l0, 0.5 * (l + r), rtol=0, atol=1e-15)
    lh, rh = wet_ir(unit, width=0.5)
    assert np.allclose(lh, 0.75 * l + 0.25 * r, rtol=0, atol=1e-15)
    # correlation of a L + b R with b L + a R, from the width-1 (co)variances
    a, b = 0.75, 0.25
    (pl, c), (_, pr) = np.cov(l[tail], r[tail])
    cov = a * b * (pl + pr) + (a * a + b * b) * c
    var_l = a * a * pl + b * b * pr + 2 * a * b * c
    var_r = b * b * pl + a * a * pr + 2 * a * b * c
    assert correlation(lh[tail], rh[tail]) == pytest.approx(cov / math.sqrt(var_l * var_r),
                                                            abs=1e-6)


@pytest.mark.parametrize("unit", [reverb, plate], ids=["reverb", "plate"])
@pytest.mark.parametrize("predelay_ms", [12.5, 50.0, 250.0])
def test_predelay_is_exact_to_the_sample(unit, predelay_ms):
    """predelay_ms (a whole number of samples here) = the same reverb with no predelay fed
    the impulse that much later, sample for sample; nothing comes out before it."""
    k = round(predelay_ms * SR / 1000)
    n = k + 20000
    late = render(unit, impulse(n, k), prm=params(unit, predelay_ms=0.0, dry_level=0.0),
                  cuts=[4096])
    got = render(unit, impulse(n), prm=params(unit, predelay_ms=predelay_ms, dry_level=0.0),
                 cuts=[4096])
    assert np.array_equal(got[0], late[0]) and np.array_equal(got[1], late[1])
    assert not np.any(got[0][:k]) and np.max(np.abs(got[0])) > 1e-3


@pytest.mark.parametrize("unit", [reverb, plate], ids=["reverb", "plate"])
def test_dry_level_and_in_place(unit):
    """wet 0: out = dry_level x in exactly; in place (out rows = in rows) = out of place."""
    rng = np.random.default_rng(5)
    x_l, x_r = rng.standard_normal(8000), rng.standard_normal(8000)
    out = render(unit, x_l, x_r, prm=params(unit, wet_level=0.0, dry_level=0.7))
    assert np.array_equal(out[0], 0.7 * x_l) and np.array_equal(out[1], 0.7 * x_r)
    prm = params(unit, wet_level=0.5, dry_level=0.8)
    a = render(unit, x_l, x_r, prm=prm.copy(), cuts=[100])
    b = render(unit, x_l, x_r, prm=prm.copy(), cuts=[100], in_place=True)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def one_pole_highpass(x, hz):
    a = 1.0 - math.exp(-2.0 * math.pi * hz / SR)
    lp, y = 0.0, np.empty_like(x)
    for i, v in enumerate(x):
        lp += a * (v - lp)
        y[i] = v - lp
    return y


def test_reverb_low_cut_is_a_one_pole_highpass_on_the_input():
    """The reverb is linear, so low_cut_hz f = low cut off fed the input through the one-pole
    high-pass y = x - lp, lp += (1 - e^(-2 pi f / fs)) (x - lp)."""
    n = 12000
    rng = np.random.default_rng(6)
    x_l, x_r = rng.standard_normal(n), rng.standard_normal(n)
    got = render(reverb, x_l, x_r, prm=params(reverb, low_cut_hz=300.0, dry_level=0.0))
    want = render(reverb, one_pole_highpass(x_l, 300.0), one_pole_highpass(x_r, 300.0),
                  prm=params(reverb, dry_level=0.0))
    scale = np.max(np.abs(want[0]))
    assert np.max(np.abs(got[0] - want[0])) < 1e-9 * scale
    assert np.max(np.abs(got[1] - want[1])) < 1e-9 * scale
    # and switching it off glides back to the plain input (no step, state fades to 0)
    prm = params(reverb, low_cut_hz=300.0, glide={"low_cut_hz": reverb.LOW_CUT_OFF_HZ})
    st = fresh(reverb)
    x = np.concatenate([x_l, np.zeros(2 * SR)])
    render(reverb, x, prm=prm, state=st, cuts=[4096])
    assert st[reverb.R_LC] == reverb.LOW_CUT_OFF_HZ
    assert st[reverb.R_LC_L] == 0.0 and st[reverb.R_LC_R] == 0.0


def test_reverb_size_scales_the_line_lengths():
    """The tail's echo density follows the line lengths: at size 0.5 the first reflections
    (line outputs) arrive earlier than at size 1.25; the RT60 stays (test above)."""
    def first_arrival(size):
        l, r = wet_ir(reverb, n=SR // 2, size=size)
        e = l ** 2 + r ** 2
        return np.argmax(np.cumsum(e) > 0.05 * e.sum())
    assert first_arrival(0.5) < 0.7 * first_arrival(1.25)


# ---------------------------------------------------------------- the plate


@pytest.mark.parametrize("decay_s", [0.5, 2.0, 6.0])
def test_plate_rt60_follows_decay_s(decay_s):
    """Measured (125 Hz..1 kHz, -5..-35 dB): 1.00..1.01 x decay_s."""
    assert stereo_rt60(plate, decay_s) == pytest.approx(decay_s, rel=0.1)


def test_plate_rt60_without_modulation_and_broadband():
    assert stereo_rt60(plate, 1.0, mod_depth_ms=0.0) == pytest.approx(1.0, rel=0.1)
    # broadband, damping at its top: the highs only a little shorter
    assert stereo_rt60(plate, 2.0, 20.0, 20000.0) == pytest.approx(2.0, rel=0.1)


def test_plate_first_reflections_follow_dattorros_taps():
    """An impulse reaches the left output first through Table 2's tap 266 (in the right
    half's first delay) and the right output through tap 353 (the left half's), scaled to
    48 kHz: 429 and 569 samples. Its value: bandwidth one-pole gain a, the four input
    diffusers' direct paths (0.75, 0.75, 0.625, 0.625), the modulated allpass's (-0.7), the
    tap gain 0.6 and the decay scaling r^tap."""
    decay_s, bw_hz = 3.0, 10000.0
    n = 2000
    l, r = render(plate, impulse(n), prm=params(plate, decay_s=decay_s, bandwidth_hz=bw_hz,
                                                predelay_ms=0.0, wet_level=1.0, dry_level=0.0))
    a = 1 - math.exp(-2 * math.pi * bw_hz / SR)
    direct = a * 0.75 * 0.75 * 0.625 * 0.625 * -0.7 * 0.6
    for out, ref_tap in ((l, 266), (r, 353)):
        k = round(ref_tap * SR / plate.FS_REF)
        assert np.argmax(out != 0.0) == k
        assert out[k] == pytest.approx(direct * 10 ** (-3 * k / (decay_s * SR)), rel=1e-12)
    assert plate.loop_delay_samples(SR) / SR == pytest.approx(21589 / plate.FS_REF, rel=1e-3)


@pytest.mark.parametrize("decay_s,damp_hz,f0", [(4.0, 3000.0, 4000.0), (6.0, 2000.0, 3000.0),
                                                (3.0, 5000.0, 8000.0)])
def test_plate_damping_rt60_matches_the_loop_filter(decay_s, damp_hz, f0):
    """Above the damping the tail also loses the one-pole lowpass H twice per trip round the
    tank (once per half): RT60(f) = 60 / (60 / decay_s + 2 |20 log10 H(f)| / loop_s).
    Measured in a third-octave band at f0: 1.01..1.04 x that."""
    a = 1 - math.exp(-2 * math.pi * damp_hz / SR)
    h = abs(a / (1 - (1 - a) * np.exp(-2j * np.pi * f0 / SR)))
    loop_s = plate.loop_delay_samples(SR) / SR
    want = 60.0 / (60.0 / decay_s + 2 * abs(20 * math.log10(h)) / loop_s)
    got = stereo_rt60(plate, decay_s, f0 / 2 ** (1 / 6), f0 * 2 ** (1 / 6), skirt=0.25,
                      damping_hz=damp_hz)
    assert got == pytest.approx(want, rel=0.07)
    assert want < 0.7 * decay_s


def test_plate_modulation_is_the_only_time_variance():
    """Depth 0: an impulse 1000 samples later gives the same response 1000 samples later
    (the tank is time-invariant); with the default sweep it does not."""
    n = 30000
    for depth, same in ((0.0, True), (0.27, False)):
        prm = params(plate, mod_depth_ms=depth, predelay_ms=0.0, dry_level=0.0)
        a = render(plate, impulse(n), prm=prm.copy())[0]
        b = render(plate, impulse(n, 1000), prm=prm.copy())[0]
        assert np.array_equal(a[:n - 1000], b[1000:]) == same


# ---------------------------------------------------------------- both: invariance, safety


@pytest.mark.parametrize("unit", [reverb, plate], ids=["reverb", "plate"])
def test_block_size_invariance_while_everything_glides(unit):
    n = 30000
    rng = np.random.default_rng(8)
    x_l, x_r = rng.standard_normal(n), rng.standard_normal(n)
    later = {p.name: p.lo + 0.7 * (p.hi - p.lo) for p in unit.PARAMS}
    ref = render(unit, x_l, x_r, prm=params(unit), changes={9001: later})
    for cuts in ([1], [7, 1, 64], [4096, 3, 1000], [333]):
        got = render(unit, x_l, x_r, prm=params(unit), changes={9001: later}, cuts=cuts)
        assert np.array_equal(got[0], ref[0]) and np.array_equal(got[1], ref[1])


@pytest.mark.parametrize("unit", [reverb, plate], ids=["reverb", "plate"])
def test_extremes_stay_finite_and_bounded(unit):
    n = 2 * SR
    x = np.zeros(n)
    x[:500] = np.random.default_rng(1).standard_normal(500)
    x[700], x[701] = np.nan, -np.inf
    for where in ("lo", "hi"):
        kw = {p.name: (p.lo if where == "lo" else p.hi) for p in unit.PARAMS}
        l, r = render(unit, x, x, prm=params(unit, **kw), cuts=[4096])
        assert np.all(np.isfinite(l)) and np.all(np.isfinite(r))
        assert np.max(np.abs(l)) < 10.0 and np.max(np.abs(r)) < 10.0    # no runaway
    for bad in (np.nan, np.inf, -1e300):
        prm = params(unit)
        prm[:len(unit.PARAMS)] = bad
        l, r = render(unit, x, x, prm=prm, cuts=[4096])
        assert np.all(np.isfinite(l)) and np.max(np.abs(l)) < 10.0


@pytest.mark.parametrize("unit", [reverb, plate], ids=["reverb", "plate"])
def test_a_state_too_small_passes_the_dry_signal_only(unit):
    x = np.random.default_rng(2).standard_normal(3000)
    st = np.zeros(unit.state_size(SR) // 2)
    unit.reset(st, float(SR))
    l, r = render(unit, x, prm=params(unit, dry_level=0.5), state=st)
    assert np.array_equal(l, 0.5 * x) and np.array_equal(r, 0.5 * x)
    assert unit.state_size(96000) > 1.9 * unit.state_size(48000)
