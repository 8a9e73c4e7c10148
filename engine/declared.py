"""The units' declarations without their kernels (control side).

Checking a patch or a chain, or moving a parameter with words, needs only what each unit
declares (engine.rt.units.base): NAME, PARAMS, INSTRUMENT, DATA, PREPARE_PARAMS and its plain
upper-case constants (the fm unit's CARRIERS). Importing engine.rt.units for them imports
Numba and every kernel, seconds before `bandmate patch from-text` could answer. So the first
import writes the declarations to a JSON file named after the hash of engine/rt's sources
(engine.rt_digest, which also names the compiled-kernel cache) and later processes read that
file: a change to any audio-thread source is a new hash, so a stale file is never read. When
the cache cannot be read or written the real units are used; `units()` is the same either way
(tests/test_words.py compares them).
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from functools import lru_cache
from pathlib import Path

from engine.parts import PART_INDEX, PARTS
from engine.rt.layout import MAX_OPS
from engine.rt.param import Param, declare

FIELDS = ("name", "lo", "hi", "default", "curve", "smooth_s", "choices", "doc")
MAX_CONSTANT = 256          # longest plain constant kept (a table of the fm routes is short)
VERSION = 1


class Unit:
    """One unit's declarations: the attributes of its module that the control side reads."""

    def __init__(self, attrs: dict):
        self.__dict__.update(attrs)

    def __repr__(self):
        return f"<declared unit {self.NAME}>"


def _plain(v) -> bool:
    """A constant JSON keeps exactly (tuples come back as tuples)."""
    if isinstance(v, bool) or v is None or isinstance(v, (int, str)):
        return True
    if isinstance(v, float):
        return v == v and abs(v) != float("inf")
    if isinstance(v, tuple):
        return len(v) <= MAX_CONSTANT and all(_plain(x) for x in v)
    if isinstance(v, dict):
        return len(v) <= MAX_CONSTANT and all(isinstance(k, str) and _plain(x)
                                              for k, x in v.items())
    return False


def _tuples(v):
    if isinstance(v, list):
        return tuple(_tuples(x) for x in v)
    if isinstance(v, dict):
        return {k: _tuples(x) for k, x in v.items()}
    return v


def _describe(module) -> dict:
    """A unit module's declarations as JSON data."""
    consts = {k: v for k, v in vars(module).items()
              if k.isupper() and not k.startswith("_") and k != "PARAMS" and _plain(v)}
    params = [{f: (list(getattr(q, f)) if f == "choices" and q.choices else getattr(q, f))
               for f in FIELDS} for q in module.PARAMS]
    return {"consts": consts, "params": params, "doc": module.__doc__ or ""}


def _build(data: dict) -> Unit:
    attrs = {k: _tuples(v) for k, v in data["consts"].items()}
    attrs["PARAMS"] = declare(Param(**{**q, "choices": tuple(q["choices"]) if q["choices"]
                                       else None}) for q in data["params"])
    attrs["__doc__"] = data["doc"]
    return Unit(attrs)


def cache_path() -> Path:
    from engine import cache_root, rt_digest
    return cache_root() / "declared" / f"{rt_digest()}-v{VERSION}.json"


def _read_cache(path: Path):
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, list) else None


def _write_cache(path: Path, data: list) -> None:
    """Written whole or not at all (a temporary file renamed), so a reader never sees half."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        os.replace(tmp, path)
    except OSError:
        pass


def described() -> list:
    """Every registered unit's declarations as JSON data, from the real modules."""
    from engine.rt.units import UNITS
    return [_describe(u) for u in UNITS]


@lru_cache(maxsize=1)
def units() -> tuple[Unit, ...]:
    """Every registered unit's declarations, in the registry's order (a unit's kind is its
    position), from the cache when it is there."""
    path = cache_path()
    data = _read_cache(path)
    if data is None:
        data = described()
        _write_cache(path, data)
    try:
        return tuple(_build(d) for d in data)
    except (KeyError, TypeError, ValueError):      # a damaged file: the real thing
        return tuple(_build(d) for d in described())


