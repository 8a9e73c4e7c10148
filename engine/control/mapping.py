"""MIDI mapping files and MIDI learn (control side).

A mapping file (TOML, `[midi] mapping` in config.toml) says what a controller's knobs, pads and
program changes do, and which part each key plays:

    [mapping]
    default_part = "keys"        # notes no zone takes ("" = not played)

    [[cc]]                       # a knob: CC 74 on any channel -> the keys' cutoff
    control = 74
    address = "/keys/synth/cutoff_hz"
    min = 200.0                  # default: the parameter's own range
    max = 8000.0
    curve = "log"                # lin | log | param (the parameter's own; the default)
    pickup = true                # soft takeover: moves nothing until it crosses the value
    invert = false
    channel = 0                  # 1..16, 0 = any (every entry has it)
    bits = 7                     # 14: MSB on `control` (0..31), LSB on control + 32

    [[nrpn]]                     # NRPN (CC 99/98 select, 6/38 data entry, 96/97 +1/-1)
    number = 1234                # 0..16383; bits = 14 (default) or 7; min, max, curve...
    address = "/bass/synth/resonance"

    [[note]]                     # a pad: note 36 on channel 10 toggles the keys' mute
    note = 36
    channel = 10
    address = "/keys/mix/mute"
    mode = "toggle"              # toggle | momentary (max while held) | trigger (max on press)

    [[program]]                  # program change -> a patch for a part (program 0, 1, 2...)
    part = "keys"
    patches = ["keys", "ep-tines", "pad-glass"]   # library names or paths (file-relative)

    [[program]]                  # ... or program n recalls scenes[n] (config [scenes] file)
    scenes = ["intro", "groove", "breakdown"]

    [[program]]                  # ... or the program number onto an address's range
    address = "/keys/synth/osc1_wave"

    [[zone]]                     # splits and layers: a note range (and/or a channel) -> a part
    part = "bass"
    lo = 0                       # MIDI note or a name ("B2"); hi likewise
    hi = "B2"
    transpose = 12               # semitones
    channel = 0

Zones that overlap are layers; a zone with only `part` and `channel` routes a channel. Notes no
zone takes go to `default_part`; sustain, mod wheel, bend and aftertouch go to every part the
channel's zones name. A mapped note (a [[note]]) is a control, not played. A bound CC is the
mapping's alone: CC 1, 64, 120 and 123 lose their built-in action (mod wheel, sustain, all notes
off) on the binding's channels, on every input path: the mapper writes its bound controls into
the engine's ctl (C_CC_MAPPED) whenever it takes a mapping, and the JACK callback, which
applies those CCs itself, skips them there (`binds_cc`; MIDI thru does not echo them either).

Checked on load against the session's addresses: an unknown address, a min/max outside the
parameter's range, a bad CC number... raise DataError("mappings/x.toml:12: [[cc]] #2 address:
...") naming the file, line and field. `Mapping.save` writes it back: load -> save -> load gives
the same mapping (the file's leading comment block is kept; other comments are not).

`Mapper` sits in the live input path (engine.control.live_input.LiveInput calls `events` for
every message, on the MIDI thread, under its lock): it returns the note events to play (routed by
zone, a note-off to the parts its note-on went to, whatever changed in between) and turns
mapped controls into `Session.set` / `Session.load_patch` calls, which it hands to `post` (live:
the asyncio loop, where the session's queues are fed; tests: run at once). A control's values
are coalesced (a flood of one knob costs one call per loop turn). Errors are logged and counted
(`mapper.stats`), never raised into the MIDI thread.

MIDI learn: `mapper.learn(address)` arms it; the next CC, NRPN, note or program change binds to
the address (replacing what that control did before) and the mapping file is saved.
"""
from __future__ import annotations

import math
import re
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import mido

from engine.parts import PART_INDEX, PARTS
from engine.rt.events import (
    K_AFTERTOUCH, K_ALL_NOTES_OFF, K_MOD_WHEEL, K_NOTE_OFF, K_NOTE_ON, K_PITCH_BEND, K_SUSTAIN,
)
from engine.rt.layout import C_CC_MAPPED
from engine.rt.param import Param
from engine.tomldata import DataError, parse
from engine.tomldata import leading_comments as _header

TABLES = ("cc", "nrpn", "note", "program", "zone")
CURVES = ("param", "lin", "log")
NOTE_MODES = ("toggle", "momentary", "trigger")
# CC numbers with a meaning of their own inside NRPN/RPN messages
NRPN_MSB, NRPN_LSB, RPN_MSB, RPN_LSB = 99, 98, 101, 100
DATA_MSB, DATA_LSB, DATA_INC, DATA_DEC = 6, 38, 96, 97
_NRPN_CCS = frozenset({NRPN_MSB, NRPN_LSB, RPN_MSB, RPN_LSB, DATA_MSB, DATA_LSB, DATA_INC,
                       DATA_DEC})

# The master limiter's addresses are not units of the graph (Session.set handles them).

_NOTE_NAMES = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}


def note_number(value) -> int:
    """A MIDI note from 60 or "C4" / "c#4" / "Bb-1" (C4 = 60)."""
    if isinstance(value, bool):
        raise ValueError(f"must be a note 0..127 or a name like \"C4\", got {value!r}")
    if isinstance(value, int):
        n = value
    elif isinstance(value, str):
        m = re.fullmatch(r"\s*([a-gA-G])([#b]?)(-?\d+)\s*", value)
        if not m:
            raise ValueError(f"must be a note 0..127 or a name like \"C4\", got {value!r}")
        n = _NOTE_NAMES[m.group(1).lower()] + {"#": 1, "b": -1, "": 0}[m.group(2)] \
            + 12 * (int(m.group(3)) + 1)
    else:
        raise ValueError(f"must be a note 0..127 or a name like \"C4\", got {value!r}")
    if not 0 <= n <= 127:
        raise ValueError(f"must be a note 0..127, got {value!r}")
    return n


