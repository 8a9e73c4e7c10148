"""Song form (control side): sections (intro, verse, chorus, bridge, breakdown, outro) with
their bars, parts, energy curve and progression, and the transitions between them; played by
the band as an arrangement (`FormPlay`), live or offline alike.

A form is written as a short string, ``"intro:4 verse:8 chorus:8 bridge:4 chorus:8 outro:4"``
(each section takes its kind's defaults), or as a TOML file (`load_form`), checked like the
scene file (errors name file, line and field)::

    [form]
    key = "A minor"          # the tonic of the progressions below (/band/key moves them all)
    loop = false             # after the last section: the ending (false) or the first again

    [[section]]
    name = "verse"           # intro, verse, chorus, bridge, breakdown, outro (+ digits: verse2)
    bars = 8
    parts = ["drums", "bass", "chords"]      # which agents play (steering can still mute)
    energy = 0.6             # 0..1: the level the section reaches
    curve = "build"          # hold: flat | build: rises to it by 0.25 | drop: falls from it
    progression = "Am F C G" # one chord a bar, cycled (default: the style's, in A minor)
    fill = true              # a drum fill in the bar before it
    riser = true             # a filter sweep up over the bar before it, snapping back on it
    drop = "kick"            # the bar before it: "kick" removed, "bar" without drums and bass
    crash = true             # a crash on its downbeat

Transitions belong to the section they lead into and sound in the bar before it, whichever
section that is: a jump (`FormPlay.jump`, "go to chorus") gets the fill and the drop of the
section it lands on. After the last section (`loop = false`) the band plays one ending bar (a
final hit) and stops.
"""
from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from engine.harmony import Chord, Progression
from engine.parts import DRUM_NOTES
from engine.tomldata import DataError, parse

__all__ = ["Form", "FormSection", "FormPlay", "KINDS", "parse_form", "load_form", "form_from",
           "style_progression", "ENDING", "RISER_OCTAVES", "FormRunner"]

KINDS = ("intro", "verse", "chorus", "bridge", "breakdown", "outro")
CURVES = ("hold", "build", "drop")
DROPS = ("none", "kick", "bar")
CURVE_SPAN = 0.25           # how far a build rises to (a drop falls from) the section's energy
RISER_OCTAVES = 2.0         # how far a riser sweeps the synths' filters up
RISER_PARTS = ("bass", "chords", "lead")
ENDING = "ending"           # the bar after the last section (loop = false): one final hit
MAX_BARS = 256
_BAND = ("drums", "bass", "chords", "lead")
_NAME = re.compile(r"([a-z]+)(\d*)")
_NO_KICK = frozenset(n for name, n in DRUM_NOTES.items() if name != "kick")

# each kind's defaults: parts, energy, curve, fill, riser, drop, crash
_DEFAULTS: dict[str, dict] = {
    "intro": dict(parts=("drums", "chords"), energy=0.45, curve="build", fill=False,
                  riser=False, drop="none", crash=False),
    "verse": dict(parts=("drums", "bass", "chords"), energy=0.6, curve="build", fill=True,
                  riser=False, drop="none", crash=True),
    "chorus": dict(parts=_BAND, energy=0.85, curve="hold", fill=True, riser=True, drop="kick",
                   crash=True),
    "bridge": dict(parts=("drums", "bass", "chords", "lead"), energy=0.55, curve="hold",
                   fill=True, riser=False, drop="none", crash=True),
    "breakdown": dict(parts=("chords", "lead"), energy=0.3, curve="hold", fill=True,
                      riser=False, drop="none", crash=False),
    "outro": dict(parts=("drums", "bass", "chords"), energy=0.6, curve="drop", fill=True,
                  riser=False, drop="none", crash=True),
}

# progressions by kind (A minor, one chord a bar), and what a style changes
_PROGRESSIONS = {"intro": "Am F C G", "verse": "Am F C G", "chorus": "F G Am Am",
                 "bridge": "Dm F G E7", "breakdown": "Am Am F F", "outro": "Am F C G"}
