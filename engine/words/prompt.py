"""Style prompts for the band (control side): "funky, 96 bpm, sparse drums, dreamy keys".

A prompt names styles (engine/words/styles.toml), optionally weighted ("70% lofi, 30% bossa",
`lofi:0.7 bossa:0.3`; a style without a weight weighs 1; weights are normalised), a tempo
("96 bpm"), band words ("calm", "swung", "fast") and part words placed before a part's name
("sparse drums", "low bass", "no lead", and any timbre word of engine/words: "dreamy keys").

Blending, deterministic: each number (tempo, swing, energy, each agent's density and octave) is
the weighted mean over the styles, a style that leaves a key out counting as that address's
neutral default; each choice (the band's style, each part's patch, an agent on or off) is the
heaviest style's (the first named on a tie; for a patch, the heaviest style naming one). Words
given outright (a tempo, "sparse drums", "calm") override the blend. Unknown words are reported,
not guessed. `apply_prompt` sends the result through `Session.set` (or `Session.glide` with a
fade), so the band changes from its next bar not yet scheduled, without stopping.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from engine.agents.base import STYLES
from engine.agents.steer import AGENT_PARTS, STEER_PARAMS
from engine.parts import PARTS

__all__ = ["StyleTable", "Prompt", "Settings", "Applied", "styles", "parse", "settings",
           "apply_prompt", "describe"]

PATH = Path(__file__).with_name("styles.toml")
TEMPO = "/transport/tempo_bpm"
SWING = "/band/swing"
PART_ALIASES = {"drum": "drums", "piano": "keys", "key": "keys", "chord": "chords",
                "melody": "lead", "pad": "chords", "pads": "chords"}
FILLERS = {"with", "and", "a", "an", "the", "some", "of", "bit", "little", "in", "plus", "mix"}
NEUTRAL = {TEMPO: 120.0, SWING: 0.0}
TOKEN = re.compile(r"(\d+(?:\.\d+)?)\s*(%|bpm\b)?|([a-z][a-z'\-]*)(?::(\d+(?:\.\d+)?))?|([,;+/])")


@dataclass(frozen=True)
class StyleTable:
    """The style words, part words and band words of a styles.toml."""
    styles: dict          # name -> its table
    aliases: dict         # word -> style name
    part_words: dict      # word -> (what, value): ("density", 0.2), ("octave", -1), ("on", False)
    band_words: dict      # word -> (what, value): ("energy", 0.3), ("tempo", "fast")


STYLE_KEYS = {"style", "tempo_bpm", "tempo_range_bpm", "swing", "energy", "aliases", "parts",
              "patches"}
PART_KEYS = {"density": (0.0, 1.0), "octave": (-2.0, 2.0), "on": None}
BAND_WORDS = {"swing": (0.0, 0.5), "energy": (0.0, 1.0), "tempo": ("slow", "fast"),
              "density": (0.0, 1.0)}


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _line(text: str, section: str, key: str) -> int | None:
    """The line of `key` ("parts.drums.density") under `[section]`, written any way TOML
    allows: in a table of its own (`[styles.x.parts.drums]` density = ...), as a dotted key
    or an inline table (`parts.drums = { density = ... }`); else the section's header."""
    from engine.tomldata import line_of
    keys = [k for k in key.split(".") if k]
    lines = text.splitlines()

    def has(n, k):
        return n is not None and re.match(rf'\s*"?{re.escape(k)}"?\s*=', lines[n - 1])

    for cut in range(len(keys) - 1, -1, -1):         # the deepest table holding the key
        n = line_of(text, ".".join([section] + keys[:cut]), keys[cut])
        if has(n, keys[cut]):
            return n
    for j in range(len(keys), 0, -1):                # a dotted key in the section
        n = line_of(text, section, ".".join(keys[:j]))
        if has(n, ".".join(keys[:j])):
            return n
    return line_of(text, section, None)