# ---- entries --------------------------------------------------------------------------------

@dataclass
class Binding:
    """One control -> one address. `kind`: cc | nrpn | note | program; `number`: the CC, NRPN
    number or note (-1 for program); `channel` 1..16 or 0 (any). Runtime state (pickup, toggle)
    is not part of its identity."""
    kind: str
    number: int
    address: str
    channel: int = 0
    min: float | None = None
    max: float | None = None
    curve: str = "param"
    pickup: bool = False
    invert: bool = False
    bits: int = 7
    mode: str = "toggle"
    # runtime (not saved, not compared)
    param: Param | None = field(default=None, compare=False, repr=False)
    engaged: bool = field(default=False, compare=False, repr=False)
    last_x: float | None = field(default=None, compare=False, repr=False)
    sent: float | None = field(default=None, compare=False, repr=False)
    on: bool = field(default=False, compare=False, repr=False)

    def key(self) -> tuple:
        return (self.kind, self.number, self.channel)

    @property
    def lo(self) -> float:
        return self.param.lo if self.min is None else self.min

    @property
    def hi(self) -> float:
        return self.param.hi if self.max is None else self.max

    def curve_of(self) -> str:
        if self.curve != "param":
            return self.curve
        return self.param.curve if self.param is not None else "lin"

    def value(self, x: float) -> float:
        """0..1 -> the parameter's value on min..max with the curve (inverted if asked)."""
        x = min(max(float(x), 0.0), 1.0)
        if self.invert:
            x = 1.0 - x
        lo, hi, curve = self.lo, self.hi, self.curve_of()
        if curve == "log" and lo > 0.0 and hi > 0.0:
            v = lo * (hi / lo) ** x
        else:
            v = lo + x * (hi - lo)
        if curve == "choice":
            v = float(round(v))
        return min(max(v, min(lo, hi)), max(lo, hi))

    def position(self, v: float) -> float:
        """The 0..1 control position at which this binding gives value v (for pickup)."""
        lo, hi, curve = self.lo, self.hi, self.curve_of()
        if hi == lo:
            x = 0.0
        elif curve == "log" and lo > 0.0 and hi > 0.0 and v > 0.0:
            x = math.log(v / lo) / math.log(hi / lo)
        else:
            x = (v - lo) / (hi - lo)
        x = min(max(x, 0.0), 1.0)
        return 1.0 - x if self.invert else x

    def data(self) -> dict:
        d: dict = {{"cc": "control", "nrpn": "number", "note": "note"}[self.kind]: self.number} \
            if self.kind != "program" else {}
        d["address"] = self.address
        if self.channel:
            d["channel"] = self.channel
        for k in ("min", "max"):
            if getattr(self, k) is not None:
                d[k] = getattr(self, k)
        if self.curve != "param":
            d["curve"] = self.curve
        if self.kind in ("cc", "nrpn"):
            if self.pickup:
                d["pickup"] = True
            if self.kind == "cc" and self.bits != 7 or self.kind == "nrpn" and self.bits != 14:
                d["bits"] = self.bits
        if self.invert:
            d["invert"] = True
        if self.kind == "note" and self.mode != "toggle":
            d["mode"] = self.mode
        return d


@dataclass
class PatchList:
    """Program change n on `channel` loads patches[n] onto `part`."""
    part: str
    patches: list
    channel: int = 0
    paths: list = field(default_factory=list, compare=False, repr=False)

    def data(self) -> dict:
        d = {"part": self.part, "patches": list(self.patches)}
        if self.channel:
            d["channel"] = self.channel
        return d


@dataclass
class SceneList:
    """Program change n on `channel` recalls scenes[n] (`Session.recall_scene`)."""
    scenes: list
    channel: int = 0

    def data(self) -> dict:
        d: dict = {"scenes": list(self.scenes)}
        if self.channel:
            d["channel"] = self.channel
        return d


@dataclass
class Zone:
    """Notes lo..hi (on `channel`, 0 = any) play `part`, transposed."""
    part: str
    lo: int = 0
    hi: int = 127
    transpose: int = 0
    channel: int = 0

    def data(self) -> dict:
        d: dict = {"part": self.part}
        if self.lo != 0:
            d["lo"] = self.lo
        if self.hi != 127:
            d["hi"] = self.hi
        if self.transpose:
            d["transpose"] = self.transpose
        if self.channel:
            d["channel"] = self.channel
        return d


# ---- the file -------------------------------------------------------------------------------

def _entry_line(text: str, table: str, index: int, key: str | None) -> int | None:
    """1-based line of `key` in the index-th (0-based) `[[table]]` of `text` (or its header)."""
    count = -1
    header = None
    inside = False
    for n, line in enumerate(text.splitlines(), 1):
        m = re.match(r"\s*\[\[\s*([^\]]+?)\s*\]\]", line) or re.match(r"\s*\[\s*([^\]]+?)\s*\]",
                                                                        line)
        if m:
            inside = False
            if line.lstrip().startswith("[[") and m.group(1) == table:
                count += 1
                if count == index:
                    inside, header = True, n
            continue
        if inside and key is not None and re.match(rf"\s*\"?{re.escape(key)}\"?\s*=", line):
            return n
    return header


