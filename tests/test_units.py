"""DSP units: the contract every registered unit keeps, the dispatch, the program walker, and
the stereo width unit. Each unit's own signal tests live in tests/test_unit_<name>.py.

Instruments (INSTRUMENT = True) keep the same contract and get notes: `run` applies events at
their absolute sample positions between spans, and each generic test plays `script` (notes,
pedal, bend, wheel, aftertouch, source-gone, all-notes-off, panic; some on block edges)."""
import math

import numpy as np
import pytest

from engine.rt.events import (K_AFTERTOUCH, K_ALL_NOTES_OFF, K_MOD_WHEEL, K_NOTE_OFF, K_NOTE_ON,
                              K_PANIC, K_PITCH_BEND, K_SOURCE_GONE, K_SUSTAIN)
from engine.rt.units import KIND, UNITS, dispatch
from engine.rt.units import width as W
from engine.rt.units.base import IO_WIDTH, Param, declare, default_params

SR = 48000
ROWS = 8


def make(unit, overrides=None):
    state = np.zeros(unit.state_size(SR))
    unit.reset(state, SR)
    params = np.array(default_params(unit.PARAMS), dtype=np.float64)
    n = len(unit.PARAMS)
    for name, value in (overrides or {}).items():
        k = next(p.index for p in unit.PARAMS if p.name == name)
        params[k] = params[n + k] = value
    if hasattr(unit, "prepare"):            # control-side data (tables) copied into the state
        unit.prepare(state, params, SR)
    return state, params


def is_instrument(unit):
    return getattr(unit, "INSTRUMENT", False)


def script(n, seed=1):
    """Events (time, kind, a, b, c) for an instrument over n samples: chords, the pedal, bend,
    wheel, aftertouch, a source unplugged, all-notes-off and panic, some on block edges."""
    ev = [(0, K_NOTE_ON, 60.0, 0.9, 1.0), (300, K_NOTE_ON, 38.0, 0.9, 1.0),
          (700, K_NOTE_ON, 67.25, 0.5, 2.0),
          (3000, K_SUSTAIN, 0.0, 1.0, 0.0), (3500, K_NOTE_OFF, 60.0, 0.0, 1.0),
          (4096, K_NOTE_ON, 64.0, 0.7, 1.0), (5000, K_PITCH_BEND, 0.0, 1.5, 0.0),
          (5200, K_MOD_WHEEL, 0.0, 0.8, 0.0), (6000, K_AFTERTOUCH, 0.0, 0.6, 0.0),
          (6500, K_NOTE_OFF, 64.0, 0.0, 1.0), (7000, K_SUSTAIN, 0.0, 0.0, 0.0),
          (7680, K_NOTE_ON, 72.0, 1.0, 3.0), (8192, K_NOTE_ON, 36.0, 0.8, 2.0),
          (9000, K_SOURCE_GONE, 0.0, 0.0, 2.0), (10000, K_ALL_NOTES_OFF, 0.0, 0.0, 0.0),
          (10500, K_NOTE_ON, 48.0, 0.6, 1.0), (11000, K_NOTE_ON, 55.0, 0.6, 1.0),
          (11500, K_PANIC, 0.0, 0.0, 0.0)]
    rng = np.random.default_rng(seed)
    for t in sorted(rng.integers(1, n - 1, 24).tolist()):
        note = float(rng.integers(36, 90))
        ev.append((t, K_NOTE_ON, note, float(rng.random()), 4.0))
        ev.append((min(n - 1, t + int(rng.integers(50, 3000))), K_NOTE_OFF, note, 0.0, 4.0))
    ev = [e for e in ev if e[0] < n]
    return sorted(ev, key=lambda e: e[0])


def io(inl=0, inr=1, outl=2, outr=3, sidel=-1, sider=-1, ctx=-1):
    return np.array([inl, inr, outl, outr, sidel, sider, ctx, -1], dtype=np.int64)


def signal(n, seed=1):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SR
    l = 0.5 * np.sin(2 * np.pi * 220 * t) + 0.2 * rng.standard_normal(n)
    r = 0.4 * np.sin(2 * np.pi * 330 * t + 1.0) + 0.2 * rng.standard_normal(n)
    side = np.where((t % 0.25) < 0.05, 0.9, 0.0) * np.sin(2 * np.pi * 60 * t)
    return l, r, side


