"""Patches from words, and words applied to patches and to playing parts (control side).

`from_text(text)` parses a description with the vocabulary (engine.words.vocab), picks the
nearest factory patch as a base (its tags and name against the phrase's category, engine and
timbre words), applies each word's moves scaled by its strength and writes a readable patch
whose comment block says which words did what. The same text gives the same bytes.

`edit_file(path, phrase)` applies a phrase ("more air, less bite") to a patch file, keeping
the previous text in a history beside it (`undo_file`). `edit_live(session, part, phrase)`
turns a phrase into `Session.set(address, value)` calls on the part's instrument and inserts,
which the graph smooths; a move that needs an insert the part lacks is reported, not done;
`undo_live(session, part)` sets back what the part's last live edit replaced.

A move works on the parameter's own range and curve (engine.rt.param.Param): a step of 0.1
on cutoff_hz (log, 20..20000 Hz) is an octave, on a linear 0..1 mix it is 0.1. Results are
clamped to the range, so no word can make a patch the engine refuses.
"""
from __future__ import annotations

import json
import math
import re
import tomllib
import weakref
from dataclasses import dataclass, field
from pathlib import Path

from engine.rt.param import Param
from engine.words.vocab import ENGINES, Vocabulary, effect_params, engine_params, vocabulary

FACTORY = Path(__file__).resolve().parents[2] / "patches"
HISTORY = ".bandmate-history"
DEFAULT_BASE = "keys"
# where an added insert goes in a chain: tone shaping first, then modulation, then space
INSERT_ORDER = ("saturation", "bitcrusher", "eq", "phaser", "flanger", "chorus", "width",
                "reverb")


# ---- values along a parameter's curve --------------------------------------------------------
def to_unit(q: Param, v: float) -> float:
    """The inverse of `Param.from_unit`: where `v` sits on 0..1 along the curve."""
    v = min(max(float(v), q.lo), q.hi)
    if q.curve == "log":
        return math.log(v / q.lo) / math.log(q.hi / q.lo)
    if q.hi == q.lo:
        return 0.0
    return (v - q.lo) / (q.hi - q.lo)


def tidy(q: Param, v: float) -> float:
    """`v` clamped to the range and rounded to 4 significant digits (readable files)."""
    v = float(f"{min(max(v, q.lo), q.hi):.4g}")
    return min(max(v, q.lo), q.hi)


def move_value(q: Param, current, move, strength: float):
    """The new value of a parameter now at `current` (a number, or a choice word) under one
    move at `strength` (> 0), or None when the move leaves it as it is."""
    if isinstance(move, (int, float)):
        new = q.from_unit(to_unit(q, current) + move * strength)
    elif "toward" in move:
        f = min(1.0, move.get("by", 1.0) * strength)
        u = to_unit(q, current)
        new = q.from_unit(u + (to_unit(q, move["toward"]) - u) * f)
    elif "snap" in move:
        if strength < 0.5:
            return None
        s = move["snap"]
        new = max(s, round(current / s) * s)
    else:
        if strength < 0.3 or ("if" in move and current not in move["if"]) or \
                current == move["set"]:
            return None
        return move["set"]
    new = tidy(q, new)
    return None if new == tidy(q, current) else new


# ---- views: a patch file's values, or a playing part's ---------------------------------------
@dataclass
class Change:
    term: int            # which term of the phrase (Result.said)
    target: str
    old: object
    new: object
    added: str = ""      # an insert added for it


@dataclass
class Result:
    """What a phrase did: the changes, per term, and what could not be done."""
    said: list = field(default_factory=list)        # (term said, headword, strength, via)
    changes: list = field(default_factory=list)
    skipped: list = field(default_factory=list)     # text
    unknown: list = field(default_factory=list)
    base: str = ""