def _table_line(text: str, table: str, key: str | None) -> int | None:
    from engine.tomldata import line_of
    return line_of(text, table, key)


class _Checker:
    """Checks one file's entries; `fail` raises DataError naming file, line and field."""

    def __init__(self, text: str, where: str, resolve: Callable[[str], Param] | None,
                 find_patch: Callable[[str], Path | None] | None):
        self.text, self.where = text, where
        self.resolve, self.find_patch = resolve, find_patch
        self.table, self.index = "", 0

    def fail(self, key: str | None, msg: str):
        if self.table == "mapping":
            line = _table_line(self.text, "mapping", key)
            name = f"[mapping] {key}" if key else "[mapping]"
        else:
            line = _entry_line(self.text, self.table, self.index, key) if self.text else None
            name = f"[[{self.table}]] #{self.index + 1}" + (f" {key}" if key else "")
        loc = f"{self.where}:{line}" if line else self.where
        raise DataError(f"{loc}: {name}: {msg}")

    def known(self, entry: dict, keys: tuple) -> None:
        for k in entry:
            if k not in keys:
                self.fail(k, f"unknown key; known: {', '.join(keys)}")

    def int_(self, entry, key, lo, hi, default=None, required=False):
        if key not in entry:
            if required:
                self.fail(None, f"needs `{key}`")
            return default
        v = entry[key]
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            self.fail(key, f"must be a whole number {lo}..{hi}, got {v!r}")
        return v

    def channel(self, entry) -> int:
        v = entry.get("channel", 0)
        if v == "any":
            return 0
        return self.int_(entry, "channel", 0, 16, 0) if "channel" in entry else 0

    def bool_(self, entry, key) -> bool:
        v = entry.get(key, False)
        if not isinstance(v, bool):
            self.fail(key, f"must be true or false, got {v!r}")
        return v

    def choice(self, entry, key, choices, default):
        v = entry.get(key, default)
        if v not in choices:
            self.fail(key, f"must be one of {', '.join(choices)}; got {v!r}")
        return v

    def part(self, entry, key="part", allow_empty=False) -> str:
        if key not in entry:
            self.fail(None, f"needs `{key}` (one of {', '.join(PARTS)})")
        v = entry[key]
        if not (v in PARTS or allow_empty and v == ""):
            self.fail(key, f"must be one of {', '.join(PARTS)}; got {v!r}")
        return v

    def note(self, entry, key, default=None, required=False) -> int:
        if key not in entry:
            if required:
                self.fail(None, f"needs `{key}`")
            return default
        try:
            return note_number(entry[key])
        except ValueError as exc:
            self.fail(key, str(exc))

    def address(self, entry) -> tuple[str, Param | None]:
        if "address" not in entry:
            self.fail(None, "needs `address` (`bandmate units` and Session.addresses() list "
                            "them)")
        a = entry["address"]
        if not isinstance(a, str) or not a.startswith("/"):
            self.fail("address", f"must be an address like \"/keys/synth/cutoff_hz\", got {a!r}")
        if self.resolve is None:
            return a, None
        try:
            return a, self.resolve(a)
        except (KeyError, ValueError) as exc:
            self.fail("address", str(exc).strip("'\""))

    def range_(self, entry, param: Param | None) -> tuple:
        out = []
        for key in ("min", "max"):
            if key not in entry:
                out.append(None)
                continue
            v = entry[key]
            if param is not None and param.curve == "choice" and isinstance(v, str):
                if v not in param.choices:
                    self.fail(key, f"must be one of {', '.join(param.choices)}; got {v!r}")
                v = param.choices.index(v)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v:
                self.fail(key, f"must be a number, got {v!r}")
            v = float(v)
            if param is not None and not param.lo <= v <= param.hi:
                self.fail(key, f"must be inside the parameter's range {param.lo:g}..{param.hi:g}"
                               f", got {v:g}")
            out.append(v)
        return tuple(out)

    def binding(self, kind: str, entry: dict) -> Binding:
        num_key = {"cc": "control", "nrpn": "number", "note": "note"}.get(kind)
        keys = ("address", "channel", "min", "max", "curve", "invert")
        if kind in ("cc", "nrpn"):
            keys += ("pickup", "bits")
        if kind == "note":
            keys += ("mode",)
        if num_key:
            keys = (num_key,) + keys
        self.known(entry, keys)
        bits = 7
        if kind == "cc":
            bits = self.int_(entry, "bits", 7, 14, 7)
            if bits not in (7, 14):
                self.fail("bits", f"must be 7 or 14, got {bits!r}")
            hi = 31 if bits == 14 else 127
            number = self.int_(entry, "control", 0, 127, required=True)
            if bits == 14 and number > 31:
                self.fail("control", f"a 14-bit CC is 0..31 (its LSB is control + 32), "
                                     f"got {number}")
            if number >= 120:
                self.fail("control", f"CC 120..127 are channel mode messages (all notes off...),"
                                     f" got {number}")
            if number > hi:
                self.fail("control", f"must be 0..{hi}, got {number}")
        elif kind == "nrpn":
            bits = self.int_(entry, "bits", 7, 14, 14)
            if bits not in (7, 14):
                self.fail("bits", f"must be 7 or 14, got {bits!r}")
            number = self.int_(entry, "number", 0, 16383, required=True)
        elif kind == "note":
            number = self.note(entry, "note", required=True)
        else:
            number = -1
        channel = self.channel(entry)
        address, param = self.address(entry)
        lo, hi = self.range_(entry, param)
        curve = self.choice(entry, "curve", CURVES, "param")
        if curve == "log":
            a = param.lo if lo is None and param is not None else lo
            b = param.hi if hi is None and param is not None else hi
            if a is not None and a <= 0 or b is not None and b <= 0:
                self.fail("curve", f"a log curve needs min and max above 0 (the range is "
                                   f"{a if a is not None else '?'}..{b if b is not None else '?'})")
        return Binding(kind, number, address, channel, lo, hi, curve,
                       self.bool_(entry, "pickup") if kind in ("cc", "nrpn") else False,
                       self.bool_(entry, "invert"), bits,
                       self.choice(entry, "mode", NOTE_MODES, "toggle") if kind == "note"
                       else "toggle", param)

    def patch_list(self, entry: dict) -> PatchList:
        self.known(entry, ("part", "patches", "channel"))
        part = self.part(entry)
        pl = entry.get("patches")
        if not isinstance(pl, list) or not pl or not all(isinstance(p, str) and p for p in pl):
            self.fail("patches", f"must be a list of patch names or paths, got {pl!r}")
        if len(pl) > 128:
            self.fail("patches", f"at most 128 (programs 0..127), got {len(pl)}")
        paths = []
        for p in pl:
            path = self.find_patch(p) if self.find_patch is not None else Path(p)
            if path is None:
                self.fail("patches", f"no patch {p!r} (a name in the library folders or a path "
                                     f"relative to the mapping file)")
            paths.append(path)
        return PatchList(part, list(pl), self.channel(entry), paths)

    def scene_list(self, entry: dict, known: list[str] | None) -> SceneList:
        self.known(entry, ("scenes", "channel"))
        sl = entry.get("scenes")
        if not isinstance(sl, list) or not sl or not all(isinstance(s, str) and s for s in sl):
            self.fail("scenes", f"must be a list of scene names, got {sl!r}")
        if len(sl) > 128:
            self.fail("scenes", f"at most 128 (programs 0..127), got {len(sl)}")
        for s in sl:
            if known is not None and s not in known:
                self.fail("scenes", f"no scene {s!r} in the scene file; it has "
                                    f"{', '.join(known) or 'none'}")
        return SceneList(list(sl), self.channel(entry))

    def zone(self, entry: dict) -> Zone:
        self.known(entry, ("part", "lo", "hi", "transpose", "channel"))
        part = self.part(entry)
        lo = self.note(entry, "lo", 0)
        hi = self.note(entry, "hi", 127)
        if lo > hi:
            self.fail("hi", f"must not be below lo ({lo}), got {hi}")
        return Zone(part, lo, hi, self.int_(entry, "transpose", -48, 48, 0), self.channel(entry))