@lru_cache(maxsize=4)
def styles(path: str = str(PATH)) -> StyleTable:
    """The style table, checked: a mistake is a DataError naming the file, line and field
    ("styles.toml:31: [styles.lofi] parts.drums.density: must be 0..1, got 1.5")."""
    from engine.tomldata import DataError, parse as parse_toml
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror}") from exc
    data = parse_toml(text, str(path))

    def fail(section: str, key: str, msg: str):
        line = _line(text, section, key)
        raise DataError(f"{path}:{line or '?'}: [{section}] {key}: {msg}")

    for section in data:
        if section not in ("styles", "part_words", "band_words"):
            fail(section, "", "unknown section; known: styles, part_words, band_words")
    table, aliases = {}, {}
    for name, s in data.get("styles", {}).items():
        sect = f"styles.{name}"
        if not isinstance(s, dict):
            fail("styles", name, "must be a table")
        for key in s:
            if key not in STYLE_KEYS:
                fail(sect, key, f"unknown key; known: {', '.join(sorted(STYLE_KEYS))}")
        if s.get("style") not in STYLES:
            fail(sect, "style", f"must be one of {', '.join(STYLES)}, got {s.get('style')!r}")
        if not _number(s.get("tempo_bpm")) or not 20 <= s["tempo_bpm"] <= 300:
            fail(sect, "tempo_bpm", f"must be a number 20..300, got {s.get('tempo_bpm')!r}")
        rng = s.get("tempo_range_bpm", [s["tempo_bpm"]] * 2)
        if not isinstance(rng, list) or len(rng) != 2 or not all(map(_number, rng)) or \
                not 20 <= rng[0] <= rng[1] <= 300:
            fail(sect, "tempo_range_bpm", f"must be [slow, fast] within 20..300, got {rng!r}")
        for key, (lo, hi) in (("swing", (0.0, 0.5)), ("energy", (0.0, 1.0))):
            if key in s and (not _number(s[key]) or not lo <= s[key] <= hi):
                fail(sect, key, f"must be a number {lo:g}..{hi:g}, got {s[key]!r}")
        words = s.get("aliases", [])
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            fail(sect, "aliases", f"must be a list of words, got {words!r}")
        for word in [name] + words:
            if word in aliases:
                fail(sect, "aliases" if word != name else "", f"{word!r} is already a word "
                     f"of [styles.{aliases[word]}]")
        for part, spec in s.get("parts", {}).items():
            if part not in PARTS or part not in AGENT_PARTS:
                fail(sect, f"parts.{part}", f"no part with an agent {part!r}; parts: "
                     f"{', '.join(AGENT_PARTS)}")
            if not isinstance(spec, dict):
                fail(sect, f"parts.{part}", "must be a table of density, octave, on")
            for key, v in spec.items():
                if key not in PART_KEYS or (key == "octave" and part == "drums"):
                    fail(sect, f"parts.{part}.{key}", "unknown key; known: " + ", ".join(
                        k for k in PART_KEYS if not (k == "octave" and part == "drums")))
                if key == "on" and not isinstance(v, bool):
                    fail(sect, f"parts.{part}.{key}", f"must be true or false, got {v!r}")
                if key != "on" and (not _number(v) or not PART_KEYS[key][0] <= v <=
                                    PART_KEYS[key][1]):
                    lo, hi = PART_KEYS[key]
                    fail(sect, f"parts.{part}.{key}", f"must be a number {lo:g}..{hi:g}, "
                         f"got {v!r}")
        for part, patch in s.get("patches", {}).items():
            if part not in PARTS:
                fail(sect, f"patches.{part}", f"no part {part!r}; parts: {', '.join(PARTS)}")
            if not isinstance(patch, str) or not patch:
                fail(sect, f"patches.{part}", f"must be a patch name, got {patch!r}")
        table[name] = s
        for word in [name] + words:
            aliases[word] = name
    part_words, band_words = {}, {}
    for group, allowed, out in (("part_words", PART_KEYS, part_words),
                                ("band_words", BAND_WORDS, band_words)):
        for what, words in data.get(group, {}).items():
            if what not in allowed:
                fail(group, what, f"unknown kind; known: {', '.join(allowed)}")
            if not isinstance(words, dict):
                fail(group, what, "must be a table of word = value")
            for w, v in words.items():
                rule = allowed[what]
                ok = isinstance(v, bool) if rule is None else v in rule if \
                    isinstance(rule[0], str) else _number(v) and rule[0] <= v <= rule[1]
                if not ok:
                    want = "true or false" if rule is None else " or ".join(rule) if \
                        isinstance(rule[0], str) else f"a number {rule[0]:g}..{rule[1]:g}"
                    fail(group, f"{what}.{w}", f"must be {want}, got {v!r}")
                if w in out:
                    fail(group, f"{what}.{w}", f"{w!r} is already a {out[w][0]} word")
                out[w] = (what, v)
    return StyleTable(table, aliases, part_words, band_words)


@dataclass
class Prompt:
    """What a prompt says, before blending."""
    weights: list = field(default_factory=list)     # [(style name, weight)], in order
    tempo_bpm: float | None = None
    band: list = field(default_factory=list)        # [(what, value)] of band words, in order
    parts: list = field(default_factory=list)       # [(part, word)], in order
    unknown: list = field(default_factory=list)