def _fm_ops(algorithm: str, role: str) -> list[int]:
    from engine.declared import unit
    car = unit("fm").CARRIERS[int(algorithm) - 1]
    return [k for k in (1, 2, 3, 4) if (k in car) == (role == "carriers")]


class PatchView:
    """A patch's values as plain data: engine values in their sections, inserts as a list."""

    def __init__(self, engine: str, values: dict, inserts: list, fresh: dict):
        self.engine, self.values, self.inserts, self.fresh = engine, values, inserts, fresh
        self.params = engine_params(engine)

    def names(self, target: str) -> list[str]:
        """The engine parameter names a target stands for (fm roles: several operators)."""
        if "/" in target:
            role, name = target.split("/", 1)
            alg = self.values.get("algorithm", self.params["algorithm"].choices[
                int(self.params["algorithm"].default)])
            return [f"op{k}_{name}" for k in _fm_ops(alg, role)]
        return [target]

    def get(self, name: str):
        q = self.params[name]
        return self.values.get(name, q.choices[int(q.default)] if q.choices else q.default)

    def set(self, name: str, value) -> None:
        self.values[name] = value

    def insert_get(self, unit: str, name: str):
        q = effect_params(unit)[name]
        for spec in self.inserts:
            if spec["unit"] == unit:
                return spec.get(name, q.choices[int(q.default)] if q.choices else q.default), \
                    True
        v = self.fresh[unit].get(name)
        return (v if v is not None else q.choices[int(q.default)] if q.choices else q.default,
                False)

    def insert_set(self, unit: str, name: str, value) -> str:
        for spec in self.inserts:
            if spec["unit"] == unit:
                spec[name] = value
                return ""
        from engine.rt.layout import MAX_OPS
        if len(self.inserts) >= MAX_OPS // 4:
            raise ValueError(f"the chain is full: no room for {unit}")
        spec = {"unit": unit} | dict(self.fresh[unit]) | {name: value}
        rank = INSERT_ORDER.index(unit) if unit in INSERT_ORDER else len(INSERT_ORDER)
        at = next((i for i, s in enumerate(self.inserts) if s["unit"] in INSERT_ORDER and
                   INSERT_ORDER.index(s["unit"]) > rank), len(self.inserts))
        self.inserts.insert(at, spec)
        return unit


class LiveView:
    """A playing part's values through the session's one address space (public API only)."""

    def __init__(self, session, part: str):
        self.session, self.part = session, part
        prefix = f"/{part}/"
        names = {a[len(prefix):] for a in session.addresses() if a.startswith(prefix)}
        synth = {n.split("/", 1)[1] for n in names if n.startswith("synth/")}
        if not synth:
            parts = sorted({a.split("/")[1] for a in session.addresses() if a.count("/") >= 3})
            raise KeyError(f"no part {part!r} with an instrument; parts: {', '.join(parts)}")
        self.engine = next((e for e in ENGINES if set(engine_params(e)) <= synth), "")
        if not self.engine:
            raise KeyError(f"{part}: its instrument is not one words can move "
                           f"({', '.join(ENGINES)})")
        self.params = engine_params(self.engine)
        self.fresh = vocabulary().fresh
        self.sets: list[tuple[str, float]] = []
        self.pending: dict[str, float] = {}

    def _read(self, address: str):
        q = self.session.param(address)
        v = self.pending.get(address)
        if v is None:
            v = self.session.value(address)
        return q.choices[int(round(v))] if q.choices else v

    def _write(self, address: str, value) -> None:
        q = self.session.param(address)
        number = float(q.choices.index(value)) if q.choices else float(value)
        self.sets.append((address, number))
        self.pending[address] = number

    def names(self, target: str) -> list[str]:
        if "/" in target:
            role, name = target.split("/", 1)
            return [f"op{k}_{name}" for k in _fm_ops(self.get("algorithm"), role)]
        return [target]

    def get(self, name: str):
        return self._read(f"/{self.part}/synth/{name}")

    def set(self, name: str, value) -> None:
        self._write(f"/{self.part}/synth/{name}", value)

    def insert_get(self, unit: str, name: str):
        address = f"/{self.part}/{unit}/{name}"
        try:
            return self._read(address), True
        except KeyError:
            q = effect_params(unit)[name]
            v = self.fresh[unit].get(name)
            return (v if v is not None else q.choices[int(q.default)] if q.choices
                    else q.default, False)

    def insert_set(self, unit: str, name: str, value) -> str:
        address = f"/{self.part}/{unit}/{name}"
        try:
            self.session.param(address)
        except KeyError:
            raise ValueError(f"needs a {unit} insert on {self.part} (not added while "
                             f"playing; `bandmate patch edit` adds it)") from None
        self._write(address, value)
        return ""