@dataclass
class Mapping:
    """A validated mapping file (see the module's docstring)."""
    default_part: str = "keys"
    name: str = ""
    bindings: list = field(default_factory=list)       # Binding (cc, nrpn, note, program)
    patch_lists: list = field(default_factory=list)    # PatchList
    scene_lists: list = field(default_factory=list)    # SceneList
    zones: list = field(default_factory=list)          # Zone
    path: Path | None = field(default=None, compare=False)
    header: str = field(default="", compare=False)

    # -- reading ------------------------------------------------------------------------------
    @classmethod
    def parse(cls, text: str, where: str = "<mapping>", session=None,
              path: Path | None = None) -> "Mapping":
        raw = parse(text, where)
        resolve = param_resolver(session) if session is not None else None
        find = patch_finder(session, path) if session is not None else None
        ck = _Checker(text, where, resolve, find)
        m = cls(path=path, header=_header(text))
        for table in raw:
            if table not in TABLES + ("mapping",):
                line = _table_line(text, table, None)
                raise DataError(f"{where}:{line}: [{table}]: unknown table; known: [mapping], "
                                + ", ".join(f"[[{t}]]" for t in TABLES))
        meta = raw.get("mapping", {})
        ck.table = "mapping"
        if not isinstance(meta, dict):
            ck.fail(None, "must be a table")
        ck.known(meta, ("name", "default_part"))
        m.name = meta.get("name", "")
        if not isinstance(m.name, str):
            ck.fail("name", f"must be a string, got {m.name!r}")
        m.default_part = ck.part(meta, "default_part", allow_empty=True) \
            if "default_part" in meta else "keys"
        for table in TABLES:
            entries = raw.get(table, [])
            if not isinstance(entries, list):
                ck.table, ck.index = table, 0
                raise DataError(f"{where}:{_table_line(text, table, None) or '?'}: [{table}]: "
                                f"must be [[{table}]] entries (an array of tables)")
            for i, entry in enumerate(entries):
                ck.table, ck.index = table, i
                if not isinstance(entry, dict):
                    ck.fail(None, "must be a table")
                if table == "zone":
                    m.zones.append(ck.zone(entry))
                elif table == "program" and ("part" in entry or "patches" in entry):
                    m.patch_lists.append(ck.patch_list(entry))
                elif table == "program" and "scenes" in entry:
                    m.scene_lists.append(ck.scene_list(entry, session.scenes()
                                                       if session is not None else None))
                else:
                    b = ck.binding(table, entry)
                    if any(o.key() == b.key() for o in m.bindings):
                        ck.fail(None, f"this control is mapped twice ({b.kind} {b.number} on "
                                      f"channel {b.channel or 'any'})")
                    m.bindings.append(b)
        return m

    @classmethod
    def load(cls, path: str | Path, session=None) -> "Mapping":
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as exc:
            raise DataError(f"{path}: cannot read: {exc.strerror}") from exc
        return cls.parse(text, str(path), session, path)

    # -- writing ------------------------------------------------------------------------------
    def data(self) -> dict:
        out: dict = {}
        meta = {}
        if self.name:
            meta["name"] = self.name
        if self.default_part != "keys":
            meta["default_part"] = self.default_part
        if meta:
            out["mapping"] = meta
        for kind in ("cc", "nrpn", "note"):
            rows = [b.data() for b in self.bindings if b.kind == kind]
            if rows:
                out[kind] = rows
        rows = [b.data() for b in self.bindings if b.kind == "program"] + \
            [p.data() for p in self.patch_lists] + [s.data() for s in self.scene_lists]
        if rows:
            out["program"] = rows
        if self.zones:
            out["zone"] = [z.data() for z in self.zones]
        return out

    def dumps(self) -> str:
        from engine.tomldata import dump
        body = dump(self.data())
        return (self.header + "\n\n" if self.header else "") + body

    def save(self, path: str | Path | None = None) -> Path:
        """Write the mapping (to its own file by default), atomically."""
        path = Path(path) if path is not None else self.path
        if path is None:
            raise ValueError("the mapping has no file: give save() a path")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(self.dumps())
        tmp.replace(path)
        return path

    # -- changing -----------------------------------------------------------------------------
    def with_binding(self, b: Binding) -> "Mapping":
        """A copy where `b` replaces what its control did (a binding of the same control on
        its channel or on any channel); other controls of the same address stay (several knobs
        may drive one parameter)."""
        def same(o: Binding) -> bool:
            return o.kind == b.kind and o.number == b.number and (
                o.channel == b.channel or not o.channel or not b.channel)
        return replace(self, bindings=[o for o in self.bindings if not same(o)] + [b],
                       patch_lists=list(self.patch_lists), scene_lists=list(self.scene_lists),
                       zones=list(self.zones))