_STYLE_PROGRESSIONS = {
    "funk": {"intro": "Am7 D7", "verse": "Am7 D7", "chorus": "Fmaj7 G7 Am7 Am7",
             "bridge": "Dm7 G7 Cmaj7 E7", "breakdown": "Am7 Am7 D7 D7", "outro": "Am7 D7"},
    "house": {"verse": "Am7 Fmaj7 C G", "chorus": "Fmaj7 G Am7 Am7", "intro": "Am7 Fmaj7",
              "breakdown": "Fmaj7 Fmaj7 Am7 Am7"},
    "hiphop": {"intro": "Am7 Fmaj7", "verse": "Am7 Fmaj7", "chorus": "Dm7 E7 Am7 Am7",
               "outro": "Am7 Fmaj7"},
    "bossa": {"intro": "Am7 D7", "verse": "Am7 D7 Gmaj7 Cmaj7", "chorus": "Fmaj7 E7 Am7 Am7",
              "bridge": "Dm7 G7 Cmaj7 E7", "outro": "Am7 D7"},
}


def style_progression(style: str, kind: str) -> Progression:
    """The progression a section of `kind` plays in `style` when the form gives none (A minor,
    one chord a bar)."""
    return Progression.parse(_STYLE_PROGRESSIONS.get(style, {}).get(kind, _PROGRESSIONS[kind]))


@dataclass(frozen=True)
class FormSection:
    """One section: see the module's docstring for each field."""

    name: str
    kind: str
    bars: int
    parts: frozenset[str]
    energy: float
    curve: str = "hold"
    progression: Progression | None = None   # None: the style's (`style_progression`)
    fill: bool = True
    riser: bool = False
    drop: str = "none"
    crash: bool = True

    def intensity(self, k: int) -> float:
        """The energy in bar `k` of the section (its curve, linear over the bars)."""
        x = k / (self.bars - 1) if self.bars > 1 else 1.0
        if self.curve == "build":
            lo, hi = max(0.0, self.energy - CURVE_SPAN), self.energy
        elif self.curve == "drop":
            lo, hi = self.energy, max(0.0, self.energy - CURVE_SPAN)
        else:
            lo = hi = self.energy
        return lo + (hi - lo) * x


@dataclass(frozen=True)
class Form:
    """Sections in order; ``key`` the tonic chord of their progressions (`Chord`); ``loop``:
    after the last section the first again (else one ending bar and silence)."""

    sections: tuple[FormSection, ...]
    key: Chord = Chord(9, "min")
    loop: bool = False

    @property
    def length_bars(self) -> int:
        return sum(s.bars for s in self.sections)

    def __str__(self) -> str:
        return " ".join(f"{s.name}:{s.bars}" for s in self.sections)


def _section(name: str, bars: int, where: str = "") -> FormSection:
    m = _NAME.fullmatch(name)
    if not m or m.group(1) not in KINDS:
        raise ValueError(f"{where}section {name!r}: a section is one of {', '.join(KINDS)} "
                         f"(digits may follow: verse2)")
    if not 1 <= bars <= MAX_BARS:
        raise ValueError(f"{where}section {name!r}: bars must be 1..{MAX_BARS}, got {bars}")
    d = _DEFAULTS[m.group(1)]
    return FormSection(name, m.group(1), bars, frozenset(d["parts"]), d["energy"], d["curve"],
                       None, d["fill"], d["riser"], d["drop"], d["crash"])


def parse_form(text: str) -> Form:
    """The short form: ``"intro:4 verse:8 chorus:8"`` (NAME:BARS, each kind's defaults);
    ValueError naming the bad item."""
    items = text.replace(",", " ").split()
    if not items:
        raise ValueError("a form needs at least one section, e.g. \"intro:4 verse:8 chorus:8\"")
    sections = []
    for item in items:
        name, sep, bars = item.partition(":")
        if not sep or not bars.isdigit():
            raise ValueError(f"form item {item!r}: write NAME:BARS, e.g. verse:8")
        sections.append(_section(name.lower(), int(bars)))
    return Form(tuple(sections))


def _key_chord(text: str) -> Chord:
    """'A minor', 'C major', 'D' (major), 'Am' as the tonic chord."""
    words = text.split()
    if len(words) == 2 and words[1] in ("major", "minor"):
        return Chord.parse(words[0] + ("m" if words[1] == "minor" else ""))
    if len(words) == 1:
        return Chord.parse(words[0])
    raise ValueError(f"write a key as TONIC major|minor (\"A minor\"), got {text!r}")