def _amount(vocab: Vocabulary, unit: str) -> str | None:
    """The parameter whose move may add `unit` to a chain: the first in its [fresh] table (a
    chorus's mix, a reverb's wet_level); None (any) for a unit neutral at its defaults (eq)."""
    fresh = vocab.fresh[unit]
    return next(iter(fresh)) if fresh else None


def apply_terms(view, terms, vocab: Vocabulary, result: Result) -> None:
    """Every term's moves onto `view`, in the order of the phrase."""
    for term in terms:
        k = len(result.said)
        result.said.append((term.said, term.word, term.strength, term.via))
        for word, target, move, strength in vocab.expand(term.word, term.strength,
                                                         view.engine):
            if "." in target:
                unit, name = target.split(".", 1)
                q = effect_params(unit)[name]
                cur, present = view.insert_get(unit, name)
                new = move_value(q, cur, move, strength)
                if new is None or (not present and _amount(vocab, unit) not in (None, name)):
                    continue        # only a unit's amount (a chorus's mix) adds the unit
                try:
                    added = view.insert_set(unit, name, new)
                except ValueError as exc:
                    if str(exc) not in result.skipped:
                        result.skipped.append(str(exc))
                    continue
                result.changes.append(Change(k, target, cur if present else None, new,
                                             added))
                continue
            for name in view.names(target):
                q = view.params[name]
                cur = view.get(name)
                new = move_value(q, cur, move, strength)
                if new is not None:
                    view.set(name, new)
                    result.changes.append(Change(k, name, cur, new))


# ---- base patch ------------------------------------------------------------------------------
def library(folders=None) -> list[Path]:
    """The patch files words may start from: the given folders (default: the factory)."""
    files = []
    for folder in folders or [FACTORY]:
        files += sorted(Path(folder).expanduser().glob("*.toml"))
    return files


def pick_base(parsed, files: list[Path], text: str = ""):
    """(path, Patch, score) of the library patch nearest to the phrase: its category words
    against the tags (3 each), other words of the phrase that are tags or name words ("acid":
    2 each), engine words against the engine (2), timbre headwords and their forms against
    tags (1 each), a file named after a category (1); ties go to the earlier file name. A kit
    is only picked when the phrase asks for drums."""
    from engine.patch import read_patch
    from engine.tomldata import DataError
    vocab = vocabulary()
    heads = {t.word for t in parsed.terms if t.strength > 0}
    tokens = set(re.findall(r"[a-z0-9][a-z0-9\-]*", text.lower())) - vocab.ignore \
        - set(vocab.forms)
    best = None
    for path in files:
        try:
            p = read_patch(path)
        except DataError:
            continue
        tags = set(p.tags) | set(re.findall(r"[a-z]+", p.name.lower()))
        if ("drums" in p.tags or p.engine == "kit") and "drums" not in parsed.categories:
            continue
        if p.engine not in ENGINES and "drums" not in parsed.categories:
            continue
        score = 3 * len(set(parsed.categories) & tags)
        score += 2 * len((tokens - set(parsed.categories)) & tags)
        score += path.stem.split("-")[0] in parsed.categories
        score += 0.5 * (path.stem in parsed.categories) + 0.25 * (path.stem == DEFAULT_BASE)
        score += 2 * (p.engine in parsed.engines or
                      (p.engine == "sampler" and "sampled" in tags and "sampler" in
                       parsed.engines))
        score += sum(1 for t in tags if vocab.lookup(t, vocab.forms) in heads)
        if best is None or score > best[2]:
            best = (path, p, score)
    if best is None:
        raise ValueError("no patch to start from in " + ", ".join(str(f.parent) for f in files[:1]))
    return best


