"""Unit chains: validated specs compiled into the program the audio thread runs (control side).

A chain is a list of unit specs, each a table naming the unit and any of its parameters:

    master_inserts = [{ unit = "eq", low_shelf_gain_db = 2.0 },
                      { unit = "saturation", drive_db = 6.0, curve = "tanh" }]

`check_chain` validates one (unknown units and parameters, values outside their ranges, choice
words) with messages naming the entry and the key; `Chain` lays the instances out in the
engine's pools (engine.rt.layout S_PROG, S_USTATE, S_UPARAMS, S_UIO) at prepare time, before a
stream starts, and tells each parameter's index in the params pool, the address a K_UNIT_PARAM
event (MIDI, OSC, MQTT, Python) changes while the music plays.
"""
from __future__ import annotations

import math

from engine.rt import layout as L
from engine.rt.units import KIND, UNITS
from engine.rt.units.base import IO_WIDTH
from engine.rt.units.dispatch import (PR_IO, PR_KIND, PR_PARAMS, PR_PARAMS_LEN, PR_STATE,
                                      PR_STATE_LEN)


def _unit(name):
    if name not in KIND:
        raise ValueError(f"unknown unit {name!r}; units: {', '.join(KIND)}")
    return UNITS[KIND[name]]


def check_chain(specs) -> list[dict]:
    """The chain with every value checked and choice words turned into their numbers."""
    if not isinstance(specs, list):
        raise ValueError(f"must be a list of unit tables, got {specs!r}")
    if len(specs) > L.MAX_OPS:
        raise ValueError(f"at most {L.MAX_OPS} units, got {len(specs)}")
    out = []
    for i, spec in enumerate(specs):
        if not isinstance(spec, dict) or "unit" not in spec:
            raise ValueError(f"[{i}]: must be a table with a `unit` key, got {spec!r}")
        try:
            unit = _unit(spec["unit"])
        except ValueError as exc:
            raise ValueError(f"[{i}].unit: {exc}") from None
        params = {p.name: p for p in unit.PARAMS}
        done = {"unit": unit.NAME}
        for key, value in spec.items():
            if key == "unit":
                continue
            if key not in params:
                raise ValueError(f"[{i}].{key}: {unit.NAME} has no such parameter; it has "
                                 f"{', '.join(params)}")
            p = params[key]
            if p.curve == "choice":
                if value not in p.choices:
                    raise ValueError(f"[{i}].{key}: must be one of {', '.join(p.choices)}, got "
                                     f"{value!r}")
                done[key] = float(p.choices.index(value))
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value):
                raise ValueError(f"[{i}].{key}: must be a number, got {value!r}")
            if not p.lo <= value <= p.hi:
                raise ValueError(f"[{i}].{key}: must be {p.lo:g}..{p.hi:g}, got {value!r}")
            done[key] = float(value)
        out.append(done)
    return out


class Chain:
    """A checked chain laid out for the engine, running in place on bus rows `rows` (L, R)."""

    def __init__(self, specs, sample_rate: int, rows: tuple[int, int]):
        self.specs = check_chain(specs)
        self.sample_rate = sample_rate
        self.ops = []          # (unit, state offset, state length, params offset)
        s = p = 0
        for spec in self.specs:
            unit = _unit(spec["unit"])
            n = unit.state_size(sample_rate)
            self.ops.append((unit, s, n, p))
            s += n
            p += 2 * len(unit.PARAMS)
        if s > L.USTATE_CAP or p > L.UPARAMS_CAP:
            raise ValueError(f"the chain needs {s} state and {p} parameter values; the engine "
                             f"has {L.USTATE_CAP} and {L.UPARAMS_CAP}")
        self.rows = rows

    def write(self, state) -> None:
        """Lay the chain into `state`'s pools (prepare time: before a stream starts)."""
        a = state.arrays
        prog, ustate, uparams, uio = a[L.S_PROG], a[L.S_USTATE], a[L.S_UPARAMS], a[L.S_UIO]
        for k, ((unit, s, n, p), spec) in enumerate(zip(self.ops, self.specs)):
            prog[k, PR_KIND] = KIND[unit.NAME]
            prog[k, PR_STATE], prog[k, PR_STATE_LEN] = s, n
            np_ = len(unit.PARAMS)
            prog[k, PR_PARAMS], prog[k, PR_PARAMS_LEN] = p, 2 * np_
            prog[k, PR_IO] = k * IO_WIDTH
            l, r = self.rows
            uio[k * IO_WIDTH:(k + 1) * IO_WIDTH] = [l, r, l, r, -1, -1, -1, -1]
            for q in unit.PARAMS:
                v = spec.get(q.name, q.default)
                uparams[p + q.index] = v
                uparams[p + np_ + q.index] = v
            unit.reset(ustate[s:s + n], float(self.sample_rate))
        state.ctl[L.C_PROG_COUNT] = len(self.ops)

    def param_index(self, op: int, name: str) -> int:
        """The params-pool index of parameter `name` of instance `op` (its target)."""
        unit, _, _, p = self.ops[op]
        for q in unit.PARAMS:
            if q.name == name:
                return p + q.index
        raise KeyError(f"{unit.NAME} has no parameter {name!r}")

    def value(self, op: int, name: str, value) -> float:
        """`value` checked for parameter `name` of instance `op` (choice words accepted)."""
        unit = self.ops[op][0]
        spec = check_chain([{"unit": unit.NAME, name: value}])[0]
        return spec[name]