def _section_line(text: str, index: int, key: str | None) -> int | None:
    """The line of `key` in the `index`-th [[section]] table (or of its header)."""
    seen, header = -1, None
    for n, line in enumerate(text.splitlines(), 1):
        head = re.match(r"\s*\[\[?\s*([^\]]+?)\s*\]", line)
        if head:
            if line.lstrip().startswith("[[") and head.group(1) == "section":
                seen += 1
                if seen == index:
                    header = n
            elif seen == index:
                return header
            continue
        if seen == index and key is not None and re.match(rf"\s*\"?{re.escape(key)}\"?\s*=",
                                                          line):
            return n
    return header


_FIELDS = ("name", "bars", "parts", "energy", "curve", "progression", "fill", "riser", "drop",
           "crash")


def load_form(path: str | Path, text: str | None = None) -> Form:
    """The form of a TOML file (module docstring); DataError("form.toml:12: [[section]] 3
    energy: must be 0..1, got 3") naming the file, line and field."""
    where = str(path)
    if text is None:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise DataError(f"{where}: cannot read: {exc.strerror}") from exc
    data = parse(text, where)

    def fail(index: int | None, key: str | None, msg: str):
        if index is None:
            line = next((n for n, ln in enumerate(text.splitlines(), 1)
                         if key and re.match(rf"\s*{key}\s*=", ln)), None)
            head = "[form]" + (f" {key}" if key else "")
        else:
            line = _section_line(text, index, key)
            head = f"[[section]] {index + 1}" + (f" {key}" if key else "")
        raise DataError(f"{where}:{line}: {head}: {msg}" if line else f"{where}: {head}: {msg}")

    for top in data:
        if top not in ("form", "section"):
            raise DataError(f"{where}: [{top}]: unknown table; a form file has [form] and "
                            f"[[section]] tables")
    head = data.get("form", {})
    if not isinstance(head, dict):
        raise DataError(f"{where}: form: must be a table [form]")
    key, loop = Chord(9, "min"), False
    for k, v in head.items():
        if k == "key":
            try:
                key = _key_chord(v) if isinstance(v, str) else _key_chord("")
            except ValueError as exc:
                fail(None, k, str(exc))
        elif k == "loop":
            if not isinstance(v, bool):
                fail(None, k, f"must be true or false, got {v!r}")
            loop = v
        else:
            fail(None, k, "unknown setting; [form] has key, loop")
    tables = data.get("section")
    if not isinstance(tables, list) or not tables:
        raise DataError(f"{where}: a form needs [[section]] tables (name, bars, ...)")
    sections = []
    for i, t in enumerate(tables):
        for k in t:
            if k not in _FIELDS:
                fail(i, k, f"unknown field; a section has {', '.join(_FIELDS)}")
        name, bars = t.get("name"), t.get("bars")
        if not isinstance(name, str):
            fail(i, "name", f"must be one of {', '.join(KINDS)} (digits may follow)")
        if isinstance(bars, bool) or not isinstance(bars, int):
            fail(i, "bars", f"must be a whole number 1..{MAX_BARS}, got {bars!r}")
        try:
            sec = _section(name, bars)
        except ValueError as exc:
            fail(i, "bars" if _NAME.fullmatch(name) and _NAME.fullmatch(name).group(1) in KINDS
                 else "name", str(exc))
        changes: dict = {}
        if "parts" in t:
            p = t["parts"]
            if not isinstance(p, list) or any(x not in _BAND for x in p):
                fail(i, "parts", f"must be a list of {', '.join(_BAND)}, got {p!r}")
            changes["parts"] = frozenset(p)
        if "energy" in t:
            e = t["energy"]
            if isinstance(e, bool) or not isinstance(e, (int, float)) or not 0 <= e <= 1:
                fail(i, "energy", f"must be 0..1, got {e!r}")
            changes["energy"] = float(e)
        for k, choices in (("curve", CURVES), ("drop", DROPS)):
            if k in t:
                if t[k] not in choices:
                    fail(i, k, f"must be one of {', '.join(choices)}, got {t[k]!r}")
                changes[k] = t[k]
        for k in ("fill", "riser", "crash"):
            if k in t:
                if not isinstance(t[k], bool):
                    fail(i, k, f"must be true or false, got {t[k]!r}")
                changes[k] = t[k]
        if "progression" in t:
            try:
                if not isinstance(t["progression"], str):
                    raise ValueError("write chords one a bar: \"Am F C G\"")
                changes["progression"] = Progression.parse(t["progression"])
            except ValueError as exc:
                fail(i, "progression", str(exc))
        sections.append(replace(sec, **changes))
    return Form(tuple(sections), key, loop)