def run(unit, state, params, l, r, side=None, cuts=(), kind=None, events=()):
    """The unit over l, r (side rows if given), split at `cuts`, in blocks of <= 4096; each
    event (time, kind, a, b, c) applied before the sample at its time (instruments)."""
    n = len(l)
    out_l, out_r = np.zeros(n), np.zeros(n)
    points = sorted(set([0, n] + [c for c in cuts if 0 < c < n] + list(range(0, n, 4096))
                        + [e[0] for e in events if 0 < e[0] < n]))
    bus = np.zeros((ROWS, 4096))
    pending = list(events)
    for a, b in zip(points[:-1], points[1:]):
        while pending and pending[0][0] <= a:
            _, ek, ea, eb, ec = pending.pop(0)
            if kind is None:
                unit.event(state, params, ek, ea, eb, ec, float(SR))
            else:
                dispatch.event_unit(kind, state, params, ek, ea, eb, ec, float(SR))
        m = b - a
        bus[0, :m] = l[a:b]
        bus[1, :m] = r[a:b]
        bus[2:4, :m] = 0.0     # as the graph does before each span (a strip adds into them)
        rows = io()
        if side is not None:
            bus[4, :m] = side[a:b]
            bus[5, :m] = side[a:b]
            rows = io(sidel=4, sider=5)
        if kind is None:
            unit.process(state, params, bus, rows, 0, m, float(SR))
        else:
            dispatch.run_unit(kind, state, params, bus, rows, 0, m, float(SR))
        out_l[a:b] = bus[2, :m]
        out_r[a:b] = bus[3, :m]
    return out_l, out_r


UNIT_IDS = [u.NAME for u in UNITS]


# ---- the contract, for every registered unit ----------------------------------------------------

def test_registry_names_and_kinds():
    assert [u.NAME for u in UNITS] == list(KIND)
    assert len(set(KIND)) == len(UNITS)
    for k, u in enumerate(UNITS):
        assert KIND[u.NAME] == k
        assert [p.index for p in u.PARAMS] == list(range(len(u.PARAMS)))
        assert u.state_size(SR) >= 1


@pytest.mark.parametrize("unit", UNITS, ids=UNIT_IDS)
def test_dispatch_reaches_each_kind_s_own_unit(unit):
    """run_unit(kind) is the unit's own process (with parameters away from their defaults, a
    branch that called another unit would not give the same samples)."""
    l, r, side = signal(3000)
    ev = script(3000) if is_instrument(unit) else ()
    outs, voices = [], []
    for kind in (None, KIND[unit.NAME]):
        st, pa = make(unit)
        _glide(unit, st, pa, 3)
        pa[len(unit.PARAMS):] = pa[:len(unit.PARAMS)]
        outs.append(run(unit, st, pa, l, r, side, kind=kind, events=ev))
        voices.append(dispatch.voices_unit(KIND[unit.NAME], st))
        if is_instrument(unit):
            assert voices[-1] == unit.active_voices(st) > 0
        else:
            assert voices[-1] == 0
            assert dispatch.event_unit(KIND[unit.NAME], st, pa, K_NOTE_ON, 60.0, 1.0, 0.0,
                                       float(SR)) == 0
    assert np.array_equal(outs[0][0], outs[1][0]) and np.array_equal(outs[0][1], outs[1][1])
    assert not np.array_equal(outs[0][0], l)     # the unit did something
    if not any(p.name in ("mute", "level_db") for p in unit.PARAMS):   # (_glide may mute it)
        assert np.abs(outs[0][0]).max() > 1e-5    # not silent (a random gain may be -60 dB)


def _glide(unit, state, params, seed):
    """Every parameter's target moved somewhere else in its range (smoothed ones glide)."""
    rng = np.random.default_rng(seed)
    for p in unit.PARAMS:
        params[p.index] = p.lo + rng.random() * (p.hi - p.lo) if p.curve != "choice" \
            else float(rng.integers(0, len(p.choices)))


