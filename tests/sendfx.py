"""The send effects' former API (engine.rt.fx, before they became units) over the delay and
reverb units, so tests/test_fx.py keeps checking them as sends: wet only (dry_level 0), ADDED
into the out buffers, the tempo given per call (the graph's context row)."""
import numpy as np

from engine.rt.units import delay, reverb
from engine.rt.units.base import CTX_TEMPO_BPM, default_params

D_TIME = delay.D_TIME
DELAY_TIME_SMOOTH_S = delay.DELAY_TIME_SMOOTH_S
R_HDR = reverb.R_HDR
_LEGACY = {"mix": "wet_level"}


def _names(unit, names):
    idx = {p.name: p.index for p in unit.PARAMS}
    return {n: idx[_LEGACY.get(n, n)] for n in names}


DELAY_PARAM_NAMES = _names(delay, ("time_beats", "feedback", "tone_hz", "pingpong", "mix"))
REVERB_PARAM_NAMES = _names(reverb, ("decay_s", "damping_hz", "predelay_ms", "mix"))


def _params(unit):
    p = np.array(default_params(unit.PARAMS))
    n = len(unit.PARAMS)
    k = next(q.index for q in unit.PARAMS if q.name == "dry_level")
    p[k] = p[n + k] = 0.0
    return p


def delay_alloc_state(sr):
    st = np.zeros(delay.state_size(sr))
    delay.reset(st, float(sr))
    return st


def reverb_alloc_state(sr):
    st = np.zeros(reverb.state_size(sr))
    reverb.reset(st, float(sr))
    return st


def delay_default_params():
    return _params(delay)


def reverb_default_params():
    return _params(reverb)


def delay_reset(state):
    delay.reset(state, 48000.0)


def reverb_reset(state):
    reverb.reset(state, 48000.0)


def _run(unit, state, params, in_l, in_r, out_l, out_r, i0, i1, sr, tempo=120.0):
    m = i1 - i0
    if m <= 0:
        return
    bus = np.zeros((5, max(m, 4)))
    bus[0, :m] = in_l[i0:i1]
    bus[1, :m] = in_r[i0:i1]
    bus[4, CTX_TEMPO_BPM] = tempo
    io = np.array([0, 1, 2, 3, -1, -1, 4, -1], dtype=np.int64)
    unit.process(state, params, bus, io, 0, m, float(sr))
    out_l[i0:i1] += bus[2, :m]
    out_r[i0:i1] += bus[3, :m]


def delay_process(state, params, in_l, in_r, out_l, out_r, i0, i1, tempo_bpm, sr):
    _run(delay, state, params, in_l, in_r, out_l, out_r, i0, i1, sr, tempo_bpm)


def reverb_process(state, params, in_l, in_r, out_l, out_r, i0, i1, sr):
    _run(reverb, state, params, in_l, in_r, out_l, out_r, i0, i1, sr)