def form_from(text: str) -> Form:
    """A form from the command line: a .toml file's path, else the short string form."""
    if text.endswith(".toml") or Path(text).is_file():
        return load_form(text)
    return parse_form(text)


class _FormProgression:
    """The harmony of a played form as a progression (``chords[0]`` the form's key, which is
    what /band/key and a key heard from the player move; ``chord_at(bar)`` the section's)."""

    def __init__(self, play: FormPlay):
        self.play = play
        self.chords = (play.form.key,)

    def chord_at(self, bar: int) -> Chord:
        return self.play.chord_at_bar(bar)


class FormPlay:
    """A `Form` played from bar 0: the arrangement a `Band` takes (``parts_active``,
    ``intensity``, ``drum_notes``, ``cues_at``) and the progression the context follows
    (``progression``). ``jump(name, bar)`` goes to a section from a bar not yet scheduled;
    everything is a pure function of the bar and the jumps made before it, so a live run and
    an offline render with the same jumps at the same bars play the same notes.

    ``style``: the style whose progressions sections without their own play."""

    def __init__(self, form: Form, style: str = "rock"):
        self.form = form
        self.style = style
        self.progressions = tuple(s.progression or style_progression(style, s.kind)
                                  for s in form.sections)
        self._starts = [0]                  # bars where a run of sections begins
        self._first = [0]                   # ... with this section (len: ENDING)
        n = len(form.sections)
        self._suffix = [sum(s.bars for s in form.sections[i:]) for i in range(n + 1)]
        self.progression = _FormProgression(self)

    # ---- where the form is ---------------------------------------------------------------
    def locate(self, bar: int) -> tuple[int, int] | None:
        """(section index, bar within it) at `bar`; (len(sections), 0) for the ending bar;
        None before bar 0 and after the ending."""
        if bar < 0:
            return None
        secs = self.form.sections
        n = len(secs)
        r = bisect_right(self._starts, bar) - 1
        first, off = self._first[r], bar - self._starts[r]
        if first == n:
            return (n, 0) if off == 0 else None
        if off >= self._suffix[first]:
            off -= self._suffix[first]
            if not self.form.loop:
                return (n, 0) if off == 0 else None
            off %= self._suffix[0]
            first = 0
        i = first
        while off >= secs[i].bars:
            off -= secs[i].bars
            i += 1
        return i, off

    def section_at(self, bar: int) -> FormSection | None:
        loc = self.locate(bar)
        return self.form.sections[loc[0]] if loc and loc[0] < len(self.form.sections) else None

    def name_at(self, bar: int) -> str | None:
        """The section's name at `bar` ('ending' for the final bar; None after it)."""
        loc = self.locate(bar)
        if loc is None:
            return None
        return ENDING if loc[0] == len(self.form.sections) else self.form.sections[loc[0]].name

    def entering(self, bar: int) -> FormSection | None:
        """The section that starts at `bar` (None inside a section, and at bar 0)."""
        loc = self.locate(bar)
        if bar <= 0 or loc is None or loc[1] != 0 or loc[0] == len(self.form.sections):
            return None
        return self.form.sections[loc[0]]

    def jump(self, name: str, bar: int) -> int:
        """Go to the section `name` (the next of that name after the one playing at `bar`, or
        a section's index as a number; ENDING: the final hit) from `bar` on; the jumps made for
        later bars are dropped. Returns the section's index; KeyError for an unknown name."""
        n = len(self.form.sections)
        if name == ENDING:
            j = n
        elif isinstance(name, int):
            if not 0 <= name < n:
                raise KeyError(f"no section {name}; the form has {n}")
            j = name
        else:
            names = [s.name for s in self.form.sections]
            kinds = [s.kind for s in self.form.sections]
            hits = [i for i in range(n) if names[i] == name] or \
                [i for i in range(n) if kinds[i] == name]
            if not hits:
                raise KeyError(f"no section {name!r} in the form ({self.form}); "
                               f"`end` plays the ending")
            cur = self.locate(bar - 1)
            after = [i for i in hits if cur is None or i > cur[0]]
            j = (after or hits)[0]
        r = bisect_right(self._starts, bar - 1)
        del self._starts[r:], self._first[r:]
        self._starts.append(bar)
        self._first.append(j)
        return j

    # ---- the arrangement interface ---------------------------------------------------------
    def parts_active(self, bar: int) -> set[str]:
        loc = self.locate(bar)
        if loc is None:
            return set()
        if loc[0] == len(self.form.sections):
            return set(_BAND)
        parts = set(self.form.sections[loc[0]].parts)
        nxt = self.entering(bar + 1)
        if nxt is not None and nxt.drop == "bar":
            parts -= {"drums", "bass"}
        return parts

    def intensity(self, bar: int) -> float:
        loc = self.locate(bar)
        if loc is None:
            return 0.0
        if loc[0] == len(self.form.sections):
            return self.form.sections[-1].intensity(self.form.sections[-1].bars - 1)
        return self.form.sections[loc[0]].intensity(loc[1])

    def drum_notes(self, bar: int) -> frozenset[int] | None:
        nxt = self.entering(bar + 1)
        return _NO_KICK if nxt is not None and nxt.drop == "kick" else None

    def cues_at(self, bar: int) -> frozenset[str]:
        loc = self.locate(bar)
        if loc is None:
            return frozenset()
        if loc[0] == len(self.form.sections):
            return frozenset({"ending"})
        out = set()
        sec = self.entering(bar)
        if sec is not None and sec.crash:
            out.add("crash")
        nxt = self.entering(bar + 1)
        if nxt is not None and nxt.fill and nxt.drop != "bar" \
                and "drums" in self.form.sections[loc[0]].parts:
            out.add("fill")
        return frozenset(out)

    def chord_at_bar(self, bar: int) -> Chord:
        loc = self.locate(bar)
        if loc is None:
            loc = (len(self.form.sections), 0)
        if loc[0] == len(self.form.sections):
            return self.form.key          # the ending: the tonic
        return self.progressions[loc[0]].chord_at(loc[1])

    # ---- transitions played on sound, not notes: the riser ------------------------------------
    def riser_into(self, bar: int) -> bool:
        """Whether the bar before `bar` carries a riser (the section starting at `bar` has
        one)."""
        nxt = self.entering(bar)
        return nxt is not None and nxt.riser