@pytest.mark.parametrize("unit", UNITS, ids=UNIT_IDS)
@pytest.mark.parametrize("seed", [1, 2])
def test_block_size_invariance(unit, seed):
    l, r, side = signal(12000, seed)
    ev = script(12000, seed) if is_instrument(unit) else ()
    st, pa = make(unit)
    _glide(unit, st, pa, seed)
    ref = run(unit, st, pa, l, r, side, events=ev)
    rng = np.random.default_rng(seed)
    for cuts in (range(1, 12000, 1), range(7, 12000, 7), range(64, 12000, 64),
                 sorted(rng.integers(1, 11999, 200).tolist())):
        if isinstance(cuts, range) and cuts.step == 1:
            cuts = range(1, 600)        # block size 1 over the first 600 samples, then larger
        st, pa = make(unit)
        _glide(unit, st, pa, seed)
        got = run(unit, st, pa, l, r, side, cuts=list(cuts), events=ev)
        assert np.array_equal(ref[0], got[0]) and np.array_equal(ref[1], got[1])


@pytest.mark.parametrize("unit", UNITS, ids=UNIT_IDS)
@pytest.mark.parametrize("where", ["lo", "hi", "nan", "inf"])
def test_extreme_parameters_and_input_stay_finite(unit, where):
    st, pa = make(unit)
    n = len(unit.PARAMS)
    for p in unit.PARAMS:
        v = {"lo": p.lo, "hi": p.hi, "nan": math.nan, "inf": math.inf}[where]
        pa[p.index] = v
        if where in ("lo", "hi"):
            pa[n + p.index] = v
    l, r, side = signal(6000)
    l = l * 1e6
    l[100:110] = np.nan
    r[200] = np.inf
    ev = ()
    if is_instrument(unit):
        bad = {"lo": -1e300, "hi": 1e300, "nan": math.nan, "inf": math.inf}[where]
        ev = script(6000) + [(50, K_NOTE_ON, bad, 1.0, 5.0), (60, K_NOTE_ON, 70.0, bad, bad),
                             (70, K_PITCH_BEND, 0.0, bad, 0.0), (80, K_MOD_WHEEL, 0.0, bad, 0.0),
                             (90, K_AFTERTOUCH, 0.0, bad, 0.0), (95, K_NOTE_OFF, bad, 0.0, bad)]
        ev.sort(key=lambda e: e[0])
    out = run(unit, st, pa, l, r, side, events=ev)
    assert np.all(np.isfinite(out[0])) and np.all(np.isfinite(out[1]))