def _timbre_word(word: str) -> bool:
    from engine.words.vocab import vocabulary
    parsed = vocabulary().parse(word)
    return bool(parsed.terms) and not parsed.unknown


def parse(text: str, table: StyleTable | None = None) -> Prompt:
    """The styles, weights, tempo, band words and part words of `text`."""
    table = table or styles()
    out = Prompt()
    weight: float | None = None
    pending: list[str] = []

    def flush():
        for w in pending:
            if w in table.band_words:
                out.band.append(table.band_words[w])
            elif w in table.part_words and table.part_words[w][0] == "density":
                out.band.append(table.part_words[w])          # "sparse" alone: every agent
            elif w not in FILLERS:
                out.unknown.append(w)
        pending.clear()

    for m in TOKEN.finditer(text.lower()):
        number, unit, word, wnum, sep = m.groups()
        if sep:
            flush()
        elif number is not None:
            flush()
            if unit == "bpm":
                out.tempo_bpm = float(number)
            elif unit == "%":
                weight = float(number) / 100.0
            else:
                out.unknown.append(number)
        elif word in table.aliases:
            flush()
            w = float(wnum) if wnum is not None else weight if weight is not None else 1.0
            out.weights.append((table.aliases[word], w))
            weight = None
        elif wnum is not None:
            out.unknown.append(f"{word}:{wnum}")
        elif word in PARTS or word in PART_ALIASES:
            part = PART_ALIASES.get(word, word)
            for w in pending:
                if w in table.part_words or _timbre_word(w):
                    out.parts.append((part, w))
                elif w not in FILLERS:
                    out.unknown.append(w)
            pending.clear()
        else:
            pending.append(word)
    flush()
    return out


@dataclass
class Settings:
    """A prompt's band settings: address -> value (a choice as its word), patches per part,
    timbre words per part, and the words not understood."""
    values: dict = field(default_factory=dict)
    patches: dict = field(default_factory=dict)
    timbre: dict = field(default_factory=dict)
    unknown: list = field(default_factory=list)


def _default(address: str) -> float:
    return NEUTRAL[address] if address in NEUTRAL else float(STEER_PARAMS[address].default)


def settings(text: str, table: StyleTable | None = None) -> Settings:
    """The blended band settings of `text` (see the module's doc for the rules)."""
    table = table or styles()
    p = parse(text, table)
    out = Settings(unknown=list(p.unknown))
    bad = [(n, w) for n, w in p.weights if w <= 0]
    out.unknown += [f"{n}:{w:g} (a weight must be > 0)" for n, w in bad]
    weights = [(n, w) for n, w in p.weights if w > 0]
    total = sum(w for _, w in weights)
    if weights:
        mix = [(table.styles[n], w / total) for n, w in weights]
        heavy = sorted(mix, key=lambda sw: -sw[1])          # stable: the first on a tie
        numbers: dict[str, list] = {TEMPO: [], SWING: [], "/band/energy": []}
        for s, w in mix:
            numbers[TEMPO].append((float(s["tempo_bpm"]), w))
            numbers[SWING].append((float(s.get("swing", 0.0)), w))
            numbers["/band/energy"].append((float(s.get("energy", 0.5)), w))
        for part in AGENT_PARTS:
            keys = ["density"] + (["octave"] if part != "drums" else [])
            for key in keys:
                address = f"/{part}/agent/{key}"
                numbers[address] = [(float(s.get("parts", {}).get(part, {}).get(
                    key, _default(address))), w) for s, w in mix]
        for address, vw in numbers.items():
            v = sum(v * w for v, w in vw)
            if address.endswith("/octave"):
                v = float(round(v))
            if any(v != _default(address) for v, _ in vw) or address in (TEMPO, SWING) \
                    or address == "/band/energy":
                out.values[address] = round(v, 4)
        out.values["/band/style"] = heavy[0][0]["style"]
        for part in AGENT_PARTS:
            on = heavy[0][0].get("parts", {}).get(part, {}).get("on")
            if on is not None:
                out.values[f"/{part}/agent/on"] = "on" if on else "off"
        for part in PARTS:
            name = next((s["patches"][part] for s, _ in heavy
                         if part in s.get("patches", {})), None)
            if name:
                out.patches[part] = name
        lo = sum(s.get("tempo_range_bpm", [s["tempo_bpm"]] * 2)[0] * w for s, w in mix)
        hi = sum(s.get("tempo_range_bpm", [s["tempo_bpm"]] * 2)[1] * w for s, w in mix)
    else:
        lo, hi = 80.0, 140.0
    for what, v in p.band:
        if what == "energy":
            out.values["/band/energy"] = float(v)
        elif what == "swing":
            out.values[SWING] = float(v)
        elif what == "tempo":
            out.values[TEMPO] = round(float(lo if v == "slow" else hi), 4)
        elif what == "density":
            for part in AGENT_PARTS:
                out.values[f"/{part}/agent/density"] = float(v)
    if p.tempo_bpm is not None:
        out.values[TEMPO] = p.tempo_bpm
    for part, word in p.parts:
        what, v = table.part_words.get(word, ("timbre", word))
        if what == "timbre":
            out.timbre.setdefault(part, []).append(word)
        elif part not in AGENT_PARTS:
            out.unknown.append(f"{word} {part} ({part} has no agent)")
        elif what == "on":
            out.values[f"/{part}/agent/on"] = "on" if v else "off"
        elif what == "octave" and part == "drums":
            out.unknown.append(f"{word} drums (the drums have no octave)")
        else:
            out.values[f"/{part}/agent/{what}"] = float(v)
    return out


