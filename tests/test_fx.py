"""The send effects (the delay and reverb units as sends: wet only, added into the mix),
checked offline on their signal."""
import numpy as np
import pytest

from tests import sendfx as fx

SR = 48000


def run_delay(state, params, in_l, in_r, tempo=120.0, cuts=(), tempo_changes=None, out=None):
    """Run the delay over the whole input, split at `cuts`; tempo_changes {sample: bpm}."""
    n = len(in_l)
    out_l, out_r = (np.zeros(n), np.zeros(n)) if out is None else out
    changes = tempo_changes or {}
    points = sorted(set([0, n] + list(cuts) + list(changes)))
    for a, b in zip(points[:-1], points[1:]):
        tempo = changes.get(a, tempo)
        fx.delay_process(state, params, in_l, in_r, out_l, out_r, a, b, tempo, SR)
    return out_l, out_r


def run_reverb(state, params, in_l, in_r, cuts=(), out=None):
    n = len(in_l)
    out_l, out_r = (np.zeros(n), np.zeros(n)) if out is None else out
    points = sorted(set([0, n] + list(cuts)))
    for a, b in zip(points[:-1], points[1:]):
        fx.reverb_process(state, params, in_l, in_r, out_l, out_r, a, b, SR)
    return out_l, out_r


def impulse(n, at=0, amp=1.0):
    x = np.zeros(n)
    x[at] = amp
    return x


def random_cuts(n, seed):
    rng = np.random.default_rng(seed)
    cuts = set(rng.integers(0, n, 400).tolist())
    cuts |= {c + 1 for c in list(cuts)[:150]}  # length-1 segments
    return cuts