# ---- patch files -----------------------------------------------------------------------------
def _values(patch) -> dict:
    """The engine values of a validated patch, flat: name -> value (choices as words)."""
    from engine.patch import GROUPS, section
    if patch.engine == "analog":
        return {n: patch.data[g][n] for g, names in GROUPS.items() for n in names}
    return dict(patch.data[section(patch.engine)])


def _present(path: Path | None, patch) -> set[str]:
    """The engine value names written in the file (the rest are defaults, left unwritten)."""
    if path is None:
        return set()
    raw = tomllib.loads(path.read_text())
    return {k for sect, vals in raw.items() if sect != "patch" and isinstance(vals, dict)
            for k in vals}


def _num(v) -> str:
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    text = repr(float(v))
    return text if ("." in text or "e" in text or "inf" in text) else text + ".0"


def _value(v) -> str:
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_value(x)}" for k, x in v.items()) + " }"
    return _num(v)


def _wrap(prefix: str, text: str, width: int = 98) -> list[str]:
    lines, line = [], prefix
    for word in text.split():
        if len(line) + len(word) + 1 > width and line.strip() != prefix.strip():
            lines.append(line.rstrip())
            line = "#   "
        line += word + " "
    lines.append(line.rstrip())
    return lines


def explain(result: Result) -> list[str]:
    """The comment lines saying which words did what."""
    lines = []
    by_term: dict[int, list[Change]] = {}
    for c in result.changes:
        by_term.setdefault(c.term, []).append(c)
    for k, (said, word, strength, via) in enumerate(result.said):
        how = f"x{strength:g}" if strength > 0 else \
            f"reversed x{-strength:g}: {vocabulary().words[word].opposite}"
        what = word if not via else f"{via} -> {word}"
        moved = "; ".join(
            f"{c.target} {_short(c.old)} -> {_short(c.new)}" + (f" (added {c.added})"
                                                              if c.added else "")
            for c in by_term.get(k, [])) or "nothing to move on this patch"
        lines += _wrap(f"#   \"{said}\" = {what} ({how}): ", moved)
    for text in result.skipped:
        lines += _wrap("#   not done: ", text)
    if result.unknown:
        lines += _wrap("#   not understood (ignored): ", ", ".join(result.unknown))
    return lines


def _short(v) -> str:
    if v is None:
        return "(new)"
    return v if isinstance(v, str) else f"{v:.4g}" if abs(v) < 1e4 else f"{v:.0f}"


def patch_text(header: list[str], meta: dict, engine: str, values: dict, present: set,
               defaults: dict) -> str:
    """A readable patch file: comments, [patch], then the engine's values in their tables
    (analog: grouped), written when the base wrote them or when a word changed them."""
    from engine.patch import GROUPS, section
    out = list(header)
    out.append("[patch]")
    for key in ("name", "description", "tags", "engine"):
        out.append(f"{key} = {_value(meta[key])}")
    if meta["inserts"]:
        out.append("inserts = [")
        out += [f"    {_value(spec)}," for spec in meta["inserts"]]
        out.append("]")
    params = engine_params(engine)         # then data keys (a sampler's `samples`)
    groups = GROUPS if engine == "analog" else {section(engine): tuple(
        [n for n in params if n in values] + [n for n in values if n not in params])}
    for group, names in groups.items():
        rows = [f"{n} = {_num(values[n])}" for n in names
                if n in values and (n in present or values[n] != defaults.get(n))]
        if rows:
            out += ["", f"[{group}]"] + rows
    return "\n".join(out) + "\n"