@dataclass
class Applied:
    """What `apply_prompt` did: the values set, patches loaded, timbre moved, and what not."""
    settings: Settings
    sets: list = field(default_factory=list)
    patches: dict = field(default_factory=dict)
    timbre: dict = field(default_factory=dict)
    skipped: list = field(default_factory=list)


def apply_prompt(session, text: str, fade_s: float = 0.0, similar=None, folders=None,
                 load_patches: bool = True) -> Applied:
    """Set the band as `text` says through the session's address space: every value is checked
    first (a bad one, or a prompt of which nothing is understood, raises ValueError, is
    counted in engine.words.design.live_words and changes nothing), then set from the next bar
    not yet scheduled (a tempo from the next beat), continuous values gliding over `fade_s`
    seconds like a faded scene. Patches (by name, in `folders`, default the factory library; all in one
    crossfaded graph swap) and timbre words follow; one that cannot apply (no such part, the
    last swap still fading) is reported in `skipped`."""
    from engine.agents.steer import check_value
    from engine.words.design import live_words
    counts = live_words(session).counts
    counts["prompts"] += 1
    try:
        s = settings(text)
        counts["unknown_words"] += len(s.unknown)
        if not (s.values or s.patches or s.timbre):
            raise ValueError("nothing understood in the prompt" + (
                f" (not understood: {', '.join(s.unknown)})" if s.unknown else "") +
                f"; styles: {', '.join(styles().styles)}, a tempo (96 bpm), part words "
                f"(sparse drums, dreamy keys)")
        checked = [(a, check_value(a, session.param(a), v)) for a, v in s.values.items()]
    except (KeyError, ValueError):
        counts["prompts_refused"] += 1
        raise
    out = Applied(s)
    for address, v in checked:
        out.sets.append((address, session.glide(address, v, fade_s) if fade_s > 0
                         else session.set(address, v)))
    if load_patches and s.patches:
        from engine.words.design import library
        files = {p.stem: p for p in library(folders)}
        for part, name in s.patches.items():
            if name not in files:
                out.skipped.append(f"patch {name} on {part}: no such patch")
        paths = {part: files[name] for part, name in s.patches.items() if name in files}
        try:
            if paths:
                session.load_patches(paths)         # one crossfaded swap for all the parts
                out.patches = {part: s.patches[part] for part in paths}
        except Exception as exc:  # noqa: BLE001 - patches that cannot load are reported
            out.skipped += [f"patch {s.patches[part]} on {part}: {exc}" for part in paths]
    for part, words in s.timbre.items():
        from engine.words.design import edit_live
        try:
            sets, _ = edit_live(session, part, ", ".join(words), similar)
            out.timbre[part] = sets
        except (KeyError, ValueError) as exc:
            out.skipped.append(f"{' '.join(words)} {part}: {str(exc).strip(chr(39))}")
    return out


def describe(applied: Applied) -> str:
    """A few lines for the terminal."""
    s = applied.settings
    vals = ", ".join(f"{a}={v:g}" if isinstance(v, float) else f"{a}={v}"
                     for a, v in s.values.items())
    lines = [f"prompt: {len(applied.sets)} values ({vals})" if vals else "prompt: no values"]
    if applied.patches:
        lines.append("patches: " + ", ".join(f"{p}={n}" for p, n in applied.patches.items()))
    for part, sets in applied.timbre.items():
        lines.append(f"{part}: {len(sets)} sound parameters moved")
    lines += [f"skipped: {x}" for x in applied.skipped]
    if s.unknown:
        lines.append("unknown: " + ", ".join(s.unknown))
    return "\n".join(lines)