class FormRunner:
    """Drives what a form does beside the band's notes, bar by bar as the scheduler reaches
    each downbeat (`before_query`): the riser (each band synth's filter, `RISER_OCTAVES` up
    over the bar before a section with ``riser``, back on its downbeat, through
    `Session.glide`/`Session.set`) and the section shown (`on_section(bar, name)`)."""

    def __init__(self, play: FormPlay, session, on_section: Callable[[int, str], None] | None
                 = None):
        self.play = play
        self.session = session
        self.on_section = on_section
        self.next_bar = 0           # the next downbeat not yet handled
        self.section = None         # the name of the section playing (as last handled)
        self._restore: dict[int, dict[str, float]] = {}   # bar -> {address: value}
        addresses = set(session.addresses())
        self.riser_addresses = [a for a in (f"/{p}/synth/cutoff_hz" for p in RISER_PARTS)
                                if a in addresses]

    def before_query(self, end_sample: int) -> None:
        clock, s = self.session.clock, self.session
        meter = clock.meter
        while True:
            b = self.next_bar
            t = clock.sample_at(meter.bar_start(b))
            if t >= end_sample:
                return
            self.next_bar += 1
            for address, v in self._restore.pop(b, {}).items():
                s.set(address, v, time=t)
            name = self.play.name_at(b)
            if name != self.section:
                self.section = name
                if self.on_section is not None and name is not None:
                    self.on_section(b, name)
            if self.play.riser_into(b + 1) and self.riser_addresses:
                end = clock.sample_at(meter.bar_start(b + 1))
                fade_s = max(0.0, (end - t) / s.sample_rate - 0.03)
                back = {}
                for address in self.riser_addresses:
                    q = s.param(address)
                    v = s.value(address)
                    back[address] = v
                    s.glide(address, min(q.hi, v * 2.0 ** RISER_OCTAVES), fade_s,
                            time=t)
                self._restore[b + 1] = back