def delay_params(**kw):
    """Settings in place from the start (target and current value)."""
    p = fx.delay_default_params()
    for k, v in kw.items():
        p[fx.DELAY_PARAM_NAMES[k]] = p[len(p) // 2 + fx.DELAY_PARAM_NAMES[k]] = v
    return p


def reverb_params(**kw):
    p = fx.reverb_default_params()
    for k, v in kw.items():
        p[fx.REVERB_PARAM_NAMES[k]] = p[len(p) // 2 + fx.REVERB_PARAM_NAMES[k]] = v
    return p


# delay ------------------------------------------------------------------------------------

@pytest.mark.parametrize("tempo,beats,expected", [(120.0, 0.5, 12000), (90.0, 0.75, 24000),
                                                  (150.0, 1.0, 19200)])
def test_pingpong_echoes_land_on_the_exact_sample(tempo, beats, expected):
    n = 2 * expected + 500
    x = impulse(n, at=100)
    p = delay_params(time_beats=beats, feedback=0.5, tone_hz=20000.0, pingpong=1.0, mix=0.8)
    out_l, out_r = run_delay(fx.delay_alloc_state(SR), p, x, x, tempo=tempo)
    assert np.all(out_l[:100 + expected] == 0.0) and np.all(out_r[:100 + 2 * expected] == 0.0)
    assert out_l[100 + expected] == 0.8  # first repeat: left, exact level
    assert np.argmax(np.abs(out_r)) == 100 + 2 * expected  # second repeat: right
    assert 0.3 < out_r[100 + 2 * expected] < 0.8 * 0.5


def test_straight_stereo_delay_keeps_sides_apart():
    n = 30000
    x = impulse(n, at=10)
    p = delay_params(time_beats=0.25, feedback=0.6, pingpong=0.0, mix=1.0)
    out_l, out_r = run_delay(fx.delay_alloc_state(SR), p, x, np.zeros(n), tempo=120.0)
    assert np.all(out_r == 0.0)
    assert out_l[10 + 6000] == 1.0
    assert np.argmax(np.abs(out_l[10 + 6001:])) + 10 + 6001 == 10 + 12000


def test_delay_mix_zero_adds_nothing_and_output_is_added():
    n = 20000
    x = np.random.default_rng(0).standard_normal(n)
    base = np.linspace(-1, 1, n)
    out_l, out_r = base.copy(), base.copy()
    run_delay(fx.delay_alloc_state(SR), delay_params(mix=0.0), x, x, out=(out_l, out_r))
    assert np.array_equal(out_l, base) and np.array_equal(out_r, base)


@pytest.mark.parametrize("seed", [1, 2])
def test_delay_block_size_invariance(seed):
    n = 30000
    rng = np.random.default_rng(seed)
    x_l, x_r = rng.standard_normal(n), rng.standard_normal(n)
    p = delay_params(time_beats=0.375, feedback=0.7, tone_hz=3000.0, pingpong=0.6)
    changes = {7000: 133.0, 15000: 97.0}
    ref = run_delay(fx.delay_alloc_state(SR), p, x_l, x_r, tempo_changes=changes)
    got = run_delay(fx.delay_alloc_state(SR), p, x_l, x_r, cuts=random_cuts(n, seed),
                    tempo_changes=changes)
    assert np.array_equal(ref[0], got[0]) and np.array_equal(ref[1], got[1])
    one = run_delay(fx.delay_alloc_state(SR), p, x_l, x_r, cuts=range(n), tempo_changes=changes)
    assert np.array_equal(ref[0], one[0]) and np.array_equal(ref[1], one[1])


def test_tempo_change_glides_without_clicks():
    n = 130000
    t = np.arange(n) / SR
    # 430 Hz: the old and new delay times (12000 and 9600 samples) are 21.5 cycles apart, so
    # a jump between them would be a jump in phase (440 Hz would hide it: 22.0 cycles)
    x = 0.5 * np.sin(2 * np.pi * 430 * t)
    p = delay_params(time_beats=0.5, feedback=0.0, pingpong=0.0, mix=1.0)
    out_l, _ = run_delay(fx.delay_alloc_state(SR), p, x, x, tempo=120.0,
                         tempo_changes={20000: 150.0})
    seg = out_l[12500:]
    # a sine read at up to 1.5x speed while gliding: steps stay sine-like, no jump
    assert np.max(np.abs(np.diff(seg))) < 1.6 * 0.5 * 2 * np.pi * 430 / SR
    # and the delay does settle on the new tempo: 0.5 beat at 150 bpm
    d_new = round(0.5 * 60 / 150 * SR)
    assert np.allclose(out_l[120000:], x[120000 - d_new:n - d_new], atol=1e-6)


def test_delay_time_glides_with_its_time_constant():
    """After a tempo change the delay time (in samples) glides as a one-pole with
    DELAY_TIME_SMOOTH_S: one time constant later it is 63 % of the way."""
    old, new = 12000.0, 9600.0                  # 0.5 beat at 120 and at 150 bpm
    kt = 1.0 - np.exp(-1.0 / (fx.DELAY_TIME_SMOOTH_S * SR))
    x = np.zeros(30000)
    p = delay_params(time_beats=0.5)
    for k in (1, 480, round(fx.DELAY_TIME_SMOOTH_S * SR), 9000):
        st = fx.delay_alloc_state(SR)
        run_delay(st, p, x[:20000 + k], x[:20000 + k], tempo=120.0, tempo_changes={20000: 150.0})
        assert st[fx.D_TIME] == pytest.approx(new + (old - new) * (1 - kt) ** k, abs=1e-6)


@pytest.mark.parametrize("name,value", [("feedback", 10.0), ("feedback", -3.0),
                                        ("feedback", float("nan")), ("time_beats", 1e6),
                                        ("time_beats", -1.0), ("time_beats", 0.0),
                                        ("tone_hz", -5.0), ("tone_hz", 1e9),
                                        ("pingpong", 7.0), ("mix", float("inf"))])
def test_delay_extreme_params_stay_finite_and_decay(name, value):
    n = 3 * SR
    x = np.zeros(n)
    x[:2000] = np.random.default_rng(0).standard_normal(2000)
    p = delay_params(**{"time_beats": 0.25, "feedback": 0.9, "mix": 1.0, name: value})
    out_l, out_r = run_delay(fx.delay_alloc_state(SR), p, x, x, tempo=180.0)
    assert np.all(np.isfinite(out_l)) and np.all(np.isfinite(out_r))
    early = np.max(np.abs(out_l[:SR]) + np.abs(out_r[:SR]))
    late = np.max(np.abs(out_l[-SR // 2:]) + np.abs(out_r[-SR // 2:]))
    assert late <= early  # feedback is clamped below 1: repeats never grow


@pytest.mark.parametrize("tempo", [0.0, -120.0, 1e9, float("nan"), float("inf")])
def test_delay_absurd_tempo_stays_finite(tempo):
    x = impulse(20000, at=5)
    out_l, out_r = run_delay(fx.delay_alloc_state(SR), delay_params(), x, x, tempo=tempo)
    assert np.all(np.isfinite(out_l)) and np.all(np.isfinite(out_r))


def test_nonfinite_send_does_not_poison_the_delay():
    n = 40000
    x = impulse(n, at=100)
    bad = x.copy()
    bad[50], bad[60] = np.nan, np.inf
    p = delay_params(time_beats=0.5, feedback=0.5)
    good = run_delay(fx.delay_alloc_state(SR), p, x, x)
    got = run_delay(fx.delay_alloc_state(SR), p, bad, bad)
    assert np.array_equal(good[0], got[0]) and np.array_equal(good[1], got[1])


# reverb -----------------------------------------------------------------------------------

def rt60_low_band(ir, cutoff_hz=1000.0):
    """RT60 from the Schroeder energy decay curve (T20 x 3) of the IR below cutoff_hz
    (decay_s is the low-frequency RT60; damping shortens the highs on purpose)."""
    spec = np.fft.rfft(ir)
    spec[np.fft.rfftfreq(len(ir), 1 / SR) > cutoff_hz] = 0.0
    low = np.fft.irfft(spec, len(ir))
    energy = np.cumsum((low ** 2)[::-1])[::-1]
    edc = 10 * np.log10(energy / energy[0] + 1e-300)
    i5, i25 = np.argmax(edc < -5.0), np.argmax(edc < -25.0)
    return 3.0 * (i25 - i5) / SR


@pytest.mark.parametrize("decay_s", [0.6, 1.5])
def test_reverb_decays_60db_in_decay_s(decay_s):
    n = int(1.3 * decay_s * SR)
    x = impulse(n)
    p = reverb_params(decay_s=decay_s, damping_hz=8000.0, predelay_ms=0.0, mix=1.0)
    out_l, out_r = run_reverb(fx.reverb_alloc_state(SR), p, x, x)
    for ir in (out_l, out_r):
        assert rt60_low_band(ir) == pytest.approx(decay_s, rel=0.1)   # measured: within 8 %
    # and in full band the tail really goes down: the last tenth is >= 45 dB below the start
    e = out_l ** 2 + out_r ** 2
    assert e[-n // 10:].mean() < 10 ** -4.5 * e[:n // 10].mean()


def test_reverb_is_wide_and_dense():
    n = SR
    x = impulse(n)
    p = reverb_params(mix=1.0, predelay_ms=0.0)
    out_l, out_r = run_reverb(fx.reverb_alloc_state(SR), p, x, x)
    assert abs(np.corrcoef(out_l, out_r)[0, 1]) < 0.3
    # echo density: after 100 ms nearly every sample of the tail is nonzero and in no 50 ms
    # window does a single reflection stick out (noise-like crest factor)
    for out in (out_l, out_r):
        tail = out[int(0.1 * SR):int(0.5 * SR)]
        assert np.mean(np.abs(tail) > 1e-6) > 0.99
        for w in tail.reshape(-1, int(0.05 * SR)):
            assert np.max(np.abs(w)) < 6 * np.sqrt(np.mean(w ** 2))


def test_reverb_damping_darkens_the_tail():
    n = SR
    x = impulse(n)

    def hf_share(damping_hz):
        out_l, _ = run_reverb(fx.reverb_alloc_state(SR),
                              reverb_params(damping_hz=damping_hz, mix=1.0, predelay_ms=0.0), x, x)
        tail = out_l[int(0.3 * SR):int(0.6 * SR)]
        spec = np.abs(np.fft.rfft(tail)) ** 2
        return spec[np.fft.rfftfreq(len(tail), 1 / SR) > 4000].sum() / spec.sum()

    assert hf_share(1500.0) < 0.3 * hf_share(16000.0)


def test_reverb_predelay():
    n = 12000
    x = impulse(n)
    p = reverb_params(predelay_ms=50.0, mix=1.0)
    out_l, out_r = run_reverb(fx.reverb_alloc_state(SR), p, x, x)
    first = min(np.argmax(np.abs(out_l) > 0), np.argmax(np.abs(out_r) > 0))
    assert first >= int(0.05 * SR)
    assert np.max(np.abs(out_l[:int(0.05 * SR)])) == 0.0 and np.max(np.abs(out_l)) > 0
    # exactly 50 ms: the same as no predelay with the impulse 2400 samples later
    late = impulse(n, at=round(0.05 * SR))
    no_pd = run_reverb(fx.reverb_alloc_state(SR), reverb_params(predelay_ms=0.0, mix=1.0),
                       late, late)
    assert np.array_equal(out_l, no_pd[0]) and np.array_equal(out_r, no_pd[1])


def test_reverb_fractional_predelay_interpolates_linearly():
    n = 8000
    x = impulse(n)
    d = 13.3e-3 * SR                                        # 638.4 samples
    k, f = int(d), d - int(d)
    out = run_reverb(fx.reverb_alloc_state(SR), reverb_params(predelay_ms=13.3, mix=1.0), x, x)
    p0 = reverb_params(predelay_ms=0.0, mix=1.0)
    at_k = run_reverb(fx.reverb_alloc_state(SR), p0, impulse(n, k), impulse(n, k))
    at_k1 = run_reverb(fx.reverb_alloc_state(SR), p0, impulse(n, k + 1), impulse(n, k + 1))
    for c in (0, 1):
        assert np.allclose(out[c], (1 - f) * at_k[c] + f * at_k1[c], rtol=0, atol=1e-12)


@pytest.mark.parametrize("seed", [3, 4])
def test_reverb_block_size_invariance(seed):
    n = 20000
    rng = np.random.default_rng(seed)
    x_l, x_r = rng.standard_normal(n), rng.standard_normal(n)
    p = reverb_params(decay_s=3.0, damping_hz=5000.0, predelay_ms=13.3)
    ref = run_reverb(fx.reverb_alloc_state(SR), p, x_l, x_r)
    got = run_reverb(fx.reverb_alloc_state(SR), p, x_l, x_r, cuts=random_cuts(n, seed))
    assert np.array_equal(ref[0], got[0]) and np.array_equal(ref[1], got[1])
    one = run_reverb(fx.reverb_alloc_state(SR), p, x_l, x_r, cuts=range(0, 3000))
    assert np.array_equal(ref[0], one[0]) and np.array_equal(ref[1], one[1])


def test_reverb_param_changes_are_smooth():
    n = 30000
    t = np.arange(n) / SR
    x = 0.3 * np.sin(2 * np.pi * 220 * t)
    st = fx.reverb_alloc_state(SR)
    p = reverb_params(decay_s=1.0, predelay_ms=10.0, mix=1.0)
    out_l, out_r = np.zeros(n), np.zeros(n)
    run_reverb(st, p, x[:15000], x[:15000], out=(out_l[:15000], out_r[:15000]))
    before = np.max(np.abs(np.diff(out_l[10000:15000])))
    p2 = reverb_params(decay_s=5.0, predelay_ms=80.0, damping_hz=1000.0, mix=0.2)
    fx.reverb_process(st, p2, x, x, out_l, out_r, 15000, n, SR)
    assert np.max(np.abs(np.diff(out_l[14990:16000]))) <= 1.5 * before


@pytest.mark.parametrize("name,value", [("decay_s", 1e6), ("decay_s", -1.0), ("decay_s", 0.0),
                                        ("damping_hz", -100.0), ("damping_hz", 1e12),
                                        ("predelay_ms", 1e9), ("predelay_ms", -5.0),
                                        ("mix", 1e6), ("decay_s", float("nan")),
                                        ("damping_hz", float("inf"))])
def test_reverb_extreme_params_stay_finite(name, value):
    n = 2 * SR
    x = np.zeros(n)
    x[:500] = np.random.default_rng(1).standard_normal(500)
    x[700] = np.nan
    x[701] = -np.inf
    out_l, out_r = run_reverb(fx.reverb_alloc_state(SR), reverb_params(**{name: value}), x, x)
    assert np.all(np.isfinite(out_l)) and np.all(np.isfinite(out_r))
    assert np.max(np.abs(out_l)) < 10.0  # longest decay is clamped: no runaway


def test_reverb_buffers_follow_the_sample_rate():
    small, big = fx.reverb_alloc_state(22050), fx.reverb_alloc_state(96000)
    assert len(big) > 3.5 * (len(small) - fx.R_HDR)
    for sr in (22050, 44100, 96000):
        st = fx.reverb_alloc_state(sr)
        x = impulse(sr // 2)
        out_l = np.zeros(sr // 2)
        fx.reverb_process(st, reverb_params(mix=1.0), x, x, out_l, np.zeros(sr // 2), 0, sr // 2,
                          sr)
        assert np.all(np.isfinite(out_l)) and np.max(np.abs(out_l)) > 1e-3


def test_reset_returns_both_effects_to_a_fresh_state():
    n = 20000
    x = np.random.default_rng(9).standard_normal(n)
    dst, rst = fx.delay_alloc_state(SR), fx.reverb_alloc_state(SR)
    run_delay(dst, delay_params(feedback=0.8), x, x)
    run_reverb(rst, reverb_params(decay_s=10.0), x, x)
    fx.delay_reset(dst)
    fx.reverb_reset(rst)
    assert np.array_equal(dst, fx.delay_alloc_state(SR))
    assert np.array_equal(rst, fx.reverb_alloc_state(SR))


@pytest.mark.parametrize("seed", [5, 6])
def test_reverb_block_size_invariance_while_params_glide(seed):
    """Params changed mid-stream: every smoothed value (and the predelay time, on its own)
    glides and then settles, sample by sample, whatever the split."""
    n = 40000
    rng = np.random.default_rng(seed)
    x_l, x_r = rng.standard_normal(n), rng.standard_normal(n)
    p1 = reverb_params(decay_s=1.5, damping_hz=9000.0, predelay_ms=5.0, mix=0.4)
    p2 = reverb_params(decay_s=4.0, damping_hz=2500.0, predelay_ms=60.0, mix=0.2)
    outs = []
    for cuts in ((), random_cuts(n, seed)):
        st = fx.reverb_alloc_state(SR)
        out_l, out_r = np.zeros(n), np.zeros(n)
        points = sorted(set([0, 7001, n] + [c for c in cuts if 0 < c < n]))
        for a, b in zip(points[:-1], points[1:]):
            fx.reverb_process(st, p1 if a < 7001 else p2, x_l, x_r, out_l, out_r, a, b, SR)
        outs.append((out_l, out_r))
    assert np.array_equal(outs[0][0], outs[1][0]) and np.array_equal(outs[0][1], outs[1][1])


def test_delay_block_size_invariance_through_a_settling_glide():
    """A tempo change glides (sample by sample) and settles (then whole chunks go at once):
    both ways, and the switches between them, give the same samples whatever the split."""
    n = 3 * SR
    rng = np.random.default_rng(11)
    x = rng.standard_normal(n)
    p = delay_params(time_beats=0.75, feedback=0.6, tone_hz=5000.0, pingpong=0.8)
    changes = {10000: 97.0}
    ref = run_delay(fx.delay_alloc_state(SR), p, x, x, tempo=120.0, tempo_changes=changes)
    cuts = set(rng.integers(0, n, 2000).tolist())
    cuts |= {c + 1 for c in list(cuts)[:500]}
    got = run_delay(fx.delay_alloc_state(SR), p, x, x, tempo=120.0, cuts=cuts,
                    tempo_changes=changes)
    assert np.array_equal(ref[0], got[0]) and np.array_equal(ref[1], got[1])
    st = fx.delay_alloc_state(SR)
    run_delay(st, p, x, x, tempo=120.0, tempo_changes=changes)
    assert st[fx.D_TIME] == 0.75 * 60 / 97.0 * SR  # it did settle (and snap) on the new time
