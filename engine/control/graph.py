"""The session graph: parts, their inserts and strips, sends, the master's inserts, compiled into
the flat program the audio thread runs, and swapped while the music plays (control side).

A graph spec is plain data (from config.toml's [mix] or from Python):

    {"parts":  {"bass": {"inserts": [{unit = "eq", low_shelf_gain_db = 2.0},
                                     {unit = "compressor", sidechain = "drums"}],
                         "mix": {"gain_db": 0.0, "pan": 0.0, "sends": {"reverb": 0.1}}}, ...},
     "sends":  {"delay": [{unit = "delay"}], "reverb": [{unit = "reverb"}]},
     "master": [{unit = "eq"}]}

`Program` compiles one into a topologically ordered list of unit instances: for each part, its
instrument (`/<part>/synth`, writing the part's stereo pair; io[IO_AUX] is the part's index, a
seed), its inserts (in place on that pair) and a `strip` adding it into the out rows and the send rows; then each send's chain in
place on its pair and a strip returning it into the out rows; then the master's inserts in
place on the out rows. The program and its state and parameter pools are fresh arrays
(allocated here, never on the audio thread).

`Graph` owns the two banks of the engine (engine.rt.layout S_BANK0): one plays; `swap` writes a
new program into the other and sends a K_GRAPH event; the audio thread crossfades to it at that
sample (units present in both, by address, carry their state over, so an unchanged reverb keeps
its tail) and acknowledges; only then may that bank be reused.

Every parameter has one address, `/<part>/<op>/<param>` (`/bass/eq/low_shelf_gain_db`,
`/bass/mix/pan`, `/bass/mix/reverb_send`), `/sends/<send>/<op>/<param>` and
`/master/<op>/<param>`; an op is named by its unit (`eq`, then `eq2` for a second one) or by its
`name` key. `Graph.set(address, value)` is the one way MIDI, OSC, MQTT and Python change one.
"""
from __future__ import annotations

import importlib

import numpy as np

from engine.declared import check_chain  # noqa: F401 - where patches and config find it
from engine.declared import NOT_SPECIAL, check_unit_table
from engine.declared import check_value as _check_value
from engine.parts import PART_INDEX, PARTS
from engine.rt import layout as L
from engine.rt.events import ASAP, K_GRAPH, K_UNIT_PARAM
from engine.rt.units import KIND, UNITS, strip
from engine.rt.units.base import (IO_AUX, IO_CTX, IO_IN_L, IO_IN_R, IO_OUT_L, IO_OUT_R,
                                  IO_SIDE_L, IO_SIDE_R, IO_WIDTH)
from engine.rt.units.dispatch import (PR_CARRY, PR_CARRY_LEN, PR_IO, PR_KIND, PR_PARAMS,
                                      PR_PARAMS_LEN, PR_STATE, PR_STATE_LEN, PR_WIDTH)

OP_KEYS = ("unit", "name", "sidechain")   # keys of a unit table that are not parameters
XFADE_MS = 20.0
DEFAULT_POLYPHONY = {"keys": 64, "bass": 8, "chords": 32, "lead": 16, "drums": 16}


def default_instrument(part: str, polyphony: int | None = None) -> dict:
    """A part's instrument when its patch names none: the drum machine for the drums, the
    analog voice at its defaults for the others."""
    if part == "drums":
        return {"unit": "kit"}
    return {"unit": "analog", "polyphony": float(polyphony or DEFAULT_POLYPHONY[part])}


def _unit(name):
    if name not in KIND:
        raise ValueError(f"unknown unit {name!r}; units: {', '.join(KIND)}")
    return UNITS[KIND[name]]


def load_data(unit, values) -> dict:
    """An instrument's data keys (`unit.DATA`: key -> "module:function", a control-side
    loader) that `values` sets, loaded: {key: what the loader returns}, passed as keywords to
    the unit's `state_size` and `prepare` (e.g. the sampler's `samples = "kit"`)."""
    out = {}
    for key, loader in getattr(unit, "DATA", {}).items():
        if key in values:
            module, name = loader.split(":")
            out[key] = getattr(importlib.import_module(module), name)(values[key])
    return out


def _instrument_data(unit, key, value, where):
    """An instrument's data keys (not numbers: the sampler's `samples`), loaded to check them."""
    if key not in getattr(unit, "DATA", {}):
        return NOT_SPECIAL
    try:
        load_data(unit, {key: value})
    except ValueError as exc:
        raise ValueError(f"{where}.{key}: {exc}") from None
    return value


