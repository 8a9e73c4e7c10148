"""Regenerate engine/rt/units/__init__.py and the branch functions of dispatch.py."""
import re, sys, importlib
ROOT = sys.argv[1]
units = sys.argv[2].split(",")
instruments = sys.argv[3].split(",") if len(sys.argv) > 3 and sys.argv[3] else []
init = open(f"{ROOT}/engine/rt/units/__init__.py").read()
head = init[:init.index("from engine.rt.units import")]
imp = "from engine.rt.units import " + ", ".join(sorted(units))
# wrap import line at 100
def wrap_import(line):
    if len(line) <= 100: return line
    parts = line.split(", ")
    out, cur = [], parts[0]
    for p in parts[1:]:
        if len(cur) + len(p) + 2 > 97:
            out.append(cur + ","); cur = " " * 29 + p
        else:
            cur += ", " + p
    out.append(cur)
    first = out[0].replace("import ", "import (", 1)
    return "\n".join([first] + out[1:]) + ")"
init = head + wrap_import(imp) + "\n\nUNITS = (\n" + "".join(f"    {u},\n" for u in units) + ")\nKIND = {u.NAME: k for k, u in enumerate(UNITS)}\n"
open(f"{ROOT}/engine/rt/units/__init__.py", "w").write(init)
d = open(f"{ROOT}/engine/rt/units/dispatch.py").read()
d = re.sub(r"from engine.rt.units import \(?[^\n]*(\n    [^\n]*)*?\)?\n(?=from engine.rt.units.base)", wrap_import(imp) + "\n", d, count=1)
def body(fn, call, default=None):
    lines = []
    for k, u in enumerate(units):
        kw = "if" if not lines else "elif"
        if fn in ("event_unit", "voices_unit") and u not in instruments:
            continue
        kw = "if" if not lines else "elif"
        lines.append(f"    {kw} kind == {k}:\n        {call.format(u=u)}\n")
    if default is not None:
        lines.append(f"    return {default}\n")
    return "".join(lines)
specs = {
 "run_unit": ("def run_unit(kind, state, params, bus, io, i0, i1, sample_rate):", "{u}.process(state, params, bus, io, i0, i1, sample_rate)", None),
 "reset_unit": ("def reset_unit(kind, state, sample_rate):", "{u}.reset(state, sample_rate)", None),
 "event_unit": ("def event_unit(kind, state, params, ev_kind, a, b, c, sample_rate):", "return {u}.event(state, params, ev_kind, a, b, c, sample_rate)", "0"),
 "voices_unit": ("def voices_unit(kind, state):", "return {u}.active_voices(state)", "0"),
}
for name, (sig, call, default) in specs.items():
    m = re.search(re.escape(sig) + r"\n((?:    [^\n]*\n|\n(?=    ))*)", d)
    if not m:
        print("no", name); continue
    old = m.group(1)
    # keep a docstring if present
    doc = ""
    dm = re.match(r'(    """.*?"""\n)', old, re.S)
    if dm: doc = dm.group(1)
    d = d[:m.start(1)] + doc + body(name, call, default) + d[m.end(1):]
open(f"{ROOT}/engine/rt/units/dispatch.py", "w").write(d)
print("ok")
