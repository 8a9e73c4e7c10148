"""The harness the effect units' own tests share (tests/test_unit_<name>.py): parameters by
name, a fresh state, and a render of a stereo signal through a unit in blocks.

(tests/test_units.py has the registry-wide contract harness; tests/synthkit.py plays
instruments.)"""
import numpy as np

from engine.rt.units import dispatch
from engine.rt.units.base import default_params

SR = 48000.0
ROWS = 6            # in L, in R, out L, out R, side L, side R


def _value(p, v):
    """A parameter value; a choice parameter may be given by its word."""
    return float(p.choices.index(v)) if isinstance(v, str) else v


def params(unit, start=None, glide=None, **kw):
    """Targets and current values at the defaults; `kw` {name: v} sets both, `start`
    {name: v} only the current value (a glide from v to the target), `glide` {name: v} only
    the target (a glide from the current value to v)."""
    n = len(unit.PARAMS)
    by = {p.name: p for p in unit.PARAMS}
    out = np.array(default_params(unit.PARAMS), dtype=np.float64)
    for name, v in kw.items():
        out[by[name].index] = out[n + by[name].index] = _value(by[name], v)
    for name, v in (start or {}).items():
        out[n + by[name].index] = _value(by[name], v)
    for name, v in (glide or {}).items():
        out[by[name].index] = _value(by[name], v)
    return out


def fresh(unit, sr=SR):
    """A state just reset at sample rate sr."""
    st = np.zeros(unit.state_size(sr))
    unit.reset(st, float(sr))
    return st


def render(unit, left, right=None, prm=None, cuts=None, state=None, sr=SR, kind=None,
           in_place=False, side=None, changes=None):
    """The unit over the whole signal (right: left when None) in blocks of the sizes in `cuts`
    (cycled; one block when None), through dispatch.run_unit when `kind` is given. `side`: one
    row or an (L, R) pair for the side rows; `in_place`: out rows = in rows; `changes`
    {sample: {name or index: target}} sets targets at a block edge there. Returns the out
    rows (L, R)."""
    left = np.asarray(left, dtype=np.float64)
    right = left if right is None else np.asarray(right, dtype=np.float64)
    n = len(left)
    bus = np.zeros((ROWS, n))
    bus[0], bus[1] = left, right
    io = np.array([0, 1, 0 if in_place else 2, 1 if in_place else 3, -1, -1, -1, -1], np.int64)
    if side is not None:
        bus[4], bus[5] = side if isinstance(side, tuple) else (side, side)
        io[4], io[5] = 4, 5
    prm = params(unit) if prm is None else prm
    state = fresh(unit, sr) if state is None else state
    index = {p.name: p.index for p in unit.PARAMS}
    changes = changes or {}
    edges = sorted(set(changes) | {n})
    cuts = cuts or [n]
    i, k = 0, 0
    while i < n:
        j = min(n, i + cuts[k % len(cuts)], min(e for e in edges if e > i))
        for name, v in changes.get(i, {}).items():
            prm[index.get(name, name)] = v
        if kind is None:
            unit.process(state, prm, bus, io, i, j, float(sr))
        else:
            dispatch.run_unit(kind, state, prm, bus, io, i, j, float(sr))
        i, k = j, k + 1
    return bus[io[2]].copy(), bus[io[3]].copy()
