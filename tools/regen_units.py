"""Write the dispatch branches (engine/rt/units/dispatch.py) from the registry.

Adding a unit is one file in engine/rt/units/ and one line in the registry's UNITS tuple
(engine/rt/units/__init__.py); then run

    python tools/regen_units.py

which rewrites the import line and the branch functions of dispatch.py (run_unit, reset_unit
and, for instruments, event_unit and voices_unit) in the registry's order. Numba compiles a
dispatch as plain branches over module functions, so they are written out here rather than made
at import time (which its on-disk cache could not keep). tests/test_units.py checks that every
kind reaches its own unit.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def wrap_import(names: list[str], indent: int = 29) -> str:
    line = "from engine.rt.units import " + ", ".join(sorted(names))
    if len(line) <= 100:
        return line
    parts = line.split(", ")
    out, cur = [], parts[0]
    for p in parts[1:]:
        if len(cur) + len(p) + 2 > 97:
            out.append(cur + ",")
            cur = " " * indent + p
        else:
            cur += ", " + p
    out.append(cur)
    return "\n".join([out[0].replace("import ", "import (", 1)] + out[1:]) + ")"


SPECS = {
    "run_unit": ("def run_unit(kind, state, params, bus, io, i0, i1, sample_rate):",
                 "{u}.process(state, params, bus, io, i0, i1, sample_rate)", None, False),
    "reset_unit": ("def reset_unit(kind, state, sample_rate):",
                   "{u}.reset(state, sample_rate)", None, False),
    "event_unit": ("def event_unit(kind, state, params, ev_kind, a, b, c, sample_rate):",
                   "return {u}.event(state, params, ev_kind, a, b, c, sample_rate)", "0", True),
    "voices_unit": ("def voices_unit(kind, state):", "return {u}.active_voices(state)", "0",
                    True),
}


def regenerate(path: Path, units: list[str], instruments: set[str]) -> str:
    d = path.read_text()
    d = re.sub(r"from engine.rt.units import \(?[^\n]*(\n    [^\n]*)*?\)?\n(?=from engine.rt.units.base)",
               lambda _: wrap_import(units) + "\n", d, count=1)
    for name, (sig, call, default, only_instruments) in SPECS.items():
        m = re.search(re.escape(sig) + r"\n((?:    [^\n]*\n|\n(?=    ))*)", d)
        if not m:
            raise SystemExit(f"{path}: no {name}")
        doc = re.match(r'(    """.*?"""\n)', m.group(1), re.S)
        lines = []
        for k, u in enumerate(units):
            if only_instruments and u not in instruments:
                continue
            lines.append(f"    {'elif' if lines else 'if'} kind == {k}:\n"
                         f"        {call.format(u=u)}\n")
        if default is not None:
            lines.append(f"    return {default}\n")
        d = d[:m.start(1)] + (doc.group(1) if doc else "") + "".join(lines) + d[m.end(1):]
    return d


def main() -> int:
    from engine.rt.units import UNITS
    units = [u.__name__.rsplit(".", 1)[1] for u in UNITS]
    instruments = {n for n, u in zip(units, UNITS) if getattr(u, "INSTRUMENT", False)}
    path = ROOT / "engine/rt/units/dispatch.py"
    text = regenerate(path, units, instruments)
    if text != path.read_text():
        path.write_text(text)
        print(f"{path.relative_to(ROOT)}: rewritten for {len(units)} units")
    else:
        print(f"{path.relative_to(ROOT)}: up to date ({len(units)} units)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
