"""engine.rt.units.delay: bit-identical to the send delay it was moved from, echoes on the exact
sample (synced at two tempos, and free), the loop filters and the feedback per repeat, ping-pong
sides, click-free tempo changes, dry/wet, in place, block-size invariance and reset."""
import math

import numpy as np
import pytest
from scipy.signal import lfilter

from engine.rt.units import KIND, UNITS, delay, dispatch
from engine.rt.units.base import CTX_TEMPO_BPM
from tests import fx_delay_before as before
from tests import unitkit

SR = 48000.0
P = {p.name: p for p in delay.PARAMS}
N = delay.N
CTX = 6


def params(glide=None, **kw):
    """Targets and current values; `kw` sets both, `glide` {name: start} only the current."""
    return unitkit.params(delay, start=glide, **kw)


def fresh_state():
    return unitkit.fresh(delay)


def render(left, right=None, prm=None, tempo=120.0, tempo_changes=None, param_changes=None,
           cuts=(), state=None, kind=None, in_place=False, ctx=True):
    """The unit over the signal, split at `cuts` and at the changes: tempo_changes {sample:
    bpm} go into the context row, param_changes {sample: {name: target}} into the targets."""
    left = np.asarray(left, dtype=np.float64)
    right = left if right is None else np.asarray(right, dtype=np.float64)
    n = len(left)
    bus = np.zeros((8, n))
    bus[0], bus[1] = left, right
    io = np.array([0, 1, 0 if in_place else 2, 1 if in_place else 3, -1, -1,
                   CTX if ctx else -1, -1], np.int64)
    prm = params() if prm is None else prm
    state = fresh_state() if state is None else state
    tempo_changes = tempo_changes or {}
    param_changes = param_changes or {}
    points = sorted(set([0, n] + [c for c in cuts if 0 < c < n] + list(tempo_changes)
                        + list(param_changes)))
    for a, b in zip(points[:-1], points[1:]):
        tempo = tempo_changes.get(a, tempo)
        for name, v in param_changes.get(a, {}).items():
            prm[P[name].index] = v
        bus[CTX, CTX_TEMPO_BPM] = tempo
        if kind is None:
            delay.process(state, prm, bus, io, a, b, SR)
        else:
            dispatch.run_unit(kind, state, prm, bus, io, a, b, SR)
    return bus[io[2]].copy(), bus[io[3]].copy()


def send_before(left, right, p5, tempo=120.0, tempo_changes=None, param_changes=None, cuts=()):
    """What the send delay before the move added into zeroed out buffers (same splits)."""
    n = len(left)
    st = before.delay_alloc_state(SR)
    out_l, out_r = np.zeros(n), np.zeros(n)
    tempo_changes = tempo_changes or {}
    param_changes = param_changes or {}
    points = sorted(set([0, n] + [c for c in cuts if 0 < c < n] + list(tempo_changes)
                        + list(param_changes)))
    names = {"time_beats": "time_beats", "feedback": "feedback", "tone_hz": "tone_hz",
             "pingpong": "pingpong", "wet_level": "mix"}
    for a, b in zip(points[:-1], points[1:]):
        tempo = tempo_changes.get(a, tempo)
        for name, v in param_changes.get(a, {}).items():
            p5[before.DELAY_PARAM_NAMES[names[name]]] = v
        before.delay_process(st, p5, left, right, out_l, out_r, a, b, tempo, SR)
    return out_l, out_r


def impulse(n, at=0, amp=1.0):
    x = np.zeros(n)
    x[at] = amp
    return x


# ---------------------------------------------------------------- registry


def test_registered_and_dispatched():
    assert UNITS[KIND["delay"]] is delay
    x = np.random.default_rng(1).standard_normal(30000)
    prm = params(time_beats=0.125, feedback=0.6, glide={"wet_level": 0.0, "dry_level": 0.2})
    a = render(x, prm=prm.copy())
    b = render(x, prm=prm.copy(), kind=KIND["delay"], cuts=range(0, 30000, 64))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    st = np.full(delay.state_size(SR), 7.0)
    dispatch.reset_unit(KIND["delay"], st, SR)
    assert np.array_equal(st, fresh_state())


# ---------------------------------------------------------------- the move