def param_resolver(session) -> Callable[[str], Param]:
    """address -> Param of the session's playing graph (and the master limiter)."""
    def resolve(address: str) -> Param:
        return session.param(address)
    return resolve


def patch_finder(session, mapping_path: Path | None) -> Callable[[str], Path | None]:
    """A patch name (stem in the library folders) or path (relative to the mapping file, then
    to the session's root) -> its file, or None."""
    def find(name: str) -> Path | None:
        p = Path(name).expanduser()
        bases = ([mapping_path.parent] if mapping_path is not None else []) + [session.root]
        if p.suffix == ".toml" or "/" in name:
            for base in bases:
                q = p if p.is_absolute() else base / p
                if q.is_file():
                    return q
            return None
        for folder in session.cfg["library"]["folders"]:
            f = Path(folder).expanduser()
            q = (f if f.is_absolute() else session.root / f) / f"{name}.toml"
            if q.is_file():
                return q
        return None
    return find


# ---- the mapper -----------------------------------------------------------------------------

Event = tuple  # (kind, part index, a, b)


_WORD = (1 << 64) - 1


def _signed64(word: int) -> int:
    return word - (1 << 64) if word >> 63 else word


def _bound_controls(by_key: dict) -> list[int]:
    """Per MIDI channel (0..15), a 128-bit mask of the control changes a mapping's tables
    take for themselves (channel 0 bindings: every channel)."""
    masks = [0] * 16
    for kind, number, channel in by_key:
        if kind in ("cc", "cc-lsb") and 0 <= number <= 127:
            for ch in range(16) if channel == 0 else (channel - 1,):
                masks[ch] |= 1 << number
    return masks