def check_instrument(spec) -> dict:
    """An instrument unit's table ({unit = "wavetable", ...its parameters}), checked."""
    return check_unit_table(spec, "", instrument=True, special=_instrument_data)


def check_mix(mix, sends) -> dict:
    """A strip's settings: gain_db, pan, mute, and {send name: level}."""
    if not isinstance(mix, dict):
        raise ValueError(f"must be a table, got {mix!r}")
    params = {p.name: p for p in strip.PARAMS}
    out = {"sends": {}}
    for key, value in mix.items():
        if key == "sends":
            if not isinstance(value, dict):
                raise ValueError(f"sends: must be a table of send levels, got {value!r}")
            for name, level in value.items():
                if name not in sends:
                    raise ValueError(f"sends.{name}: no such send; sends: {', '.join(sends)}")
                out["sends"][name] = _check_value(params["send1"], name, level, "sends.")
        elif key in ("gain_db", "pan", "mute"):
            out[key] = _check_value(params[key], key, value, "")
        else:
            raise ValueError(f"{key}: unknown; a strip has gain_db, pan, mute, sends")
    return out


def check_spec(spec) -> dict:
    """A whole graph spec, checked; error messages name the place (`parts.bass.inserts[1]`)."""
    if not isinstance(spec, dict):
        raise ValueError("a graph spec must be a table")
    unknown = set(spec) - {"parts", "sends", "master"}
    if unknown:
        raise ValueError(f"{sorted(unknown)[0]}: unknown; a graph has parts, sends, master")
    sends = spec.get("sends", {})
    if len(sends) > L.N_SENDS:
        raise ValueError(f"sends: at most {L.N_SENDS}, got {len(sends)}")
    out = {"parts": {}, "sends": {}, "master": []}
    for name, chain in sends.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"sends: a send's name must be a word, got {name!r}")
        try:
            out["sends"][name] = check_chain(chain)
        except ValueError as exc:
            raise ValueError(f"sends.{name}{exc}") from None
    for part, pspec in spec.get("parts", {}).items():
        if part not in PART_INDEX:
            raise ValueError(f"parts.{part}: no such part; parts: {', '.join(PARTS)}")
        if not isinstance(pspec, dict) or set(pspec) - {"instrument", "inserts", "mix"}:
            raise ValueError(f"parts.{part}: must be a table with instrument, inserts, mix")
        raw = pspec["instrument"] if "instrument" in pspec else default_instrument(part)
        instrument = None               # (an explicit None: a silent part)
        if raw is not None:
            try:
                instrument = check_instrument(raw)
            except ValueError as exc:
                raise ValueError(f"parts.{part}.instrument{exc}") from None
        try:
            inserts = check_chain(pspec.get("inserts", []))
        except ValueError as exc:
            raise ValueError(f"parts.{part}.inserts{exc}") from None
        try:
            mix = check_mix(pspec.get("mix", {}), out["sends"])
        except ValueError as exc:
            raise ValueError(f"parts.{part}.mix.{exc}") from None
        out["parts"][part] = {"instrument": instrument, "inserts": inserts, "mix": mix}
    try:
        out["master"] = check_chain(spec.get("master", []))
    except ValueError as exc:
        raise ValueError(f"master{exc}") from None
    _part_order(out["parts"])    # no sidechain loop
    return out


def spec_from_config(mix: dict, patches: dict | None = None,
                     polyphony: dict | None = None) -> dict:
    """The graph spec of config.toml's [mix] section (validated there) and the parts' patches
    (engine.patch.Patch: an instrument unit, and inserts before the part's own); `polyphony`:
    voices of a part's analog voice where its patch does not say (DEFAULT_POLYPHONY)."""
    sends = {"delay": mix["delay_chain"], "reverb": mix["reverb_chain"]}
    parts = {}
    for part in PARTS:
        patch = (patches or {}).get(part)
        voices = (polyphony or {}).get(part)
        instrument = patch.instrument() if patch else default_instrument(part, voices)
        if instrument["unit"] == "analog" and "polyphony" not in instrument:
            instrument = dict(instrument, polyphony=float(voices or DEFAULT_POLYPHONY[part]))
        parts[part] = {"instrument": instrument,
                       "inserts": (patch.inserts if patch else []) + mix[f"{part}_inserts"],
                       "mix": {"gain_db": mix[f"{part}_gain_db"], "pan": mix[f"{part}_pan"],
                               "sends": {"delay": mix[f"{part}_delay_send"],
                                         "reverb": mix[f"{part}_reverb_send"]}}}
    return {"parts": parts, "sends": sends, "master": mix["master_inserts"]}


