"""The mixer strip: equal-power pan, level, mute, post-fader sends, smoothing."""
import math

import numpy as np

from engine.rt.units import strip
from tests.test_units import SR, make


def _run(params, n=SR // 2, sends=True, state=None, x=None):
    st = state if state is not None else make(strip)[0]
    bus = np.zeros((16, n))
    bus[0] = 0.5 if x is None else x
    io = np.array([0, 0, 2, 3, -1, -1, -1, 8 if sends else -1], dtype=np.int64)
    strip.process(st, params, bus, io, 0, n, float(SR))
    return bus, st


def _params(**kw):
    _, pa = make(strip)
    for name, v in kw.items():
        pa[next(p.index for p in strip.PARAMS if p.name == name)] = v
    return pa


def test_equal_power_pan_law_and_level():
    for pan, gl, gr in ((0.0, 1.0, 1.0), (-1.0, math.sqrt(2), 0.0), (1.0, 0.0, math.sqrt(2)),
                        (0.5, math.sqrt(2) * math.cos(0.75 * math.pi / 2),
                         math.sqrt(2) * math.sin(0.75 * math.pi / 2))):
        bus, _ = _run(_params(pan=pan, gain_db=-6.0))
        g = 10 ** (-6 / 20)
        assert abs(bus[2, -1] - 0.5 * g * gl) < 1e-9 and abs(bus[3, -1] - 0.5 * g * gr) < 1e-9
        # constant power across the field
        assert abs(bus[2, -1] ** 2 + bus[3, -1] ** 2 - 2 * (0.5 * g) ** 2) < 1e-9


def test_sends_are_post_fader_pre_pan_and_add():
    bus, _ = _run(_params(gain_db=-6.0, pan=-1.0, send1=0.5, send3=0.25))
    g = 10 ** (-6 / 20)
    for row, level in ((8, 0.5), (9, 0.5), (12, 0.25), (13, 0.25)):
        assert abs(bus[row, -1] - 0.5 * g * level) < 1e-9
    assert np.all(bus[10:12] == 0.0) and np.all(bus[14:16] == 0.0)
    # a strip adds: two strips on one bus sum
    st = make(strip)[0]
    bus2, _ = _run(_params(), state=st)
    strip.process(make(strip)[0], _params(), bus2, np.array([0, 0, 2, 3, -1, -1, -1, -1]),
                  0, bus2.shape[1], float(SR))
    assert abs(bus2[2, -1] - 2 * bus[2, -1] / math.sqrt(2) * 10 ** (6 / 20)) < 1e-6


def test_mute_and_moves_are_smooth():
    n = SR // 4
    pa = _params()
    bus, st = _run(pa, n)
    x = np.sin(2 * np.pi * 100 * np.arange(n) / SR)
    pa2 = _params(mute=1.0)
    bus, _ = _run(pa2, n, state=st, x=x)
    out = bus[2]
    assert np.abs(out[-100:]).max() < 1e-6                      # silent after the fade
    assert np.abs(np.diff(out)).max() < 2 * np.pi * 100 / SR * 1.01   # never a step
    assert np.abs(out[:50]).max() > 0.005                        # not cut at once