def _defaults(engine: str) -> dict:
    return {n: (q.choices[int(q.default)] if q.choices else float(q.default))
            for n, q in engine_params(engine).items()}


def from_text(text: str, folders=None, similar=None, source: str = "") -> tuple[str, Result]:
    """(patch file text, what was done) for a description. Deterministic: the same text,
    library and model give the same bytes."""
    vocab = vocabulary()
    parsed = vocab.parse(text, similar)
    path, base, _ = pick_base(parsed, library(folders), text)
    named = set(base.tags) | set(re.findall(r"[a-z0-9]+", base.name.lower()))
    result = Result(unknown=[u for u in parsed.unknown if u not in named], base=str(path.name))
    view = PatchView(base.engine, _values(base), [dict(s) for s in base.inserts], vocab.fresh)
    apply_terms(view, parsed.terms, vocab, result)
    words = [t.word for t in parsed.terms if t.strength > 0]
    opposite = {vocab.words[t.word].opposite for t in parsed.terms if t.strength < 0}
    tags = list(dict.fromkeys(list(base.tags) + words + sorted(opposite)))
    name = " ".join(text.split())[:60]
    meta = {"name": name, "description": f"from words: {' '.join(text.split())}",
            "tags": tags, "engine": base.engine, "inserts": view.inserts}
    header = ["# Made from words by `bandmate patch from-text` (engine/words, docs/words.md):"]
    header += _wrap("#   ", json.dumps(" ".join(text.split())))
    header.append(f"# base: {path.name} ({base.name or path.stem}, {base.engine})")
    header += explain(result)
    body = patch_text(header, meta, base.engine, view.values, _present(path, base),
                      _defaults(base.engine))
    _check(body, source or "<from-text>")
    return body, result


def _check(text: str, where: str) -> None:
    """The written text is a valid patch (a failure here is a bug in the words' moves)."""
    import tempfile
    from engine.patch import read_patch
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "check.toml"
        p.write_text(text)
        read_patch(p)


# ---- edits of a patch file, with undo --------------------------------------------------------
def _history(path: Path) -> Path:
    return path.parent / HISTORY / path.name


def edit_text(path: Path, phrase: str, similar=None) -> tuple[str, Result]:
    """(new text, what was done) for `phrase` applied to the patch file at `path`."""
    from engine.patch import read_patch
    vocab = vocabulary()
    patch = read_patch(path)
    if patch.engine not in ENGINES:
        raise ValueError(f"{path}: words move {', '.join(ENGINES)} patches, not "
                         f"{patch.engine}")
    parsed = vocab.parse(phrase, similar)
    result = Result(unknown=parsed.unknown, base=path.name)
    view = PatchView(patch.engine, _values(patch), [dict(s) for s in patch.inserts],
                     vocab.fresh)
    apply_terms(view, parsed.terms, vocab, result)
    old = path.read_text()
    header = [ln for ln in old.splitlines() if ln.startswith("#")]
    cut = next((i for i, ln in enumerate(header) if ln.startswith("# last edit:")), None)
    header = header[:cut] if cut is not None else header
    header = [ln for ln in header if old.splitlines().index(ln) < _first_table(old)]
    header += _wrap("# last edit: ", json.dumps(" ".join(phrase.split())))
    header += explain(result)
    meta = {"name": patch.name, "description": patch.description, "tags": patch.tags,
            "engine": patch.engine, "inserts": view.inserts}
    body = patch_text(header, meta, patch.engine, view.values, _present(path, patch),
                      _defaults(patch.engine))
    _check(body, str(path))
    return body, result