def default_spec() -> dict:
    """Every part at its default instrument through a strip at 0 dB, centred, no sends used,
    no inserts."""
    return {"parts": {part: {"instrument": default_instrument(part)} for part in PARTS},
            "sends": {"delay": [{"unit": "delay", "dry_level": 0.0}],
                      "reverb": [{"unit": "reverb", "dry_level": 0.0}]},
            "master": []}


def _part_order(parts: dict) -> list[str]:
    """The parts in an order where every part a sidechain listens to comes before the part
    listening (otherwise in PARTS order); a loop of sidechains is an error."""
    needs = {part: {u["sidechain"] for u in pspec["inserts"] if "sidechain" in u} - {part}
             for part, pspec in parts.items()}
    order: list[str] = []
    left = [part for part in PARTS if part in parts]
    while left:
        ready = [part for part in left if not (needs[part] & set(left))]
        if not ready:
            raise ValueError(f"parts: the sidechains of {', '.join(left)} form a loop")
        order.append(ready[0])
        left.remove(ready[0])
    return order


class Op:
    """One unit instance in a program."""
    __slots__ = ("path", "unit", "values", "io", "state", "state_len", "carry_len", "params",
                 "carry", "data")

    def __init__(self, path, unit, values, io):
        self.path, self.unit, self.values, self.io = path, unit, values, io
        self.data = load_data(unit, values)      # {} unless the unit declares DATA
        self.state = self.state_len = self.carry_len = self.params = 0
        self.carry = -1

    def __repr__(self):
        return f"Op({self.path}, {self.unit.NAME})"