class Mapper:
    """Applies a Mapping to a live input's messages (see the module's docstring).

    session: the Session (its set / load_patch / addresses)
    post:    runs a control action where the session may be driven (live: the asyncio loop's
             call_soon_threadsafe; default: at once, for tests and offline use)
    later:   (seconds, fn) runs fn later on that same thread (a program change retried while a
             graph swap is crossfading); None: not retried
    """

    def __init__(self, session, mapping: Mapping | None = None, log: Callable[[str], None] = print,
                 post: Callable[[Callable], object] | None = None,
                 later: Callable[[float, Callable], object] | None = None,
                 log_interval_s: float = 2.0):
        self.session = session
        self._log = log
        self.post = post if post is not None else (lambda fn: fn())
        self.later = later
        self.log_interval_s = log_interval_s
        self._next_log = 0.0
        self.stats = {"applied": 0, "errors": 0, "pickup_waiting": 0, "learned": 0,
                      "patches": 0, "scenes": 0, "ignored": 0}
        self.last_error = ""
        self._plock = threading.Lock()
        self._pending: dict[int, tuple[Binding, float]] = {}
        self._held: dict[tuple, tuple] = {}      # (source, channel, note) -> ((part, note)...)
        self._pedal: dict[tuple, set] = {}       # (source, channel) -> parts the pedal went to
        self._cc14: dict[tuple, int] = {}        # (channel, msb control) -> msb value
        self._nrpn: dict[tuple, list] = {}       # (source, channel) -> [number, msb, lsb, rpn]
        self._learning: tuple | None = None
        self.set_mapping(mapping if mapping is not None else Mapping())

    # -- the mapping --------------------------------------------------------------------------
    @property
    def mapping(self) -> Mapping:
        return self._mapping

    def set_mapping(self, mapping: Mapping) -> None:
        """Take a new mapping (tables rebuilt, swapped in one assignment: the MIDI thread
        sees the old or the new, never half)."""
        resolve = param_resolver(self.session)
        for b in mapping.bindings:
            if b.param is None:
                try:
                    b.param = resolve(b.address)
                except (KeyError, ValueError):
                    pass
        by_key: dict = {}
        for b in mapping.bindings:
            by_key[b.key()] = b
            if b.kind == "cc" and b.bits == 14:
                by_key[("cc-lsb", b.number + 32, b.channel)] = b
        programs = {pl.channel: pl for pl in mapping.patch_lists}
        parts_of_channel = {}
        for ch in range(1, 17):
            parts = {PART_INDEX[z.part] for z in mapping.zones if z.channel in (0, ch)}
            if not parts and mapping.default_part:
                parts = {PART_INDEX[mapping.default_part]}
            parts_of_channel[ch] = tuple(sorted(parts))
        default = PART_INDEX[mapping.default_part] if mapping.default_part else None
        zones = tuple((z.channel, z.lo, z.hi, PART_INDEX[z.part], z.transpose)
                      for z in mapping.zones)
        scenes = {sl.channel: sl for sl in mapping.scene_lists}
        self._tables = (by_key, programs, scenes, parts_of_channel, zones, default,
                        any(b.kind == "nrpn" for b in mapping.bindings))
        self._mapping = mapping
        self._bound = _bound_controls(by_key)
        state = getattr(self.session, "state", None)
        if state is not None:       # the JACK callback leaves these controls to us
            words = [_signed64((self._bound[ch] >> (64 * k)) & _WORD)
                     for ch in range(16) for k in (0, 1)]
            state.ctl[C_CC_MAPPED:C_CC_MAPPED + 32] = words

    def binds_cc(self, channel: int, control: int) -> bool:
        """Whether the mapping takes control change `control` on MIDI `channel` (1..16) for
        itself (a binding, or a 14-bit binding's LSB): then no built-in action (CC 1 mod
        wheel, 64 sustain, 120/123 all notes off) happens and MIDI thru does not echo it."""
        return bool(self._bound[channel - 1] >> control & 1)

    # -- logging ------------------------------------------------------------------------------
    def _error(self, text: str) -> None:
        self.stats["errors"] += 1
        self.last_error = text
        now = time.monotonic()
        if now >= self._next_log:
            self._next_log = now + self.log_interval_s
            self._log(f"MIDI mapping: {text}")

    # -- the MIDI thread ----------------------------------------------------------------------
    def events(self, msg: mido.Message, source: int) -> list[Event]:
        """The engine events a player's message becomes (notes, pedal, bend... routed to their
        parts); mapped controls are posted to the session. Never raises."""
        try:
            return self._events(msg, source)
        except Exception as exc:  # noqa: BLE001 - bad input is counted, never raised
            self._error(f"{msg!r}: {exc!r}")
            return []

    def _lookup(self, by_key, kind, number, ch):
        return by_key.get((kind, number, ch)) or by_key.get((kind, number, 0))

    def _events(self, msg, source: int) -> list[Event]:
        by_key, programs, scenes, parts_of_channel, zones, default, has_nrpn = self._tables
        t = msg.type
        ch = getattr(msg, "channel", 0) + 1
        if self._learning is not None and self._learn_from(msg, source, ch):
            return []
        if t == "note_on" or t == "note_off":
            note, on = msg.note, t == "note_on" and msg.velocity > 0
            if not (isinstance(note, int) and 0 <= note <= 127):
                self.stats["ignored"] += 1
                return []
            b = self._lookup(by_key, "note", note, ch)
            if b is not None:
                self.post(lambda: self._note_action(b, on))
                return []
            key = (source, ch, note)
            if on:
                out = []
                old = self._held.pop(key, None)
                if old:       # a second note-on of a sounding key: release it first
                    out += [(K_NOTE_OFF, p, float(n), 0.0) for p, n in old]
                targets = self._route(zones, default, ch, note)
                if targets:
                    self._held[key] = targets
                v = min(max(msg.velocity / 127.0, 0.0), 1.0)
                return out + [(K_NOTE_ON, p, float(n), v) for p, n in targets]
            targets = self._held.pop(key, None)
            if targets is None:
                targets = self._route(zones, default, ch, note)
            return [(K_NOTE_OFF, p, float(n), 0.0) for p, n in targets]
        if t == "control_change":
            c, v = msg.control, msg.value
            if has_nrpn and c in _NRPN_CCS:
                if self._nrpn_cc(by_key, source, ch, c, v):
                    return []
            b = self._lookup(by_key, "cc", c, ch)
            if b is not None:
                if b.bits == 14:
                    self._cc14[(ch, c)] = v
                    self._queue(b, (v << 7) / 16383.0)
                else:
                    self._queue(b, v / 127.0)
                return []
            b = self._lookup(by_key, "cc-lsb", c, ch)
            if b is not None:
                msb = self._cc14.get((ch, b.number), 0)
                self._queue(b, ((msb << 7) | v) / 16383.0)
                return []
            parts = parts_of_channel[ch]
            if c == 64:
                pkey = (source, ch)
                if v >= 64:
                    self._pedal.setdefault(pkey, set()).update(parts)
                else:
                    parts = tuple(sorted(set(parts) | self._pedal.pop(pkey, set())))
            elif c in (120, 123):
                held = {p for (s, c2, _), ts in self._held.items() if s == source and c2 == ch
                        for p, _ in ts}
                for k in [k for k in self._held if k[0] == source and k[1] == ch]:
                    del self._held[k]
                parts = tuple(sorted(set(parts) | held | self._pedal.pop((source, ch), set())))
        elif t == "program_change":
            pl = programs.get(ch) or programs.get(0)
            sl = scenes.get(ch) or scenes.get(0)
            b = self._lookup(by_key, "program", -1, ch)
            if pl is None and b is None and sl is None:
                self.stats["ignored"] += 1
                return []
            prog = msg.program
            if pl is not None:
                self.post(lambda: self._load_patch(pl, prog))
            if sl is not None:
                self.post(lambda: self._recall_scene(sl, prog))
            if b is not None:
                self._queue(b, None, prog)
            return []
        else:
            parts = parts_of_channel[ch]
        from engine.control.live_input import message_event
        ev = message_event(msg)
        if ev is None:
            return []
        kind, a, bval = ev
        if not -1.0 <= bval <= 1.0:          # a value no device sends (garbage): clamped
            bval = min(max(bval, -1.0), 1.0) if bval == bval else 0.0
        return [(kind, p, a, bval) for p in parts]

    @staticmethod
    def _route(zones, default, ch, note) -> tuple:
        out = []
        for zch, lo, hi, part, tr in zones:
            if (zch == 0 or zch == ch) and lo <= note <= hi:
                n = note + tr
                if 0 <= n <= 127 and (part, n) not in out:
                    out.append((part, n))
        if not out and default is not None and not any(
                (zch == 0 or zch == ch) and lo <= note <= hi for zch, lo, hi, _, _ in zones):
            out.append((default, note))
        return tuple(out)

    def _nrpn_cc(self, by_key, source, ch, c, v) -> bool:
        """NRPN's CCs; True when consumed."""
        st = self._nrpn.setdefault((source, ch), [None, 0, 0, False, 0])
        # st: [number or None, number msb, number lsb, rpn selected, data msb]
        if c == NRPN_MSB:
            st[1], st[3] = v, False
            st[0] = (st[1] << 7) | st[2]
            return True
        if c == NRPN_LSB:
            st[2], st[3] = v, False
            st[0] = (st[1] << 7) | st[2]
            return True
        if c in (RPN_MSB, RPN_LSB):
            st[3] = True
            return False      # an RPN (bend range...): not ours
        if st[3] or st[0] is None:
            return False
        b = self._lookup(by_key, "nrpn", st[0], ch)
        if b is None:
            return False
        if c == DATA_MSB:
            st[4] = v
            self._queue(b, v / 127.0 if b.bits == 7 else (v << 7) / 16383.0)
        elif c == DATA_LSB:
            if b.bits == 14:
                self._queue(b, ((st[4] << 7) | v) / 16383.0)
        else:               # increment / decrement: one step
            step = 1.0 / (127.0 if b.bits == 7 else 16383.0)
            x = b.last_x if b.last_x is not None else b.position(self._current(b))
            self._queue(b, x + (step if c == DATA_INC else -step))
        return True

    def source_gone(self, source: int) -> None:
        """A source vanished (LiveInput sends its K_SOURCE_GONE to every part): forget its
        notes and pedal."""
        for k in [k for k in self._held if k[0] == source]:
            self._held.pop(k, None)
        for k in [k for k in self._pedal if k[0] == source]:
            self._pedal.pop(k, None)
        for k in [k for k in self._nrpn if k[0] == source]:
            self._nrpn.pop(k, None)

    # -- applying (the session's thread) -------------------------------------------------------
    def _queue(self, b: Binding, x: float | None, program: int | None = None) -> None:
        """Coalesce a control's values: one post per control until it runs."""
        if program is not None:
            self.post(lambda: self._apply_program(b, program))
            return
        k = id(b)
        with self._plock:
            first = k not in self._pending
            self._pending[k] = (b, x)
        if first:
            self.post(lambda: self._flush(k))

    def _flush(self, k: int) -> None:
        with self._plock:
            item = self._pending.pop(k, None)
        if item is not None:
            self._apply(*item)

    def _param(self, b: Binding) -> Param:
        """The address's Param in the graph playing now (a patch change may have given the
        part a new instrument): a value outside its range is clamped into it."""
        b.param = param_resolver(self.session)(b.address)
        return b.param

    def _set(self, b: Binding, v: float) -> None:
        q = b.param
        v = min(max(v, q.lo), q.hi)
        if q.curve == "choice":
            v = float(round(v))
        b.sent = self.session.set(b.address, v)
        self.stats["applied"] += 1

    def _current(self, b: Binding) -> float:
        try:
            return self.session.value(b.address)
        except Exception:  # noqa: BLE001
            return b.lo

    def _apply(self, b: Binding, x: float) -> None:
        try:
            if not math.isfinite(x):
                raise ValueError(f"not a control value: {x!r}")
            x = min(max(x, 0.0), 1.0)
            self._param(b)
            if b.pickup:
                cur = self._current(b)
                if b.engaged and b.sent is not None and abs(cur - b.sent) > 1e-9 * max(
                        1.0, abs(b.sent)):
                    b.engaged = False        # moved by something else: pick it up again
                if not b.engaged:
                    pos = b.position(cur)
                    prev = b.last_x
                    b.last_x = x
                    step = 1.0 / 127.0 if b.bits == 7 else 1.0 / 16383.0
                    crossed = prev is not None and (prev - pos) * (x - pos) <= 0.0
                    if not (crossed or abs(x - pos) <= step):
                        self.stats["pickup_waiting"] += 1
                        return
                    b.engaged = True
            b.last_x = x
            self._set(b, b.value(x))
        except Exception as exc:  # noqa: BLE001
            self._error(f"{b.address}: {exc}")

    def _apply_program(self, b: Binding, program: int) -> None:
        try:
            self._param(b)
            if b.curve_of() == "choice":
                lo, hi = sorted((b.lo, b.hi))
                self._set(b, float(min(max(lo + program, lo), hi)))
                return
        except Exception as exc:  # noqa: BLE001
            self._error(f"{b.address}: {exc}")
            return
        self._apply(b, program / 127.0)

    def _note_action(self, b: Binding, on: bool) -> None:
        if b.mode == "toggle":
            if not on:
                return
            b.on = not b.on
            x = 1.0 if b.on else 0.0
        elif b.mode == "momentary":
            x = 1.0 if on else 0.0
        else:
            if not on:
                return
            x = 1.0
        try:
            self._param(b)
            lo, hi = (b.lo, b.hi) if not b.invert else (b.hi, b.lo)
            self._set(b, hi if x else lo)
        except Exception as exc:  # noqa: BLE001
            self._error(f"{b.address}: {exc}")

    def _load_patch(self, pl: PatchList, program: int, tries: int = 0) -> None:
        if not 0 <= program < len(pl.paths):
            self.stats["ignored"] += 1
            return
        from engine.control.graph import GraphBusy
        try:
            self.session.load_patch(pl.part, pl.paths[program])
            self.stats["patches"] += 1
            self._log(f"MIDI: program {program} -> {pl.part}: {pl.patches[program]}")
        except GraphBusy:
            if self.later is not None and tries < 20:
                self.later(0.03, lambda: self._load_patch(pl, program, tries + 1))
            else:
                self._error(f"program {program} -> {pl.part}: a graph change is still "
                            f"crossfading")
        except Exception as exc:  # noqa: BLE001 - a broken patch: the old sound plays on
            self._error(f"program {program} -> {pl.part}: {exc}")

    def _recall_scene(self, sl: SceneList, program: int) -> None:
        if not 0 <= program < len(sl.scenes):
            self.stats["ignored"] += 1
            return
        try:
            self.session.recall_scene(sl.scenes[program])
            self.stats["scenes"] += 1
            self._log(f"MIDI: program {program} -> scene {sl.scenes[program]}")
        except Exception as exc:  # noqa: BLE001 - a broken scene file: nothing changes
            self._error(f"program {program} -> scene {sl.scenes[program]}: {exc}")

    # -- MIDI learn ---------------------------------------------------------------------------
    def learn(self, address: str, on_learned: Callable[[Binding], object] | None = None,
              save: bool = True) -> None:
        """Bind the next CC, NRPN, note or program change to `address` (checked now: an
        unknown address raises KeyError) and save the mapping to its file (`save`)."""
        param = param_resolver(self.session)(address)
        self._learning = (address, param, on_learned, save)
        self._learn_nrpn: dict = {}

    def cancel_learn(self) -> None:
        self._learning = None

    @property
    def learning(self) -> str | None:
        armed = self._learning
        return None if armed is None else armed[0]

    def _learn_from(self, msg, source: int, ch: int) -> bool:
        """While armed: turn a learnable message into a binding (posted); True if consumed."""
        armed = self._learning
        if armed is None:
            return False
        address, param, on_learned, save = armed
        t = msg.type
        b = None
        if t == "note_on" and msg.velocity > 0:
            b = Binding("note", msg.note, address, ch, param=param)
        elif t == "program_change":
            b = Binding("program", -1, address, ch, param=param)
        elif t == "control_change":
            c = msg.control
            sel = self._learn_nrpn.setdefault((source, ch), [None, 0, 0])
            if c in (NRPN_MSB, NRPN_LSB):
                sel[1 if c == NRPN_MSB else 2] = msg.value
                sel[0] = (sel[1] << 7) | sel[2]
                return True
            if c in (DATA_MSB, DATA_LSB) and sel[0] is not None:
                b = Binding("nrpn", sel[0], address, ch, bits=14, param=param)
            elif c in (RPN_MSB, RPN_LSB) or c >= 120:
                return False
            else:
                b = Binding("cc", c, address, ch, param=param)
        if b is None:
            return False
        self._learning = None
        self.post(lambda: self._install_learned(b, on_learned, save))
        return True

    def _install_learned(self, b: Binding, on_learned, save: bool) -> None:
        self.set_mapping(self._mapping.with_binding(b))
        self.stats["learned"] += 1
        what = {"cc": f"CC {b.number}", "nrpn": f"NRPN {b.number}", "note": f"note {b.number}",
                "program": "program change"}[b.kind]
        where = " (not saved: no mapping file)" if save and self._mapping.path is None else ""
        if save and self._mapping.path is not None:
            try:
                where = f", saved to {self._mapping.save()}"
            except OSError as exc:
                self._error(f"cannot save {self._mapping.path}: {exc}")
        self._log(f"MIDI learn: {what} on channel {b.channel} -> {b.address}{where}")
        if on_learned is not None:
            on_learned(b)


def load_mapper(session, path: str | Path | None, log=print, post=None, later=None) -> Mapper:
    """The session's mapper from config `[midi] mapping` (a path; "" or None: an empty
    mapping). A file that does not exist yet starts empty and is created by the first learn."""
    mapping = Mapping()
    if path:
        p = Path(path).expanduser()
        p = p if p.is_absolute() else session.root / p
        if p.exists():
            mapping = Mapping.load(p, session)
        else:
            mapping.path = p
    return Mapper(session, mapping, log, post, later)