CASES = [
    # params of the send, tempo, tempo changes, parameter changes
    ({"time_beats": 0.375, "feedback": 0.7, "tone_hz": 3000.0, "pingpong": 0.6,
      "wet_level": 0.8}, 120.0, {7000: 133.0, 40000: 97.0}, {}),
    ({"time_beats": 0.75, "feedback": 0.35, "tone_hz": 4500.0, "pingpong": 1.0,
      "wet_level": 0.3}, 90.0, {}, {20000: {"feedback": 0.95, "tone_hz": 20000.0},
                                    60000: {"pingpong": 0.0, "time_beats": 0.1}}),
    ({"time_beats": 1.0 / 64.0, "feedback": 0.9, "tone_hz": 100.0, "pingpong": 0.2,
      "wet_level": 1.0}, 400.0, {30000: 20.0}, {50000: {"wet_level": 0.05}}),
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_send_return_is_bit_identical_to_the_delay_before_the_move(case):
    """dry_level 0, low_cut_hz 0, sync on, the same parameters, tempo and splits: the unit
    writes exactly what the old fx.delay_process added into a zeroed buffer, through tempo
    glides, parameter glides, steady chunks and the switches between them."""
    p, tempo, tempo_changes, param_changes = CASES[case]
    n = 90000
    rng = np.random.default_rng(case)
    xl, xr = rng.standard_normal(n), rng.standard_normal(n)
    xl[30000:31000] = 0.0
    cuts = sorted(set(rng.integers(1, n, 300).tolist()) | set(range(0, n, 4096)))
    p5 = before.delay_default_params()
    for name, v in p.items():
        p5[before.DELAY_PARAM_NAMES["mix" if name == "wet_level" else name]] = v
    want = send_before(xl, xr, p5.copy(), tempo, tempo_changes, param_changes, cuts)
    assert np.max(np.abs(want[0])) > 0.1
    prm = params(dry_level=0.0, low_cut_hz=0.0, sync="on", **p)
    got = render(xl, xr, prm=prm, tempo=tempo, tempo_changes=tempo_changes,
                 param_changes=param_changes, cuts=cuts)
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])


# ---------------------------------------------------------------- timing


@pytest.mark.parametrize("tempo,beats", [(120.0, 0.5), (90.0, 0.75), (150.0, 1.0 / 3.0)])
def test_echo_lands_on_the_exact_sample_synced(tempo, beats):
    """time_beats * 60 / tempo seconds later, to the sample: 12000, 24000 and 6400 samples."""
    d = round(beats * 60.0 / tempo * SR)
    n = 3 * d + 100
    x = impulse(n, at=50)
    out_l, out_r = render(x, np.zeros(n), tempo=tempo,
                          prm=params(time_beats=beats, feedback=0.0, pingpong=0.0,
                                     wet_level=1.0, dry_level=0.0))
    assert np.flatnonzero(out_l).tolist() == [50 + d] and out_l[50 + d] == 1.0
    assert not out_r.any()


@pytest.mark.parametrize("time_ms", [250.0, 100.0, 1.0, 4000.0])
def test_echo_lands_on_the_exact_sample_free(time_ms):
    """sync off: time_ms, whatever the tempo (12000, 4800, 48 and 192000 samples)."""
    d = round(time_ms * SR / 1000.0)
    n = d + 200
    x = impulse(n, at=100)
    for tempo in (60.0, 173.0):
        out, _ = render(x, tempo=tempo, prm=params(sync="off", time_ms=time_ms, time_beats=4.0,
                                                    feedback=0.0, wet_level=1.0, dry_level=0.0))
        assert np.flatnonzero(out).tolist() == [100 + d] and out[100 + d] == 1.0


def test_no_context_row_means_120_bpm():
    x = impulse(20000, at=0)
    out, _ = render(x, tempo=60.0, ctx=False, prm=params(time_beats=0.5, feedback=0.0,
                                                         pingpong=0.0, dry_level=0.0,
                                                         wet_level=1.0))
    assert np.flatnonzero(out).tolist() == [12000]


# ---------------------------------------------------------------- the loop


@pytest.mark.parametrize("fb", [0.2, 0.5, 0.95])
@pytest.mark.parametrize("tone_hz", [20000.0, 1000.0])
def test_feedback_ratio_per_repeat(fb, tone_hz):
    """The lowpass has unity gain at DC, so each echo's sum is `feedback` times the one before
    (to 1e-12), and the second echo is the first through the one-pole exactly."""
    d = 6000
    n = 6 * d
    x = impulse(n)
    out, _ = render(x, prm=params(time_beats=0.25, feedback=fb, tone_hz=tone_hz, pingpong=0.0,
                                  wet_level=1.0, dry_level=0.0))
    sums = [out[k * d - 5:(k + 1) * d - 5].sum() for k in range(1, 6)]
    assert sums[0] == 1.0
    for a, b in zip(sums, sums[1:]):
        assert b / a == pytest.approx(fb, rel=1e-12)
    a = delay.onepole_coef(tone_hz, SR)
    lp = lfilter([a], [1.0, -(1.0 - a)], impulse(d))
    assert np.allclose(out[2 * d:3 * d], fb * lp, rtol=1e-12, atol=1e-17)   # (flushed < 1e-18)