class Program:
    """A checked graph spec compiled for the engine: the program rows and fresh pools."""

    def __init__(self, spec, sample_rate: int):
        self.spec = check_spec(spec)
        self.sample_rate = int(sample_rate)
        self.ops: list[Op] = []
        self.part_op = [-1] * len(PARTS)    # the program row of each part's instrument unit
        self.addresses: dict[str, tuple[int, object]] = {}   # address → (param index, Param)
        send_names = list(self.spec["sends"])
        for part in _part_order(self.spec["parts"]):
            pspec = self.spec["parts"][part]
            p = PART_INDEX[part]
            rows = (L.B_PART0 + 2 * p, L.B_PART0 + 2 * p + 1)
            if pspec["instrument"] is not None:
                spec_i = pspec["instrument"]
                self.part_op[p] = len(self.ops)
                self._add(f"/{part}/synth", _unit(spec_i["unit"]),
                          {k: v for k, v in spec_i.items() if k != "unit"}, rows + rows, aux=p)
                src = rows
            else:
                continue            # no instrument: the part is silent, nothing to mix
            src = self._chain(f"/{part}", pspec["inserts"], src, rows)
            values = {k: v for k, v in pspec["mix"].items() if k != "sends"}
            for k, name in enumerate(send_names):
                values[f"send{k + 1}"] = pspec["mix"]["sends"].get(name, 0.0)
            op = self._add(f"/{part}/mix", strip, values, src + (L.B_OUT_L, L.B_OUT_R),
                           aux=L.B_SEND0)
            for k, name in enumerate(send_names):     # /keys/mix/reverb_send
                self.addresses[f"{op.path}/{name}_send"] = self.addresses[f"{op.path}/send{k + 1}"]
        for k, (name, chain) in enumerate(self.spec["sends"].items()):
            rows = (L.B_SEND0 + 2 * k, L.B_SEND0 + 2 * k + 1)
            src = self._chain(f"/sends/{name}", chain, rows, rows)
            self._add(f"/sends/{name}/return", strip, {}, src + (L.B_OUT_L, L.B_OUT_R))
        self._chain("/master", self.spec["master"], (L.B_OUT_L, L.B_OUT_R),
                    (L.B_OUT_L, L.B_OUT_R))
        if len(self.ops) > L.MAX_OPS:
            raise ValueError(f"the graph has {len(self.ops)} units; the engine runs at most "
                             f"{L.MAX_OPS}")
        s = p = 0
        for op in self.ops:
            op.state, op.state_len, op.params = s, op.unit.state_size(self.sample_rate,
                                                                      **op.data), p
            op.carry_len = op.state_len     # the live prefix a swap carries (base: carry_len)
            if hasattr(op.unit, "carry_len"):
                op.carry_len = min(max(int(op.unit.carry_len(self.sample_rate, **op.data)), 0),
                                   op.state_len)
            s += op.state_len
            p += 2 * len(op.unit.PARAMS)
        self.prog = np.zeros((max(len(self.ops), 1), PR_WIDTH), np.int64)
        self.ustate = np.zeros(max(s, 1))
        self.uparams = np.zeros(max(p, 1))
        self.uio = np.full(max(len(self.ops), 1) * IO_WIDTH, -1, np.int64)
        for k, op in enumerate(self.ops):
            row = self.prog[k]
            row[PR_KIND] = KIND[op.unit.NAME]
            row[PR_STATE], row[PR_STATE_LEN] = op.state, op.state_len
            n = len(op.unit.PARAMS)
            row[PR_PARAMS], row[PR_PARAMS_LEN] = op.params, 2 * n
            row[PR_IO] = k * IO_WIDTH
            row[PR_CARRY] = -1
            row[PR_CARRY_LEN] = op.carry_len
            self.uio[k * IO_WIDTH:(k + 1) * IO_WIDTH] = op.io
            for q in op.unit.PARAMS:
                v = op.values.get(q.name, q.default)
                self.uparams[op.params + q.index] = v
                self.uparams[op.params + n + q.index] = v
            st = self.ustate[op.state:op.state + op.state_len]
            op.unit.reset(st, float(self.sample_rate))
            if hasattr(op.unit, "prepare"):     # control-side data (tables) into the state
                op.unit.prepare(st, self.uparams[op.params:op.params + 2 * n],
                                float(self.sample_rate), **op.data)
        self.targets = self.uparams.copy()   # the control side's copy (the pools are the engine's)

    def _chain(self, scope, chain, src, rows):
        names: dict[str, int] = {}
        for spec in chain:
            unit = _unit(spec["unit"])
            name = spec.get("name")
            if name is None:
                names[unit.NAME] = names.get(unit.NAME, 0) + 1
                name = unit.NAME + (str(names[unit.NAME]) if names[unit.NAME] > 1 else "")
            side = (-1, -1)
            if "sidechain" in spec:     # the part's pair after its own inserts (rendered first)
                q = PART_INDEX[spec["sidechain"]]
                side = (L.B_PART0 + 2 * q, L.B_PART0 + 2 * q + 1)
            values = {k: v for k, v in spec.items() if k not in OP_KEYS}
            mode = next((q for q in unit.PARAMS if q.name == "sidechain"), None)
            if "sidechain" in spec and mode is not None:   # a part to listen to: external
                values["sidechain"] = float(mode.choices.index("external"))
            if any(op.path == f"{scope}/{name}" for op in self.ops):
                raise ValueError(f"{scope}/{name}: two units with one name")
            self._add(f"{scope}/{name}", unit, values, src + rows, side)
            src = rows
        return src

    def _add(self, path, unit, values, rows4, side=(-1, -1), aux=-1):
        io = [-1] * IO_WIDTH
        io[IO_IN_L], io[IO_IN_R], io[IO_OUT_L], io[IO_OUT_R] = rows4
        io[IO_SIDE_L], io[IO_SIDE_R] = side
        io[IO_CTX], io[IO_AUX] = L.B_CTX, aux
        op = Op(path, unit, values, io)
        self.ops.append(op)
        n = len(self.ops)   # the op's params offset is known after layout: store the op
        for q in unit.PARAMS:
            self.addresses[f"{path}/{q.name}"] = (n - 1, q)
        return op

    # ---- addresses --------------------------------------------------------------------------
    def resolve(self, address: str) -> tuple[int, object]:
        """(params-pool index of the target, Param) of an address."""
        try:
            k, q = self.addresses[address]
        except KeyError:
            scope = address.rsplit("/", 1)[0]
            near = sorted(a for a in self.addresses if a.startswith(scope + "/"))
            hint = f"; {scope} has {', '.join(a.rsplit('/', 1)[1] for a in near)}" if near \
                else ""
            raise KeyError(f"{address}: no such parameter{hint}") from None
        return self.ops[k].params + q.index, q

    def value_of(self, address: str) -> float:
        """The target value of an address in this program's pools (control side's view)."""
        return float(self.targets[self.resolve(address)[0]])

    def carry_from(self, old: "Program") -> int:
        """Mark the ops that continue an op of `old` (same address, unit and state size): the
        audio thread copies their state and smoothed values when the swap begins. Returns how
        many carry over."""
        where = {op.path: (k, op) for k, op in enumerate(old.ops)}
        n = 0
        for k, op in enumerate(self.ops):
            hit = where.get(op.path)
            if not hit or hit[1].unit is not op.unit:
                continue
            same_data = all(op.values.get(q) == hit[1].values.get(q)
                            for q in getattr(op.unit, "PREPARE_PARAMS", ())) \
                and all(op.data.get(q) is hit[1].data.get(q) for q in op.data)
            if hit[1].state_len == op.state_len and hit[1].carry_len == op.carry_len \
                    and same_data:
                self.prog[k, PR_CARRY] = hit[0]
                n += 1
            # a value the new spec leaves as the old one had it keeps its live setting (a
            # fader moved while playing stays where it is)
            was = hit[1]
            for q in op.unit.PARAMS:
                if op.values.get(q.name) == was.values.get(q.name):
                    v = old.targets[was.params + q.index]
                    self.targets[op.params + q.index] = self.uparams[op.params + q.index] = v
        return n

    def carried_floats(self) -> int:
        """The float64 values the audio thread copies when this program is swapped in (each
        carried op's live prefix, PR_CARRY_LEN)."""
        n = len(self.ops)
        rows = self.prog[:n]
        return int(rows[rows[:, PR_CARRY] >= 0, PR_CARRY_LEN].sum()) if n else 0