def _first_table(text: str) -> int:
    for i, ln in enumerate(text.splitlines()):
        if ln.lstrip().startswith("["):
            return i
    return len(text.splitlines())


def edit_file(path: str | Path, phrase: str, similar=None) -> Result:
    """Apply `phrase` to the patch file, saving its previous text for `undo_file`."""
    path = Path(path)
    body, result = edit_text(path, phrase, similar)
    if result.changes:
        hist = _history(path)
        hist.mkdir(parents=True, exist_ok=True)
        n = len(list(hist.glob("*.toml")))
        (hist / f"{n + 1:04d}.toml").write_text(path.read_text())
        path.write_text(body)
    return result


def undo_file(path: str | Path) -> int:
    """Put back the text before the last edit; returns how many earlier edits remain
    (ValueError when there is nothing to undo)."""
    path = Path(path)
    hist = _history(path)
    steps = sorted(hist.glob("*.toml")) if hist.is_dir() else []
    if not steps:
        raise ValueError(f"{path}: no edits to undo")
    path.write_text(steps[-1].read_text())
    steps[-1].unlink()
    return len(steps) - 1


# ---- live ------------------------------------------------------------------------------------
UNDO_DEPTH = 64         # live edits remembered per part


class LiveWords:
    """What words did to one playing session: each part's live edits (the values they
    replaced, newest last, for `undo_live`) and counts of the words commands (edits, undos,
    prompts, the refused ones and the words not understood), shared by every way in (the
    terminal's `:edit`, OSC, MQTT)."""

    def __init__(self):
        self.history: dict[str, list[list[tuple[str, float]]]] = {}
        self.counts = {"edits": 0, "edits_refused": 0, "undos": 0, "undos_refused": 0,
                       "prompts": 0, "prompts_refused": 0, "unknown_words": 0}


_LIVE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def live_words(session) -> LiveWords:
    """The session's LiveWords (made on first use, gone with the session)."""
    state = _LIVE.get(session)
    if state is None:
        state = _LIVE[session] = LiveWords()
    return state


def edit_live(session, part: str, phrase: str, similar=None) -> tuple[list, Result]:
    """The (address, value) calls that move `part` as `phrase` says, already sent with
    `session.set` (the graph glides continuous values; circuit changes dip and switch). The
    values they replace are kept for `undo_live`; a phrase that moves nothing is not an edit."""
    vocab = vocabulary()
    state = live_words(session)
    try:
        view = LiveView(session, part)
    except KeyError:
        state.counts["edits_refused"] += 1
        raise
    parsed = vocab.parse(phrase, similar)
    result = Result(unknown=parsed.unknown, base=f"/{part}")
    apply_terms(view, parsed.terms, vocab, result)
    final: dict[str, float] = {}
    for address, value in view.sets:       # several words on one address: the last wins
        final[address] = value
    old = [(address, session.value(address)) for address in final]
    for address, value in final.items():
        session.set(address, value)
    state.counts["unknown_words"] += len(result.unknown)
    if final:
        state.counts["edits"] += 1
        steps = state.history.setdefault(part, [])
        steps.append(old)
        del steps[:-UNDO_DEPTH]
    else:
        state.counts["edits_refused"] += 1
    return list(final.items()), result


def undo_live(session, part: str) -> tuple[list, int]:
    """Put back the values `part`'s last live edit replaced (smoothed like the edit):
    ([(address, value)], live edits left to undo); ValueError when there is none."""
    state = live_words(session)
    steps = state.history.get(part, [])
    if not steps:
        state.counts["undos_refused"] += 1
        raise ValueError(f"{part}: no live edits to undo")
    sets = steps.pop()
    for address, value in sets:
        session.set(address, value)
    state.counts["undos"] += 1
    return sets, len(steps)


def summary(result: Result) -> str:
    """One line per word for the terminal."""
    return "\n".join(line[4:] if line.startswith("#   ") else line.lstrip("# ")
                     for line in explain(result))