@lru_cache(maxsize=1)
def kind() -> dict[str, int]:
    """name -> kind (its position in the registry)."""
    return {u.NAME: k for k, u in enumerate(units())}


def unit(name: str) -> Unit:
    """One unit's declarations by name (ValueError naming the units when there is none)."""
    k = kind()
    if name not in k:
        raise ValueError(f"unknown unit {name!r}; units: {', '.join(k)}")
    return units()[k[name]]


def check_value(p, key, value, where: str) -> float:
    """A parameter's value checked against its Param (a choice's word: its number)."""
    if p.curve == "choice":
        if isinstance(value, str):
            if value not in p.choices:
                raise ValueError(f"{where}{key}: must be one of {', '.join(p.choices)}, got "
                                 f"{value!r}")
            return float(p.choices.index(value))
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value):
        raise ValueError(f"{where}{key}: must be a number, got {value!r}")
    if not p.lo <= value <= p.hi:
        raise ValueError(f"{where}{key}: must be {p.lo:g}..{p.hi:g}, got {value!r}")
    if p.curve == "choice" and value != int(value):
        raise ValueError(f"{where}{key}: must be a whole number (a choice), got {value!r}")
    return float(value)


NOT_SPECIAL = object()   # check_unit_table's `special` answers it for a key it does not check


def check_unit_table(spec, where: str, instrument: bool, special=None) -> dict:
    """One unit table ({unit = "eq", ...its parameters}) checked, choice words turned into
    their numbers; ValueError messages start with `where` ("[2]" in a chain, "" alone).

    `instrument`: whether the unit must be an instrument (a part's voice) or an effect.
    `special(unit, key, value, where)` checks a key that is not a parameter (a chain op's `name`,
    an instrument's data) and returns its value, or `NOT_SPECIAL` when the key is not one."""
    if not isinstance(spec, dict) or "unit" not in spec:
        raise ValueError(f"{where}: must be a table with a `unit` key, got {spec!r}")
    try:
        u = unit(spec["unit"])
    except ValueError as exc:
        raise ValueError(f"{where}.unit: {exc}") from None
    is_instrument = bool(getattr(u, "INSTRUMENT", False))
    if instrument and not is_instrument:
        raise ValueError(f"{where}.unit: {u.NAME} is not an instrument")
    if not instrument and (is_instrument or u.NAME == "strip"):
        raise ValueError(f"{where}.unit: {u.NAME} is not an effect")
    params = {p.name: p for p in u.PARAMS}
    done = {"unit": u.NAME}
    for key, value in spec.items():
        if key == "unit":
            continue
        checked = NOT_SPECIAL if special is None else special(u, key, value, where)
        if checked is not NOT_SPECIAL:
            done[key] = checked
            continue
        if key not in params:
            raise ValueError(f"{where}.{key}: {u.NAME} has no such parameter; it has "
                             f"{', '.join(params)}")
        done[key] = check_value(params[key], key, value, f"{where}.")
    return done


def _chain_op_key(u, key, value, where):
    """A chain op's keys that are not parameters: `name` (its address) and `sidechain`."""
    if key == "name":
        if not isinstance(value, str) or not value.isidentifier():
            raise ValueError(f"{where}.name: must be a word (letters, digits, _), got {value!r}")
        return value
    if key == "sidechain":
        if value not in PART_INDEX:
            raise ValueError(f"{where}.sidechain: must be a part ({', '.join(PARTS)}), "
                             f"got {value!r}")
        return value
    return NOT_SPECIAL


def check_chain(specs) -> list[dict]:
    """An insert chain (a patch's, a part's, the master's) with every value checked and choice
    words turned into their numbers (ValueError naming the entry and key)."""
    if not isinstance(specs, list):
        raise ValueError(f"must be a list of unit tables, got {specs!r}")
    if len(specs) > MAX_OPS // 4:
        raise ValueError(f"at most {MAX_OPS // 4} units in a chain, got {len(specs)}")
    return [check_unit_table(spec, f"[{i}]", instrument=False, special=_chain_op_key)
            for i, spec in enumerate(specs)]