@pytest.mark.parametrize("low_cut_hz", [50.0, 400.0])
def test_low_cut_in_the_loop(low_cut_hz):
    """Each repeat passes the one-pole highpass (x - lowpass(x)) after the tone lowpass: the
    second echo is fb * HP(LP(first)) exactly, and its DC sum is 0."""
    d = 12000
    fb = 0.8
    out, _ = render(impulse(4 * d), prm=params(time_beats=0.5, feedback=fb, tone_hz=5000.0,
                                               low_cut_hz=low_cut_hz, pingpong=0.0,
                                               wet_level=1.0, dry_level=0.0))
    assert out[d] == 1.0                                # the first echo is the dry impulse
    a = delay.onepole_coef(5000.0, SR)
    c = delay.onepole_coef(low_cut_hz, SR)
    lp = lfilter([a], [1.0, -(1.0 - a)], impulse(d))
    hp = lp - lfilter([c], [1.0, -(1.0 - c)], lp)
    assert np.allclose(out[2 * d:3 * d], fb * hp, rtol=1e-9, atol=1e-15)
    assert abs(out[2 * d:3 * d].sum()) < 1e-6 * fb
    # at 2 kHz, well between the corners, a 100 ms tone burst repeats at fb * |LP| * |HP|
    t = np.arange(4 * d) / SR
    burst = np.where(t < 0.1, np.sin(2 * np.pi * 2000.0 * t), 0.0)
    out, _ = render(burst, prm=params(time_beats=0.5, feedback=fb, tone_hz=5000.0,
                                      low_cut_hz=low_cut_hz, pingpong=0.0, wet_level=1.0,
                                      dry_level=0.0))
    z = np.exp(-2j * np.pi * 2000.0 / SR)
    h_lp = a / (1 - (1 - a) * z)
    h = fb * abs(h_lp * (1 - c / (1 - (1 - c) * z)))
    mid = np.arange(2400, 2400 + 66 * 24)              # 66 whole cycles, after the transients
    ph = np.exp(-2j * np.pi * 2000.0 * mid / SR)
    amp1 = abs(np.sum(out[d + mid] * ph))
    amp2 = abs(np.sum(out[2 * d + mid] * ph))
    assert amp2 / amp1 == pytest.approx(h, rel=1e-6)


def test_pingpong_alternates_sides():
    """pingpong 1: the input (summed to mono) comes back left, then right, then left...; each
    side is exactly silent during the other side's repeats. pingpong 0: two straight delays,
    nothing crosses over."""
    d = 12000
    n = 6 * d
    x = impulse(n, at=0)
    prm = params(time_beats=0.5, feedback=0.6, tone_hz=20000.0, pingpong=1.0, wet_level=1.0,
                 dry_level=0.0)
    out_l, out_r = render(x, x, prm=prm)
    assert out_l[d] == 1.0 and not out_r[:2 * d].any()
    for k in range(1, 6):
        w = slice(k * d, (k + 1) * d)
        own, other = (out_l, out_r) if k % 2 else (out_r, out_l)
        assert np.abs(own[w]).max() > 0.5 * 0.6 ** (k - 1) * 0.9, k
        assert not other[w].any(), k
    out_l, out_r = render(x, np.zeros(n), prm=params(time_beats=0.5, feedback=0.6,
                                                     pingpong=0.0, wet_level=1.0,
                                                     dry_level=0.0))
    assert not out_r.any() and out_l[d] == 1.0 and out_l[2 * d:3 * d].sum() == \
        pytest.approx(0.6, rel=1e-12)


# ---------------------------------------------------------------- glides


def test_tempo_change_glides_without_a_click():
    """120 -> 150 BPM at half a beat: the delay time glides from 12000 to 9600 samples (a
    0.1 s one-pole) instead of jumping. The echo of a 430 Hz sine (21.5 cycles between the two
    times, so a jump would be a phase jump) never steps more than 1.6x a sine's largest step
    (it is read up to 1.5x faster while gliding), and it settles on the new time."""
    n = 130000
    t = np.arange(n) / SR
    x = 0.5 * np.sin(2 * np.pi * 430.0 * t)
    prm = params(time_beats=0.5, feedback=0.0, pingpong=0.0, wet_level=1.0, dry_level=0.0)
    out, _ = render(x, prm=prm, tempo=120.0, tempo_changes={20000: 150.0},
                    cuts=range(0, n, 256))
    bound = 1.6 * 0.5 * 2 * np.pi * 430.0 / SR
    steps = np.abs(np.diff(out[12500:]))
    assert steps.max() < bound
    assert steps.max() > 0.9 * 0.5 * 2 * np.pi * 430.0 / SR     # not a muted output
    d_new = 9600
    assert np.allclose(out[120000:], x[120000 - d_new:n - d_new], atol=1e-6)