@pytest.mark.parametrize("unit", UNITS, ids=UNIT_IDS)
def test_reset_returns_to_a_fresh_unit(unit):
    l, r, side = signal(5000)
    ev = script(5000) if is_instrument(unit) else ()
    st, pa = make(unit)
    run(unit, st, pa, l * 3, r * 3, side, events=ev[:len(ev) // 2])
    unit.reset(st, SR)
    st2, pa2 = make(unit)
    a = run(unit, st, pa, l, r, side, events=ev)
    b = run(unit, st2, pa2, l, r, side, events=ev)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


@pytest.mark.parametrize("unit", [u for u in UNITS if is_instrument(u)],
                         ids=[u.NAME for u in UNITS if is_instrument(u)])
def test_an_instrument_writes_its_output_and_ignores_its_input(unit):
    """The out rows are written, not added to; the in rows make no difference."""
    n = 6000
    ev = script(n)
    outs = []
    for x in (np.zeros(n), signal(n)[0]):
        st, pa = make(unit)
        bus = np.full((ROWS, 4096), 123.0)
        out = np.zeros((2, n))
        pending = list(ev)
        for a in range(0, n, 1000):
            bus[0, :1000] = x[a:a + 1000]
            bus[1, :1000] = x[a:a + 1000]
            t = a
            for b in sorted({e[0] for e in pending if a < e[0] < a + 1000} | {a + 1000}):
                while pending and pending[0][0] <= t:
                    _, ek, ea, eb, ec = pending.pop(0)
                    unit.event(st, pa, ek, ea, eb, ec, float(SR))
                unit.process(st, pa, bus, io(0, 1, 2, 3), t - a, b - a, float(SR))
                t = b
            out[:, a:a + 1000] = bus[2:4, :1000]
        outs.append(out)
        assert np.all(np.isfinite(out)) and np.abs(out).max() < 100.0
    assert np.array_equal(outs[0], outs[1])


def test_params_are_declared_with_checked_ranges():
    with pytest.raises(ValueError):
        Param("x_db", 0.0, 1.0, 2.0)
    with pytest.raises(ValueError):
        Param("f_hz", 0.0, 100.0, 10.0, curve="log")
    with pytest.raises(ValueError):
        declare([Param("a", 0, 1, 0), Param("a", 0, 1, 0)])
    p = Param("f_hz", 20.0, 20000.0, 1000.0, curve="log")
    assert p.from_unit(0.0) == 20.0 and p.from_unit(1.0) == pytest.approx(20000.0)
    assert p.from_unit(0.5) == pytest.approx(math.sqrt(20.0 * 20000.0))
    c = Param("mode", 0, 2, 0, curve="choice", choices=("a", "b", "c"))
    assert c.from_unit(0.6) == 1.0


# ---- the program walker -------------------------------------------------------------------------

def test_a_program_runs_its_units_in_order_over_shared_rows():
    """width 0.5 then width 3 (clamped to 2) on rows 0/1 -> 2/3 -> 2/3 in place, gain on the
    second: the same as running the two by hand."""
    l, r, _ = signal(4000)
    n = len(W.PARAMS)
    s1, p1 = make(W, {"width": 0.5})
    s2, p2 = make(W, {"width": 2.0, "gain_db": -6.0})
    states = np.concatenate([s1, s2])
    params = np.concatenate([p1, p2])
    ios = np.concatenate([io(0, 1, 2, 3), io(2, 3, 2, 3)])
    prog = np.zeros((2, dispatch.PR_WIDTH), np.int64)
    prog[0, :6] = [KIND["width"], 0, len(s1), 0, 2 * n, 0]
    prog[1, :6] = [KIND["width"], len(s1), len(s2), 2 * n, 2 * n, IO_WIDTH]
    bus = np.zeros((ROWS, 4096))
    bus[0, :4000], bus[1, :4000] = l, r
    dispatch.run_program(prog, 2, states, params, ios, bus, 0, 4000, float(SR))
    a = run(W, *make(W, {"width": 0.5}), l, r)
    b = run(W, *make(W, {"width": 2.0, "gain_db": -6.0}), a[0], a[1])
    assert np.array_equal(bus[2, :4000], b[0]) and np.array_equal(bus[3, :4000], b[1])


# ---- stereo width ---------------------------------------------------------------------------------

def test_width_zero_is_mono_one_is_unchanged_two_doubles_the_side():
    l, r, _ = signal(3000)
    mono = run(W, *make(W, {"width": 0.0}), l, r)
    assert np.array_equal(mono[0], mono[1])
    assert np.allclose(mono[0], 0.5 * (l + r), atol=1e-15)
    same = run(W, *make(W, {"width": 1.0}), l, r)
    assert np.allclose(same[0], l, atol=1e-15) and np.allclose(same[1], r, atol=1e-15)
    wide = run(W, *make(W, {"width": 2.0}), l, r)
    assert np.allclose(wide[0] - wide[1], 2 * (l - r), atol=1e-14)
    assert np.allclose(wide[0] + wide[1], l + r, atol=1e-14)       # the mid is kept


def test_width_changes_glide_instead_of_jumping():
    n = 9600
    l = np.ones(n)
    r = -np.ones(n)
    st, pa = make(W)
    pa[W.P_WIDTH] = 0.0                     # target: mono, from 1 (the side vanishes)
    out = run(W, st, pa, l, r)
    assert out[0][0] > 0.99                 # still wide at first
    assert abs(out[0][-1]) < 1e-3           # mono by the end
    assert np.abs(np.diff(out[0])).max() < 0.01   # no step
    k = int(0.02 * SR)                      # 63 % of the way after the 20 ms time constant
    assert out[0][k] == pytest.approx(math.exp(-1.0), abs=0.01)


def test_the_dispatch_is_written_from_the_registry():
    """dispatch.py's branches are what tools/regen_units.py writes from UNITS (a unit added to
    the registry without running it fails here, saying so)."""
    import importlib.util
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location("regen_units", root / "tools/regen_units.py")
    regen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(regen)
    names = [u.__name__.rsplit(".", 1)[1] for u in UNITS]
    instruments = {n for n, u in zip(names, UNITS) if is_instrument(u)}
    path = root / "engine/rt/units/dispatch.py"
    assert regen.regenerate(path, names, instruments) == path.read_text(), \
        "run `python tools/regen_units.py` after changing the registry"