class GraphBusy(RuntimeError):
    """A swap while the previous one is still crossfading."""


class Graph:
    """The engine's graph: the program playing, changes to its parameters, swaps."""

    def __init__(self, state, spec, sample_rate: int):
        self.state = state
        self.sample_rate = int(sample_rate)
        self.program = Program(spec, sample_rate)
        self.bank = 0
        self.gen = 0
        self._banks: list[Program | None] = [None] * L.N_BANKS
        self._install(self.program, 0)
        state.ctl[L.C_BANK] = 0
        state.ctl[L.C_XFADE_LEFT] = 0

    def _install(self, program: Program, bank: int) -> None:
        st = self.state
        for what, arr in ((L.G_PROG, program.prog), (L.G_USTATE, program.ustate),
                          (L.G_UPARAMS, program.uparams), (L.G_UIO, program.uio)):
            st.set_slot(L.bank_slot(bank, what), arr)
        st.ctl[L.C_PART_OP + bank * L.NPARTS:L.C_PART_OP + (bank + 1) * L.NPARTS] = \
            program.part_op
        st.ctl[L.C_BANK_OPS + bank] = len(program.ops)
        self._banks[bank] = program

    @property
    def spec(self) -> dict:
        return self.program.spec

    def busy(self) -> bool:
        """A swap is still crossfading (its old bank is not free yet)."""
        return int(self.state.ctl[L.C_GRAPH_ACK]) < self.gen

    def swap(self, spec, xfade_ms: float = XFADE_MS, time: float = ASAP) -> Program:
        """Compile `spec` and crossfade to it at sample `time` (ASAP: the next block). The
        spec is checked first: on an error nothing changes. Raises GraphBusy while the last
        swap has not been acknowledged."""
        program = Program(spec, self.sample_rate)
        if self.busy():
            raise GraphBusy("the previous graph change is still crossfading")
        program.carry_from(self.program)
        bank = 1 - self.bank
        self._install(program, bank)
        self.gen += 1
        n = max(1, round(xfade_ms * 1e-3 * self.sample_rate))
        self.state.push_sched(time, K_GRAPH, -1, n, bank, 0.0, self.gen)
        self.program, self.bank = program, bank
        return program

    def set(self, address: str, value, time: float = ASAP) -> float:
        """Change a parameter by its address (checked; choice words accepted) at `time`; the
        unit smooths it. Returns the value sent."""
        index, q = self.program.resolve(address)
        unit = self.program.ops[self.program.addresses[address][0]].unit
        if q.name in getattr(unit, "PREPARE_PARAMS", ()):
            raise ValueError(f"{address}: set when the graph is built (it loads data); change "
                             f"it in the patch or swap the graph")
        v = _check_value(q, address, value, "")
        self.program.targets[index] = v     # the control side's view of the targets
        self.state.push_sched(time, K_UNIT_PARAM, -1, index, v, self.bank)
        return v

    def addresses(self) -> list[str]:
        return sorted(self.program.addresses)