def test_sync_switch_glides_too():
    n = 130000
    t = np.arange(n) / SR
    x = 0.5 * np.sin(2 * np.pi * 430.0 * t)
    prm = params(time_beats=0.5, time_ms=200.0, feedback=0.0, pingpong=0.0, wet_level=1.0,
                 dry_level=0.0)
    out, _ = render(x, prm=prm, param_changes={20000: {"sync": 0.0}})
    assert np.abs(np.diff(out[12500:])).max() < 1.6 * 0.5 * 2 * np.pi * 430.0 / SR
    assert np.allclose(out[120000:], x[120000 - 9600:n - 9600], atol=1e-6)


# ---------------------------------------------------------------- levels, in place


def test_dry_and_wet_levels():
    """out = dry_level * in + wet_level * wet; in place gives the same samples."""
    rng = np.random.default_rng(3)
    xl, xr = rng.standard_normal(40000), rng.standard_normal(40000)
    kw = dict(time_beats=0.25, feedback=0.5, pingpong=0.5)
    wet = render(xl, xr, prm=params(wet_level=0.7, dry_level=0.0, **kw))
    both = render(xl, xr, prm=params(wet_level=0.7, dry_level=0.4, **kw))
    assert np.allclose(both[0], 0.4 * xl + wet[0], rtol=0, atol=1e-14)
    assert np.allclose(both[1], 0.4 * xr + wet[1], rtol=0, atol=1e-14)
    dry = render(xl, xr, prm=params(wet_level=0.0, dry_level=1.0, **kw))
    assert np.array_equal(dry[0], xl) and np.array_equal(dry[1], xr)
    inplace = render(xl, xr, prm=params(wet_level=0.7, dry_level=0.4, **kw), in_place=True,
                     cuts=range(0, 40000, 100))
    assert np.array_equal(inplace[0], both[0]) and np.array_equal(inplace[1], both[1])


def test_levels_glide():
    x = np.ones(30000)
    prm = params(time_beats=4.0, wet_level=0.0, dry_level=0.0, glide={"dry_level": 1.0})
    out, _ = render(x, prm=prm)
    assert out[0] > 0.99 and out[-1] < 1e-9
    assert np.abs(np.diff(out)).max() < 1.0 / (0.02 * SR)
    k = int(0.02 * SR)
    assert out[k - 1] == pytest.approx(1 / math.e, abs=1e-3)


# ---------------------------------------------------------------- blocks, reset


@pytest.mark.parametrize("seed", [1, 2])
def test_block_size_invariance_through_tempo_and_parameter_changes(seed):
    n = 2 * int(SR)
    rng = np.random.default_rng(seed)
    xl, xr = rng.standard_normal(n), rng.standard_normal(n)
    prm = params(time_beats=0.75, feedback=0.6, tone_hz=5000.0, low_cut_hz=120.0, pingpong=0.8,
                 wet_level=0.5, dry_level=0.7)
    tempo_changes = {10000: 97.0, 50000: 133.0}
    param_changes = {30000: {"sync": 0.0, "time_ms": 123.4}, 70000: {"low_cut_hz": 900.0}}
    ref = render(xl, xr, prm=prm.copy(), tempo_changes=tempo_changes,
                 param_changes=param_changes)
    cuts_sets = [range(0, 2000), range(0, n, 7), range(0, n, 64), range(0, n, 4096),
                 sorted(rng.integers(1, n, 2000).tolist())]
    for cuts in cuts_sets:
        got = render(xl, xr, prm=prm.copy(), tempo_changes=tempo_changes,
                     param_changes=param_changes, cuts=list(cuts))
        assert np.array_equal(got[0], ref[0]) and np.array_equal(got[1], ref[1])


def test_reset_equals_fresh():
    rng = np.random.default_rng(9)
    x = rng.standard_normal(20000)
    st = fresh_state()
    render(x, prm=params(feedback=0.9), state=st)
    assert not np.array_equal(st, fresh_state())
    delay.reset(st, SR)
    assert np.array_equal(st, fresh_state())
    a = render(x, prm=params(feedback=0.3), state=st)
    b = render(x, prm=params(feedback=0.3))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_nonfinite_input_and_absurd_tempo_stay_finite():
    x = impulse(30000, at=100)
    bad = x.copy()
    bad[50], bad[60] = np.nan, np.inf
    prm = params(time_beats=0.5, feedback=0.5, dry_level=0.0)
    good = render(x, prm=prm.copy())
    got = render(bad, prm=prm.copy())
    assert np.array_equal(good[0], got[0]) and np.array_equal(good[1], got[1])
    for tempo in (0.0, -5.0, 1e9, np.nan, np.inf):
        out = render(x, prm=params(), tempo=tempo)
        assert np.all(np.isfinite(out[0])) and np.all(np.isfinite(out[1]))
